"""Disk safety for images: the free-space floor checked before a pull, and garbage collection of
images the agent pulled itself once disk use passes the high-water mark (kubelet's 85 %), down to
the low-water mark (80 %). Images the agent did not pull are never removed, nor images in use.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import structlog

from controller.clients.store import StateStore

log = structlog.get_logger(__name__)
GIB = 1024**3
Disk = Callable[[], tuple[int, int]]  # (free, total) bytes on Docker's data root


class PulledImages:
    """The images this agent instance pulled, persisted in the state dir."""

    def __init__(self, store: StateStore) -> None:
        self._store = store

    def add(self, image: str) -> None:
        pulled = self._store.load_pulled()
        pulled[image] = time.time()
        self._store.save_pulled(pulled)

    def remove(self, image: str) -> None:
        pulled = self._store.load_pulled()
        if pulled.pop(image, None) is not None:
            self._store.save_pulled(pulled)

    def has(self, image: str) -> bool:
        return image in self._store.load_pulled()

    def oldest_first(self) -> list[str]:
        pulled = self._store.load_pulled()
        return sorted(pulled, key=lambda image: pulled[image])


# What one container's logs may still take on Docker's disk (json-file, 3 x 10 MB, rotated).
LOG_ALLOWANCE = 30 * 1024**2


def floor_error(
    disk: Disk, floor_gib: float, containers: int = 0, needed: int = 0, caches: int = 0
) -> str | None:
    """Why a pull must not start now, or None. The floor is kept free of what the running
    containers' logs and the model caches (`caches`: up to their cap, engine/caches.py) may
    still grow to as well (volumes live on the same disk, so what they hold is already counted
    as used), and of `needed`: what this pull and those in flight still have to download
    (engine/images.py)."""
    free, _total = disk()
    reserve = containers * LOG_ALLOWANCE + caches
    if needed and free - reserve - needed < floor_gib * GIB:
        return (
            f"needs ~{needed / 1e9:.1f} GB with the pulls in flight, {free / 1e9:.1f} GB free "
            f"on Docker's disk and {floor_gib:g} GiB kept free (RMA_MIN_FREE_DISK): pull refused"
        )
    if free - reserve < floor_gib * GIB:
        kept = [f"{containers} containers' logs"] if containers else []
        kept += ["the model caches to grow (RMA_MODEL_CACHE_MAX)"] if caches else []
        logs = f" once {reserve / GIB:.2f} GiB is kept for {' and '.join(kept)}" if kept else ""
        return (
            f"only {free / GIB:.1f} GiB free on Docker's disk{logs}, under the "
            f"{floor_gib:g} GiB floor (RMA_MIN_FREE_DISK): pull refused"
        )
    return None


def used_percent(disk: Disk) -> float:
    free, total = disk()
    return 100.0 * (total - free) / total if total else 0.0


def collect(
    pulled: PulledImages,
    remove: Callable[[str], bool],
    disk: Disk,
    in_use: set[str],
    *,
    high: float = 85.0,
    low: float = 80.0,
) -> list[str]:
    """Remove unused images the agent pulled, oldest first, while disk use is above `low`,
    but only once it has passed `high`. Returns what was removed."""
    if used_percent(disk) <= high:
        return []
    removed = []
    for image in pulled.oldest_first():
        if image in in_use:
            continue
        if remove(image):
            pulled.remove(image)
            removed.append(image)
            log.info(
                "image_removed",
                image=image,
                reason="disk above high-water mark",
                used_percent=round(used_percent(disk), 1),
            )
        if used_percent(disk) < low:
            break
    return removed
