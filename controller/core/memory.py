"""Memory admission (issue 24): what runs here fits in the machine's memory, less what the owner
keeps for themselves.

Each container counts its memory limit, its `/dev/shm` and its `tmpfs` mounts (all memory), and an
HTTP service counts its tunnel with it. A spec without a memory limit gets a default one, created
with it (the count is what the engine enforces, not a guess): 512 MiB, or 4 GiB for a GPU service
(a model server loads its weights through host memory). Services are
admitted in the order the desired state lists them (the catalog's order); one that does not fit in
what is left is `unavailable: not enough memory (needs 2.0 GiB, 1.1 GiB left)` — not run, not a
failure, and the ones after it may still fit. The budget is the machine's memory less the owner's
reserve. `--max-memory` is not part of it: it still caps each container and, through the agent's
parent cgroup, all of them together (the kernel holds that sum; containers may share it). Pure:
the caller passes the machine's memory.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from controller.core.limits import memory_bytes
from controller.core.machine import GIB
from controller.core.models import ContainerSpec, DesiredState, Refusal
from controller.core.tunnels import TUNNEL_FOR

MIB = 1024**2
DEFAULT_LIMIT = "512m"  # a spec without one: a small service's working set, bounded
DEFAULT_GPU_LIMIT = "4g"


def default_reserve(total: int) -> int:
    """What the owner keeps when they say nothing: a fifth of the machine's memory, at least
    512 MiB and at most 4 GiB (a 2 GB NAS keeps 512 MiB, a 32 GB desktop 4 GiB)."""
    return max(512 * MIB, min(total // 5, 4 * GIB))


def default_limit(spec: ContainerSpec) -> str:
    return DEFAULT_GPU_LIMIT if spec.gpu else DEFAULT_LIMIT


def _limited(spec: ContainerSpec) -> ContainerSpec:
    return replace(spec, memory_limit=default_limit(spec))


def needs(spec: ContainerSpec) -> int:
    """The memory a container may hold: its limit, its /dev/shm and its tmpfs mounts."""
    total = memory_bytes(spec.memory_limit or default_limit(spec))
    if spec.shm_size:
        total += memory_bytes(spec.shm_size)
    return total + sum(memory_bytes(size) for _path, size in spec.tmpfs)


def _size(n: int) -> str:
    return f"{n / GIB:.1f} GiB" if n >= GIB else f"{n // MIB} MiB"


@dataclass(frozen=True)
class MemoryBudget:
    """The memory the agent's containers may hold together (bytes)."""

    total: int
    reserve: int

    @property
    def budget(self) -> int:
        return max(0, self.total - self.reserve)

    def apply(self, desired: DesiredState) -> DesiredState:
        """Every spec with a memory limit; those that do not fit, unavailable (with their
        tunnels)."""
        specs = tuple(
            s if s.memory_limit else replace(s, memory_limit=default_limit(s))
            for s in desired.specs
        )
        tunnels = {s.labels_dict[TUNNEL_FOR]: s for s in specs if TUNNEL_FOR in s.labels_dict}
        left, kept, refused = self.budget, [], list(desired.refused)
        for spec in specs:
            if TUNNEL_FOR in spec.labels_dict:
                continue  # counted with its service
            tunnel = tunnels.get(spec.name)
            wanted = needs(spec) + (needs(tunnel) if tunnel else 0)
            if wanted > left:
                why = f"unavailable: not enough memory (needs {_size(wanted)}, {_size(left)} left)"
                refused.append(Refusal(spec.name, why, unavailable=True))
                continue
            left -= wanted
            kept += [spec, tunnel] if tunnel else [spec]
        return replace(desired, specs=tuple(kept), refused=tuple(refused))
