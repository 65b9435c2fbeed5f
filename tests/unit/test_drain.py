"""Draining before a stop: a removal or recreation of a container whose service is announced is
held while its URL is withdrawn, then goes; nothing else waits."""

from __future__ import annotations

from controller.core.planner import Action, Create, Recreate, Remove, Start
from controller.engine.drain import Drain
from rma_testkit.fakes import spec


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def gate(seconds: float = 10.0) -> tuple[Drain, Clock, list[str]]:
    clock, woken = Clock(), []
    drain = Drain(seconds, clock=clock)
    drain.connect(lambda: frozenset({"web"}), lambda: woken.append("now"))
    return drain, clock, woken


def test_a_stop_of_an_announced_service_waits_while_its_url_is_withdrawn() -> None:
    drain, clock, woken = gate()
    recreate, other = Recreate(spec("web"), "c1"), Create(spec("db"))
    kept, held = drain.hold([recreate, other])
    assert kept == [other]  # nothing else waits
    assert [(o.name, o.action, o.pending) for o in held] == [("web", "draining", True)]
    assert drain.withdrawing() == {"web"} and woken == ["now"]  # told at once, once
    assert drain.next_due() == 10.0
    clock.now += 4
    assert drain.hold([recreate])[0] == [] and woken == ["now"]
    clock.now += 6
    assert drain.hold([recreate]) == ([recreate], [])
    assert drain.withdrawing() == frozenset() and drain.next_due() is None


def test_removal_drains_too_and_unannounced_or_starting_containers_do_not() -> None:
    drain, _, _ = gate()
    assert drain.hold([Remove("web", "c1")])[0] == []
    quiet: list[Action] = [Remove("db", "c2"), Start(spec("web"), "c1")]
    assert drain.hold(quiet) == (quiet, [])


def test_zero_seconds_turns_it_off_and_a_vanished_container_is_forgotten() -> None:
    off, _, woken = gate(0)
    assert off.hold([Remove("web", "c1")]) == ([Remove("web", "c1")], []) and woken == []
    drain, _, _ = gate()
    drain.hold([Remove("web", "c1")])
    drain.forget_except({"db"})
    assert drain.withdrawing() == frozenset()
