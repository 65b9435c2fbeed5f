"""The owner stays in charge: the conditions under which the agent holds its containers stopped
(kept, never removed), decided purely from readings and an injected clock.

- the owner's pause (`rma-worker pause [--for] [--gpu-only]`), read from the state dir;
- the schedule (core/schedule.py): outside it, everything is paused;
- on battery: everything is paused;
- busy (`--pause-when-busy PCT`): other programs above PCT of the CPU for 30 s pause the GPU
  containers, 30 s more everything; a cool-down below PCT resumes them;
- the GPU given back: a process that is not one of the agent's on a GPU, or the GPU above
  `--gpu-max-temp`, yields that GPU's containers at once (urgent: no draining) until the
  cool-down passed without (for the temperature: 5 °C below the limit throughout).

Each guard returns a `Condition` (active or not, why, and when it is next re-checked) for the
status, the log and the heartbeat; `apply_holds` marks what the active ones hold in the desired
state, and the planner stops those containers.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from controller.core.models import ContainerSpec, DesiredState, Held, Hold
from controller.core.tunnels import TUNNEL_FOR

BUSY_WINDOW = 30.0  # seconds above the limit before the GPU containers, then everything, pause
TEMP_MARGIN = 5.0  # °C below the limit, for the whole cool-down, before the GPU is used again


@dataclass(frozen=True)
class Condition:
    """One condition the agent watches, for `status`: whether it holds anything now, why, and
    when it is re-checked (wall clock)."""

    name: str
    active: bool
    reason: str
    next_check: float | None = None
    holds: tuple[Hold, ...] = ()


def covers(hold: Hold, spec: ContainerSpec) -> bool:
    if hold.scope == "all":
        return True
    if spec.gpu == 0:
        return False
    if not hold.devices or not spec.gpu_ids:
        return True  # every GPU, or a container that may use any
    return bool(set(hold.devices) & set(spec.gpu_ids))


def apply_holds(desired: DesiredState, holds: tuple[Hold, ...]) -> DesiredState:
    """The desired state with `holds` active: the containers they cover (and those containers'
    tunnels) are held stopped. Urgent holds first, so a container yields without draining."""
    ordered = sorted(holds, key=lambda h: not h.urgent)
    held: dict[str, Hold] = {}
    for spec in desired.specs:
        hold = next((h for h in ordered if covers(h, spec)), None)
        if hold is not None:
            held[spec.name] = hold
    for spec in desired.specs:
        target = spec.labels_dict.get(TUNNEL_FOR)
        if target in held and spec.name not in held:
            held[spec.name] = held[target]
    return replace(desired, holds=tuple(holds), held=tuple(Held(n, h) for n, h in held.items()))


@dataclass(frozen=True)
class PauseRequest:
    """The owner's pause as `rma-worker pause` wrote it."""

    since: float
    until: float | None = None
    gpu_only: bool = False

    def condition(self, now: float) -> Condition:
        if self.until is not None and now >= self.until:
            return Condition("pause", False, "the owner's pause ended")
        scope = "gpu" if self.gpu_only else "all"
        what = "the GPU containers" if self.gpu_only else "everything"
        reason = f"paused by the owner ({what})"
        hold = Hold("pause", scope, reason, self.since, until=self.until)
        return Condition("pause", True, reason, self.until, (hold,))


def battery_condition(
    on_battery: bool, percent: float | None, since: float, next_check: float | None = None
) -> Condition:
    """`since`: when the machine went on battery (the hold's start)."""
    if not on_battery:
        return Condition("battery", False, "on mains power", next_check)
    charge = f" ({percent:.0f} %)" if percent is not None else ""
    reason = f"on battery{charge}"
    hold = Hold("battery", "all", reason, since)
    return Condition("battery", True, reason, next_check, (hold,))


@dataclass
class BusyGuard:
    """`--pause-when-busy PCT`: other programs' CPU use over time."""

    limit: float
    cooldown: float
    above_since: float | None = None
    below_since: float | None = None
    stage: int = 0  # 0 nothing, 1 the GPU containers, 2 everything
    since: float = 0.0

    def observe(self, now: float, foreign_pct: float) -> Condition:
        if foreign_pct >= self.limit:
            self.below_since = None
            self.above_since = self.above_since if self.above_since is not None else now
            stage = 2 if now - self.above_since >= 2 * BUSY_WINDOW else 0
            stage = stage or (1 if now - self.above_since >= BUSY_WINDOW else 0)
            if stage > self.stage:
                self.stage, self.since = stage, now
        else:
            self.above_since = None
            if self.stage:
                self.below_since = self.below_since if self.below_since is not None else now
                if now - self.below_since >= self.cooldown:
                    self.stage, self.below_since = 0, None
        use = f"other programs use {foreign_pct:.0f} % of the CPU (limit {self.limit:.0f} %)"
        if not self.stage:
            return Condition("busy", False, use)
        what = "the GPU containers" if self.stage == 1 else "everything"
        reason = f"{use}: {what} paused"
        ends = self.below_since + self.cooldown if self.below_since is not None else None
        hold = Hold("busy", "gpu" if self.stage == 1 else "all", reason, self.since)
        return Condition("busy", True, reason, ends, (hold,))


@dataclass(frozen=True)
class GpuReading:
    """One lent GPU now: its NVML index and UUID, temperature (°C, None unread), and the
    processes on it that are not the agent's (pid, name)."""

    index: str
    uuid: str = ""
    temperature: float | None = None
    foreign: tuple[tuple[int, str], ...] = ()

    @property
    def devices(self) -> tuple[str, ...]:
        return (self.index, self.uuid) if self.uuid else (self.index,)


@dataclass
class GpuGuard:
    """Give the GPU back: per GPU, a foreign process (until none for the cool-down) or a
    temperature above the limit (until `TEMP_MARGIN` below it for the cool-down)."""

    max_temp: float
    cooldown: float
    busy: dict[str, tuple[float, float]] = field(default_factory=dict)  # gpu -> since, last
    hot: dict[str, tuple[float, float | None]] = field(default_factory=dict)  # since, cool since

    def observe(self, now: float, readings: tuple[GpuReading, ...]) -> list[Condition]:
        conditions = []
        for gpu in readings:
            conditions += [self._busy(now, gpu), self._hot(now, gpu)]
        return conditions

    def _busy(self, now: float, gpu: GpuReading) -> Condition:
        name = f"gpu-busy:{gpu.index}"
        if gpu.foreign:
            since = self.busy[gpu.index][0] if gpu.index in self.busy else now
            self.busy[gpu.index] = (since, now)
        elif gpu.index in self.busy and now - self.busy[gpu.index][1] >= self.cooldown:
            del self.busy[gpu.index]
        if gpu.index not in self.busy:
            return Condition(name, False, f"GPU {gpu.index}: no other program on it")
        since, last = self.busy[gpu.index]
        users = ", ".join(f"{n or '?'} ({pid})" for pid, n in gpu.foreign[:3])
        reason = f"GPU {gpu.index} given back: " + (
            f"used by {users}" if users else "cooling down after another program used it"
        )
        hold = Hold("gpu-busy", "gpu", reason, since, urgent=True, devices=gpu.devices)
        return Condition(name, True, reason, last + self.cooldown, (hold,))

    def _hot(self, now: float, gpu: GpuReading) -> Condition:
        name, temp = f"gpu-temp:{gpu.index}", gpu.temperature
        if temp is not None and temp > self.max_temp:
            since = self.hot[gpu.index][0] if gpu.index in self.hot else now
            self.hot[gpu.index] = (since, None)
        elif gpu.index in self.hot and temp is not None:
            since, cool = self.hot[gpu.index]
            if temp > self.max_temp - TEMP_MARGIN:
                cool = None
            elif cool is None:
                cool = now
            self.hot[gpu.index] = (since, cool)
            if cool is not None and now - cool >= self.cooldown:
                del self.hot[gpu.index]
        shown = f"{temp:.0f} °C" if temp is not None else "unread"
        limit = f"limit {self.max_temp:.0f} °C"
        if gpu.index not in self.hot:
            return Condition(name, False, f"GPU {gpu.index}: {shown} ({limit})")
        since, cool = self.hot[gpu.index]
        back = f"back under {self.max_temp - TEMP_MARGIN:.0f} °C for the cool-down"
        reason = f"GPU {gpu.index} too hot: {shown} ({limit}; {back})"
        hold = Hold("gpu-temp", "gpu", reason, since, urgent=True, devices=gpu.devices)
        ends = cool + self.cooldown if cool is not None else None
        return Condition(name, True, reason, ends, (hold,))
