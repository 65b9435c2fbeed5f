"""When the reconciler looks again (core/pacing.py): one pure function for `run` and `run_once`,
table-tested and checked for its bounds with hypothesis."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from controller.core.pacing import AFTER_ACTING, AFTER_EVENT, Pace, next_look, rechecks_after
from controller.core.results import ActionOutcome, ExecutionReport, PassResult

OK = ActionOutcome("a", "create", ok=True)
CONFLICT = ActionOutcome("a", "create", ok=False, error="name taken")
BUSY = ActionOutcome("a", "create", ok=False, error="engine busy", transient=True)
PULLING = ActionOutcome("a", "create", ok=False, pending=True)


def result(*outcomes: ActionOutcome, error: str | None = None) -> PassResult:
    return PassResult(1, planned=len(outcomes), report=ExecutionReport(outcomes), error=error)


@pytest.mark.parametrize(
    ("passed", "pace", "expected"),
    [
        (result(), Pace(30.0), 30.0),  # converged: the resync
        (result(error="engine down"), Pace(30.0, failed_in_row=1), 1.0),
        (result(error="engine down"), Pace(30.0, failed_in_row=3), 4.0),
        (result(error="engine down"), Pace(30.0, failed_in_row=40), 30.0),  # never past resync
        (result(BUSY), Pace(30.0), 2.0),  # a transient action failure
        (result(CONFLICT), Pace(30.0), 30.0),  # a permanent one waits: no spin
        (result(PULLING), Pace(30.0), 30.0),  # the finished pull rings the doorbell
        (result(CONFLICT), Pace(30.0, dues=(9.0, 4.0)), 4.05),  # a back-off ends
        (result(OK), Pace(30.0, rechecks=(0.0, 0.4)), 0.0),  # verify what was done at once
        (result(), Pace(30.0, rechecks=(0.4,)), 0.4),
        (result(), Pace(0.05), 0.05),
    ],
)
def test_next_look(passed: PassResult, pace: Pace, expected: float) -> None:
    assert next_look(passed, pace) == pytest.approx(expected)


def test_rechecks_are_armed_by_an_event_or_by_acting_never_by_failing() -> None:
    assert rechecks_after(result(), (), event=True) == AFTER_EVENT
    assert rechecks_after(result(OK), (), event=False) == AFTER_ACTING
    assert rechecks_after(result(CONFLICT), (), event=False) == ()
    assert rechecks_after(result(CONFLICT), (0.4,), event=False) == (0.4,)  # the rest still due


outcomes = st.sampled_from([OK, CONFLICT, BUSY, PULLING])


@given(
    st.lists(outcomes, max_size=4),
    st.booleans(),
    st.floats(0.01, 3600),
    st.integers(0, 100),
    st.lists(st.floats(0, 10_000), max_size=3),
    st.lists(st.sampled_from([0.0, 0.1, 0.4]), max_size=2),
)
def test_never_negative_never_past_the_resync(
    done: list[ActionOutcome],
    failed: bool,
    resync: float,
    in_row: int,
    dues: list[float],
    rechecks: list[float],
) -> None:
    passed = result(*done, error="down" if failed else None)
    look = next_look(passed, Pace(resync, in_row, tuple(dues), tuple(rechecks)))
    assert 0.0 <= look <= resync
