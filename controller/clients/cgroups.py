"""The parent cgroup that makes the contributor's caps totals (kubelet's pod-level cgroup).

Every container runs under one parent cgroup that the agent owns and limits: always its process
budget (`--max-pids`, kubelet's node-allocatable pids), and `--max-cpus` / `--max-memory` as
totals when they are set:
- Docker's `cgroupfs` driver: the group `/rma-<instance>`, created by the agent under each
  controller's mount with its limits written (cgroup v2: `pids.max`, `memory.max`,
  `memory.swap.max`, `cpu.max`; v1: `pids.max`, `memory.limit_in_bytes`,
  `memory.memsw.limit_in_bytes`, `cpu.cfs_quota_us`);
- Docker's `systemd` driver: the slice `rma-<instance>.slice`, limited with
  `systemctl set-property --runtime` (TasksMax, MemoryMax, MemorySwapMax, CPUQuota).
The engine must be on this machine (its cgroups are then ours to write) and the agent root.
"""

from __future__ import annotations

import contextlib
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from controller.core.errors import PermanentError
from controller.core.limits import Limits

ROOT = Path("/sys/fs/cgroup")
PERIOD = 100_000  # µs: the CFS period the quota is a share of


@dataclass(frozen=True)
class CgroupParent:
    """Where the containers go (`--cgroup-parent`) and how it was limited (for the log)."""

    parent: str
    how: str


def prepare(
    instance: str, limits: Limits, driver: str, version: str, root: Path = ROOT
) -> CgroupParent:
    """Create and limit the parent group; PermanentError when it cannot be done."""
    if driver == "systemd":
        return _slice(f"rma-{instance}.slice", limits)
    if driver != "cgroupfs":
        raise PermanentError(f"unknown cgroup driver {driver!r}")
    name = f"rma-{instance}"
    try:
        if version == "2":
            _v2(root / name, limits)
        else:
            _v1(root, name, limits)
    except OSError as exc:
        raise PermanentError(f"cannot write the cgroup {name}: {exc.strerror or exc}") from exc
    return CgroupParent(f"/{name}", f"cgroupfs v{version} under {root}")


def release(instance: str, driver: str, root: Path = ROOT) -> None:
    """Remove the (empty) parent group after teardown; a busy one stays."""
    if driver != "cgroupfs":
        return
    for group in [root / f"rma-{instance}", *root.glob(f"*/rma-{instance}")]:
        with contextlib.suppress(OSError):
            group.rmdir()


def _v2(group: Path, limits: Limits) -> None:
    enable = " ".join(f"+{c}" for c in ("cpu", "memory", "pids"))
    with contextlib.suppress(OSError):  # usually enabled already at the root
        (group.parent / "cgroup.subtree_control").write_text(enable)
    group.mkdir(exist_ok=True)
    if limits.pids is not None:
        (group / "pids.max").write_text(str(limits.pids))
    if limits.memory is not None:
        (group / "memory.max").write_text(str(limits.memory))
        with contextlib.suppress(FileNotFoundError):  # no swap accounting: nothing to cap
            (group / "memory.swap.max").write_text("0")
    if limits.cpus is not None:
        (group / "cpu.max").write_text(f"{int(limits.cpus * PERIOD)} {PERIOD}")


def _v1(root: Path, name: str, limits: Limits) -> None:
    memory, cpu, pids = root / "memory" / name, root / "cpu" / name, root / "pids" / name
    if limits.pids is not None:
        pids.mkdir(exist_ok=True)
        (pids / "pids.max").write_text(str(limits.pids))
    if limits.memory is not None:
        memory.mkdir(exist_ok=True)
        swap = memory / "memory.memsw.limit_in_bytes"  # absent when swap accounting is off
        try:
            (memory / "memory.limit_in_bytes").write_text(str(limits.memory))
        except OSError:  # raising the limit above the old memory+swap limit: that one first
            swap.write_text(str(limits.memory))
            (memory / "memory.limit_in_bytes").write_text(str(limits.memory))
        with contextlib.suppress(FileNotFoundError):
            swap.write_text(str(limits.memory))
    if limits.cpus is not None:
        cpu.mkdir(exist_ok=True)
        (cpu / "cpu.cfs_period_us").write_text(str(PERIOD))
        (cpu / "cpu.cfs_quota_us").write_text(str(int(limits.cpus * PERIOD)))


def _slice(unit: str, limits: Limits) -> CgroupParent:
    systemctl = shutil.which("systemctl")
    if systemctl is None:
        raise PermanentError("Docker uses the systemd cgroup driver and systemctl is missing")
    props = [f"TasksMax={limits.pids}"] if limits.pids is not None else []
    if limits.memory is not None:
        props += [f"MemoryMax={limits.memory}", "MemorySwapMax=0"]
    if limits.cpus is not None:
        props.append(f"CPUQuota={int(limits.cpus * 100)}%")
    done = subprocess.run(
        [systemctl, "set-property", "--runtime", unit, *props],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    if done.returncode != 0:
        raise PermanentError(f"systemctl set-property {unit} failed: {done.stderr.strip()}")
    return CgroupParent(unit, "systemd slice")
