"""Retrying one I/O call: transient errors only, a few attempts, delays from the one policy in
core/backoff.py (full jitter), or the server's own hint (Retry-After) when it gave one. The
reconcile loop and the membership threads are the outer retry; this only smooths over blips.
`sleep` is injectable: tests never wait, and the agent passes its stop event's wait so that a
shutdown is never held up by a retry.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from typing import TypeVar

from controller.core.backoff import Delays
from controller.core.errors import TransientError

T = TypeVar("T")
Sleep = Callable[[float], object]
BLIP = Delays(base=0.2, cap=2.0, jitter="full")


def call_with_retry(
    fn: Callable[[], T],
    *,
    attempts: int = 3,
    delays: Delays = BLIP,
    sleep: Sleep = time.sleep,
    hint: Callable[[TransientError], float | None] = lambda exc: None,
) -> T:
    """Run `fn`, retrying on TransientError; re-raise the last error."""
    for attempt in range(1, attempts):
        try:
            return fn()
        except TransientError as exc:
            hinted = hint(exc)
            sleep(hinted if hinted is not None else delays.delay(attempt, random.random()))
    return fn()  # the last attempt: its error is the caller's
