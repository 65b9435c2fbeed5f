"""The composition root's owner side: the conditions the volunteer set (pause, schedule,
battery, busy, the GPU given back), the opt-in GPU power limit and the energy receipt, built from
Settings and wired to the loop (`conditions.apply` at every pass), the status endpoint (`view`)
and the heartbeat (`heartbeat`). The owner's
side is its own module because it is the part a volunteer's trust rests on (ADR 0012).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import structlog

from controller.app.parts import Wiring
from controller.clients import power
from controller.clients.cpu_use import CpuUse
from controller.clients.gpu_watch import GpuReader, Nvml
from controller.clients.pause_file import PauseFile, pause_path
from controller.core.errors import PermanentError
from controller.core.holds import MIB, BusyGuard, Condition, GpuGuard
from controller.core.limits import Limits
from controller.core.models import ActualContainer
from controller.core.schedule import Schedule
from controller.engine.loop import Reconciler
from controller.ops.conditions import Conditions, Sensors, running_ids
from controller.ops.energy import EnergyMeter, Rates, Readers
from controller.settings import Settings

log = structlog.get_logger(__name__)


@dataclass
class Owner:
    conditions: Conditions
    meter: EnergyMeter
    nvml: GpuReader | None
    power_limit: Condition | None = None  # the --gpu-power-limit outcome, for status

    def start(self, stop: threading.Event) -> None:
        self.conditions.start()
        threading.Thread(target=self.meter.run, args=(stop,), name="energy", daemon=True).start()

    def close(self) -> None:
        self.meter.save()
        if self.nvml is not None:
            self.nvml.close()  # the power limit goes back to what it was

    def view(self) -> dict[str, Any]:
        """The conditions, the GPUs as last read and the receipt, for `status`."""
        found = list(self.conditions.conditions())
        if self.power_limit is not None:
            found.append(self.power_limit)
        gpus = [
            {
                "index": u.snapshot.index,
                "uuid": u.snapshot.uuid,
                "temperature": u.snapshot.temperature,
                "power_w": u.snapshot.power_w,
                "utilization": u.snapshot.utilization,
                "memory_used": u.snapshot.memory_used,
                "memory_total": u.snapshot.memory_total,
                "agent": u.agent,
                "others": u.others,
                "processes": [j.as_json() for j in u.processes],
            }
            for u in self.conditions.gpu_use
        ]
        return {
            "conditions": [_condition(c) for c in found],
            "gpus": gpus,
            "energy": self.meter.receipt(),
        }

    def gpu_others(self) -> dict[str, int | None]:
        """Per lent GPU (index), the bytes of its memory that are not the agent's, as last read."""
        return {u.snapshot.index: u.others_memory for u in self.conditions.gpu_use}

    def heartbeat(self) -> dict[str, Any]:
        return {"energy_today_wh": self.meter.receipt()["today"]["wh"]}


def _iso(ts: float | None) -> str | None:
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="seconds") if ts else None


def _condition(c: Condition) -> dict[str, Any]:
    return {
        "name": c.name,
        "active": c.active,
        "reason": c.reason,
        "next_check": _iso(c.next_check),
        "since": _iso(min(h.since for h in c.holds)) if c.holds else None,
        "until": _iso(c.holds[0].until) if c.holds and c.holds[0].until else None,
    }


def _nvml(limits: Limits) -> GpuReader | None:
    """NVML for NVIDIA GPUs, else rocm-smi for AMD ones (None: no GPU lent, or neither reads)."""
    if limits.gpus == ():
        return None  # no GPU lent: nothing to watch or give back
    lent = frozenset(limits.gpus or ())
    nvml = Nvml(lent)
    if nvml.available:
        return nvml
    from controller.clients.rocm import RocmSmi  # noqa: PLC0415

    rocm = RocmSmi(lent)
    return rocm if rocm.available else None


def _power_limit(settings: Settings, nvml: GpuReader | None) -> Condition | None:
    watts = settings.gpu_power_limit
    if watts is None:
        return None
    try:
        if nvml is None:
            raise PermanentError("--gpu-power-limit: no NVIDIA GPU lent to limit")
        done = nvml.limit_power(watts)
    except PermanentError as exc:
        log.error("gpu_power_limit_refused", error=str(exc), effect="running at the card's own")
        return Condition("power-limit", False, f"refused: {exc}")
    log.info("gpu_power_limited", gpus=done, note="restored when the agent stops")
    return Condition("power-limit", True, "; ".join(done))


def _sensors(settings: Settings, nvml: GpuReader | None, cpu: CpuUse) -> Sensors:
    busy = settings.pause_when_busy
    return Sensors(
        pause=PauseFile(pause_path(settings.state_dir, settings.instance)),
        schedule=Schedule.parse(settings.schedule) if settings.schedule else None,
        battery=power.battery if settings.pause_on_battery else None,
        busy=BusyGuard(busy, settings.busy_cooldown) if busy else None,
        cpu=cpu,
        gpu=GpuGuard(
            settings.gpu_max_temp,
            settings.gpu_yield_cooldown,
            min_memory=settings.gpu_yield_min_memory * MIB,
            min_util=settings.gpu_yield_min_util,
        ),
        nvml=nvml,
    )


def owner_of(settings: Settings, wiring: Wiring, loop: Callable[[], Reconciler | None]) -> Owner:
    """`loop`: the reconcile loop once built — its latest listing says which processes and
    cgroups are the agent's, its status which services run (the hours each served)."""

    def containers() -> tuple[ActualContainer, ...]:
        agent = loop()
        return agent.actual() if agent else ()

    def serving() -> list[str]:
        agent = loop()
        running = agent.status().containers if agent else ()
        return [c.service for c in running if c.state == "running"]

    nvml, observer, cpu = _nvml(wiring.limits), wiring.observer, CpuUse()
    sensors = _sensors(settings, nvml, cpu)
    ring, stop = wiring.doorbell.ring, wiring.stop
    conditions = Conditions(
        sensors,
        containers,
        on_change=ring,
        stop=stop,
        ticks=wiring.doorbell.clock,
        observer=observer,
    )

    meter = EnergyMeter(
        settings.state_dir / f"{settings.instance}.energy.json",
        Readers(nvml, lambda: conditions.gpu_use, cpu),
        ours=lambda: running_ids(containers()),
        serving=serving,
        observer=observer,
        rates=Rates(settings.price, settings.carbon_intensity),
    )
    return Owner(conditions, meter, nvml, _power_limit(settings, nvml))
