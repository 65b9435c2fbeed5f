"""Image availability without blocking the reconcile pass.

GPU images are many gigabytes: a pass must never wait for one, or a single pull would delay
self-healing of every other container. `ImagePuller.ensure(image)` answers at once: present (use
it now), pulling (a background pull is running; the loop is woken when it ends) or failed (the last
pull's error, reported until its backoff — 10 s doubling to 5 min, per image; 10 min doubling to
6 h when the registry said the image does not exist or is not ours to pull — expires; the loop
looks again then, asking `next_due()`, and the next ensure pulls again). An image already present
is used at once; a mutable tag (no digest) is refreshed in the background at most once per
refresh interval, and a failed refresh is only logged: it never touches a running container.
A present image that is not `trusted` (a coordinator's image the agent did not pull and whose
RepoDigests name no allowed registry) is pulled again, so its content comes from the registry.

The disk floor (`floor`, given the bytes a pull needs) is checked when a pull is asked for, and
again in the pull's thread once the image's `size` (its compressed layers, from the registry)
is known: then this pull's size and what the pulls in flight still have to download are
counted together, so three 20 GB pulls are never each admitted alone against 40 GB free.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

import structlog

from controller.core.backoff import KUBELET, MISSING_IMAGE, KeyedBackoff
from controller.core.errors import AgentError, PermanentError, TransientError, UnavailableError
from controller.core.observe import NullObserver, Observer, PullProgress
from controller.core.runtime import ContainerRuntime

log = structlog.get_logger(__name__)
# What a registry answers for an image that is not there, or not for us: no retry soon fixes it.
_MISSING = re.compile(
    r"manifest unknown|not found|unauthorized|denied|does not exist|no such image", re.I
)


def missing_image(error: AgentError) -> bool:
    """The registry has nothing for us under that name (or no build for this CPU): retried
    slowly."""
    if isinstance(error, UnavailableError):
        return True
    return isinstance(error, PermanentError) and _MISSING.search(str(error)) is not None


@dataclass(frozen=True)
class ImageState:
    ready: bool
    pulling: bool = False
    error: str | None = None
    transient: bool = False  # the last pull failed in a way worth retrying (registry down…)
    unavailable: bool = False  # it cannot run here (no build for this CPU): not a failure


PRESENT = ImageState(ready=True)
PULLING = ImageState(ready=False, pulling=True)


def is_mutable(image: str) -> bool:
    """A reference without a digest can change under the same name."""
    return "@sha256:" not in image


@dataclass(frozen=True)
class PullGuards:
    """What a pull is held to and what it records: the disk floor (`floor(bytes needed)`: why
    not, or None), an image's size from its registry, whether a local image may be used without
    a pull (`trusted`), and the record of what the agent pulled (`on_pulled`)."""

    floor: Callable[[int], str | None] = lambda needed: None
    size: Callable[[str], int | None] = lambda image: None
    trusted: Callable[[str], bool] = lambda image: True
    on_pulled: Callable[[str], None] = lambda image: None


@dataclass(frozen=True)
class PullReport:
    """Where a pull's progress goes: the metrics, the console's bars, a log line every
    `every` seconds."""

    observer: Observer | None = None
    sink: Callable[[PullProgress], None] | None = None
    every: float = 5.0


UNGUARDED, QUIET = PullGuards(), PullReport()


class ImagePuller:
    """Background pulls, at most `workers` at a time, deduplicated per image."""

    def __init__(
        self,
        runtime: ContainerRuntime,
        *,
        on_done: Callable[[], None] = lambda: None,
        workers: int = 3,
        refresh_interval: float = 6 * 3600,
        clock: Callable[[], float] = time.monotonic,
        guards: PullGuards = UNGUARDED,
        report: PullReport = QUIET,
    ) -> None:
        self._runtime = runtime
        self._on_done = on_done
        self._slots = threading.BoundedSemaphore(workers)
        self._refresh_interval = refresh_interval
        self._clock = clock
        self._lock = threading.Lock()
        self._inflight: set[str] = set()
        self._failed: dict[str, AgentError] = {}
        self._backoff = KeyedBackoff(KUBELET, reset_after=float("inf"))
        self._missing = KeyedBackoff(MISSING_IMAGE, reset_after=float("inf"))
        self._floor, self._size = guards.floor, guards.size
        self._sizes: dict[str, int] = {}  # pulls in flight: their size when known
        self._on_pulled, self._trusted = guards.on_pulled, guards.trusted
        self._refreshed: dict[str, float] = {}
        self._progress: dict[str, PullProgress] = {}
        self._observer: Observer = report.observer or NullObserver()
        self._sink = report.sink
        self._log_every = report.every

    def ensure(self, image: str) -> ImageState:
        with self._lock:
            if image in self._inflight:
                return PULLING
            error = self._failed.get(image)
            wait = self._backoffs(image).remaining(image, self._clock())
        if error is not None and wait > 0:
            unavailable = isinstance(error, UnavailableError)
            again = "checked again" if unavailable else "next pull"
            return ImageState(
                ready=False,
                error=f"{error} ({again} in {wait:.0f} s)",
                transient=isinstance(error, TransientError),
                unavailable=unavailable,
            )
        if self._runtime.image_present(image) and self._trusted(image):
            self._maybe_refresh(image)
            return PRESENT
        refused = self._floor(0)
        if refused is not None:
            with self._lock:
                self._failed[image] = PermanentError(refused)
                delay = self._backoff.failure(image, self._clock())
            log.error("image_pull_refused", image=image, error=refused, retry_in=delay)
            return ImageState(ready=False, error=refused)
        self._start(image, refresh=False)
        return PULLING

    def next_due(self) -> float | None:
        """Seconds until a failed pull may be tried again (the loop looks again then), or None."""
        with self._lock:
            now = self._clock()
            due = [d for d in (self._backoff.next_due(now), self._missing.next_due(now)) if d]
            return min(due) if due else None

    def pulling(self) -> list[str]:
        with self._lock:
            return sorted(self._inflight)

    def progress(self) -> list[PullProgress]:
        """Pulls in flight, with bytes, percent and rate (for `status`)."""
        with self._lock:
            return [self._progress[i] for i in sorted(self._progress) if i in self._inflight]

    def _maybe_refresh(self, image: str) -> None:
        if self._refresh_interval <= 0 or not is_mutable(image) or self._floor(0) is not None:
            return
        now = self._clock()
        with self._lock:
            last = self._refreshed.get(image)
            if last is not None and now - last < self._refresh_interval:
                return
            self._refreshed[image] = now
        self._start(image, refresh=True)

    def _start(self, image: str, *, refresh: bool) -> None:
        with self._lock:
            if image in self._inflight:
                return
            self._inflight.add(image)
        thread = threading.Thread(
            target=self._run, args=(image, refresh), name=f"pull:{image}", daemon=True
        )
        thread.start()

    def _run(self, image: str, refresh: bool) -> None:
        error: AgentError | None = self._admit(image)
        started = self._clock()
        if error is None:
            with self._slots:
                log.info("image_refresh_started" if refresh else "image_pull_started", image=image)
                started = self._clock()
                try:
                    self._runtime.pull(image, self._tracker(image, started))
                except AgentError as exc:
                    error = exc
        delay = self._settle(image, refresh, error)
        if error is None:
            if not refresh:
                self._on_pulled(image)
            seconds = round(self._clock() - started, 3)
            log.info("image_pulled", image=image, refresh=refresh, seconds=seconds)
        elif refresh:
            hint = "the local copy keeps being used"
            log.warning("image_refresh_failed", image=image, error=str(error), hint=hint)
        elif isinstance(error, UnavailableError):
            log.warning("image_unavailable", image=image, error=str(error), retry_in=delay)
        else:
            transient = isinstance(error, TransientError)
            log.error(
                "pull_stalled" if str(error).startswith("pull stalled") else "image_pull_failed",
                image=image,
                error=str(error),
                transient=transient,
                retry_in=delay,
            )
        if not refresh:
            self._on_done()

    def _admit(self, image: str) -> AgentError | None:
        """The floor again, with this image's size and what the pulls in flight still have to
        download; the size stays reserved while this pull runs. An image with no build for this
        machine's CPU is not pulled."""
        try:
            size = self._size(image) or 0
        except UnavailableError as exc:
            return exc
        with self._lock:
            needed = size + sum(
                max(0, known - (p.downloaded if (p := self._progress.get(other)) else 0))
                for other, known in self._sizes.items()
            )
            self._sizes[image] = size
        refused = self._floor(needed) if size else None
        return PermanentError(refused) if refused is not None else None

    def _settle(self, image: str, refresh: bool, error: AgentError | None) -> float:
        """Record how a pull ended; the back-off delay before the next try (0 on success)."""
        with self._lock:
            self._inflight.discard(image)
            self._progress.pop(image, None)
            self._sizes.pop(image, None)
            if error is None:
                self._failed.pop(image, None)
                self._backoff.reset(image)
                self._missing.reset(image)
            elif not refresh:
                self._failed[image] = error
                return self._backoffs(image).failure(image, self._clock())
        return 0.0

    def _backoffs(self, image: str) -> KeyedBackoff:
        """The slow back-off for an image the registry says is missing, else kubelet's."""
        error = self._failed.get(image)
        return self._missing if error is not None and missing_image(error) else self._backoff

    def _tracker(self, image: str, started: float) -> Callable[[int, int, int], None]:
        """The progress callback of one pull: metrics, status, a log line every few seconds."""
        seen: dict[str, float] = {"bytes": 0, "logged": started}

        def on_progress(downloaded: int, total: int, extracted: int) -> None:
            now = self._clock()
            self._observer.pull_bytes(downloaded - int(seen["bytes"]))
            seen["bytes"] = downloaded
            progress = PullProgress(image, downloaded, total, now - started, extracted)
            with self._lock:
                self._progress[image] = progress
            if self._sink is not None:
                self._sink(progress)
            if now - seen["logged"] >= self._log_every:
                seen["logged"] = now
                log.info(
                    "image_pull_progress",
                    image=image,
                    mb=round(downloaded / 1e6, 1),
                    total_mb=round(total / 1e6, 1),
                    percent=_pct(progress.percent),
                    mb_per_s=round(progress.rate / 1e6, 2),
                )

        return on_progress


def _pct(value: float | None) -> float | None:
    return round(value, 1) if value is not None else None
