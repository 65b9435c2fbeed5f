"""Hardware detection: CPU, RAM, the disk that holds Docker's data, and GPUs.

NVIDIA GPUs are read through NVML (pynvml), AMD GPUs through `rocm-smi --json`. A missing library,
driver or tool means "no GPU": this module never raises and never prints a traceback for it.
"""

from __future__ import annotations

import json
import os
import platform
import shutil
from collections.abc import Callable
from dataclasses import replace
from types import ModuleType
from typing import Any, Protocol

import psutil
import structlog

from controller.contract.capabilities import capabilities
from controller.core.errors import AgentError
from controller.core.gpu_prereq import cuda_of
from controller.core.limits import Limits
from controller.core.machine import GpuInfo, HardwareInfo

log = structlog.get_logger(__name__)

RocmRunner = Callable[[list[str]], str | None]
ROCM_ARGS = [
    "--showproductname",
    "--showmeminfo",
    "vram",
    "--showuniqueid",
    "--showdriverversion",
    "--json",
]


def detect(
    data_root: str | None = None,
    *,
    nvml: ModuleType | None = None,
    rocm: RocmRunner | None = None,
) -> HardwareInfo:
    """Everything at once. `data_root` is Docker's data directory when the engine told us."""
    path = data_root if data_root and os.path.isdir(data_root) else "/"
    from controller.clients.rocm import run_rocm_smi  # noqa: PLC0415 (rocm -> gpu_watch -> here)

    gpus = detect_nvidia(nvml) or detect_rocm(rocm or run_rocm_smi)
    return HardwareInfo(
        cpu_cores=psutil.cpu_count(logical=True) or os.cpu_count() or 1,
        ram_bytes=memory_total(),
        storage_bytes=int(psutil.disk_usage(path).free),
        gpus=tuple(gpus),
        arch=platform.machine(),
    )


def text_of(value: Any) -> str:
    """NVML's strings: bytes in older bindings, str in newer."""
    return value.decode() if isinstance(value, bytes) else str(value)


def load_nvml() -> ModuleType | None:
    """pynvml, or None where it is not installed."""
    try:
        import pynvml  # noqa: PLC0415  (optional at run time: absence means no NVIDIA GPU)
    except ImportError:
        return None
    module: ModuleType = pynvml
    return module


def detect_nvidia(nvml: ModuleType | None = None) -> list[GpuInfo]:
    """Every NVIDIA GPU NVML reports; [] when NVML, the driver or the GPU is absent."""
    lib = nvml or load_nvml()
    if lib is None:
        return []
    try:
        lib.nvmlInit()
    except Exception as exc:  # NVMLError_LibraryNotFound, DriverNotLoaded, OSError…
        log.debug("nvml_unavailable", error=str(exc) or type(exc).__name__)
        return []
    try:
        driver = text_of(lib.nvmlSystemGetDriverVersion())
        cuda = _cuda_version(lib)
        gpus = []
        for i in range(lib.nvmlDeviceGetCount()):
            handle = lib.nvmlDeviceGetHandleByIndex(i)
            gpus.append(
                GpuInfo(
                    index=i,
                    name=text_of(lib.nvmlDeviceGetName(handle)),
                    memory_bytes=int(lib.nvmlDeviceGetMemoryInfo(handle).total),
                    driver="nvidia",
                    uuid=text_of(lib.nvmlDeviceGetUUID(handle)),
                    driver_version=driver,
                    cuda_version=cuda,
                )
            )
        return gpus
    except Exception as exc:
        log.warning("nvml_query_failed", error=str(exc) or type(exc).__name__)
        return []
    finally:
        try:
            lib.nvmlShutdown()
        except Exception as exc:
            log.debug("nvml_shutdown_failed", error=str(exc))


def _cuda_version(lib: Any) -> str:
    """The CUDA version the driver supports (`12.4`), or "" when NVML does not say."""
    try:
        return cuda_of(int(lib.nvmlSystemGetCudaDriverVersion()))
    except Exception as exc:  # an old NVML, or a binding without the call
        log.debug("cuda_version_unread", error=str(exc) or type(exc).__name__)
        return ""


NVIDIA_HOOK = "nvidia-container-runtime-hook"  # what Docker's own `--gpus` requests call


def gpu_runtime(
    gpus: tuple[GpuInfo, ...],
    runtimes: frozenset[str] | None,
    *,
    local: bool = True,
    dev: str = "/dev",
) -> str:
    """What the engine can give a container: `nvidia` (an NVIDIA GPU and the Container Toolkit:
    its runtime registered with Docker, or the hook Docker 20.10+'s GPU requests run, on this
    machine's PATH beside a local engine), `rocm` (an AMD GPU and /dev/kfd to map) or `none`.
    `runtimes`: the engine's (docker info), None when it did not answer."""
    if any(g.driver == "nvidia" for g in gpus):
        registered = runtimes is not None and "nvidia" in runtimes
        return "nvidia" if registered or (local and shutil.which(NVIDIA_HOOK)) else "none"
    if any(g.driver == "rocm" for g in gpus) and os.path.exists(os.path.join(dev, "kfd")):
        return "rocm"
    return "none"


def detect_rocm(runner: RocmRunner) -> list[GpuInfo]:
    """Every AMD GPU `rocm-smi --json` reports; [] when the tool is absent or says nothing."""
    out = runner(ROCM_ARGS)
    if not out:
        return []
    try:
        data = json.loads(out)
    except ValueError:
        log.debug("rocm_smi_bad_json")
        return []
    if not isinstance(data, dict):
        return []
    driver = str((data.get("system") or {}).get("Driver version", ""))
    cards = sorted((k for k in data if k.startswith("card")), key=_card_index)
    return [gpu for key in cards if (gpu := _rocm_card(key, data[key], driver)) is not None]


def _card_index(key: str) -> int:
    digits = key[4:]
    return int(digits) if digits.isdigit() else 0


def _rocm_card(key: str, card: Any, driver: str) -> GpuInfo | None:
    if not isinstance(card, dict):
        return None
    try:
        memory = int(str(card.get("VRAM Total Memory (B)", "0")))
    except ValueError:
        memory = 0
    name = next(
        (
            str(card[k])
            for k in ("Card Series", "Card series", "Device Name", "Card model", "Card Model")
            if card.get(k)
        ),
        "AMD GPU",
    )
    return GpuInfo(
        index=_card_index(key),
        name=name,
        memory_bytes=memory,
        driver="rocm",
        uuid=str(card.get("Unique ID", "")),
        driver_version=driver,
    )


def memory_total() -> int:
    """This machine's memory, bytes."""
    return int(psutil.virtual_memory().total)


def load_snapshot() -> tuple[float, int]:
    """(CPU load 0.0..1.0 since the previous call, available memory in bytes). Non-blocking."""
    return psutil.cpu_percent(interval=None) / 100.0, int(psutil.virtual_memory().available)


class Engine(Protocol):
    """What the capabilities ask of the container engine (DockerRuntime)."""

    @property
    def local(self) -> bool: ...

    def data_root(self) -> str | None: ...
    def runtimes(self) -> frozenset[str]: ...


def offered_capabilities(limits: Limits, engine: Engine, version: str) -> dict[str, Any]:
    """The registration capabilities, as offered under the contributor's limits; storage is
    read where Docker keeps its data (when the engine answers), and what GPU the engine can
    give a container (`gpu_runtime`)."""
    try:
        root, runtimes = engine.data_root(), engine.runtimes()
    except AgentError as exc:
        log.debug("docker_engine_unknown", error=str(exc))
        root, runtimes = None, None
    hw = detect(root)
    hw = replace(hw, gpu_runtime=gpu_runtime(hw.gpus, runtimes, local=engine.local))
    return capabilities(limits.offered(hw), version=version)


def gpu_utilization(
    nvml: ModuleType | None = None, lent: frozenset[str] = frozenset()
) -> float | None:
    """The lent NVIDIA GPUs' mean utilization (0..100) over NVML's last sample period, or None
    without NVML or a GPU (the heartbeat then leaves the key out). `lent`: indices or UUIDs
    the owner lent (empty: all)."""
    lib = nvml or load_nvml()
    if lib is None:
        return None
    try:
        lib.nvmlInit()
    except Exception:  # no driver: no GPU, as detect_nvidia says
        return None
    try:
        values = []
        for i in range(lib.nvmlDeviceGetCount()):
            handle = lib.nvmlDeviceGetHandleByIndex(i)
            if lent and str(i) not in lent and text_of(lib.nvmlDeviceGetUUID(handle)) not in lent:
                continue
            values.append(float(lib.nvmlDeviceGetUtilizationRates(handle).gpu))
        return sum(values) / len(values) if values else None
    except Exception as exc:
        log.debug("nvml_utilization_failed", error=str(exc) or type(exc).__name__)
        return None
    finally:
        try:
            lib.nvmlShutdown()
        except Exception as exc:
            log.debug("nvml_shutdown_failed", error=str(exc))


def machine_use(disk_path: str, limits: Limits) -> dict[str, Any]:
    """The machine now against the owner's caps, for the owner's page: CPU (% of all cores,
    since the previous call), memory and the disk Docker keeps its data on."""
    memory, disk = psutil.virtual_memory(), psutil.disk_usage(disk_path)
    return {
        "cpu_percent": psutil.cpu_percent(interval=None),
        "cores": psutil.cpu_count() or 1,
        "cpus_cap": limits.cpus,
        "memory_used": int(memory.total - memory.available),
        "memory_total": int(memory.total),
        "memory_cap": limits.memory,
        "disk_used": int(disk.used),
        "disk_total": int(disk.total),
        "disk_path": disk_path,
    }
