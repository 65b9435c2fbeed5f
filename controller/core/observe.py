"""What the loop, the lifecycle and the puller report as they work, for metrics and `status`.

A tiny interface with a no-op default, so the inner layers never import prometheus_client: the
metrics module implements it, tests record it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True)
class PullProgress:
    image: str
    downloaded: int  # bytes so far, over all layers
    total: int  # bytes announced so far (grows as layers are discovered)
    seconds: float  # since the pull started
    extracted: int = 0  # bytes of the downloaded layers unpacked so far

    @property
    def percent(self) -> float | None:
        """Download and extraction together: each byte is fetched, then unpacked (a large
        model's extraction takes minutes after its download ends)."""
        if not self.total:
            return None
        return 100.0 * (self.downloaded + self.extracted) / (2 * self.total)

    @property
    def rate(self) -> float:
        return self.downloaded / self.seconds if self.seconds > 0 else 0.0


class Observer(Protocol):
    def pass_done(self, ok: bool, seconds: float) -> None: ...

    def action(self, kind: str, outcome: str) -> None: ...

    def containers(self, by_state: dict[str, int]) -> None: ...

    def heartbeat(self, ok: bool) -> None: ...

    def pull_bytes(self, n: int) -> None: ...

    def energy(self, source: str, joules: float) -> None: ...

    def holds(self, active: dict[str, bool]) -> None: ...


class NullObserver:
    def pass_done(self, ok: bool, seconds: float) -> None:
        pass

    def action(self, kind: str, outcome: str) -> None:
        pass

    def containers(self, by_state: dict[str, int]) -> None:
        pass

    def heartbeat(self, ok: bool) -> None:
        pass

    def pull_bytes(self, n: int) -> None:
        pass

    def energy(self, source: str, joules: float) -> None:
        pass

    def holds(self, active: dict[str, bool]) -> None:
        pass
