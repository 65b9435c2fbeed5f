"""The single retry policy for one I/O call: transient errors only, exponential backoff with full
jitter, few attempts. The reconcile loop is the outer retry; this only smooths over blips.
`sleep` is injectable so that tests never wait.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

from tenacity import Retrying, retry_if_exception_type, stop_after_attempt, wait_random_exponential

from controller.errors import TransientError

T = TypeVar("T")
Sleep = Callable[[float], None]


def call_with_retry(
    fn: Callable[[], T],
    *,
    attempts: int = 3,
    base: float = 0.2,
    cap: float = 2.0,
    sleep: Sleep = time.sleep,
) -> T:
    """Run `fn`, retrying on TransientError with full-jitter backoff; re-raise the last error."""
    retrying = Retrying(
        retry=retry_if_exception_type(TransientError),
        wait=wait_random_exponential(multiplier=base, max=cap),
        stop=stop_after_attempt(attempts),
        sleep=sleep,
        reraise=True,
    )
    return retrying(fn)
