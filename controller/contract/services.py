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
import urllib.parse
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from controller.core.models import HEALTH_LABEL, SERVICE_LABEL, ContainerSpec
from controller.core.status import AgentStatus, ContainerStatus
from controller.core.tunnels import TUNNEL_PREFIX, may_tunnel, tunnel_name


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


# How a service is reached: its URL from (spec, service name, first published TCP port), or ""
# when the pool cannot reach it (then it is not announced).
Reach = Callable[[ContainerSpec, str, int | None], str]


def at_host(host: str) -> Reach:
    """`http://<host>:<first published port>`: a port forward to an address the owner gave."""
    return lambda spec, service, port: f"http://{_bracketed(host)}:{port}" if host and port else ""


def from_template(template: str) -> Reach:
    """The owner's `--advertise-url`: `{service}` (URL-encoded: a coordinator's name can never
    change the URL's host, path or fragment) and `{port}` filled in."""

    def reach(spec: ContainerSpec, service: str, port: int | None) -> str:
        if "{port}" in template and port is None:
            return ""
        name = urllib.parse.quote(service, safe="")
        return template.replace("{service}", name).replace("{port}", str(port or ""))

    return reach


def unreachable(spec: ContainerSpec, service: str, port: int | None) -> str:
    return ""


def serving(status: AgentStatus, before: frozenset[str]) -> frozenset[str]:
    """The containers whose service may be announced: running now (and not failing or still
    starting a health check), or announced before and only being recreated or pulled — so a
    service recreated for a new worker id keeps its URL (no registration again, never a loop
    with the service coordinator), while one that crashed or turned unhealthy is withdrawn."""
    found = set()
    for c in status.containers:
        up = c.state == "running" and c.health not in ("unhealthy", "starting")
        passing = (
            c.name in before
            and c.state in ("running", "missing", "created", "pulling")
            and c.health != "unhealthy"
        )
        if up or passing:
            found.add(c.name)
    return frozenset(found)


def only(names: frozenset[str], reach: Reach) -> Reach:
    """`reach`, for the containers in `names` only."""
    return lambda spec, service, port: reach(spec, service, port) if spec.name in names else ""


def through_tunnels(found: dict[str, str]) -> Reach:
    """An HTTP service at the URL its tunnel printed (`found`: by tunnel container name);
    TCP-only services are not reachable through a quick tunnel."""
    return lambda spec, service, port: (
        found.get(tunnel_name(spec.name), "") if may_tunnel(spec) else ""
    )


def announce(specs: Iterable[ContainerSpec], reach: Reach) -> Announcement:
    """The services the pool can reach, each at the URL `reach` gives; `tunnel_url` is the
    first one's (the service and community coordinators route to that one URL)."""
    found = []
    for spec in specs:
        port = next((p.host for p in spec.ports if p.protocol == "tcp"), None)
        name = service_name(spec)
        url = reach(spec, name, port)
        if not url:
            continue
        health = spec.labels_dict.get(HEALTH_LABEL, "")
        found.append(ServiceURL(name, spec.name, port, url, health, _tag(spec.image)))
    ordered = tuple(sorted(found, key=lambda s: s.name))
    return Announcement(ordered, ordered[0].service_url if ordered else "")


def not_reachable(status: AgentStatus, announced: Announcement, ingress: str) -> dict[str, str]:
    """Per service the pool cannot reach now: why (for `status` and the heartbeat)."""
    urls = {s.container for s in announced.services}
    found = {}
    for c in status.containers:
        if c.state == "refused" or c.name.startswith(TUNNEL_PREFIX) or c.name in urls:
            continue
        if ingress == "none":
            why = "ingress none: nothing is announced"
        elif ingress == "tunnel" and not c.http:
            why = "TCP only: a quick tunnel carries HTTP (announced with --ingress url)"
        else:
            why = f"not serving yet ({c.state})" if c.state != "running" else "no URL yet"
        found[c.service or c.name] = why
    return found


def services_status(status: AgentStatus) -> dict[str, str]:
    """Per service: `healthy`, `starting`, `unhealthy`, `failed`, `unavailable` (it cannot run
    here: a placeholder image) or `stopped` — Docker's health state where the image has a health
    check, else running or not. Refused entries are not services."""
    return {
        c.service or c.name: _state(c)
        for c in status.containers
        if c.state != "refused" and not c.name.startswith(TUNNEL_PREFIX)
    }


_STATES = {
    "restarting": "unhealthy",
    "backoff": "unhealthy",
    "pulling": "starting",
    "missing": "starting",
    "created": "starting",
    "failed": "failed",
    "conflict": "failed",
    "unavailable": "unavailable",
}


def _state(c: ContainerStatus) -> str:
    if c.state == "running":
        return {"starting": "starting", "unhealthy": "unhealthy"}.get(c.health, "healthy")
    return _STATES.get(c.state, "stopped")


def _tag(image: str) -> str:
    ref = image.split("@", 1)[0]
    last = ref.rsplit("/", 1)[-1]
    return last.rsplit(":", 1)[1] if ":" in last else ("" if "@" in image else "latest")


def _bracketed(host: str) -> str:
    return f"[{host}]" if ":" in host else host
