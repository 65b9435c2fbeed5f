"""CrashLoopBackOff: restarts of a container that keeps stopping are held back.

Each Start of an existing container is a restart. The first is immediate; the next ones wait
10 s, 20 s, 40 s … up to 5 min; a container that ran for 10 minutes starts over. A container
the owner's hold stopped (`stopped`) is not crashing: its next Start is a resume, never held back
nor counted (`resumed`: those of the last `hold`). A held restart
becomes a `backoff` outcome (shown in status, metrics and the heartbeat); the loop asks
`next_due()` how soon to look again, so no timer is needed. Other containers are never delayed.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence

import structlog

from controller.core.backoff import KUBELET, Delays, KeyedBackoff
from controller.core.models import ActualContainer, DesiredState
from controller.core.planner import Action, Start
from controller.core.results import ActionOutcome

log = structlog.get_logger(__name__)


class CrashLoop:
    """The reconciler's `crash loop` gate (engine/hooks.py's ActionGate)."""

    name = "crash loop"

    def __init__(
        self,
        *,
        clock: Callable[[], float] = time.monotonic,
        delays: Delays = KUBELET,
        reset_after: float = 600.0,
    ) -> None:
        self._backoff = KeyedBackoff(delays, reset_after=reset_after)
        self._clock = clock
        self._stopped: set[str] = set()
        self._told: dict[str, float] = {}  # name -> the back-off end last logged
        self.resumed: frozenset[str] = frozenset()

    def stopped(self, names: Iterable[str]) -> None:
        """These were stopped by a hold (pause, schedule, the GPU given back)."""
        self._stopped.update(names)

    def settle(self, done: Sequence[ActionOutcome]) -> frozenset[str]:
        """Note the stops a hold made; the starts of this pass that were resumes."""
        self.stopped(o.name for o in done if o.action == "stop")
        return self.resumed

    def forget(self, desired: DesiredState, actual: Sequence[ActualContainer]) -> None:
        self.forget_except({s.name for s in desired.specs})

    def hold(self, actions: Iterable[Action]) -> tuple[list[Action], list[ActionOutcome]]:
        """The actions allowed now, and the outcomes of the restarts held back."""
        kept: list[Action] = []
        held: list[ActionOutcome] = []
        now, resumed = self._clock(), set()
        for action in actions:
            if isinstance(action, Start) and action.target in self._stopped:
                self._stopped.discard(action.target)
                resumed.add(action.target)
            elif isinstance(action, Start) and not action.unpause:
                name = action.target
                wait = self._backoff.remaining(name, now)
                if wait > 0:
                    self._tell(name, wait, now)
                    held.append(
                        ActionOutcome(
                            name,
                            "backoff",
                            ok=False,
                            error=(
                                f"back-off {wait:.0f} s restarting a container that keeps stopping "
                                f"({self._backoff.failures(name)} restarts)"
                            ),
                        )
                    )
                    continue
                self._backoff.failure(name, now)
            kept.append(action)
        self.resumed = frozenset(resumed)
        return kept, held

    def _tell(self, name: str, wait: float, now: float) -> None:
        """Logged once per back-off (a pass that looks again meanwhile says nothing)."""
        due = now + wait
        if abs(self._told.get(name, 0.0) - due) > 1.0:
            self._told[name] = due
            log.warning(
                "crash_loop_backoff",
                container=name,
                seconds=round(wait),
                restarts=self._backoff.failures(name),
            )

    def next_due(self) -> float | None:
        """Seconds until a held restart may go (the loop looks again then), or None."""
        return self._backoff.next_due(self._clock())

    def forget_except(self, names: set[str]) -> None:
        self._backoff.forget_except(names)
        self._stopped &= names
