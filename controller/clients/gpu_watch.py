"""What the owner's conditions and the energy receipt read from NVIDIA GPUs (NVML, through
pynvml): per lent GPU its temperature, board power, energy counter and the processes on it
(compute and graphics lists); and the opt-in power limit, set while the agent runs and restored
on exit. Everything fails soft: no driver, an old card or a field it does not support reads as
None (unread), never as a made-up value. NVML is initialised once and shut down on `close`.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass
from types import ModuleType
from typing import Any, Protocol

import structlog

from controller.clients.hardware import load_nvml, text_of
from controller.core.errors import PermanentError

log = structlog.get_logger(__name__)
NO_PERMISSION, NOT_SUPPORTED = 4, 3  # NVML_ERROR_NO_PERMISSION, NVML_ERROR_NOT_SUPPORTED


@dataclass(frozen=True)
class GpuSnapshot:
    index: str
    uuid: str
    temperature: float | None  # °C
    power_w: float | None  # board power now
    energy_j: float | None  # the driver's energy counter (Volta and later)
    processes: tuple[tuple[int, int | None], ...]  # (pid, GPU memory bytes or None), deduplicated
    utilization: float | None = None  # % of the last sample period the GPU was busy
    memory_used: int | None = None  # bytes
    memory_total: int | None = None
    compute: frozenset[int] = frozenset()  # the PIDs on NVML's compute list (CUDA, OpenCL)
    sm: tuple[tuple[int, float], ...] = ()  # (pid, % of the SMs) since the last read, where read


class GpuReader(Protocol):
    """What the owner's conditions and the energy receipt read GPUs through: NVML, or rocm-smi
    on AMD GPUs (clients/rocm.py)."""

    name: str
    error: str | None

    @property
    def available(self) -> bool: ...

    def snapshots(self) -> tuple[GpuSnapshot, ...]: ...
    def limit_power(self, watts: float) -> list[str]: ...
    def close(self) -> None: ...


class Nvml:
    """One NVML session for the agent's lifetime (`lent`: the indices/UUIDs it may watch; empty:
    every GPU)."""

    def __init__(self, lent: frozenset[str] = frozenset(), nvml: ModuleType | None = None) -> None:
        self.name = "NVML"
        self._lib = nvml or load_nvml()
        self._lent = lent
        self.error: str | None = None
        self._restore: list[tuple[Any, int]] = []
        self._seen: dict[str, int] = {}  # per GPU: the last per-process sample's time (µs)
        if self._lib is None:
            self.error = "pynvml is not installed"
            return
        try:
            self._lib.nvmlInit()
        except Exception as exc:  # pynvml raises its own NVMLError family: no driver, no GPU
            self.error = f"NVML: {exc or type(exc).__name__}"
            self._lib = None

    @property
    def available(self) -> bool:
        return self._lib is not None

    def _handles(self) -> list[tuple[str, str, Any]]:
        lib = self._lib
        if lib is None:
            return []
        found = []
        for i in range(lib.nvmlDeviceGetCount()):
            handle = lib.nvmlDeviceGetHandleByIndex(i)
            uuid = text_of(lib.nvmlDeviceGetUUID(handle))
            if not self._lent or str(i) in self._lent or uuid in self._lent:
                found.append((str(i), uuid, handle))
        return found

    def snapshots(self) -> tuple[GpuSnapshot, ...]:
        """Every lent GPU now; () without NVML (or when it fails as a whole)."""
        lib = self._lib
        if lib is None:
            return ()
        try:
            return tuple(self._snapshot(lib, i, u, h) for i, u, h in self._handles())
        except Exception as exc:
            log.warning("nvml_read_failed", error=str(exc) or type(exc).__name__)
            return ()

    def _snapshot(self, lib: Any, index: str, uuid: str, handle: Any) -> GpuSnapshot:
        temp = _soft(lambda: float(lib.nvmlDeviceGetTemperature(handle, 0)))  # NVML_TEMPERATURE_GPU
        power = _soft(lambda: lib.nvmlDeviceGetPowerUsage(handle) / 1000.0)
        energy = _soft(lambda: lib.nvmlDeviceGetTotalEnergyConsumption(handle) / 1000.0)
        procs: dict[int, int | None] = {}
        compute: set[int] = set()
        for kind in ("Compute", "Graphics"):
            query: Callable[[Any], Any] = getattr(lib, f"nvmlDeviceGet{kind}RunningProcesses")
            for p in _soft(lambda q=query: list(q(handle))) or []:  # type: ignore[misc]
                used = getattr(p, "usedGpuMemory", None)
                procs[int(p.pid)] = int(used) if isinstance(used, int) else procs.get(int(p.pid))
                if kind == "Compute":
                    compute.add(int(p.pid))
        busy = _soft(lambda: float(lib.nvmlDeviceGetUtilizationRates(handle).gpu))
        memory = _soft(lambda: lib.nvmlDeviceGetMemoryInfo(handle))
        used, total = (int(memory.used), int(memory.total)) if memory else (None, None)
        listed = tuple(sorted(procs.items()))
        sm = self._sm(lib, index, handle)
        return GpuSnapshot(
            index, uuid, temp, power, energy, listed, busy, used, total, frozenset(compute), sm
        )

    def _sm(self, lib: Any, index: str, handle: Any) -> tuple[tuple[int, float], ...]:
        """Each process's share of the SMs since the last read (NVML's per-process samples; the
        highest per PID); () when the card keeps none (NotFound: no new sample) or cannot."""
        samples = _soft(
            lambda: list(lib.nvmlDeviceGetProcessUtilization(handle, self._seen.get(index, 0)))
        )
        if not samples:
            return ()
        self._seen[index] = max(int(p.timeStamp) for p in samples)
        best: dict[int, float] = {}
        for p in samples:
            best[int(p.pid)] = max(best.get(int(p.pid), 0.0), float(p.smUtil))
        return tuple(sorted(best.items()))

    def limit_power(self, watts: float) -> list[str]:
        """Set every lent GPU's power limit (restored by `close`). PermanentError, with the
        driver's reason, when it cannot be done (not root, not supported, out of range)."""
        lib = self._lib
        if lib is None:
            raise PermanentError(f"--gpu-power-limit: no NVIDIA GPU to limit ({self.error})")
        done = []
        for index, _uuid, handle in self._handles():
            try:
                low, high = lib.nvmlDeviceGetPowerManagementLimitConstraints(handle)
                if not low <= watts * 1000 <= high:
                    raise PermanentError(
                        f"--gpu-power-limit {watts:g} W: GPU {index} allows "
                        f"{low / 1000:g}-{high / 1000:g} W"
                    )
                previous = int(lib.nvmlDeviceGetPowerManagementLimit(handle))
                lib.nvmlDeviceSetPowerManagementLimit(handle, int(watts * 1000))
            except PermanentError:
                raise
            except Exception as exc:
                raise PermanentError(_limit_refusal(index, exc)) from exc
            self._restore.append((handle, previous))
            done.append(f"GPU {index}: {previous / 1000:g} W -> {watts:g} W")
        return done

    def close(self) -> None:
        lib, self._lib = self._lib, None
        if lib is None:
            return
        for handle, previous in self._restore:
            try:
                lib.nvmlDeviceSetPowerManagementLimit(handle, previous)
            except Exception as exc:
                log.error("gpu_power_limit_not_restored", error=str(exc), limit_mw=previous)
        self._restore.clear()
        with contextlib.suppress(Exception):
            lib.nvmlShutdown()


def _soft(read: Callable[[], Any]) -> Any:
    """A reading, or None when this GPU does not give it (unsupported, no permission)."""
    try:
        return read()
    except Exception:
        return None


def _limit_refusal(index: str, exc: Exception) -> str:
    code = getattr(exc, "value", None)
    if code == NO_PERMISSION:
        why = "needs root (NVML: insufficient permissions); run the agent as root or drop the flag"
    elif code == NOT_SUPPORTED:
        why = "this GPU does not support setting a power limit"
    else:
        why = f"NVML: {exc or type(exc).__name__}"
    return f"--gpu-power-limit refused on GPU {index}: {why}"
