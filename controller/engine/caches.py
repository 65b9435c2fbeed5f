"""The model caches measured and held to the owner's cap (issue 24, item 8; the decision is
core/caches.py).

Each pass the `stage` (a hold: it runs every pass) notes the cache volumes the desired state
mounts and admits by the last measurement. After a pass, when a measurement is due (every
`every` seconds, or at once when a new cache volume appears), one background thread walks the
volumes, each for at most `budget` seconds (a cache of a million small files is counted in part,
never for minutes), and rings the doorbell when the caches crossed the cap either way. What could
not be read (the agent not root, a remote engine) is said in the view, never guessed.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import structlog

from controller.core.caches import admit, cache_volumes, growth
from controller.core.errors import AgentError
from controller.core.models import ActualContainer, DesiredState

log = structlog.get_logger(__name__)
EVERY = 600.0  # seconds between measurements: caches grow by downloads, not by the second


@dataclass(frozen=True)
class CacheReaders:
    """How a cache volume is measured (`measure(name)`: (bytes, finished) or None when its
    files cannot be read here), the cap (bytes), the containers that exist, the doorbell."""

    measure: Callable[[str], tuple[int, bool] | None]
    cap: Callable[[], int]
    existing: Callable[[], frozenset[str]]
    on_change: Callable[[], None] = lambda: None


class ModelCaches:
    def __init__(
        self,
        readers: CacheReaders,
        *,
        clock: Callable[[], float],
        every: float = EVERY,
        background: bool = True,
    ) -> None:
        self._r, self._clock, self._every, self._background = readers, clock, every, background
        self._lock = threading.Lock()
        self._names: frozenset[str] = frozenset()
        self._sizes: dict[str, int] = {}
        self._partial: frozenset[str] = frozenset()
        self._unread: frozenset[str] = frozenset()
        self._measured_at: float | None = None
        self._measured: frozenset[str] = frozenset()
        self._running = False

    @property
    def held(self) -> int | None:
        """What the caches hold, as last measured (None: not yet, or not readable here)."""
        with self._lock:
            if self._measured_at is None or self._unread:
                return None
            return sum(self._sizes.values())

    def stage(self, desired: DesiredState) -> DesiredState:
        names = cache_volumes(desired)
        with self._lock:
            self._names = self._names | names
        held = self.held
        if held is None or not names:
            return desired
        cap = self._r.cap()
        return admit(desired, held, cap, self._r.existing() if held >= cap else ())

    def growth(self) -> int:
        """What the caches may still grow to before the cap (0 when none is mounted)."""
        with self._lock:
            if not self._names:
                return 0
        return growth(self.held, self._r.cap())

    def after_pass(self, desired: DesiredState, actual: Sequence[ActualContainer]) -> None:
        now = self._clock()
        with self._lock:
            names = self._names
            due = self._measured_at is None or now - self._measured_at >= self._every
            if not names or self._running or not (due or names - self._measured):
                return
            self._running = True
        if self._background:
            threading.Thread(
                target=self._measure, args=(names,), name="caches", daemon=True
            ).start()
        else:
            self._measure(names)

    def _measure(self, names: frozenset[str]) -> None:
        sizes, partial, unread = {}, set(), set()
        for name in sorted(names):
            try:
                found = self._r.measure(name)
            except AgentError as exc:
                log.debug("cache_volume_unread", volume=name, error=str(exc))
                found = None
            if found is None:
                unread.add(name)
                continue
            sizes[name], finished = found
            if not finished:
                partial.add(name)
        cap, was = self._r.cap(), self.held
        with self._lock:
            self._sizes, self._partial, self._unread = sizes, frozenset(partial), frozenset(unread)
            self._measured_at, self._measured, self._running = self._clock(), names, False
        held = self.held
        log.info("model_caches_measured", bytes=held, cap=cap, partial=sorted(partial) or None)
        over, was_over = held is not None and held >= cap, was is not None and was >= cap
        if over != was_over:
            self._r.on_change()

    def view(self) -> dict[str, object]:
        """For `status`: what each cache holds, the cap, and what could not be measured."""
        with self._lock:
            sizes, partial, unread = dict(self._sizes), self._partial, self._unread
        return {
            "bytes": self.held,
            "max": self._r.cap(),
            "volumes": sizes,
            "partial": sorted(partial),
            "unread": sorted(unread),
        }
