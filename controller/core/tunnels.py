"""The agent's own tunnels (the contract's Part 4, ingress `tunnel`): one container per HTTP
service that opens an outbound quick tunnel to the service and prints the public URL in its log
(engine/tunnels.py reads it). A tunnel never reaches its service by a string a coordinator
chose: containment (core/containment.py) puts the two on an internal network of their own where
the service answers to the agent's alias `rma-origin`, and the tunnel on the agent's tunnels
network for its way out — never on the network of the services, so it reaches only its own.
Pure: derived from the desired state, reconciled with it like any container (self-heal,
back-off, containment), removed with its service.

The tunnels are the agent's, not a coordinator's: a coordinator's spec can neither name one (the
`rma-tunnel-` prefix is refused) nor change one (their image and arguments come from the owner's
settings). A service is HTTP when its catalog entry or spec says so (`rma.http` label), or when
a coordinator said nothing either way (`rma.http-from: probe`) and its port answered HTTP to the
agent's own probe (engine/readiness.py); TCP-only services (Postgres, Redis) get no tunnel: a
quick tunnel carries HTTP.
"""

from __future__ import annotations

import hashlib
from dataclasses import replace

from controller.core.models import HTTP_FROM, HTTP_LABEL, ContainerSpec, DesiredState, Refusal

TUNNEL_PREFIX = "rma-tunnel-"
TUNNEL_FOR = "rma.tunnel-for"  # on a tunnel: the container it serves
ORIGIN = "rma-origin"  # the service's alias on the network it shares with its tunnel only
METRICS_PORT = 2000  # each tunnel's Prometheus metrics (`--metrics`): the requests it carried
MAX_NAME = 128
OWN_NAME = f"names starting with {TUNNEL_PREFIX!r} are the agent's own tunnels"


PROBE = "probe"  # rma.http-from: nobody said; the agent's probe decides


def is_http(spec: ContainerSpec) -> bool:
    return spec.labels_dict.get(HTTP_LABEL) == "true" and bool(spec.ports)


def asked_by_probe(spec: ContainerSpec) -> bool:
    """Whether the agent's own probe decides if this spec speaks HTTP (it joins its pair network
    from the start, so a tunnel added later does not change its spec: core/containment.py)."""
    return spec.labels_dict.get(HTTP_FROM) == PROBE and bool(spec.ports) and not is_http(spec)


def tunnel_name(service_container: str) -> str:
    name = TUNNEL_PREFIX + service_container
    if len(name) <= MAX_NAME:
        return name
    digest = hashlib.sha256(service_container.encode()).hexdigest()[:12]
    return name[: MAX_NAME - 13] + "-" + digest


def tunnel_spec(service: ContainerSpec, image: str) -> ContainerSpec:
    port = service.ports[0].container
    return ContainerSpec(
        name=tunnel_name(service.name),
        image=image,
        command=(
            "tunnel",
            "--no-autoupdate",
            "--metrics",
            f"0.0.0.0:{METRICS_PORT}",
            "--url",
            f"http://{ORIGIN}:{port}",
        ),
        labels=((TUNNEL_FOR, service.name),),
        memory_limit="256m",
    )


def defer_unstarted(
    desired: DesiredState, ran: frozenset[str], answered_http: frozenset[str] = frozenset()
) -> DesiredState:
    """The tunnels of services whose container has never run are not created yet: a tunnel to
    an image that cannot be pulled, or to a service still waiting for it, serves nobody. Nor
    are those of services asked by probe until they answered HTTP (`answered_http`)."""
    asked = {s.name for s in desired.specs if asked_by_probe(s)} - answered_http
    waiting = frozenset(
        s.name
        for s in desired.specs
        if (served := s.labels_dict.get(TUNNEL_FOR)) is not None
        and (served not in ran or served in asked)
    )
    return replace(desired, deferred=desired.deferred | waiting) if waiting else desired


def may_tunnel(spec: ContainerSpec) -> bool:
    """HTTP, or maybe (its tunnel then waits for the probe's answer: defer_unstarted)."""
    return is_http(spec) or asked_by_probe(spec)


def with_tunnels(desired: DesiredState, image: str) -> DesiredState:
    """The desired state plus a tunnel for each service that may speak HTTP; a spec that takes
    a tunnel's name is refused (the rest runs)."""
    kept = [s for s in desired.specs if not s.name.startswith(TUNNEL_PREFIX)]
    refused = [Refusal(s.name, OWN_NAME) for s in desired.specs if s not in kept]
    tunnels = [tunnel_spec(s, image) for s in kept if may_tunnel(s)]
    return replace(desired, specs=(*kept, *tunnels), refused=(*desired.refused, *refused))
