"""Virtual time for code that waits on events (the membership threads, the reconciler): `wait(event,
timeout)` returns as soon as the event is set, or once the test has moved the clock past the
deadline with `advance()`. Tests then speak in the agent's real intervals (a 30 s heartbeat) and
take milliseconds, and nothing depends on how fast the machine is. `idle()` says whether every
thread that ever waited on this clock (and still lives) waits on it now — a test moves the clock
only then, so a thread busy with real work (an HTTP call) is not overtaken by its own deadlines.
"""

from __future__ import annotations

import threading
import time


class ManualTime:
    def __init__(self, now: float = 0.0, epoch: float | None = None) -> None:
        self.now = now
        self.epoch = time.time() if epoch is None else epoch  # wall time when `now` was 0
        self.waiting = 0  # threads waiting now: a test advances once they are
        self._cond = threading.Condition()
        self._known: dict[int, threading.Thread] = {}
        self._in_wait: dict[int, tuple[float, threading.Event]] = {}  # deadline, event

    def wait(self, event: threading.Event, timeout: float) -> bool:
        me = threading.current_thread()
        with self._cond:
            deadline = self.now + timeout
            self.waiting += 1
            self._known[me.ident or 0] = me
            self._in_wait[me.ident or 0] = (deadline, event)
            try:
                while not event.is_set() and self.now < deadline:
                    # A short real wait: an event set by another thread does not notify us.
                    self._cond.wait(0.005)
            finally:
                self.waiting -= 1
                self._in_wait.pop(me.ident or 0, None)
        return event.is_set()

    def knows(self, thread_name: str) -> bool:
        """Whether a thread of this name has waited on this clock."""
        with self._cond:
            return any(t.name == thread_name for t in self._known.values())

    def idle(self) -> bool:
        """Every live thread that has waited on this clock is waiting on it now, and none of them
        is due to wake (its deadline passed or its event set: it is about to run)."""
        with self._cond:
            alive = {k for k, t in self._known.items() if t.is_alive()}
            if not alive or not alive <= self._in_wait.keys():
                return False
            return not any(
                deadline <= self.now or event.is_set()
                for k, (deadline, event) in self._in_wait.items()
                if k in alive
            )

    def advance(self, seconds: float) -> None:
        with self._cond:
            self.now += seconds
            self._cond.notify_all()

    def step(self, seconds: float, patience: float = 1.0) -> None:
        """Advance once every thread that waits on this clock does (`idle`); one held by
        something else than the clock is waited for `patience` real seconds at most."""
        done = threading.Event()
        for _ in range(round(patience / 0.005)):
            if self.idle():
                break
            done.wait(0.005)
        self.advance(seconds)


class VirtualClock:
    """A `ManualTime` as the agent's `Clock` (controller/core/clock.py): `now()` is its time."""

    def __init__(self, time: ManualTime | None = None) -> None:
        self.time = time or ManualTime()

    def now(self) -> float:
        return self.time.now

    def wall(self) -> float:
        """Wall time on this clock (core/clock.py's `wall_time`): its epoch plus its time."""
        return self.time.epoch + self.time.now

    def wait(self, event: threading.Event, timeout: float) -> bool:
        return self.time.wait(event, timeout)
