"""The owner stays in charge: the conditions under which the agent holds its containers stopped
(kept, never removed), decided purely from readings and an injected clock.

- the owner's pause (`rma-worker pause [--for] [--gpu-only]`), read from the state dir;
- the schedule (core/schedule.py): outside it, everything is paused;
- on battery: everything is paused;
- busy (`--pause-when-busy PCT`): other programs above PCT of the CPU for 30 s pause the GPU
  containers, 30 s more everything; a cool-down below PCT resumes them;
- the GPU given back: a program of the owner's that really uses a GPU, or the GPU above
  `--gpu-max-temp`, yields that GPU's containers at once (urgent: no draining) until the
  cool-down passed without (for the temperature: 5 °C below the limit throughout). A program
  counts (issue 24, item 5) when it is a compute process (CUDA, OpenCL: a render, a job), or a
  graphics one holding more than `--gpu-yield-min-memory` or above `--gpu-yield-min-util` of the
  SMs for 5 s (a game); a browser's GPU process, a video call and the display server and
  compositor do not: on a desktop they hold a GPU context all day.

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


MIB = 1024**2
SUSTAIN = 5.0  # seconds a graphics process stays above --gpu-yield-min-util before it counts


@dataclass(frozen=True)
class GpuProcess:
    """A process on a lent GPU that is not the agent's, as NVML lists it: on the compute list or
    only the graphics one, its GPU memory and its share of the SMs (None: not read), and whether
    it is a display server or compositor."""

    pid: int
    name: str
    compute: bool = False
    memory: int | None = None  # bytes
    sm: float | None = None  # % of the SMs since the last read
    display: bool = False


@dataclass(frozen=True)
class Judged:
    """A foreign process as the guard judged it: whether it takes the GPU back, and why."""

    pid: int
    name: str
    counts: bool
    why: str

    def as_json(self) -> dict[str, object]:
        return {"pid": self.pid, "name": self.name, "counts": self.counts, "why": self.why}


@dataclass(frozen=True)
class GpuReading:
    """One lent GPU now: its NVML index and UUID, temperature (°C, None unread), and the
    processes on it that are not the agent's."""

    index: str
    uuid: str = ""
    temperature: float | None = None
    foreign: tuple[GpuProcess, ...] = ()

    @property
    def devices(self) -> tuple[str, ...]:
        return (self.index, self.uuid) if self.uuid else (self.index,)


@dataclass
class GpuGuard:
    """Give the GPU back: per GPU, a foreign process (until none for the cool-down) or a
    temperature above the limit (until `TEMP_MARGIN` below it for the cool-down)."""

    max_temp: float
    cooldown: float
    min_memory: int = 1024 * MIB  # a graphics process holding more counts (a game)
    min_util: float = 15.0  # % of the SMs: a graphics process above it for SUSTAIN s counts
    busy: dict[str, tuple[float, float]] = field(default_factory=dict)  # gpu -> since, last
    hot: dict[str, tuple[float, float | None]] = field(default_factory=dict)  # since, cool since
    over: dict[tuple[str, int], float] = field(default_factory=dict)  # (gpu, pid) -> above since
    seen: dict[str, tuple[Judged, ...]] = field(default_factory=dict)  # gpu -> as last judged

    def observe(self, now: float, readings: tuple[GpuReading, ...]) -> list[Condition]:
        conditions = []
        for gpu in readings:
            conditions += [self._busy(now, gpu), self._hot(now, gpu)]
        return conditions

    def judge(self, now: float, index: str, p: GpuProcess) -> Judged:
        """Whether a foreign process takes the GPU back, and why (for the status)."""
        key = (index, p.pid)
        if p.sm is None or p.sm <= self.min_util or p.display:
            self.over.pop(key, None)
        if p.display:
            return Judged(p.pid, p.name, False, "the display server or compositor: never counts")
        if p.compute:
            return Judged(p.pid, p.name, True, "a compute process (CUDA or OpenCL)")
        if p.memory is not None and p.memory > self.min_memory:
            held = f"holds {_mib(p.memory)} of GPU memory (more than {_mib(self.min_memory)})"
            return Judged(p.pid, p.name, True, held)
        if p.sm is not None and p.sm > self.min_util:
            since = self.over.setdefault(key, now)
            use = f"uses {p.sm:.0f} % of the GPU (more than {self.min_util:.0f} %)"
            if now - since >= SUSTAIN:
                return Judged(p.pid, p.name, True, f"{use} for {SUSTAIN:.0f} s")
            return Judged(p.pid, p.name, False, f"{use} for {now - since:.0f} s of {SUSTAIN:.0f}")
        memory = _mib(p.memory) if p.memory is not None else "? MiB"
        sm = f"{p.sm:.0f} %" if p.sm is not None else "? %"
        return Judged(p.pid, p.name, False, f"small: {memory}, {sm} of the GPU")

    def _busy(self, now: float, gpu: GpuReading) -> Condition:
        name = f"gpu-busy:{gpu.index}"
        judged = tuple(self.judge(now, gpu.index, p) for p in gpu.foreign)
        here = {p.pid for p in gpu.foreign}
        for key in [k for k in self.over if k[0] == gpu.index and k[1] not in here]:
            del self.over[key]  # gone
        self.seen[gpu.index] = judged
        counted = [j for j in judged if j.counts]
        if counted:
            since = self.busy[gpu.index][0] if gpu.index in self.busy else now
            self.busy[gpu.index] = (since, now)
        elif gpu.index in self.busy and now - self.busy[gpu.index][1] >= self.cooldown:
            del self.busy[gpu.index]
        if gpu.index not in self.busy:
            others = "only programs that do not count" if judged else "no other program"
            why = f"GPU {gpu.index}: {others} on it"
            return Condition(name, False, why)
        since, last = self.busy[gpu.index]
        users = ", ".join(f"{j.name or '?'} ({j.pid})" for j in counted[:3])
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


def _mib(n: int) -> str:
    return f"{n / 1024**3:.1f} GiB" if n >= 1024**3 else f"{n // MIB} MiB"
