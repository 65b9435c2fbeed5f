"""Virtual time for code that waits on events (the membership threads): `wait(event, timeout)`
returns as soon as the event is set, or once the test has moved the clock past the deadline
with `advance()`. Tests then speak in the agent's real intervals (a 30 s heartbeat) and take
milliseconds, and nothing depends on how fast the machine is.
"""

from __future__ import annotations

import threading


class ManualTime:
    def __init__(self) -> None:
        self.now = 0.0
        self.waiting = 0  # threads waiting now: a test advances once they are
        self._cond = threading.Condition()

    def wait(self, event: threading.Event, timeout: float) -> bool:
        with self._cond:
            deadline = self.now + timeout
            self.waiting += 1
            try:
                while not event.is_set() and self.now < deadline:
                    # A short real wait: an event set by another thread does not notify us.
                    self._cond.wait(0.005)
            finally:
                self.waiting -= 1
        return event.is_set()

    def advance(self, seconds: float) -> None:
        with self._cond:
            self.now += seconds
            self._cond.notify_all()


class VirtualClock:
    """A `ManualTime` as the agent's `Clock` (controller/core/clock.py): `now()` is its time."""

    def __init__(self, time: ManualTime | None = None) -> None:
        self.time = time or ManualTime()

    def now(self) -> float:
        return self.time.now

    def wait(self, event: threading.Event, timeout: float) -> bool:
        return self.time.wait(event, timeout)
