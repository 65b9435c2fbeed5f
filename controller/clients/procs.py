"""Which process is whose: a PID's container (the 64-hex id in its cgroup path, for Docker's
cgroupfs and systemd drivers, v1 and v2) and its name, read from /proc. NVML names GPU users by
host PID; these say which of them run in the agent's containers. A PID not visible here (the
agent in its own PID namespace) is `None`, never guessed.
"""

from __future__ import annotations

import re
from pathlib import Path

PROC = Path("/proc")
_ID = re.compile(r"(?:^|[/-])([0-9a-f]{64})(?:\.scope)?$")


def visible(pid: int, proc: Path = PROC) -> bool:
    return (proc / str(pid)).is_dir()


def container_of(pid: int, proc: Path = PROC) -> str | None:
    """The id of the container `pid` runs in, or None (a host process, or not visible)."""
    try:
        text = (proc / str(pid) / "cgroup").read_text(encoding="utf-8", errors="replace")
    except OSError:
        return None
    for line in text.splitlines()[:64]:
        path = line.rpartition(":")[2].rstrip("/")
        for part in reversed(path.split("/")):
            match = _ID.search(part)
            if match:
                return match.group(1)
    return None


def name_of(pid: int, proc: Path = PROC) -> str:
    try:
        return (proc / str(pid) / "comm").read_text(encoding="utf-8", errors="replace").strip()
    except OSError:
        return ""
