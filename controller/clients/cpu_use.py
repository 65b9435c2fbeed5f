"""The CPU counters behind core/usage.py: the machine's (psutil) and each of the agent's
containers' own (its cgroup's `cpu.stat` usage on cgroup v2, `cpuacct.usage` on v1, under
Docker's cgroupfs or systemd driver, or the agent's parent group). Where a running container's
cgroup cannot be found (the agent in its own cgroup namespace) the agent's share is unknown:
`ours` is None and what needs it says so, rather than counting the agent's work as another's.
"""

from __future__ import annotations

import contextlib
from pathlib import Path

import psutil

from controller.core.usage import CpuSample

ROOT = Path("/sys/fs/cgroup")
_V1 = ("cpuacct", "cpu,cpuacct", "cpu")
_PATTERNS = ("*/docker-{id}.scope", "docker/{id}", "*/{id}", "*/*/docker-{id}.scope", "*/*/{id}")


class CpuUse:
    def __init__(self, root: Path = ROOT) -> None:
        self._root = root
        self._found: dict[str, Path | None] = {}
        self._me = psutil.Process()

    def sample(self, container_ids: frozenset[str]) -> CpuSample:
        times = psutil.cpu_times()
        total = sum(times)
        idle = times.idle + getattr(times, "iowait", 0.0)
        ours: dict[str, float] = {}
        for cid in container_ids:
            used = self._usage(cid)
            if used is None:
                return CpuSample(total, total - idle, None)
            ours[cid] = used
        me = self._me.cpu_times()
        ours["agent"] = me.user + me.system
        self._found = {k: v for k, v in self._found.items() if k in container_ids}
        return CpuSample(total, total - idle, ours)

    def _usage(self, cid: str) -> float | None:
        if cid not in self._found or self._found[cid] is None:
            self._found[cid] = self._locate(cid)
        path = self._found[cid]
        if path is None:
            return None
        try:
            text = path.read_text(encoding="ascii")
        except OSError:
            self._found[cid] = None  # gone (recreated): found again next time
            return None
        if path.name == "cpu.stat":
            for line in text.splitlines():
                key, _, value = line.partition(" ")
                if key == "usage_usec":
                    return int(value) / 1e6
            return None
        return int(text.strip() or 0) / 1e9

    def _locate(self, cid: str) -> Path | None:
        if (self._root / "cgroup.controllers").exists():  # v2: one unified tree
            bases = [(self._root, "cpu.stat")]
        else:
            bases = [(self._root / v, "cpuacct.usage") for v in _V1]
        for base, leaf in bases:
            for pattern in _PATTERNS:
                with contextlib.suppress(OSError):
                    for group in base.glob(pattern.format(id=cid)):
                        if (group / leaf).is_file():
                            return group / leaf
        return None
