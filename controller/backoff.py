"""Per-key exponential backoff with kubelet's numbers, pure and clock-injected.

Used for image pulls (a failing pull waits 10 s, then 20 s … up to 5 min; a success resets it)
and for containers that keep dying (CrashLoopBackOff: the first restart is immediate, the next
ones wait 10 s doubling to 5 min; a container that ran 10 minutes starts over).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass


@dataclass
class _Entry:
    failures: int
    last: float
    not_before: float


class Backoff:
    def __init__(self, *, base: float = 10.0, cap: float = 300.0, reset_after: float = 600.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._base = base
        self._cap = cap
        self._reset_after = reset_after
        self._clock = clock
        self._entries: dict[str, _Entry] = {}

    def failure(self, key: str) -> float:
        """Record a failure (or a restart) now; returns the delay before the next attempt.
        The first attempt of a key never waits: there is no entry for it yet."""
        now = self._clock()
        entry = self._entries.get(key)
        if entry is None or now - entry.last >= self._reset_after:
            entry = _Entry(0, now, now)
        entry.failures += 1
        entry.last = now
        delay = float(min(self._cap, self._base * 2 ** (entry.failures - 1)))
        entry.not_before = now + delay
        self._entries[key] = entry
        return delay

    def remaining(self, key: str) -> float:
        """Seconds until the next attempt is allowed (0 when it is)."""
        entry = self._entries.get(key)
        return max(0.0, entry.not_before - self._clock()) if entry else 0.0

    def failures(self, key: str) -> int:
        entry = self._entries.get(key)
        return entry.failures if entry else 0

    def reset(self, key: str) -> None:
        self._entries.pop(key, None)

    def forget_except(self, keys: set[str]) -> None:
        for key in [k for k in self._entries if k not in keys]:
            del self._entries[key]
