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
    if hw.gpu_runtime:  # what the engine can give a container (issue 24, item 3)
        data["gpu_runtime"] = hw.gpu_runtime
        data["cuda_version"] = gpu.cuda_version or None if gpu is not None else None
    if hw.arch:
        data["arch"] = hw.arch  # which images can run here (issue 24, item 7)
    if version:
        data["agent_version"] = version
    return data


# The local/community coordinator picks the tier from flags, not from these strings (Part 3).
WORKER_TYPES = {1: "gpu", 2: "cpu", 3: "storage"}


def registration_body(
    worker_id: str,
    caps: dict[str, Any],
    containers: list[dict[str, Any]],
    *,
    tunnel_url: str = "",
    ip_address: str | None = None,
) -> dict[str, Any]:
    """One body every dialect accepts (Part 3): the stable id, Part 1 capabilities, the flags
    the local coordinator reads (for the tier this machine's own hardware qualifies for), the
    tunnel URL ("" without one), the owner's advertised address only when set, the services."""
    tier = int(caps.get("tier") or 3)
    body: dict[str, Any] = {
        "worker_id": worker_id,
        "capabilities": caps,
        "has_gpu": tier == 1,
        "worker_type": WORKER_TYPES.get(tier, "storage"),
        "tunnel_url": tunnel_url,
        "containers": containers,
    }
    if ip_address:
        body["ip_address"] = ip_address
    return body
