"""Where each tunnel says it can be reached: a URL matching the owner's pattern
(`--tunnel-url-pattern`) in a running tunnel container's log — the first on its line, of the
last line that has one, so a tunnel that restarted and printed a new URL is read anew (and then
announced anew).

Read when the membership asks what to announce (each heartbeat tick and each registration):
one listing of the agent's containers and the last 200 log lines of each running tunnel.
"""

from __future__ import annotations

import re
import threading
from typing import Protocol

import structlog

from controller.core.errors import AgentError
from controller.core.models import ActualContainer
from controller.core.tunnels import TUNNEL_PREFIX

log = structlog.get_logger(__name__)


class TunnelLogs(Protocol):
    def list_managed(self) -> list[ActualContainer]: ...

    def logs(self, container_id: str, tail: int = 200) -> str: ...


class TunnelURLs:
    def __init__(self, runtime: TunnelLogs, pattern: str) -> None:
        self._runtime = runtime
        self._pattern = re.compile(pattern)
        self._lock = threading.Lock()
        self._said: dict[str, str] = {}  # tunnel name -> the URL last logged

    def snapshot(self) -> dict[str, str]:
        """{tunnel container name: its public URL} for every running tunnel that printed one
        (whether its service runs is the announcement's business: contract/services.py)."""
        try:
            tunnels = [
                c
                for c in self._runtime.list_managed()
                if c.state == "running" and c.name.startswith(TUNNEL_PREFIX)
            ]
        except AgentError as exc:
            log.debug("tunnels_unread", error=str(exc))
            return {}
        return {t.name: url for t in tunnels if (url := self._url(t))}

    def _url(self, tunnel: ActualContainer) -> str:
        try:
            text = self._runtime.logs(tunnel.id)
        except AgentError as exc:
            log.debug("tunnel_log_unread", tunnel=tunnel.name, error=str(exc))
            return ""
        urls = [m.group(0) for line in text.splitlines() if (m := self._pattern.search(line))]
        url = urls[-1] if urls else ""
        with self._lock:
            if url and self._said.get(tunnel.name) != url:
                self._said[tunnel.name] = url
                log.info("tunnel_url", tunnel=tunnel.name, url=url)
        return url
