"""Contributor caps: what a volunteer lends at most (BOINC/Golem-style), applied to every
container the agent runs and to what it offers the coordinator.

`--max-cpus`, `--max-memory` and `--gpus` (indices or UUIDs) bound each container: its CPU and
memory limits are set to at most the caps (a spec without limits gets the caps), and a GPU spec
gets only the allowed devices. The registered capabilities are reduced the same way, so the
coordinator assigns a tier for what is really offered. The caps are part of the spec the agent
creates, so changing them recreates the affected containers.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace

from controller.core.machine import GIB, HardwareInfo
from controller.core.models import GPU_ALL, ContainerSpec, DesiredState, Refusal

_UNITS = {"": 1, "b": 1, "k": 1024, "m": 1024**2, "g": 1024**3}


# A memory size as Docker takes it: a number and an optional unit (b, k, m, g), e.g. 512m, 8g.
MEMORY_PATTERN = r"^([0-9]+(?:\.[0-9]+)?)([bkmgBKMG]?)$"


def memory_bytes(text: str) -> int:
    match = re.fullmatch(MEMORY_PATTERN, text.strip().lower())
    if not match:
        raise ValueError(f"not a memory size: {text!r} (e.g. 512m, 8g)")
    return int(float(match.group(1)) * _UNITS[match.group(2)])


@dataclass(frozen=True)
class Limits:
    cpus: float | None = None
    memory: int | None = None  # bytes
    gpus: tuple[str, ...] | None = None  # allowed device indices / UUIDs; None = all
    pids: int | None = None  # the processes of every container together (the parent cgroup)

    @classmethod
    def from_settings(cls, cpus: float | None, memory: str | None, gpus: str | None) -> Limits:
        ids = tuple(g.strip() for g in gpus.split(",") if g.strip()) if gpus is not None else None
        return cls(cpus, memory_bytes(memory) if memory else None, ids)

    def apply(self, spec: ContainerSpec) -> ContainerSpec:
        cpus = spec.cpus
        if self.cpus is not None:
            cpus = min(cpus, self.cpus) if cpus else self.cpus
        memory = spec.memory_limit
        if self.memory is not None:
            wanted = memory_bytes(memory) if memory else None
            memory = _fmt(min(wanted, self.memory) if wanted else self.memory)
        gpu_ids = spec.gpu_ids
        if spec.gpu and self.gpus is not None:
            count = len(self.gpus) if spec.gpu == GPU_ALL else min(spec.gpu, len(self.gpus))
            gpu_ids = self.gpus[:count]
        return replace(spec, cpus=cpus, memory_limit=memory, gpu_ids=gpu_ids)

    def apply_all(self, desired: DesiredState) -> DesiredState:
        """Every spec under the caps; GPU specs are refused when no GPU is lent."""
        if self.gpus == ():
            refused = tuple(
                Refusal(s.name, "needs a GPU and this machine lends none (RMA_GPUS)")
                for s in desired.specs
                if s.gpu
            )
            specs = tuple(self.apply(s) for s in desired.specs if not s.gpu)
            return DesiredState(specs, desired.refused + refused)
        return replace(desired, specs=tuple(self.apply(s) for s in desired.specs))

    def offered(self, hw: HardwareInfo) -> HardwareInfo:
        """The hardware as offered to the coordinator under these caps."""
        cores = hw.cpu_cores if self.cpus is None else max(1, min(hw.cpu_cores, int(self.cpus)))
        ram = hw.ram_bytes if self.memory is None else min(hw.ram_bytes, self.memory)
        gpus = (
            hw.gpus
            if self.gpus is None
            else tuple(g for g in hw.gpus if str(g.index) in self.gpus or g.uuid in self.gpus)
        )
        return replace(hw, cpu_cores=cores, ram_bytes=ram, gpus=gpus)


def default_max_pids(pid_max: int) -> int:
    """The owner's process budget when they set none: a quarter of the machine's `pid_max`, at
    most 8192 (kubelet reserves node-allocatable pids the same way)."""
    return max(64, min(pid_max // 4, 8192))


def _fmt(n: int) -> str:
    return f"{n // 1024**2}m" if n % GIB else f"{n // GIB}g"
