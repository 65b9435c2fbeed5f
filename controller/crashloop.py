"""CrashLoopBackOff: restarts of a container that keeps stopping are held back.

Each Start of an existing container is a restart. The first is immediate; the next ones wait
10 s, 20 s, 40 s … up to 5 min; a container that ran for 10 minutes starts over. A held restart
becomes a `backoff` outcome (shown in status, metrics and the heartbeat) and a timer wakes the
loop when the wait ends. Other containers are never delayed by it.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable

from controller.backoff import Backoff
from controller.executor import Outcome
from controller.planner import Action, Start

Schedule = Callable[[float, Callable[[], None]], None]


def timer(delay: float, fn: Callable[[], None]) -> None:
    t = threading.Timer(delay, fn)
    t.daemon = True
    t.start()


class CrashLoop:
    def __init__(self, wake: Callable[[], None], *, clock: Callable[[], float] = time.monotonic,
                 schedule: Schedule = timer, base: float = 10.0, cap: float = 300.0,
                 reset_after: float = 600.0) -> None:
        self._backoff = Backoff(base=base, cap=cap, reset_after=reset_after, clock=clock)
        self._wake = wake
        self._schedule = schedule
        self._clock = clock
        self._woken_at: dict[str, float] = {}

    def hold(self, actions: Iterable[Action]) -> tuple[list[Action], list[Outcome]]:
        """The actions allowed now, and the outcomes of the restarts held back."""
        kept: list[Action] = []
        held: list[Outcome] = []
        for action in actions:
            if isinstance(action, Start) and not action.unpause:
                name = action.target
                wait = self._backoff.remaining(name)
                if wait > 0:
                    held.append(Outcome(name, "backoff", ok=False, error=(
                        f"back-off {wait:.0f} s restarting a container that keeps stopping "
                        f"({self._backoff.failures(name)} restarts)")))
                    self._wake_after(name, wait)
                    continue
                self._backoff.failure(name)
            kept.append(action)
        return kept, held

    def forget_except(self, names: set[str]) -> None:
        self._backoff.forget_except(names)

    def _wake_after(self, name: str, wait: float) -> None:
        due = self._clock() + wait
        if self._woken_at.get(name, 0.0) >= due - 0.5:
            return  # a timer for this wait is already set
        self._woken_at[name] = due
        self._schedule(wait + 0.05, self._wake)
