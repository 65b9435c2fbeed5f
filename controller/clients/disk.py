"""Free and total space where Docker keeps its data, for the pull floor and image garbage
collection. The standard library's statvfs is enough: no psutil on this path, so an agent in
manifest mode starts without it.
"""

from __future__ import annotations

import os
import shutil
import time
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


def tree_size(
    path: str, seconds: float, clock: Callable[[], float] = time.monotonic
) -> tuple[int, bool]:
    """The bytes the files under `path` hold (allocated blocks), walked for at most `seconds`:
    (bytes counted, whether the walk finished). Symlinks are not followed; unreadable entries
    are skipped. A model cache of many small files is measured in part rather than for minutes."""
    deadline, total, stack = clock() + seconds, 0, [path]
    while stack:
        if clock() > deadline:
            return total, False
        try:
            with os.scandir(stack.pop()) as entries:
                for entry in entries:
                    try:
                        if entry.is_dir(follow_symlinks=False):
                            stack.append(entry.path)
                        elif entry.is_file(follow_symlinks=False):
                            total += entry.stat(follow_symlinks=False).st_blocks * 512
                    except OSError:
                        continue
        except OSError:
            continue
    return total, True
