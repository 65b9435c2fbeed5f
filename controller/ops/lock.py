"""The instance lock: two agents with the same instance name on one machine would fight over the
same containers, so the second one refuses to start. The lock file is opened with O_NOFOLLOW: a
symlink planted in its place is refused, never written through.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path
from typing import TextIO

from controller.clients.store import private_dir
from controller.core.errors import ConfigError


def lock_instance(state_dir: Path, instance: str) -> TextIO:
    """An exclusive lock per instance; the returned file must stay open while the agent runs."""
    path = state_dir / f"{instance}.lock"
    try:
        private_dir(state_dir)
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
        handle = os.fdopen(fd, "w")  # held for the agent's life
    except OSError as exc:
        raise ConfigError(f"cannot use state dir {state_dir}: {exc.strerror} ({path})") from exc
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as exc:
        handle.close()
        raise ConfigError(
            f"another agent with instance {instance!r} is running "
            f"(lock {state_dir / (instance + '.lock')})"
        ) from exc
    handle.truncate(0)
    handle.write(f"{os.getpid()}\n")
    handle.flush()
    return handle
