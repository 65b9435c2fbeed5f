"""The one delay policy, per-key backoff and CrashLoopBackOff: pure arithmetic with the time
passed in (nothing waits)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from controller.core.backoff import KUBELET, Delays, KeyedBackoff
from controller.core.planner import Create, Start
from controller.engine.crashloop import CrashLoop
from rma_testkit.fakes import spec


def test_delays_double_to_the_cap() -> None:
    d = Delays(base=0.5, cap=32.0)
    assert [d.delay(n) for n in range(1, 9)] == [0.5, 1, 2, 4, 8, 16, 32, 32]
    assert d.delay(10_000) == 32.0  # no overflow however long it fails


@given(st.integers(min_value=1, max_value=200), st.floats(min_value=0, max_value=1))
def test_jitter_stays_in_its_band(attempt: int, fraction: float) -> None:
    planned = Delays(1.0, 60.0).delay(attempt)
    assert 0 <= Delays(1.0, 60.0, jitter="full").delay(attempt, fraction) <= planned
    assert planned / 2 <= Delays(1.0, 60.0, jitter="half").delay(attempt, fraction) <= planned


def test_keyed_backoff_doubles_to_the_cap_and_resets() -> None:
    b = KeyedBackoff(KUBELET, reset_after=600)
    assert b.remaining("x", 0) == 0  # the first attempt never waits
    delays = [b.failure("x", 0) for _ in range(7)]
    assert delays == [10, 20, 40, 80, 160, 300, 300]
    assert b.remaining("x", 0) == 300 and b.next_due(0) == 300
    assert b.remaining("x", 300) == 0 and b.next_due(300) is None
    assert b.failure("x", 900) == 10 and b.failures("x") == 1  # quiet for 10 min: starts over
    b.reset("x")
    assert b.failures("x") == 0


def test_crash_loop_first_restart_immediate_then_held() -> None:
    now = [0.0]
    loop = CrashLoop(clock=lambda: now[0])
    restart = Start(spec("web"), "c1")
    other = Create(spec("db"))
    kept, held = loop.hold([restart, other])
    assert kept == [restart, other] and held == []  # first restart: at once
    kept, held = loop.hold([restart, other])
    assert kept == [other]  # the others are never delayed
    assert [(o.name, o.action, o.ok) for o in held] == [("web", "backoff", False)]
    assert "back-off 10 s" in str(held[0].error)
    assert loop.next_due() == 10  # the loop looks again when the wait ends
    now[0] += 10
    assert loop.next_due() is None
    assert loop.hold([restart])[0] == [restart]
    _, held = loop.hold([restart])
    assert "back-off 20 s" in str(held[0].error)


def test_a_container_that_ran_ten_minutes_restarts_at_once() -> None:
    now = [0.0]
    loop = CrashLoop(clock=lambda: now[0])
    restart = Start(spec("web"), "c1")
    for _ in range(4):
        loop.hold([restart])
        now[0] += 300
    now[0] += 600
    assert loop.hold([restart])[0] == [restart]
    held = loop.hold([restart])[1]
    assert held and "10 s" in str(held[0].error)


@pytest.mark.parametrize("times", [1, 3])
def test_unpause_is_not_a_restart(times: int) -> None:
    loop = CrashLoop()
    unpause = Start(spec("web"), "c1", unpause=True)
    for _ in range(times):
        assert loop.hold([unpause]) == ([unpause], [])
