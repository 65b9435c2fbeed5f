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


def docker_root(data_root: Callable[[], str | None]) -> Callable[[], str]:
    """Where Docker keeps its data: the engine is asked once it answers, `/` until then."""
    root: list[str] = []

    def where() -> str:
        if not root:
            try:
                root.append(data_root() or "/")
            except AgentError:
                return "/"
        return root[0]

    return where


def docker_disk(data_root: Callable[[], str | None]) -> Callable[[], tuple[int, int]]:
    """(free, total) bytes where Docker keeps its data."""
    where = docker_root(data_root)
    return lambda: disk_usage(where())
