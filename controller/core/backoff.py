"""The one delay policy: how long to wait before the next attempt, as pure arithmetic.

Like tenacity's wait strategies it returns delays and never sleeps; unlike them it also reads no
clock and draws no random number itself: the caller passes `now` and a random fraction, so every
decision is a function of its inputs and tested without waiting. Only the reconcile loop and the
membership and watcher threads wait, on the stop event, for the delays computed here.

`Delays` is exponential (base, doubling, capped) with an optional jitter: `full` draws in
[0, d] (AWS's "full jitter", used for retries of one call), `half` in [d/2, d] (registration
and long-poll retries: spread out, never much sooner than planned). `KeyedBackoff` keeps one
failure count per key with kubelet's numbers by default (10 s doubling to 5 min; quiet for 10
min starts over): image pull back-off and CrashLoopBackOff.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Jitter = Literal["none", "full", "half"]


@dataclass(frozen=True)
class Delays:
    base: float
    cap: float
    factor: float = 2.0
    jitter: Jitter = "none"

    def delay(self, attempt: int, fraction: float = 1.0) -> float:
        """The wait before retry number `attempt` (1 = after the first failure). `fraction` is
        a random number in [0, 1] for the jitter (ignored without jitter)."""
        exponent = max(0, attempt - 1)
        planned = self.cap if exponent > 64 else min(self.cap, self.base * self.factor**exponent)
        fraction = min(max(fraction, 0.0), 1.0)
        if self.jitter == "full":
            return planned * fraction
        if self.jitter == "half":
            return planned * (0.5 + 0.5 * fraction)
        return float(planned)


KUBELET = Delays(base=10.0, cap=300.0)
# A pull the registry refused for good (manifest unknown, not found, denied): the image will not
# appear in seconds; asking again every 5 minutes for ever only loads the registry (issue 22).
MISSING_IMAGE = Delays(base=600.0, cap=6 * 3600.0)


@dataclass
class _Entry:
    failures: int
    last: float
    not_before: float


class KeyedBackoff:
    """Per-key failure counts and the time before which a key must not be tried again. Times
    are whatever monotonic clock the caller reads; nothing here reads one."""

    def __init__(self, delays: Delays = KUBELET, *, reset_after: float = 600.0) -> None:
        self._delays = delays
        self._reset_after = reset_after
        self._entries: dict[str, _Entry] = {}

    def failure(self, key: str, now: float) -> float:
        """Record a failure (or a restart) at `now`; returns the delay before the next attempt.
        The first attempt of a key never waits: there is no entry for it yet."""
        entry = self._entries.get(key)
        if entry is None or now - entry.last >= self._reset_after:
            entry = _Entry(0, now, now)
        entry.failures += 1
        entry.last = now
        delay = self._delays.delay(entry.failures)
        entry.not_before = now + delay
        self._entries[key] = entry
        return delay

    def remaining(self, key: str, now: float) -> float:
        """Seconds until the next attempt is allowed (0 when it is)."""
        entry = self._entries.get(key)
        return max(0.0, entry.not_before - now) if entry else 0.0

    def next_due(self, now: float) -> float | None:
        """Seconds until the soonest key becomes allowed again, or None when none waits."""
        waits = [e.not_before - now for e in self._entries.values() if e.not_before > now]
        return min(waits) if waits else None

    def failures(self, key: str) -> int:
        entry = self._entries.get(key)
        return entry.failures if entry else 0

    def reset(self, key: str) -> None:
        self._entries.pop(key, None)

    def forget_except(self, keys: set[str]) -> None:
        for key in [k for k in self._entries if k not in keys]:
            del self._entries[key]
