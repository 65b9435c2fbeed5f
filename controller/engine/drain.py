"""Draining before a stop (the contract's Part 4, and the seed's promise "stop accepting new
tasks, complete current tasks, then stop"): an action that would stop a container whose service
is announced — removing it, recreating it, stopping it for a pause (not for giving the GPU back,
which is urgent) — is first held while the service's URL is withdrawn
(`withdrawing()`: the announcement leaves it out, and the membership is woken to tell the
coordinator now), for `seconds`; then it goes. Like CrashLoop, a gate on the pass's actions that
needs no timer: held actions become `draining` outcomes and the loop asks `next_due()` when to
look again. Other containers are never delayed; 0 seconds turns it off.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Sequence

import structlog

from controller.core.models import ActualContainer, DesiredState
from controller.core.planner import Action, Recreate, Remove, Stop
from controller.core.results import ActionOutcome

log = structlog.get_logger(__name__)


class Drain:
    """The reconciler's `drain` gate (engine/hooks.py's ActionGate)."""

    name = "drain"

    def __init__(self, seconds: float, *, clock: Callable[[], float] = time.monotonic) -> None:
        self._seconds = seconds
        self._clock = clock
        self._lock = threading.Lock()
        self._due: dict[str, float] = {}  # container name -> when it may stop
        self._announced: Callable[[], frozenset[str]] = frozenset
        self._withdraw: Callable[[], None] = lambda: None

    def connect(
        self, announced: Callable[[], frozenset[str]], withdraw: Callable[[], None]
    ) -> None:
        """Wire the membership in (built after the loop): which containers are announced now,
        and how to tell the coordinator at once that some are not any more."""
        self._announced, self._withdraw = announced, withdraw

    def withdrawing(self) -> frozenset[str]:
        with self._lock:
            return frozenset(self._due)

    def hold(self, actions: Iterable[Action]) -> tuple[list[Action], list[ActionOutcome]]:
        """The actions allowed now, and the stops held while their service drains."""
        actions = list(actions)
        stopping = [
            a
            for a in actions
            if isinstance(a, Remove | Recreate) or (isinstance(a, Stop) and not a.urgent)
        ]
        if self._seconds <= 0 or not stopping:
            return actions, []
        now, announced = self._clock(), self._announced()
        kept, held, newly = [], [], []
        with self._lock:
            for action in actions:
                name = action.target
                if action in stopping and (name in self._due or name in announced):
                    if name not in self._due:
                        self._due[name] = now + self._seconds
                        newly.append(name)
                    if now < self._due[name]:
                        held.append(ActionOutcome(name, "draining", ok=False, pending=True))
                        continue
                    del self._due[name]
                kept.append(action)
        if newly:
            log.info("draining", containers=newly, seconds=self._seconds, note="URL withdrawn")
            self._withdraw()
        return kept, held

    def next_due(self) -> float | None:
        with self._lock:
            if not self._due:
                return None
            return max(0.0, min(self._due.values()) - self._clock())

    def settle(self, done: Sequence[ActionOutcome]) -> frozenset[str]:
        return frozenset()

    def forget(self, desired: DesiredState, actual: Sequence[ActualContainer]) -> None:
        self.forget_except({c.name for c in actual})

    def forget_except(self, names: set[str]) -> None:
        """A container that is neither desired nor running any more needs no draining."""
        with self._lock:
            self._due = {n: d for n, d in self._due.items() if n in names}
