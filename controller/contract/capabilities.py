"""What the machine offers, in the exact strings the deployed coordinator parses.

The deployed coordinator keeps only the digits of `ram`, `storage` and `gpu_memory`, so their
formats are fixed: "64.0GB" (GiB, one decimal, unit glued on) and "24564MB" (MiB, integer). The GPU
keys are absent when no GPU was found. Richer data follows in extra keys the coordinator ignores.
"""

from __future__ import annotations

from typing import Any

from controller.core.machine import GIB, HardwareInfo, format_gb

# The seed README's thresholds.
TIER1_MIN_VRAM_MB = 8000
TIER2_MIN_RAM_GB = 4.0
TIER2_MIN_CORES = 2


def qualifying_tier(hw: HardwareInfo) -> int:
    """1 = GPU worker, 2 = service worker, 3 = data worker (the seed's thresholds)."""
    gpu = hw.primary_gpu
    if gpu is not None and gpu.memory_mb >= TIER1_MIN_VRAM_MB:
        return 1
    if hw.ram_bytes / GIB >= TIER2_MIN_RAM_GB and hw.cpu_cores >= TIER2_MIN_CORES:
        return 2
    return 3


def capabilities(hw: HardwareInfo, *, version: str = "") -> dict[str, Any]:
    """The registration `capabilities` object: seed keys first, extras after."""
    data: dict[str, Any] = {
        "cpu_cores": hw.cpu_cores,
        "ram": format_gb(hw.ram_bytes),
        "storage": format_gb(hw.storage_bytes),
    }
    gpu = hw.primary_gpu
    if gpu is not None:
        data["gpu_memory"] = f"{gpu.memory_mb}MB"
        data["gpu_type"] = gpu.name
        data["gpu_driver"] = gpu.driver
        data["gpus"] = [
            {
                "index": g.index,
                "name": g.name,
                "memory_mb": g.memory_mb,
                "uuid": g.uuid,
                "driver": g.driver,
                "driver_version": g.driver_version,
            }
            for g in hw.gpus
        ]
    data["tier"] = qualifying_tier(hw)
    if version:
        data["agent_version"] = version
    return data
