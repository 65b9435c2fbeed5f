"""GPU placement (issue 24): which lent GPU each GPU service runs on, and only where it fits.

A GPU service says the GPU memory it needs (`gpu_memory_min`, MiB: the catalog's vLLM with a 7B
model ~18 000, Ollama's default model ~6 000). The lent GPUs are tried largest first, first fit:
a service is placed on a GPU whose memory is at least its need (else `unavailable: needs 18 GB of
GPU memory; GPU 0 has 8 GB`) and is started only when that much is free there beyond other
programs' use and the needs of the agent's services already placed on it (else unavailable with
what is free, until it is). Each placed service is pinned to its devices (`gpu_ids`) and two
services share a GPU only when their needs fit together; `${gpu_memory_fraction}` in an env value
or a command word becomes the share of the GPU's memory its need is (vLLM's
`--gpu-memory-utilization`), so neither takes what the other was promised.

A service that does not say its need takes its GPUs whole and alone (Kubernetes' whole-device
`nvidia.com/gpu`): nothing else is placed beside it, and its share is 0.9 (vLLM's default).
`gpu: true` with a need asks for one GPU (a model server on one card), without one every lent
GPU; a count asks for that many.

Placement is stable: a service keeps the GPUs it was placed on while they are still lent and its
need still fits their size (what it uses is then the agent's own, not free memory it waits for),
so a running model server is never moved because another program came and went. Pure: the caller
passes the GPUs as last read and the placements it kept.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, replace

from controller.core.models import GPU_ALL, ContainerSpec, DesiredState, Refusal
from controller.core.tunnels import TUNNEL_FOR

MIB = 1024**2
FRACTION = "${gpu_memory_fraction}"
WHOLE_SHARE = 0.9  # a service that takes its GPU whole (vLLM's own default)


@dataclass(frozen=True)
class GpuRoom:
    """One lent GPU: its index, size, and what programs that are not the agent's use on it now
    (None: not read — an AMD card, or NVML without per-process memory)."""

    index: str
    total: int  # bytes
    others: int | None = None  # bytes


@dataclass(frozen=True)
class Placement:
    """Where a service runs: its GPUs (indices) and its share of each one's memory."""

    devices: tuple[str, ...]
    share: float
    need: int  # MiB; 0: the GPUs whole


def gb(mib: int) -> str:
    """MiB as a person reads a GPU's size: `18 GB`, `5.9 GB`."""
    value = mib / 1024
    return f"{value:.0f} GB" if value >= 10 or value == int(value) else f"{value:.1f} GB"


def share_of(need: int, total: int) -> float:
    """The need's share of the GPU (rounded up to a hundredth: never less than asked)."""
    if not need:
        return WHOLE_SHARE
    return min(1.0, math.ceil(need * MIB / total * 100) / 100)


@dataclass(frozen=True)
class GpuPlacer:
    """The lent GPUs (largest first is decided here) and the placements kept from before."""

    rooms: tuple[GpuRoom, ...]
    kept: Mapping[str, Placement]

    def apply(self, desired: DesiredState) -> tuple[DesiredState, dict[str, Placement]]:
        """Every GPU spec pinned where it fits, the rest unavailable with the reason; the
        placements made (to be kept for the next pass)."""
        if not self.rooms:  # no GPU read: the engine's own choice, as before
            whole = Placement((), WHOLE_SHARE, 0)
            specs = tuple(_pinned(s, whole) if s.gpu else s for s in desired.specs)
            return replace(desired, specs=specs), {}
        rooms = sorted(self.rooms, key=lambda r: (-r.total, _order(r.index)))
        placed: dict[str, Placement] = {}
        gpu_specs = [s for s in desired.specs if s.gpu]
        for spec in gpu_specs:  # kept first: they hold their GPUs
            old = self.kept.get(spec.name)
            if old is not None and self._still_fits(spec, old, rooms, placed):
                placed[spec.name] = old
        refused: list[Refusal] = []
        for spec in gpu_specs:
            if spec.name in placed:
                continue
            found = _place(spec, rooms, placed)
            if isinstance(found, str):
                refused.append(Refusal(spec.name, f"unavailable: {found}", unavailable=True))
            else:
                placed[spec.name] = found
        out = {r.name for r in refused}  # with their tunnels
        specs = tuple(
            _pinned(s, placed[s.name]) if s.name in placed else s
            for s in desired.specs
            if s.name not in out and s.labels_dict.get(TUNNEL_FOR) not in out
        )
        return replace(desired, specs=specs, refused=desired.refused + tuple(refused)), placed

    @staticmethod
    def _still_fits(
        spec: ContainerSpec,
        old: Placement,
        rooms: list[GpuRoom],
        placed: Mapping[str, Placement],
    ) -> bool:
        sizes = {r.index: r.total for r in rooms}
        if old.need != spec.gpu_memory_min or any(d not in sizes for d in old.devices):
            return False
        for device in old.devices:
            beside = [p for p in placed.values() if device in p.devices]
            if (not old.need and beside) or any(not p.need for p in beside):
                return False
            if (old.need + sum(p.need for p in beside)) * MIB > sizes[device]:
                return False
        return True


def _order(index: str) -> tuple[int, str]:
    return (int(index), "") if index.isdigit() else (1 << 30, index)


def _count(spec: ContainerSpec, rooms: list[GpuRoom]) -> int:
    if spec.gpu != GPU_ALL:
        return spec.gpu
    return 1 if spec.gpu_memory_min else len(rooms)


def _place(
    spec: ContainerSpec,
    rooms: list[GpuRoom],
    placed: Mapping[str, Placement],
) -> Placement | str:
    """The first GPUs (largest first) with room for the spec, or why there are none."""
    need, count = spec.gpu_memory_min, _count(spec, rooms)
    if count > len(rooms):
        lent = f"{len(rooms)} GPU" + ("s" if len(rooms) != 1 else "")
        return f"needs {count} GPUs; this machine lends {lent}"
    big = [r for r in rooms if need * MIB <= r.total]
    if len(big) < count:
        sizes = ", ".join(f"GPU {r.index} has {gb(r.total // MIB)}" for r in rooms)
        return f"needs {gb(need)} of GPU memory; {sizes}"
    chosen, why = [], []
    for room in big:
        beside = {n: p for n, p in placed.items() if room.index in p.devices}
        reason = _crowded(room, need, beside)
        if reason is None:
            chosen.append(room)
            if len(chosen) == count:
                share = min(share_of(need, r.total) for r in chosen)
                return Placement(tuple(r.index for r in chosen), share, need)
        else:
            why.append(reason)
    what = f"{gb(need)} of GPU memory" if need else "a GPU to itself"
    return f"needs {what}; " + "; ".join(why)


def _crowded(room: GpuRoom, need: int, beside: Mapping[str, Placement]) -> str | None:
    """Why the service cannot go on this GPU now (None: it can)."""
    if not need:
        if beside:
            return f"GPU {room.index} runs {', '.join(sorted(beside))}"
        return None
    whole = sorted(n for n, p in beside.items() if not p.need)
    if whole:
        return f"GPU {room.index} is given whole to {', '.join(whole)}"
    others = room.others or 0
    promised = sum(p.need for p in beside.values()) * MIB
    free = room.total - others - promised
    if need * MIB <= free:
        return None
    held = [f"other programs use {gb(others // MIB)}"] if others >= MIB else []
    held += [f"{n} holds {gb(p.need)}" for n, p in sorted(beside.items())]
    return f"GPU {room.index} has {gb(max(0, free) // MIB)} free ({', '.join(held)})"


def _pinned(spec: ContainerSpec, where: Placement) -> ContainerSpec:
    share = f"{where.share:.2f}"

    def fill(text: str) -> str:
        return text.replace(FRACTION, share)

    env = tuple((k, fill(v)) for k, v in spec.env)
    command = tuple(fill(w) for w in spec.command) if spec.command is not None else None
    return replace(spec, gpu_ids=where.devices or spec.gpu_ids, env=env, command=command)
