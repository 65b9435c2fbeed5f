"""The instance lock: two agents with the same instance name on one machine would fight over the
same containers, so the second one refuses to start.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path
from typing import TextIO

from controller.core.errors import ConfigError


def lock_instance(state_dir: Path, instance: str) -> TextIO:
    """An exclusive lock per instance; the returned file must stay open while the agent runs."""
    try:
        state_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        handle = open(state_dir / f"{instance}.lock", "w")  # noqa: SIM115 (held for life)
    except OSError as exc:
        raise ConfigError(f"cannot use state dir {state_dir}: {exc.strerror}") from exc
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as exc:
        handle.close()
        raise ConfigError(
            f"another agent with instance {instance!r} is running "
            f"(lock {state_dir / (instance + '.lock')})"
        ) from exc
    handle.write(f"{os.getpid()}\n")
    handle.flush()
    return handle
