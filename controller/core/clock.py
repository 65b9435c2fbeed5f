"""The one notion of time the agent's threads share: `now()` and `wait(event, timeout)`.

Every loop that waits (the reconciler, its doorbell, the membership, the owner's conditions)
waits through a `Clock`, on an event that interrupts it; nothing calls `time.sleep`. Production
passes `SYSTEM` (monotonic seconds, `Event.wait`); tests pass a virtual clock
(`rma_testkit.clock.VirtualClock`) and speak in the agent's real intervals without waiting them.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Protocol, cast


class Clock(Protocol):
    def now(self) -> float:
        """Seconds on a monotonic scale (only differences mean anything)."""
        ...

    def wait(self, event: threading.Event, timeout: float) -> bool:
        """Until `event` is set (True) or `timeout` seconds have passed (False)."""
        ...


class SystemClock:
    """Real time: `time.monotonic` and `Event.wait`."""

    def now(self) -> float:
        return time.monotonic()

    def wait(self, event: threading.Event, timeout: float) -> bool:
        return event.wait(max(0.0, timeout))


SYSTEM: Clock = SystemClock()


def wall_time(clock: Clock) -> Callable[[], float]:
    """Wall time as `clock` tells it: the system's own for the real clock (a laptop's sleep
    counts); a clock's own `wall` where it has one (virtual time in tests); else the wall time
    now, moved on as `clock` moves."""
    if isinstance(clock, SystemClock):
        return time.time
    wall = getattr(clock, "wall", None)
    if callable(wall):
        return cast(Callable[[], float], wall)
    start, base = time.time(), clock.now()
    return lambda: start + clock.now() - base
