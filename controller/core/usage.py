"""CPU use split between the agent's own work and everybody else's, from two cumulative samples:
what `--pause-when-busy` watches (other programs' share of the machine) and how the CPU package
energy is attributed (the agent's share of the busy time). Pure arithmetic on counters.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class CpuSample:
    """Cumulative CPU-seconds: of all CPUs (`total`), spent busy (`busy`), and per container of
    the agent (and the agent itself, key "agent") in `ours`; `ours` None: not readable here."""

    total: float
    busy: float
    ours: dict[str, float] | None = field(default=None)


def _ours_delta(a: CpuSample, b: CpuSample) -> float | None:
    if a.ours is None or b.ours is None:
        return None
    # A container that appeared counts from zero; one that went is not counted (its cgroup,
    # and the counter, went with it).
    return sum(max(0.0, v - a.ours.get(k, 0.0)) for k, v in b.ours.items())


def foreign_percent(a: CpuSample, b: CpuSample) -> float | None:
    """Other programs' use of the whole machine between the samples, in %, or None."""
    total, ours = b.total - a.total, _ours_delta(a, b)
    if total <= 0 or ours is None:
        return None
    return max(0.0, min(100.0, 100.0 * (b.busy - a.busy - ours) / total))


def our_share(a: CpuSample, b: CpuSample) -> float | None:
    """The agent's share (0..1) of the CPU's busy time between the samples, or None."""
    busy, ours = b.busy - a.busy, _ours_delta(a, b)
    if ours is None:
        return None
    if busy <= 0:
        return 0.0
    return max(0.0, min(1.0, ours / busy))
