"""What the agent tells a coordinator about the services it runs (the contract's Parts 3 and 4): the
registration's `containers` (name, port, `service_url`, health endpoint, version), the same URLs
on each Part 2 heartbeat row, and `services_status` (healthy, starting, unhealthy, stopped).

The announcement is built from the desired specs, not from the moment's container states: it
changes when what the worker is meant to serve changes, or a URL does (then the agent registers
again where no Part 2 heartbeat carries it); a container restarting shows in `services_status`,
never as a new registration. A spec's service name is its `rma.service` label (the catalog sets
it), else the container's name.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from controller.core.models import HEALTH_LABEL, SERVICE_LABEL, ContainerSpec
from controller.core.status import AgentStatus, ContainerStatus


@dataclass(frozen=True)
class ServiceURL:
    name: str  # the RMA service name
    container: str
    port: int | None
    service_url: str
    health_endpoint: str
    version: str

    def as_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "service_url": self.service_url,
            "port": self.port,
            "health_endpoint": self.health_endpoint,
            "version": self.version,
        }


@dataclass(frozen=True)
class Announcement:
    services: tuple[ServiceURL, ...] = ()
    tunnel_url: str = ""

    def containers(self) -> list[dict[str, Any]]:
        return [s.as_json() for s in self.services]

    def digest(self) -> str:
        """Changes exactly when what a registration would announce does."""
        blob = json.dumps([self.tunnel_url, self.containers()], sort_keys=True)
        return hashlib.sha256(blob.encode()).hexdigest()[:16]


def service_name(spec: ContainerSpec) -> str:
    return spec.labels_dict.get(SERVICE_LABEL, spec.name)


def announce(specs: Iterable[ContainerSpec], host: str, tunnel_url: str = "") -> Announcement:
    """Each spec's service at `http://<host>:<first published port>` ("" without either)."""
    found = []
    for spec in specs:
        port = next((p.host for p in spec.ports if p.protocol == "tcp"), None)
        url = f"http://{_bracketed(host)}:{port}" if host and port else ""
        health = spec.labels_dict.get(HEALTH_LABEL, "")
        found.append(ServiceURL(service_name(spec), spec.name, port, url, health, _tag(spec.image)))
    return Announcement(tuple(sorted(found, key=lambda s: s.name)), tunnel_url)


def services_status(status: AgentStatus) -> dict[str, str]:
    """Per service: `healthy`, `starting`, `unhealthy` or `stopped` — Docker's health state where
    the image has a health check, else running or not. Refused entries are not services."""
    return {c.service or c.name: _state(c) for c in status.containers if c.state != "refused"}


def _state(c: ContainerStatus) -> str:
    if c.state == "running":
        return {"starting": "starting", "unhealthy": "unhealthy"}.get(c.health, "healthy")
    if c.state in ("restarting", "backoff"):
        return "unhealthy"
    if c.state in ("pulling", "missing", "created"):
        return "starting"
    return "stopped"


def _tag(image: str) -> str:
    ref = image.split("@", 1)[0]
    last = ref.rsplit("/", 1)[-1]
    return last.rsplit(":", 1)[1] if ":" in last else ("" if "@" in image else "latest")


def _bracketed(host: str) -> str:
    return f"[{host}]" if ":" in host else host
