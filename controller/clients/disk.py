"""Free and total space where Docker keeps its data, for the pull floor and image garbage
collection. The standard library's statvfs is enough: no psutil on this path, so an agent in
manifest mode starts without it.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable

from controller.core.errors import AgentError


def disk_usage(path: str) -> tuple[int, int]:
    """(free bytes, total bytes) of the filesystem holding `path` (`/` when it is missing)."""
    usage = shutil.disk_usage(path if os.path.isdir(path) else "/")
    return int(usage.free), int(usage.total)


def docker_disk(data_root: Callable[[], str | None]) -> Callable[[], tuple[int, int]]:
    """(free, total) bytes where Docker keeps its data; the engine is asked for its data root
    once it answers, and `/` is used until then."""
    root: list[str] = []

    def usage() -> tuple[int, int]:
        if not root:
            try:
                root.append(data_root() or "/")
            except AgentError:
                return disk_usage("/")
        return disk_usage(root[0])

    return usage
