"""The loop's doorbell: how the watcher, the puller, the desired-state source and shutdown wake the
reconcile loop early, instead of it polling.
"""

from __future__ import annotations

import threading


class Doorbell:
    """Wakes the loop early. Rung by the watcher, the puller, the source, and shutdown."""

    def __init__(self) -> None:
        self._event = threading.Event()

    def ring(self) -> None:
        self._event.set()

    def wait(self, timeout: float) -> bool:
        """Whether it rang (within `timeout`). Cleared only when it rang: a ring that comes
        between a timed-out wait and a clear would otherwise be lost until the next resync."""
        rung = self._event.wait(max(0.0, timeout))
        if rung:
            self._event.clear()
        return rung
