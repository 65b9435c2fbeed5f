"""The reconcile loop against the in-memory engine: --once, survival, last-good state, teardown."""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence

import pytest

from controller.core.errors import ConfigError, TransientError
from controller.core.models import ActualContainer, DesiredState
from controller.core.planner import Action
from controller.core.results import ActionOutcome
from controller.engine.doorbell import Doorbell
from controller.engine.executor import Executor
from controller.engine.hooks import Hooks, Listener
from controller.engine.images import ImagePuller
from controller.engine.loop import Reconciler
from rma_testkit.clock import ManualTime, VirtualClock
from rma_testkit.fakes import FakeRuntime, FakeSource, spec


class Rig:
    def __init__(self, desired: DesiredState | None = None, images: set[str] | None = None):
        self.rt = FakeRuntime(images=images if images is not None else {"img:1"})
        self.source = FakeSource(desired)
        self.stop = threading.Event()
        self.bell = Doorbell(self.stop)
        puller = ImagePuller(self.rt, on_done=self.bell.ring, refresh_interval=0)
        self.agent = Reconciler(
            self.source,
            self.rt,
            Executor(self.rt, puller, should_stop=self.stop.is_set),
            doorbell=self.bell,
            resync=0.05,
        )

    def names(self) -> dict[str, str]:
        return {c.name: c.state for c in self.rt.containers.values() if c.managed}


@pytest.fixture
def rig() -> Iterator[Rig]:
    r = Rig(DesiredState((spec("a"), spec("b"))))
    yield r
    r.stop.set()


def test_once_converges_and_leaves_containers_running(rig: Rig) -> None:
    assert rig.agent.run_once(timeout=10) == 0
    assert rig.names() == {"a": "running", "b": "running"}


def test_once_waits_for_pulls() -> None:
    r = Rig(DesiredState((spec("a", "new:1"),)), images=set())
    assert r.agent.run_once(timeout=10) == 0
    assert r.names() == {"a": "running"}


def test_once_fails_on_conflict_and_leaves_foreign_container(rig: Rig) -> None:
    foreign = rig.rt.add("a", managed=False)
    assert rig.agent.run_once(timeout=10) == 1
    assert rig.rt.containers[foreign.id] == foreign
    assert rig.names() == {"b": "running"}


def test_once_times_out_when_the_engine_stays_down(rig: Rig) -> None:
    rig.rt.list_error = TransientError("engine down")
    assert rig.agent.run_once(timeout=0.3) == 1


def test_a_failed_pass_is_survived_and_the_next_one_converges(rig: Rig) -> None:
    rig.rt.list_error = TransientError("engine down")
    assert rig.agent.reconcile().error == "engine down"
    rig.rt.list_error = None
    assert rig.agent.run_once(timeout=10) == 0


def test_a_crashing_pass_is_survived(rig: Rig) -> None:
    rig.rt.list_error = KeyError("bug")
    result = rig.agent.reconcile()
    assert result.error is not None and "KeyError" in result.error


def test_invalid_desired_state_at_start_touches_nothing() -> None:
    r = Rig()
    existing = r.rt.add("keep", spec=spec("keep"))
    r.source.error = ConfigError("manifest broken")
    result = r.agent.reconcile()
    assert result.error is not None and "no valid desired state" in result.error
    assert result.stuck
    assert r.agent.run_once(timeout=300) == 1  # fails at once, not after the timeout
    assert r.rt.containers == {existing.id: existing}


def test_invalid_edit_keeps_the_last_good_state(rig: Rig) -> None:
    assert rig.agent.run_once(timeout=10) == 0
    rig.source.error = ConfigError("typo")
    rig.source.set(DesiredState())
    assert rig.agent.reconcile().converged
    assert rig.names() == {"a": "running", "b": "running"}


def test_loop_reacts_to_changes_and_tears_down_on_stop(rig: Rig) -> None:
    codes: list[int] = []
    thread = threading.Thread(target=lambda: codes.append(rig.agent.run()))
    thread.start()
    try:
        wait_until(lambda: rig.names() == {"a": "running", "b": "running"})
        rig.rt.set_state("a", "exited")  # a container dies
        rig.agent.on_event(None)
        wait_until(lambda: rig.names().get("a") == "running")
        rig.source.set(DesiredState((spec("b"), spec("c"))))
        wait_until(lambda: set(rig.names()) == {"b", "c"})
    finally:
        rig.stop.set()
        rig.bell.ring()
        thread.join(10)
    assert codes == [0]
    assert rig.names() == {}


def test_teardown_reports_failure_when_engine_is_down(rig: Rig) -> None:
    rig.rt.list_error = TransientError("down")
    assert rig.agent.teardown() is False


def wait_until(cond: object, timeout: float = 10.0) -> None:
    done = threading.Event()
    for _ in range(int(timeout / 0.01)):
        if cond():  # type: ignore[operator]
            return
        done.wait(0.01)
    raise AssertionError("condition not met")


def test_a_container_that_keeps_dying_backs_off_and_is_reported(rig: Rig) -> None:
    assert rig.agent.run_once(timeout=10) == 0
    rig.rt.set_state("a", "exited")
    rig.agent.reconcile()  # first restart: immediate
    assert rig.names()["a"] == "running"
    rig.rt.set_state("a", "exited")
    result = rig.agent.reconcile()  # dies again: held back
    assert rig.names() == {"a": "exited", "b": "running"}
    assert result.stuck
    states = {c.name: (c.state, c.error) for c in rig.agent.status().containers}
    assert states["a"][0] == "backoff" and "back-off" in str(states["a"][1])
    assert states["b"] == ("running", None)
    # b still serves: the worker is not degraded for one crash loop (issue 22), but it is shown
    assert rig.agent.status().healthy and states["a"][0] == "backoff"


def test_an_event_seen_before_the_list_shows_it_is_rechecked_without_the_resync() -> None:
    """The engine may send `kill` before its list says `exited`: the loop looks again soon
    instead of leaving the container down until the next resync (here an hour away)."""
    r = Rig(DesiredState((spec("a"),)))
    r.agent = Reconciler(
        r.source,
        r.rt,
        Executor(r.rt, ImagePuller(r.rt, refresh_interval=0)),
        doorbell=r.bell,
        resync=3600,
    )
    thread = threading.Thread(target=r.agent.run)
    thread.start()
    try:
        wait_until(lambda: r.names() == {"a": "running"})
        wait_until(lambda: r.rt.calls.count("list") >= 3)  # the passes after acting are done
        lists = r.rt.calls.count("list")
        r.agent.on_event(None)  # `kill` arrives; the list still says running
        wait_until(lambda: r.rt.calls.count("list") > lists)
        r.rt.set_state("a", "exited")  # ... and only now says exited, with no further event
        wait_until(lambda: r.names() == {"a": "running"}, timeout=5)
    finally:
        r.stop.set()
        r.bell.ring()
        thread.join(10)


class OnVirtualTime:
    """The reconciler running on a thread, on virtual time: the test moves the clock."""

    def __init__(self, rig: Rig, hooks: Hooks | None = None, time: ManualTime | None = None):
        self.rig, self.time = rig, time or ManualTime()
        bell = Doorbell(rig.stop, clock=VirtualClock(self.time))
        rig.bell = bell
        puller = ImagePuller(rig.rt, on_done=bell.ring, refresh_interval=0)
        rig.agent = Reconciler(
            rig.source, rig.rt, Executor(rig.rt, puller), hooks, doorbell=bell, resync=30.0
        )
        self.thread = threading.Thread(target=lambda: rig.agent.run(teardown=lambda: False))

    def __enter__(self) -> OnVirtualTime:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.rig.stop.set()
        self.rig.bell.ring()
        self.thread.join(10)

    def passes(self) -> int:
        return self.rig.rt.calls.count("list")

    def advance(self, seconds: float) -> None:
        """Once the loop waits, move its clock (a second at a time: it looks at stop each)."""
        for _ in range(round(seconds)):
            wait_until(lambda: self.time.waiting > 0)
            self.time.advance(1.0)


def test_a_permanent_conflict_does_not_make_the_loop_spin() -> None:
    """Every pass plans the same refused action; only a pass that changed something is looked
    at again soon (it once ran 8 passes a second on a name conflict)."""
    rig = Rig(DesiredState((spec("a"),)))
    rig.rt.add("a", managed=False)  # someone else's container holds the name
    with OnVirtualTime(rig) as loop:
        loop.advance(29)
        assert loop.passes() == 1  # the resync alone brings the next
        loop.advance(1)
        wait_until(lambda: loop.passes() == 2)


def test_a_source_that_rings_is_read_at_once_and_never_polled() -> None:
    rig = Rig(DesiredState((spec("a"),)))
    with OnVirtualTime(rig) as loop:
        wait_until(lambda: rig.names() == {"a": "running"})
        loop.advance(2)  # the rechecks after acting are done
        before = loop.passes()
        rig.source.set(DesiredState((spec("a"), spec("b"))))  # rings the doorbell
        wait_until(lambda: rig.names() == {"a": "running", "b": "running"})
        assert loop.passes() > before


class HoldAll:
    """A gate that holds every action back for 5 s of the loop's clock."""

    name = "hold all"

    def __init__(self, time: ManualTime) -> None:
        self.time = time

    def hold(self, actions: Sequence[Action]) -> tuple[list[Action], list[ActionOutcome]]:
        if self.time.now >= 5.0:
            return list(actions), []
        return [], [ActionOutcome(a.target, "held", ok=False, pending=True) for a in actions]

    def next_due(self) -> float | None:
        return max(0.0, 5.0 - self.time.now)

    def forget(self, desired: DesiredState, actual: Sequence[ActualContainer]) -> None:
        return None

    def settle(self, done: Sequence[ActionOutcome]) -> frozenset[str]:
        return frozenset()


def test_a_gate_holds_actions_and_its_due_time_brings_the_next_pass() -> None:
    rig = Rig(DesiredState((spec("a"),)))
    seen: list[int] = []
    after = [Listener("count", lambda desired, actual: seen.append(len(actual)))]
    time = ManualTime()
    with OnVirtualTime(rig, Hooks(gates=(HoldAll(time),), after=after), time) as loop:
        wait_until(lambda: loop.passes() == 1)
        assert rig.names() == {}
        loop.advance(4)
        assert loop.passes() == 1  # nothing rang, the gate is not due yet
        loop.advance(1)
        wait_until(lambda: rig.names() == {"a": "running"})
        assert seen[0] == 0 and len(seen) >= 2  # every pass told its listeners
