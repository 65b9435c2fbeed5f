"""What every container is held to, built from Settings (the composition root's containment
side): the owner's process budget and the totals the parent cgroup enforces, the containment
rules, the agent's own tunnels and the watch on writable layers.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import structlog

from controller.clients.docker_runtime import DockerRuntime
from controller.core.containment import Containment
from controller.core.limits import Limits, default_max_pids, memory_bytes
from controller.core.memory import MemoryBudget, default_reserve
from controller.core.models import DesiredState
from controller.core.status import AgentStatus
from controller.core.tunnels import defer_unstarted, with_tunnels
from controller.engine.diskwatch import WritableLayers
from controller.engine.doorbell import Doorbell
from controller.engine.hooks import AfterPass, Listener, Stage
from controller.settings import OFF, Settings

log = structlog.get_logger(__name__)
PID_MAX = Path("/proc/sys/kernel/pid_max")


def tunnels_of(settings: Settings) -> Callable[[DesiredState], DesiredState]:
    """With ingress `tunnel`, each HTTP service's tunnel joins the desired state."""
    if settings.ingress_mode != "tunnel":
        return lambda desired: desired
    return lambda desired: with_tunnels(desired, settings.tunnel_image)


def memory_budget(settings: Settings) -> MemoryBudget:
    """What the containers may hold together: the machine's memory less the owner's reserve
    (`--reserve-memory`, else core/memory.py's default)."""
    from controller.clients.hardware import memory_total  # noqa: PLC0415 (psutil)

    total = memory_total()
    reserve = settings.reserve_memory
    kept = memory_bytes(reserve) if reserve else default_reserve(total)
    return MemoryBudget(total, kept)


def max_pids(settings: Settings, pid_max: Path = PID_MAX) -> int:
    """The owner's process budget for every container together (`--max-pids`, else a quarter
    of this machine's pid_max, at most 8192)."""
    if settings.max_pids is not None:
        return settings.max_pids
    try:
        return default_max_pids(int(pid_max.read_text().strip()))
    except (OSError, ValueError):
        return default_max_pids(32768)  # the kernel's own default pid_max


def totals_of(settings: Settings, limits: Limits) -> Limits | None:
    """What the parent cgroup enforces for all containers together: always the process budget,
    and the caps when set; only when the engine runs on this machine (its cgroups are then ours
    to write)."""
    host = settings.docker_host or os.environ.get("DOCKER_HOST") or "unix://"
    if not host.startswith("unix://"):
        log.warning(
            "totals_not_enforced",
            reason=f"the engine is not local ({host})",
            effect="the caps and the pids limit bound each container alone; no total budget",
        )
        return None
    return replace(limits, pids=max_pids(settings))


def containment_of(settings: Settings, runtime: DockerRuntime) -> Containment:
    """What every container is held to; the adopted volumes are the runtime's (read once). No
    container may have more processes than the whole budget."""
    totals = runtime.owned.totals
    parent = f"rma-{settings.instance}" if totals is not None else ""
    pids = min(settings.pids_limit, totals.pids) if totals and totals.pids else settings.pids_limit
    return Containment(settings.instance, pids, parent, runtime.adopted_volumes)


def tunnels_wait(
    status: Callable[[], AgentStatus | None],
    answered_http: Callable[[], frozenset[str]] = frozenset,
) -> Stage:
    """Each pass, after the owner's holds: the tunnels of services that have never run wait
    (core/tunnels.py: defer_unstarted); a service seen running once keeps its tunnel. So do
    those of services asked by probe until they answered HTTP (`answered_http`)."""
    ran: set[str] = set()

    def apply(held: DesiredState) -> DesiredState:
        now = status()
        if now is not None:
            ran.update(c.name for c in now.containers if c.state == "running")
        ran.intersection_update(s.name for s in held.specs)
        return defer_unstarted(held, frozenset(ran), answered_http())

    return Stage("tunnels' wait", apply)


def watch_disks(
    settings: Settings,
    runtime: DockerRuntime,
    after_pass: list[AfterPass],
    doorbell: Doorbell,
) -> None:
    """The writable layers held to --max-container-disk, measured after passes (unless off)."""
    if settings.max_container_disk.strip().lower() in OFF:
        return
    watch = WritableLayers(
        runtime,
        memory_bytes(settings.max_container_disk),
        interval=settings.container_disk_interval,
        on_evicted=doorbell.ring,
    )

    after_pass.append(Listener("writable layers", lambda desired, actual: watch.after_pass()))
