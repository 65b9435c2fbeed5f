"""Signed receipts of what the worker did (issue 26): per window, each service's ready seconds and
the requests its tunnel carried, and the energy measured — a claim the coordinator checks against
what it witnessed itself, chained so that none can be dropped, changed or told twice unseen.

Pure values: the tally a window accumulates, the receipt it seals into, its canonical bytes (what
is signed; docs/worker-api.md Part 5 says how another coordinator reproduces them) and the hash
that links each receipt to the one before. Signing and keeping them is clients/receipts.py's.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass, field, replace
from typing import Any

VERSION = 1
GENESIS = "0" * 64  # `prev` of a chain's first receipt
KEEP_SECONDS = 30 * 24 * 3600.0  # receipts not acknowledged are kept this long, then dropped
WH = 3600.0


def canonical(value: Any) -> bytes:
    """RFC 8785 (JCS) for the values a receipt holds: keys sorted, no spaces, UTF-8; an integral
    number written as an integer and any other with the shortest repr that round-trips (the
    receipt's numbers have at most three decimals, so every JCS implementation agrees)."""
    return json.dumps(
        _numbers(value), sort_keys=True, separators=(",", ":"), ensure_ascii=False
    ).encode("utf-8")


def _numbers(value: Any) -> Any:
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError("a receipt holds finite numbers only")
        return int(value) if value.is_integer() else value
    if isinstance(value, dict):
        return {str(k): _numbers(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_numbers(v) for v in value]
    return value


def digest(receipt: dict[str, Any]) -> str:
    """Hex SHA-256 of a receipt's canonical bytes without its signature: the next one's `prev`."""
    return hashlib.sha256(canonical(unsigned(receipt))).hexdigest()


def unsigned(receipt: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in receipt.items() if k != "signature"}


def window_end(start: float, window: float) -> float:
    """The end of the window that contains `start`: windows are aligned to multiples of
    `window` seconds of wall time (a coordinator counts by the minute: they line up)."""
    return (math.floor(start / window) + 1) * window


@dataclass(frozen=True)
class Tally:
    """One window so far: ready seconds and requests per service, joules per source."""

    start: float
    ready: dict[str, float] = field(default_factory=dict)
    requests: dict[str, int] = field(default_factory=dict)
    joules: dict[str, float] = field(default_factory=dict)
    counted: bool = False  # requests were counted (a tunnel's metrics answered) at least once

    def add(
        self,
        seconds: float,
        ready: frozenset[str],
        requests: dict[str, int] | None,
        joules: dict[str, float],
    ) -> Tally:
        """`seconds` more for each service ready now; requests carried since the last sample
        (None: nothing could count them); joules drawn since the last sample."""
        spent = dict(self.ready)
        for name in ready if seconds > 0 else ():
            spent[name] = spent.get(name, 0.0) + seconds
        served = dict(self.requests)
        for name, n in (requests or {}).items():
            served[name] = served.get(name, 0) + max(0, n)
        drawn = dict(self.joules)
        for source, j in joules.items():
            drawn[source] = drawn.get(source, 0.0) + max(0.0, j)
        return replace(
            self, ready=spent, requests=served, joules=drawn, counted=self.counted or bool(requests)
        )

    def seal(
        self, *, worker_id: str, seq: int, prev: str, end: float, version: str
    ) -> dict[str, Any]:
        """The receipt (unsigned) of this window, ended at `end`."""
        names = sorted(set(self.ready) | set(self.requests))
        return {
            "v": VERSION,
            "worker_id": worker_id,
            "seq": seq,
            "prev": prev,
            "start": math.floor(self.start),
            "end": math.floor(end),
            "services": {
                n: {
                    "ready_seconds": round(self.ready.get(n, 0.0)),
                    "requests": self.requests.get(n, 0),
                }
                for n in names
            },
            "requests_counted": self.counted,
            "energy_wh": {s: round(j / WH, 3) for s, j in sorted(self.joules.items())},
            "agent_version": version,
        }


def counted_since(before: dict[str, int], now: dict[str, int]) -> dict[str, int]:
    """Requests per service between two readings of cumulative counters. A counter seen for
    the first time is a baseline (what it counted before may be in an earlier receipt: an agent
    that restarted never claims it twice); one that went down was restarted (a tunnel counts
    from zero again): its new value is all new."""
    return {
        name: (n - before[name] if n >= before[name] else n)
        for name, n in now.items()
        if name in before
    }
