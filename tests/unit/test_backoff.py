"""Backoff arithmetic and CrashLoopBackOff, with an injected clock (nothing waits)."""

from __future__ import annotations

from controller.backoff import Backoff
from controller.crashloop import CrashLoop
from controller.planner import Create, Start
from tests.fakes import spec


def test_backoff_doubles_to_the_cap_and_resets() -> None:
    now = [0.0]
    b = Backoff(base=10, cap=300, reset_after=600, clock=lambda: now[0])
    assert b.remaining("x") == 0  # the first attempt never waits
    delays = [b.failure("x") for _ in range(7)]
    assert delays == [10, 20, 40, 80, 160, 300, 300]
    assert b.remaining("x") == 300
    now[0] += 300
    assert b.remaining("x") == 0
    now[0] += 600  # quiet for the reset period: starts over
    assert b.failure("x") == 10 and b.failures("x") == 1
    b.reset("x")
    assert b.failures("x") == 0


def test_crash_loop_first_restart_immediate_then_held() -> None:
    now = [0.0]
    rings: list[float] = []
    loop = CrashLoop(lambda: None, clock=lambda: now[0],
                     schedule=lambda delay, fn: rings.append(delay))
    restart = Start(spec("web"), "c1")
    other = Create(spec("db"))
    kept, held = loop.hold([restart, other])
    assert kept == [restart, other] and held == []  # first restart: at once
    kept, held = loop.hold([restart, other])
    assert kept == [other]  # the others are never delayed
    assert [(o.name, o.action, o.ok) for o in held] == [("web", "backoff", False)]
    assert "back-off 10 s" in str(held[0].error)
    assert rings == [10.05]  # the loop is woken when the wait ends
    loop.hold([restart])
    assert rings == [10.05]  # one timer per wait
    now[0] += 10
    assert loop.hold([restart])[0] == [restart]
    _, held = loop.hold([restart])
    assert "back-off 20 s" in str(held[0].error)


def test_a_container_that_ran_ten_minutes_restarts_at_once() -> None:
    now = [0.0]
    loop = CrashLoop(lambda: None, clock=lambda: now[0], schedule=lambda d, f: None)
    restart = Start(spec("web"), "c1")
    for _ in range(4):
        loop.hold([restart])
        now[0] += 300
    now[0] += 600
    assert loop.hold([restart])[0] == [restart]
    assert loop.hold([restart])[1][0].error is not None and "10 s" in str(
        loop.hold([restart])[1][0].error)


def test_unpause_is_not_a_restart() -> None:
    loop = CrashLoop(lambda: None, schedule=lambda d, f: None)
    unpause = Start(spec("web"), "c1", unpause=True)
    for _ in range(3):
        assert loop.hold([unpause]) == ([unpause], [])
