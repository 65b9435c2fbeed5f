"""The last notable things the agent did, for the owner's page: a bounded ring filled by a
structlog processor (ops/logs.py puts it in the chain), so every event the log already carries —
a container started or healed, a back-off, a refusal, a pause — is listed without a second path
through the code. Only events a volunteer would care about are kept, in a plain sentence.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable, MutableMapping
from typing import Any

KEEP = 50
Sentence = Callable[[MutableMapping[str, Any]], str]


def _action(e: MutableMapping[str, Any]) -> str:
    verbs = {
        "create": "created",
        "start": "started",
        "recreate": "recreated",
        "remove": "removed",
        "stop": "stopped",
    }
    return f"{e.get('container')}: {verbs.get(str(e.get('action')), e.get('action'))}"


NOTABLE: dict[str, tuple[str, Sentence]] = {
    "action_done": ("info", _action),
    "action_failed": (
        "error",
        lambda e: f"{e.get('container')}: {e.get('action')} failed: {e.get('error')}",
    ),
    "container_healed": ("warning", lambda e: f"{e.get('container')}: healed ({e.get('how')})"),
    "crash_loop_backoff": (
        "warning",
        lambda e: f"{e.get('container')}: backed off {e.get('seconds')} s (keeps stopping)",
    ),
    "spec_refused": ("warning", lambda e: f"{e.get('container')}: refused: {e.get('error')}"),
    "hold_started": ("info", lambda e: f"{e.get('reason')}"),
    "hold_ended": ("info", lambda e: f"{e.get('condition')} ended: resuming"),
    "draining": (
        "info",
        lambda e: f"draining {e.get('containers') or ''} for {e.get('seconds')} s",
    ),
    "registered": ("info", lambda e: f"registered as {e.get('worker_id')}"),
    "worker_forgotten": ("warning", lambda e: "the coordinator forgot this worker: registering"),
    "coordinator_unreachable": ("warning", lambda e: "the coordinator cannot be reached"),
    "registration_refused": ("error", lambda e: f"registration refused: {e.get('error')}"),
    "image_pulled": ("info", lambda e: f"pulled {e.get('image')}"),
    "image_pull_failed": (
        "error",
        lambda e: f"pull of {e.get('image')} failed: {e.get('error')}",
    ),
    "gpu_power_limited": ("info", lambda e: f"GPU power limited: {e.get('gpus')}"),
    "gpu_power_limit_refused": ("error", lambda e: f"{e.get('error')}"),
    "shutdown_requested": ("info", lambda e: f"stopping ({e.get('signal')})"),
}


class Recent:
    def __init__(self, keep: int = KEEP) -> None:
        self._ring: deque[dict[str, Any]] = deque(maxlen=keep)
        self._lock = threading.Lock()

    def __call__(self, _logger: Any, _method: str, event: MutableMapping[str, Any]) -> Any:
        """The structlog processor: keeps a notable event, passes every event on unchanged."""
        found = NOTABLE.get(str(event.get("event")))
        if found is not None:
            level, sentence = found
            try:
                text = sentence(event)
            except Exception:  # a sentence must never cost a log line
                text = str(event.get("event"))
            row = {
                "at": event.get("timestamp"),
                "event": event.get("event"),
                "level": level,
                "text": text[:300],
                "container": event.get("container"),
            }
            with self._lock:
                self._ring.append(row)
        return event

    def newest_first(self) -> list[dict[str, Any]]:
        with self._lock:
            return list(reversed(self._ring))


RECENT = Recent()
