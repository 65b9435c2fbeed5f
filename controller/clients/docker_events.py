"""The engine's event stream about the agent's containers, as the watcher (engine/watcher.py)
reads it: only the actions that can change what a pass would do, and a `close()` that another
thread may call to end the iteration (docker-py's stream blocks in a socket read).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import structlog

from controller.clients.docker_errors import boundary as _boundary
from controller.core.runtime import ContainerEvent

log = structlog.get_logger(__name__)
_WATCHED_ACTIONS = frozenset({"die", "stop", "kill", "destroy", "oom", "pause"})


class DockerEventStream:
    """Engine events about managed containers; `close()` from another thread ends iteration."""

    def __init__(self, raw: Any) -> None:
        self._raw = raw

    def __iter__(self) -> Iterator[ContainerEvent]:
        with _boundary():
            for item in self._raw:
                action = str(item.get("Action") or item.get("status") or "")
                action = action.split(":", 1)[0]
                if action not in _WATCHED_ACTIONS:
                    continue
                attrs = (item.get("Actor") or {}).get("Attributes") or {}
                yield ContainerEvent(action, str(item.get("id", "")), str(attrs.get("name", "")))

    def close(self) -> None:
        try:
            self._raw.close()
        except Exception as exc:  # closing a dead socket must never fail the caller
            log.debug("event_stream_close_failed", error=str(exc))
