"""The pure planner: table tests for each case, and hypothesis properties over a fake engine."""

from __future__ import annotations

from dataclasses import replace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from controller.core.models import ActualContainer, ContainerSpec, DesiredState
from controller.core.planner import (
    MUTATING,
    Action,
    Create,
    Pull,
    Recreate,
    Remove,
    ReportConflict,
    Start,
    plan,
)
from rma_testkit.fakes import spec

WEB = spec("web", "img:1")
DB = spec("db", "pg:16")


def actual(
    s: ContainerSpec | None,
    name: str = "",
    state: str = "running",
    *,
    managed: bool = True,
    cid: str = "id1",
    stale: bool = False,
) -> ActualContainer:
    return ActualContainer(
        id=cid,
        name=name or (s.name if s else "x"),
        state=state,
        spec_hash=("old" if stale else s.spec_hash()) if s else None,
        managed=managed,
    )


CASES: list[tuple[str, tuple[ContainerSpec, ...], list[ActualContainer], list[Action]]] = [
    ("empty", (), [], []),
    ("create from empty", (WEB,), [], [Pull("img:1"), Create(WEB)]),
    (
        "one pull for two containers",
        (WEB, replace(WEB, name="web2")),
        [],
        [Pull("img:1"), Create(WEB), Create(replace(WEB, name="web2"))],
    ),
    ("converged", (WEB,), [actual(WEB)], []),
    ("restarting is left to the engine", (WEB,), [actual(WEB, state="restarting")], []),
    ("exited is started", (WEB,), [actual(WEB, state="exited")], [Start(WEB, "id1")]),
    ("created is started", (WEB,), [actual(WEB, state="created")], [Start(WEB, "id1")]),
    (
        "paused is unpaused",
        (WEB,),
        [actual(WEB, state="paused")],
        [Start(WEB, "id1", unpause=True)],
    ),
    (
        "dead is recreated",
        (WEB,),
        [actual(WEB, state="dead")],
        [Pull("img:1"), Recreate(WEB, "id1")],
    ),
    (
        "changed spec is recreated",
        (WEB,),
        [actual(WEB, stale=True)],
        [Pull("img:1"), Recreate(WEB, "id1")],
    ),
    (
        "stale and stopped is recreated, not started",
        (WEB,),
        [actual(WEB, state="exited", stale=True)],
        [Pull("img:1"), Recreate(WEB, "id1")],
    ),
    ("undesired is removed", (), [actual(WEB)], [Remove("web", "id1")]),
    (
        "foreign clash is reported",
        (WEB,),
        [actual(None, "web", managed=False)],
        [ReportConflict("web", "id1")],
    ),
    ("foreign non-clash is ignored", (), [actual(None, "other", managed=False)], []),
    ("removes come first", (DB,), [actual(WEB)], [Remove("web", "id1"), Pull("pg:16"), Create(DB)]),
]


@pytest.mark.parametrize(
    ("desired", "observed", "expected"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_plan_table(
    desired: tuple[ContainerSpec, ...], observed: list[ActualContainer], expected: list[Action]
) -> None:
    assert plan(DesiredState(desired), observed) == expected


def test_duplicate_desired_names_are_refused() -> None:
    with pytest.raises(ValueError, match="duplicate"):
        DesiredState((WEB, WEB))


# -- properties over a simulated engine -----------------------------------------------------------

NAMES = ["a", "b", "c", "d", "e"]
STATES = ["running", "restarting", "created", "exited", "paused", "dead", "removing"]


def apply(actions: list[Action], observed: list[ActualContainer]) -> list[ActualContainer]:
    """What an engine looks like after the actions succeed."""
    state = {c.id: c for c in observed}
    for n, action in enumerate(actions):
        if isinstance(action, Remove):
            state.pop(action.container_id)
        elif isinstance(action, Start):
            state[action.container_id] = replace(state[action.container_id], state="running")
        elif isinstance(action, Create | Recreate):
            if isinstance(action, Recreate):
                state.pop(action.container_id)
            new = ActualContainer(f"new{n}", action.spec.name, "running", action.spec.spec_hash())
            state[new.id] = new
    return list(state.values())


specs_st = st.builds(
    ContainerSpec,
    name=st.sampled_from(NAMES),
    image=st.sampled_from(["i:1", "i:2"]),
    env=st.lists(
        st.tuples(st.sampled_from(["A", "B"]), st.sampled_from(["1", "2"])),
        max_size=2,
        unique_by=lambda kv: kv[0],
    ).map(lambda kv: tuple(sorted(kv))),
)
desired_st = st.lists(specs_st, max_size=5, unique_by=lambda s: s.name).map(
    lambda specs: DesiredState(tuple(specs))
)


@st.composite
def world(draw: st.DrawFn) -> tuple[DesiredState, list[ActualContainer]]:
    desired = draw(desired_st)
    by_name = desired.by_name()
    observed = []
    for i, name in enumerate(draw(st.lists(st.sampled_from(NAMES), unique=True))):
        target = by_name.get(name)
        matching = target is not None and draw(st.booleans())
        observed.append(
            ActualContainer(
                id=f"x{i}",
                name=name,
                state=draw(st.sampled_from(STATES)),
                spec_hash=target.spec_hash()
                if matching and target
                else draw(st.sampled_from([None, "stale"])),
                managed=draw(st.booleans()),
            )
        )
    return desired, observed


@settings(max_examples=400)
@given(world())
def test_a_plan_applied_converges_in_one_pass(
    w: tuple[DesiredState, list[ActualContainer]],
) -> None:
    desired, observed = w
    after = apply(plan(desired, observed), observed)
    again = plan(desired, after)
    assert all(isinstance(a, ReportConflict) for a in again)
    foreign = {c.name for c in observed if not c.managed}
    assert {a.target for a in again} == {s.name for s in desired.specs} & foreign


@given(desired_st)
def test_a_converged_state_plans_nothing(desired: DesiredState) -> None:
    observed = [
        ActualContainer(f"id{i}", s.name, "running", s.spec_hash())
        for i, s in enumerate(desired.specs)
    ]
    assert plan(desired, observed) == []


@settings(max_examples=400)
@given(world())
def test_foreign_containers_are_never_acted_on(
    w: tuple[DesiredState, list[ActualContainer]],
) -> None:
    desired, observed = w
    foreign_ids = {c.id for c in observed if not c.managed}
    actions = plan(desired, observed)
    for action in actions:
        if isinstance(action, MUTATING):
            assert getattr(action, "container_id", None) not in foreign_ids
    after = apply(actions, observed)
    assert {c.id for c in after if not c.managed} == foreign_ids


@given(world())
def test_at_most_one_container_action_per_name_and_deterministic(
    w: tuple[DesiredState, list[ActualContainer]],
) -> None:
    desired, observed = w
    actions = plan(desired, observed)
    targets = [a.target for a in actions if not isinstance(a, Pull)]
    assert len(targets) == len(set(targets))
    assert plan(desired, list(reversed(observed))) == actions
