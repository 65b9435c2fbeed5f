"""The owner's pause as a file in the agent's state dir (`<instance>.pause.json`): written by
`rma-worker pause`, removed by `rma-worker resume`, read by the running agent every second. The
state dir is the agent's own (0700): whoever can write there is the agent's owner (or root) —
a terminal, a systemd unit or the agent's container (`docker exec`) all reach it the same way,
and a pause survives a restart of the agent. A file that is not the owner's (another user's, or
writable by others) is ignored, and said so.
"""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import structlog

from controller.clients.store import atomic_write_text, private_dir
from controller.core.holds import PauseRequest

log = structlog.get_logger(__name__)
MAX_BYTES = 4096


def pause_path(state_dir: Path, instance: str) -> Path:
    return state_dir / f"{instance}.pause.json"


def write_pause(path: Path, *, since: float, until: float | None, gpu_only: bool) -> None:
    """Root writing into an agent's state dir (`sudo rma-worker pause` for the systemd unit's
    own user) hands the file to the dir's owner, so the agent can read it."""
    private_dir(path.parent)
    body = {"since": since, "until": until, "gpu_only": gpu_only}
    atomic_write_text(path, json.dumps(body) + "\n")
    owner = path.parent.stat()
    if os.geteuid() == 0 and owner.st_uid != 0:
        os.chown(path, owner.st_uid, owner.st_gid)


def clear_pause(path: Path) -> bool:
    """Remove the pause; False when there was none."""
    try:
        path.unlink()
    except FileNotFoundError:
        return False
    return True


class PauseFile:
    """Reads the pause file again only when it changed (its mtime, size and inode)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._seen: tuple[int, int, int] | None = None
        self._request: PauseRequest | None = None

    def read(self) -> PauseRequest | None:
        try:
            st = self.path.lstat()
        except FileNotFoundError:
            self._seen, self._request = None, None
            return None
        except OSError as exc:
            log.warning("pause_file_unreadable", path=str(self.path), error=str(exc))
            return self._request
        key = (st.st_mtime_ns, st.st_size, st.st_ino)
        if key != self._seen:
            self._seen, self._request = key, self._load(st)
        return self._request

    def _load(self, st: os.stat_result) -> PauseRequest | None:
        if not stat.S_ISREG(st.st_mode) or st.st_uid not in (0, os.geteuid()):
            log.warning("pause_file_ignored", path=str(self.path), reason="not the owner's file")
            return None
        if st.st_mode & 0o022:
            log.warning("pause_file_ignored", path=str(self.path), reason="writable by others")
            return None
        try:
            with self.path.open("rb") as f:
                data = json.loads(f.read(MAX_BYTES + 1)[:MAX_BYTES])
            until = data.get("until")
            return PauseRequest(
                since=float(data.get("since") or st.st_mtime),
                until=float(until) if until is not None else None,
                gpu_only=data.get("gpu_only") is True,
            )
        except (OSError, ValueError, TypeError, AttributeError) as exc:
            # The owner asked for a pause and the file says so, if not how: pause everything.
            log.warning("pause_file_malformed", path=str(self.path), error=str(exc))
            return PauseRequest(since=st.st_mtime)
