"""The agent's volumes that no spec uses any more: kept (they hold data), shown in `status`, and
removed once unused for the retention period (default 7 days; 0 keeps them until
`rma-worker cleanup --volumes`), as kubelet keeps a pod's volumes until the pod is gone.

Since when a volume is unused is recorded in the state dir, so a restart does not reset the clock.
The sweep lists volumes at most once a minute (or when the set in use changes): one engine call.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import structlog

from controller.clients.store import StateStore
from controller.core.errors import AgentError
from controller.core.runtime import VolumeOwner

log = structlog.get_logger(__name__)
DAY = 86400.0
SWEEP_EVERY = 60.0


class VolumeKeeper:
    def __init__(
        self,
        owned: VolumeOwner,
        store: StateStore,
        *,
        retention: float = 7 * DAY,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._owned = owned
        self._store = store
        self._retention = retention
        self._clock = clock
        self._last: tuple[float, frozenset[str]] | None = None
        self.kept: tuple[str, ...] = ()  # unused volumes still kept, for `status`

    def sweep(self, in_use: set[str]) -> None:
        now, used = self._clock(), frozenset(in_use)
        if self._last is not None and self._last[1] == used and now - self._last[0] < SWEEP_EVERY:
            return
        self._last = (now, used)
        try:
            names = {v.name for v in self._owned.list_volumes()}
        except AgentError as exc:
            log.warning("volume_sweep_failed", error=str(exc))
            return
        since = {n: t for n, t in self._store.load_unused().items() if n in names - used}
        for name in sorted(names - used):
            since.setdefault(name, now)
            if self._retention and now - since[name] >= self._retention:
                self._remove(name, since)
        self._store.save_unused(since)
        self.kept = tuple(sorted(since))

    def _remove(self, name: str, since: dict[str, float]) -> None:
        try:
            self._owned.remove_volume(name)
        except AgentError as exc:  # in use by a stopped container, the engine busy: later
            log.warning("volume_kept", volume=name, error=str(exc))
            return
        del since[name]
        log.info("volume_removed", volume=name, reason="unused past the retention period")
