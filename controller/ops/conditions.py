"""The owner's conditions, watched on their own thread once a second: the pause file, the
schedule, the battery, other programs' CPU use, and the GPUs (other programs on them, their
temperature). The decisions are core/holds.py's; this module reads the sensors (clients), keeps
the holds active now for the loop (`apply`, at every pass) and rings the loop's doorbell when
they change, so a GPU is given back within a couple of seconds. Each change is logged once
(`hold_started` / `hold_ended`); every condition, active or not, is in `status`.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path

import structlog

from controller.clients import procs
from controller.clients.cpu_use import CpuUse
from controller.clients.gpu_watch import GpuReader, GpuSnapshot
from controller.clients.pause_file import PauseFile, clear_pause
from controller.clients.power import Battery
from controller.core.clock import SYSTEM, Clock
from controller.core.holds import (
    BusyGuard,
    Condition,
    GpuGuard,
    GpuProcess,
    GpuReading,
    Judged,
    apply_holds,
    battery_condition,
)
from controller.core.models import RUNNING_STATES, ActualContainer, DesiredState, Hold
from controller.core.observe import NullObserver, Observer
from controller.core.schedule import Schedule
from controller.core.usage import CpuSample, foreign_percent

log = structlog.get_logger(__name__)
INTERVAL = 1.0  # the sensors are read once a second
# Always on a desktop's GPU, never a reason to give it back: display servers and compositors.
DISPLAY = frozenset(
    {"Xorg", "X", "Xwayland", "gnome-shell", "kwin_x11", "kwin_wayland", "plasmashell",
     "mutter", "sway", "cinnamon", "xfwm4", "marco", "muffin", "weston", "Hyprland",
     "gdm-x-session", "kwin", "picom", "compiz"}
)  # fmt: skip
BATTERY_EVERY = 5  # seconds between battery reads
Key = tuple[str, str, tuple[str, ...]]  # a hold's condition, scope and GPUs


@dataclass(frozen=True)
class GpuUse:
    """A lent GPU as last read, and whose processes are on it (display servers not counted)."""

    snapshot: GpuSnapshot
    agent: bool  # one of the agent's containers' processes
    others: bool  # a process that is not the agent's
    others_memory: int | None = None  # bytes used by what is not the agent's (None: unread)
    processes: tuple[Judged, ...] = ()  # the others, and whether each takes the GPU back


@dataclass
class Sensors:
    """What the conditions read; None: not watched (not asked for, or not on this machine)."""

    pause: PauseFile
    schedule: Schedule | None = None
    battery: Callable[[], Battery | None] | None = None
    busy: BusyGuard | None = None
    cpu: CpuUse | None = None
    gpu: GpuGuard | None = None
    nvml: GpuReader | None = None
    proc: Path = procs.PROC  # where PIDs are looked up (a test's own tree)


class Conditions:
    def __init__(
        self,
        sensors: Sensors,
        containers: Callable[[], tuple[ActualContainer, ...]],
        *,
        on_change: Callable[[], None],
        stop: threading.Event,
        clock: Callable[[], float] = time.time,
        local: Callable[[float], datetime] = datetime.fromtimestamp,
        ticks: Clock = SYSTEM,
        observer: Observer | None = None,
    ) -> None:
        self._s, self._containers = sensors, containers
        self._on_change, self._stop = on_change, stop
        self._clock, self._local, self._ticks = clock, local, ticks  # wall time; the waits
        self._observer = observer or NullObserver()
        self._lock = threading.Lock()
        self._conditions: tuple[Condition, ...] = ()
        self._holds: tuple[Hold, ...] = ()
        self._keys: frozenset[Key] = frozenset()
        self._cpu_prev: CpuSample | None = None
        self._battery: tuple[float, Battery | None] = (float("-inf"), None)
        self._on_battery_since: float | None = None
        self._schedule_next: tuple[bool, datetime | None] | None = None
        self.gpu_use: tuple[GpuUse, ...] = ()  # the GPUs as last read (status, energy)
        self._thread = threading.Thread(target=self._run, name="conditions", daemon=True)

    def start(self) -> None:
        self.check()  # before the loop's first pass: a paused agent never starts its containers
        self._thread.start()

    def _run(self) -> None:
        while not self._ticks.wait(self._stop, INTERVAL):
            try:
                self.check()
            except Exception as exc:  # a sensor's bug must not end the owner's control
                log.exception("conditions_failed", error=str(exc))

    # -- what the loop and the status read ------------------------------------------------------

    def apply(self, desired: DesiredState) -> DesiredState:
        with self._lock:
            holds = self._holds
        return apply_holds(desired, holds)

    def conditions(self) -> tuple[Condition, ...]:
        with self._lock:
            return self._conditions

    # -- one check --------------------------------------------------------------------------------

    def check(self) -> None:
        now = self._clock()
        found = [c for c in (self._pause(now), self._schedule(now), self._power(now)) if c]
        ours = self._ours()
        found += [c for c in (self._busy(now, ours),) if c]
        found += self._gpus(now, ours)
        holds = tuple(h for c in found for h in c.holds)
        keys = frozenset((h.condition, h.scope, h.devices) for h in holds)
        with self._lock:
            self._conditions, self._holds = tuple(found), holds
            before, self._keys = self._keys, keys
        if keys != before:
            self._report(before, keys, holds)
            self._on_change()
        self._observer.holds({c.name.split(":")[0]: c.active for c in found})

    @staticmethod
    def _report(before: frozenset[Key], keys: frozenset[Key], holds: tuple[Hold, ...]) -> None:
        for hold in holds:
            if (hold.condition, hold.scope, hold.devices) not in before:
                log.info(
                    "hold_started",
                    condition=hold.condition,
                    scope=hold.scope,
                    gpus=list(hold.devices),
                    reason=hold.reason,
                )
        for condition, scope, devices in before - keys:
            log.info("hold_ended", condition=condition, scope=scope, gpus=list(devices))

    def _ours(self) -> frozenset[str]:
        return running_ids(self._containers())

    def _pause(self, now: float) -> Condition | None:
        request = self._s.pause.read()
        if request is None:
            return None
        condition = request.condition(now)
        if not condition.active:  # a `pause --for` that ran out: the file goes
            clear_pause(self._s.pause.path)
            log.info("pause_ended", reason="its time ran out")
        return condition

    def _schedule(self, now: float) -> Condition | None:
        schedule = self._s.schedule
        if schedule is None:
            return None
        local = self._local(now)
        allowed = schedule.allows(local)
        cached = self._schedule_next
        if cached is None or cached[0] != allowed or (cached[1] and local >= cached[1]):
            cached = self._schedule_next = (allowed, schedule.next_change(local))
        change = now + (cached[1] - local).total_seconds() if cached[1] else None
        if allowed:
            return Condition("schedule", False, f"inside the schedule {schedule.text!r}", change)
        reason = f"outside the schedule {schedule.text!r}"
        return Condition("schedule", True, reason, change, (Hold("schedule", "all", reason, now),))

    def _power(self, now: float) -> Condition | None:
        read = self._s.battery
        if read is None:
            return None
        last, found = self._battery
        if now - last >= BATTERY_EVERY or now < last:
            found = read()
            self._battery = (now, found)
        if found is None:
            return None  # no battery: nothing to watch
        on = found.on_battery
        self._on_battery_since = (self._on_battery_since or now) if on else None
        since = self._on_battery_since or now
        return battery_condition(on, found.percent, since, now + BATTERY_EVERY)

    def _busy(self, now: float, ours: frozenset[str]) -> Condition | None:
        guard, cpu = self._s.busy, self._s.cpu
        if guard is None or cpu is None:
            return None
        sample, prev = cpu.sample(ours), self._cpu_prev
        self._cpu_prev = sample
        if prev is None:
            return Condition("busy", False, "measuring", now + INTERVAL)
        pct = foreign_percent(prev, sample)
        if pct is None:
            why = "the agent's containers' CPU use is not readable here (own cgroup namespace)"
            return Condition("busy", False, f"off: {why}")
        found = guard.observe(now, pct)
        return found if found.next_check else replace_check(found, now + INTERVAL)

    def _gpus(self, now: float, ours: frozenset[str]) -> list[Condition]:
        nvml, guard = self._s.nvml, self._s.gpu
        if nvml is None or guard is None or not nvml.available:
            return []
        readings, hidden, uses = [], 0, []
        for snap in nvml.snapshots():
            foreign, agent, ours_used = [], False, 0
            sm = dict(snap.sm)
            for pid, used in snap.processes:
                owner = procs.container_of(pid, self._s.proc)
                if owner is not None and owner in ours:
                    agent, ours_used = True, ours_used + (used or 0)
                elif not procs.visible(pid, self._s.proc):
                    hidden += 1
                else:
                    name = procs.name_of(pid, self._s.proc)
                    compute, display = pid in snap.compute, name in DISPLAY
                    foreign.append(GpuProcess(pid, name, compute, used, sm.get(pid), display))
            left = None if snap.memory_used is None else max(0, snap.memory_used - ours_used)
            others = any(not p.display for p in foreign)
            uses.append(GpuUse(snap, agent, others, left))
            readings.append(GpuReading(snap.index, snap.uuid, snap.temperature, tuple(foreign)))
        found = [
            replace_check(c, c.next_check or now + INTERVAL)
            for c in guard.observe(now, tuple(readings))
        ]
        seen = guard.seen
        self.gpu_use = tuple(replace(u, processes=seen.get(u.snapshot.index, ())) for u in uses)
        if hidden:
            why = f"{hidden} GPU process(es) are not visible from the agent's PID namespace"
            found.append(Condition("gpu-processes", False, f"{why}: not counted as others'"))
        if nvml.name == "rocm-smi":  # what cannot be read is said
            amd = "rocm-smi lists compute programs only: a game on an AMD GPU is not seen"
            found.append(Condition("gpu-graphics", False, amd))
        return found


def running_ids(containers: tuple[ActualContainer, ...]) -> frozenset[str]:
    """The ids of the agent's containers running now: whose processes and cgroups are its."""
    return frozenset(c.id for c in containers if c.state in RUNNING_STATES)


def replace_check(condition: Condition, when: float) -> Condition:
    return Condition(condition.name, condition.active, condition.reason, when, condition.holds)
