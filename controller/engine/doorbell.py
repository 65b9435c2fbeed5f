"""The loop's doorbell: how the watcher, the puller, the desired-state source, the owner's
conditions and shutdown wake the reconcile loop early, instead of it polling them. It carries the
stop event (whoever sets it rings too) and the clock the loop waits on.
"""

from __future__ import annotations

import threading

from controller.core.clock import SYSTEM, Clock


class Doorbell:
    """Wakes the loop early. Rung by the watcher, the puller, the source, and shutdown."""

    def __init__(self, stop: threading.Event | None = None, *, clock: Clock = SYSTEM) -> None:
        self._event = threading.Event()
        self.stop = stop if stop is not None else threading.Event()
        self.clock = clock

    def ring(self) -> None:
        self._event.set()

    def wait(self, timeout: float) -> bool:
        """Whether it rang (within `timeout`). Cleared only when it rang: a ring that comes
        between a timed-out wait and a clear would otherwise be lost until the next resync."""
        rung = self.clock.wait(self._event, max(0.0, timeout))
        if rung:
            self._event.clear()
        return rung
