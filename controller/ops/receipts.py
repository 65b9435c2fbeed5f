"""The receipts thread (issue 26): every 10 s it adds to the current window what the worker did
since the last sample — each ready service's seconds, the requests its tunnel carried (the
tunnel's own Prometheus counter), the joules the energy meter measured — and at the window's end
seals the window into a receipt, signed and kept in the ledger (clients/receipts.py) until the
membership delivers it (membership/receipts.py).

Windows are aligned to multiples of `--receipt-window` seconds of wall time; the first one starts
when the agent does. Nothing is estimated: a service that was not ready gets no seconds, requests
no tunnel counted are 0 (and the receipt says `requests_counted: false`), energy not measured is
absent.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import structlog

from controller.clients.receipts import ReceiptLedger
from controller.core.receipts import Tally, counted_since, window_end

log = structlog.get_logger(__name__)
EVERY = 10.0  # seconds between samples
UNSEEN = 3 * EVERY  # a longer time between two samples (the machine slept): no seconds claimed


@dataclass(frozen=True)
class Sources:
    """What a sample reads: the services ready now, the tunnels' cumulative request counters
    by service (None: none could be read), the energy meter's all-time joules by source."""

    ready: Callable[[], frozenset[str]]
    requests: Callable[[], dict[str, int] | None] = lambda: None
    joules: Callable[[], dict[str, float]] = dict


@dataclass
class ReceiptKeeper:
    ledger: ReceiptLedger
    sources: Sources
    worker_id: Callable[[], str]
    version: str
    window: float = 600.0
    clock: Callable[[], float] = time.time  # wall time: windows line up with the coordinator's
    _tally: Tally | None = field(default=None, init=False)
    _at: float = field(default=0.0, init=False)
    _counters: dict[str, int] = field(default_factory=dict, init=False)
    _joules: dict[str, float] = field(default_factory=dict, init=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False)

    def run(self, stop: threading.Event, wait: Callable[[threading.Event, float], bool]) -> None:
        while not wait(stop, EVERY):
            try:
                self.sample()
            except Exception as exc:  # a receipt must never take the agent down
                log.exception("receipt_sample_failed", error=str(exc))

    def close(self) -> dict[str, object] | None:
        """The agent stops: what happened since the last sample, and the window so far sealed
        (a shorter receipt: nothing the worker did is left unsaid)."""
        with self._lock:
            self._sample()
            tally, now = self._tally, self._at
            if tally is None or now - tally.start < 1:
                return None
            self._tally = Tally(start=now)
            return self._seal(tally, now)

    def sample(self) -> dict[str, object] | None:
        """Add what happened since the last sample; the receipt sealed, if a window ended."""
        with self._lock:
            return self._sample()

    def _sample(self) -> dict[str, object] | None:
        now = self.clock()
        counters = self.sources.requests()
        joules = self.sources.joules()
        if self._tally is None:  # the first sample: baselines only
            self._tally, self._at = Tally(start=now), now
            self._counters, self._joules = dict(counters or {}), joules
            return None
        ready = frozenset(self.sources.ready())
        requests = counted_since(self._counters, counters) if counters is not None else None
        drawn = {s: j - self._joules.get(s, j) for s, j in joules.items()}
        end = window_end(self._tally.start, self.window)
        # Seconds are claimed only for what was watched: across a longer gap (a laptop asleep)
        # nothing says the services were ready, so none are (requests and energy were counted).
        seen = 1.0 if now - self._at <= UNSEEN else 0.0
        sealed = None
        if now >= end:  # the part before the boundary closes this window, the rest opens next
            before = (end - self._at) / max(now - self._at, 1e-9)
            closing = self._tally.add(
                (end - self._at) * seen, ready, _part(requests, before), _part_j(drawn, before)
            )
            sealed = self._seal(closing, end)
            start = max(end, window_end(now, self.window) - self.window)  # skipped windows: none
            self._tally = Tally(start=start).add(
                (now - start) * seen, ready, _part(requests, 1 - before), _part_j(drawn, 1 - before)
            )
        else:
            self._tally = self._tally.add((now - self._at) * seen, ready, requests, drawn)
        self._at, self._joules = now, joules
        if counters is not None:
            self._counters = counters
        return sealed

    def _seal(self, tally: Tally, end: float) -> dict[str, object] | None:
        worker_id = self.worker_id()
        receipt = self.ledger.append(
            lambda seq, prev: tally.seal(
                worker_id=worker_id, seq=seq, prev=prev, end=end, version=self.version
            ),
            worker_id,
            now=end,
        )
        if receipt is None:
            log.info("receipt_skipped", reason="its window was told already (the clock went back)")
            return None
        log.info("receipt_sealed", seq=receipt["seq"], start=receipt["start"], end=receipt["end"])
        return receipt


def _part(requests: dict[str, int] | None, share: float) -> dict[str, int] | None:
    """The share of the requests counted over a sample that fell on one side of a boundary."""
    if requests is None:
        return None
    return {name: round(n * share) for name, n in requests.items()}


def _part_j(joules: dict[str, float], share: float) -> dict[str, float]:
    return {s: j * share for s, j in joules.items()}
