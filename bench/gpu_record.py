"""Records what NVML says on a real card, for the unit tests' NVML fakes and the issue's note:
per GPU its name, UUID, temperature, power, energy counter, power limits and constraints, the
compute and graphics process lists (with each PID's cgroup), what the agent's own NVML client
(controller/clients/gpu_watch.py) and the owner's conditions make of it, and what setting a
power limit answers. Run on a GPU machine by bench/gpu_check.sh; prints JSON.

    python3 bench/gpu_record.py
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
import time
from functools import partial
from pathlib import Path
from typing import Any

import pynvml

from controller.clients.gpu_watch import Nvml
from controller.clients.pause_file import PauseFile
from controller.core.holds import GpuGuard
from controller.ops.conditions import Conditions, Sensors
from controller.ops.logs import configure_logging


def _try(fn: Any) -> Any:
    try:
        return {"ok": fn()}
    except Exception as exc:
        return {"error": type(exc).__name__, "value": getattr(exc, "value", None), "text": str(exc)}


def _procs(items: Any) -> list[dict[str, Any]]:
    return [{"pid": int(p.pid), "usedGpuMemory": p.usedGpuMemory} for p in items]


def _set_and_restore(nvml: Any, h: Any) -> dict[str, int]:
    """Set the limit 50 W under the current one, read it back, and put the old one back."""
    before = int(nvml.nvmlDeviceGetPowerManagementLimit(h))
    nvml.nvmlDeviceSetPowerManagementLimit(h, before - 50_000)
    during = int(nvml.nvmlDeviceGetPowerManagementLimit(h))
    nvml.nvmlDeviceSetPowerManagementLimit(h, before)
    return {
        "before": before,
        "during": during,
        "after": int(nvml.nvmlDeviceGetPowerManagementLimit(h)),
    }


READINGS = {
    "name": lambda n, h: str(n.nvmlDeviceGetName(h)),
    "uuid": lambda n, h: str(n.nvmlDeviceGetUUID(h)),
    "temperature": lambda n, h: n.nvmlDeviceGetTemperature(h, 0),
    "power_mw": lambda n, h: n.nvmlDeviceGetPowerUsage(h),
    "energy_mj": lambda n, h: n.nvmlDeviceGetTotalEnergyConsumption(h),
    "limit_mw": lambda n, h: n.nvmlDeviceGetPowerManagementLimit(h),
    "default_limit_mw": lambda n, h: n.nvmlDeviceGetPowerManagementDefaultLimit(h),
    "constraints_mw": lambda n, h: list(n.nvmlDeviceGetPowerManagementLimitConstraints(h)),
    "utilization": lambda n, h: n.nvmlDeviceGetUtilizationRates(h).gpu,
    "compute": lambda n, h: _procs(n.nvmlDeviceGetComputeRunningProcesses(h)),
    "graphics": lambda n, h: _procs(n.nvmlDeviceGetGraphicsRunningProcesses(h)),
    "set_limit": _set_and_restore,
}


def _proc_file(pid: int, name: str) -> Any:
    return _try(lambda: Path(f"/proc/{pid}/{name}").read_text().strip())


def raw(nvml: Any) -> list[dict[str, Any]]:
    out = []
    for i in range(nvml.nvmlDeviceGetCount()):
        handle = nvml.nvmlDeviceGetHandleByIndex(i)
        dev: dict[str, Any] = {"index": i}
        for key, read in READINGS.items():
            dev[key] = _try(partial(read, nvml, handle))
        listed = (dev["compute"].get("ok") or []) + (dev["graphics"].get("ok") or [])
        pids = [p["pid"] for p in listed]
        dev["cgroups"] = {str(pid): _proc_file(pid, "cgroup") for pid in pids}
        dev["comm"] = {str(pid): _proc_file(pid, "comm") for pid in pids}
        out.append(dev)
    return out


def agent_view() -> dict[str, Any]:

    nvml = Nvml()
    view: dict[str, Any] = {"available": nvml.available, "error": nvml.error}
    first = nvml.snapshots()
    time.sleep(5)
    second = nvml.snapshots()
    view["snapshots"] = [s.__dict__ for s in second]
    view["energy_delta_j_5s"] = [
        (b.energy_j - a.energy_j) if a.energy_j is not None and b.energy_j is not None else None
        for a, b in zip(first, second, strict=False)
    ]
    view["power_limit_out_of_range"] = _try(lambda: nvml.limit_power(10_000))  # refused
    view["power_limit_650"] = _try(lambda: nvml.limit_power(650))  # restored by close()
    sensors = Sensors(
        pause=PauseFile(Path("/tmp/none.pause.json")), gpu=GpuGuard(83.0, 300.0), nvml=nvml
    )
    conditions = Conditions(sensors, tuple, on_change=lambda: None, stop=threading.Event())
    started = time.monotonic()
    conditions.check()
    view["conditions_seconds"] = round(time.monotonic() - started, 4)
    view["conditions"] = [
        c.__dict__ | {"holds": [h.__dict__ for h in c.holds]} for c in conditions.conditions()
    ]
    view["gpu_use"] = [
        {"index": u.snapshot.index, "agent": u.agent, "others": u.others}
        for u in conditions.gpu_use
    ]
    nvml.close()
    pynvml.nvmlInit()
    h = pynvml.nvmlDeviceGetHandleByIndex(0)
    view["limit_after_close_mw"] = pynvml.nvmlDeviceGetPowerManagementLimit(h)
    pynvml.nvmlShutdown()
    return view


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.parse_args()
    configure_logging("json", "info")  # the log to stderr: stdout is the record

    pynvml.nvmlInit()
    record: dict[str, Any] = {
        "driver": _try(lambda: str(pynvml.nvmlSystemGetDriverVersion())),
        "nvml_version": _try(lambda: str(pynvml.nvmlSystemGetNVMLVersion())),
        "devices": raw(pynvml),
    }
    pynvml.nvmlShutdown()
    record["agent"] = _try(agent_view)
    sys.stdout.write(json.dumps(record, indent=1, default=str) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
