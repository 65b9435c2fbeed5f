"""Writable layers held to the owner's limit (`--max-container-disk`), as kubelet evicts a pod
over its ephemeral-storage limit: Docker has no size limit for a container's writable layer on
overlay2 without xfs quotas, so a container could fill the disk by writing to its own root.

After a pass, at most once per interval, one engine call lists the agent's containers with their
`SizeRw` (the engine walks each writable layer: its cost grows with what is written, which is
why it runs on a thread of its own and never more than one at a time). A container over the
limit is removed and the loop is woken; the next pass creates it anew from its image with an
empty writable layer. What it keeps in its volumes is not counted here (volumes are its data).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Protocol

import structlog

from controller.core.errors import AgentError

log = structlog.get_logger(__name__)


class WritableSizes(Protocol):
    def writable_sizes(self) -> dict[str, tuple[str, int]]: ...  # id -> (name, SizeRw)

    def remove(self, container_id: str) -> None: ...


class WritableLayers:
    def __init__(
        self,
        runtime: WritableSizes,
        limit: int,
        *,
        interval: float = 60.0,
        on_evicted: Callable[[], None] = lambda: None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._runtime = runtime
        self._limit = limit
        self._interval = interval
        self._on_evicted = on_evicted
        self._clock = clock
        self._busy = threading.Lock()
        self._next = 0.0
        self.evicted: dict[str, int] = {}  # name -> the size it was removed at (last one)

    def after_pass(self) -> threading.Thread | None:
        """Start a check when one is due and none runs (its thread, or None)."""
        now = self._clock()
        if now < self._next or not self._busy.acquire(blocking=False):
            return None
        self._next = now + self._interval
        thread = threading.Thread(target=self._guarded, name="disk-watch", daemon=True)
        thread.start()
        return thread

    def _guarded(self) -> None:
        try:
            self.check()
        finally:
            self._busy.release()

    def check(self) -> list[str]:
        """Remove every container over the limit; their names."""
        try:
            sizes = self._runtime.writable_sizes()
        except AgentError as exc:
            log.warning("container_disk_unread", error=str(exc))
            return []
        over = [(cid, name, size) for cid, (name, size) in sizes.items() if size > self._limit]
        for container_id, name, size in over:
            log.error(
                "container_disk_exceeded",
                container=name,
                written_mb=round(size / 1e6, 1),
                limit_mb=round(self._limit / 1e6, 1),
                action="removed; created anew from its image (RMA_MAX_CONTAINER_DISK)",
            )
            try:
                self._runtime.remove(container_id)
            except AgentError as exc:
                log.warning("container_not_evicted", container=name, error=str(exc))
                continue
            self.evicted[name] = size
        if over:
            self._on_evicted()
        return [name for _, name, _ in over]
