"""What the machine has, as plain values: its CPU cores, memory, free storage and GPUs.
Hardware detection (clients/hardware.py) fills them; the contributor's limits reduce them; the
contract turns them into the coordinator's capability strings.
"""

from __future__ import annotations

from dataclasses import dataclass

GIB = 1024**3
MIB = 1024**2


@dataclass(frozen=True)
class GpuInfo:
    index: int
    name: str
    memory_bytes: int
    driver: str  # "nvidia" | "rocm"
    uuid: str = ""
    driver_version: str = ""
    cuda_version: str = ""  # the CUDA version the NVIDIA driver supports ("12.4"; "": unread)

    @property
    def memory_mb(self) -> int:
        return self.memory_bytes // MIB


@dataclass(frozen=True)
class HardwareInfo:
    cpu_cores: int
    ram_bytes: int
    storage_bytes: int
    gpus: tuple[GpuInfo, ...] = ()
    arch: str = ""  # the kernel's name for the CPU: x86_64, aarch64, armv7l… ("": not read)
    gpu_runtime: str = ""  # nvidia, rocm or none: what the engine can give a container ("": unread)

    @property
    def primary_gpu(self) -> GpuInfo | None:
        """The largest GPU: it decides the tier and fills the seed's GPU keys."""
        if not self.gpus:
            return None
        return max(self.gpus, key=lambda g: (g.memory_bytes, -g.index))


def format_gb(n_bytes: int) -> str:
    """GiB to a tenth, rounded down: 3.97 GiB is `3.9GB`, never `4.0GB` — a coordinator that
    reads the string must not place the machine in a tier its memory does not reach."""
    return f"{n_bytes * 10 // GIB / 10:.1f}GB"
