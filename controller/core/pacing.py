"""When the reconciler looks again: one pure function that `run` and `run_once` both use.

A pass ends with `look_again` seconds on its result (controller-runtime's `Result{RequeueAfter}`):
the resync interval by default; sooner after a pass that failed as a whole (1 s, 2 s … 32 s),
after a transient action failure (2 s), when a back-off ends (a crash loop's held restart, a
drain, an image pull's retry), and right after a pass that acted or saw an engine event (a
recheck: the engine may send `kill`/`die` before its list says `exited`; a pass that acted is
confirmed by the next). Any ring of the doorbell still wakes the loop earlier.
"""

from __future__ import annotations

from dataclasses import dataclass

from controller.core.backoff import Delays
from controller.core.results import PassResult

# The rechecks after an engine event, and after a pass whose actions went through.
AFTER_EVENT = (0.1, 0.4)
AFTER_ACTING = (0.0, 0.4)
# A pass that failed as a whole is retried sooner: 1 s, 2 s … 32 s (never past the resync).
FAILED_PASS = Delays(base=0.5, cap=32.0)
TRANSIENT_FAILURE = 2.0
PAST_DUE = 0.05  # a back-off's end is looked at just after it, never just before


@dataclass(frozen=True)
class Pace:
    """What the decision reads besides the pass: the resync interval, how many passes in a row
    failed as a whole (this one included), the seconds until each back-off ends, and the
    rechecks still to come."""

    resync: float
    failed_in_row: int = 0
    dues: tuple[float, ...] = ()
    rechecks: tuple[float, ...] = ()


def rechecks_after(
    result: PassResult, left: tuple[float, ...], *, event: bool
) -> tuple[float, ...]:
    """The rechecks still to come after this pass. A pass whose actions all failed (a name
    conflict, a refused volume) arms none: re-arming on it would spin, a pass every 0.1 s."""
    if event:
        return AFTER_EVENT
    if any(o.ok for o in result.report.outcomes):
        return AFTER_ACTING
    return left


def next_look(result: PassResult, pace: Pace) -> float:
    """Seconds until the next pass runs anyway (the doorbell may wake it sooner)."""
    delay = pace.resync
    if result.error:
        delay = FAILED_PASS.delay(pace.failed_in_row + 1)
    elif any(o.transient for o in result.report.failures):
        delay = TRANSIENT_FAILURE
    soonest = min([delay, pace.resync, *(d + PAST_DUE for d in pace.dues)])
    if pace.rechecks:
        soonest = min(soonest, pace.rechecks[0])
    return max(0.0, soonest)
