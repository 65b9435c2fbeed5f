"""A pynvml stand-in replaying what NVML answered on a real card (tests/fixtures/nvml_h200.json,
recorded by bench/gpu_check.sh on an H200): temperature, power, the energy counter, the power
limit and its constraints, and the compute/graphics process lists. A test switches it between the
recorded `busy` and `idle` readings, or overrides one field; setting a power limit behaves as the
card did (as root: set; `privileged=False`: NVML's NoPermission, error value 4).
"""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace
from typing import Any

FIXTURES = Path(__file__).resolve().parent.parent / "tests" / "fixtures"
FIXTURE = FIXTURES / "nvml_h200.json"
DESKTOP = FIXTURES / "nvml_desktop.json"  # modes: desktop, video, game, cuda (issue 24, item 5)


class NVMLError(Exception):
    def __init__(self, value: int) -> None:
        super().__init__({4: "Insufficient Permissions", 3: "Not Supported"}.get(value, "Unknown"))
        self.value = value


class FakeNvml:
    """One recorded GPU (or `count` copies, index i, UUID suffixed)."""

    def __init__(
        self,
        *,
        count: int = 1,
        privileged: bool = True,
        init_error: bool = False,
        fixture: Path = FIXTURE,
    ) -> None:
        self.record: dict[str, Any] = json.loads(fixture.read_text(encoding="utf-8"))
        self.count, self.privileged, self.init_error = count, privileged, init_error
        self.mode = "idle" if "idle" in self.record else "desktop"
        self.override: dict[int, dict[str, Any]] = {}  # per index: field -> value
        self.limit_mw = [int(self.record["default_limit_mw"])] * count
        self.calls: list[str] = []

    # the readings as the card gave them --------------------------------------------------------

    def _get(self, index: int, key: str) -> Any:
        return self.override.get(index, {}).get(key, self.record[self.mode][key])

    def nvmlInit(self) -> None:
        self.calls.append("init")
        if self.init_error:
            raise NVMLError(9)  # NVML_ERROR_DRIVER_NOT_LOADED

    def nvmlShutdown(self) -> None:
        self.calls.append("shutdown")

    def nvmlSystemGetDriverVersion(self) -> str:
        return str(self.record["driver"])

    def nvmlSystemGetCudaDriverVersion(self) -> int:
        """12040 for CUDA 12.4; NotSupported where the recording did not keep it (the H200's)."""
        value = self.record.get("cuda_driver_version")
        if value is None:
            raise NVMLError(3)
        return int(value)

    def nvmlDeviceGetName(self, h: int) -> str:
        return str(self.record["name"])

    def nvmlDeviceGetCount(self) -> int:
        return self.count

    def nvmlDeviceGetHandleByIndex(self, index: int) -> int:
        return index

    def nvmlDeviceGetUUID(self, h: int) -> str:
        return str(self.record["uuid"]) + (f"-{h}" if h else "")

    def nvmlDeviceGetTemperature(self, h: int, sensor: int) -> int:
        return int(self._get(h, "temperature"))

    def nvmlDeviceGetPowerUsage(self, h: int) -> int:
        return int(self._get(h, "power_mw"))

    def nvmlDeviceGetTotalEnergyConsumption(self, h: int) -> int:
        value = self._get(h, "energy_mj")
        if value is None:
            raise NVMLError(3)  # a card before Volta
        return int(value)

    def nvmlDeviceGetUtilizationRates(self, h: int) -> SimpleNamespace:
        return SimpleNamespace(gpu=int(self._get(h, "utilization")), memory=0)

    def nvmlDeviceGetMemoryInfo(self, h: int) -> SimpleNamespace:
        """The card's size (the H200's 143 771 MiB, nvidia-smi's reading), used: what its
        processes hold."""
        procs = self._get(h, "compute") + self._get(h, "graphics")
        used = sum(int(p["usedGpuMemory"] or 0) for p in procs)
        total = int(self.record.get("memory_total_mib", 143771)) << 20
        return SimpleNamespace(total=total, used=used, free=total - used)

    def _procs(self, h: int, key: str) -> list[SimpleNamespace]:
        return [SimpleNamespace(**p) for p in self._get(h, key)]

    def nvmlDeviceGetComputeRunningProcesses(self, h: int) -> list[SimpleNamespace]:
        return self._procs(h, "compute")

    def nvmlDeviceGetGraphicsRunningProcesses(self, h: int) -> list[SimpleNamespace]:
        return self._procs(h, "graphics")

    def nvmlDeviceGetProcessUtilization(self, h: int, last_seen: int) -> list[SimpleNamespace]:
        """Per-process samples newer than `last_seen` (µs): the recorded ones, as if sampled
        again since (the card keeps sampling); NVML's NotFound when there are none (the H200
        recording has none)."""
        samples = self.override.get(h, {}).get("process_util")
        if samples is None:
            samples = self.record[self.mode].get("process_util")
        stamp = {"timeStamp": last_seen + 1}
        fresh = [SimpleNamespace(**(p | stamp)) for p in samples or []]
        if not fresh:
            raise NVMLError(6)  # NVML_ERROR_NOT_FOUND
        return fresh

    def nvmlDeviceGetPowerManagementLimitConstraints(self, h: int) -> list[int]:
        return list(self.record["constraints_mw"])

    def nvmlDeviceGetPowerManagementLimit(self, h: int) -> int:
        return self.limit_mw[h]

    def nvmlDeviceSetPowerManagementLimit(self, h: int, mw: int) -> None:
        self.calls.append(f"set:{h}:{mw}")
        if not self.privileged:
            raise NVMLError(int(self.record["set_limit_unprivileged"]["value"]))
        self.limit_mw[h] = mw

    def busy_pids(self) -> list[int]:
        return [int(p["pid"]) for p in self.record["busy"]["compute"]]
