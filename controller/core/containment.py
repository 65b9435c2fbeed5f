"""What every container the agent runs is held to, whatever its spec asked for (pure).

Balena prefixes an app's volumes and networks with the app id; kubelet puts every pod under its
own cgroup. The same here: each container joins the agent's own bridge network `rma-<instance>`
(never the default bridge, so it cannot reach the volunteer's own containers there), has a pids
limit, runs under the agent's parent cgroup when one is set (always, with the owner's process
budget, when the engine is local), sees no GPU unless granted one (`NVIDIA_VISIBLE_DEVICES=void`,
NVIDIA's own advice for a host whose default runtime is nvidia), and mounts only volumes named
`rma<N>-<instance>-<name>` (N: the instance name's length, so that no two instances' volumes can
share a name), which the agent creates itself (clients/docker_owned.py). A volume of this
instance named as before 0.8 (`rma-<instance>-<name>`) keeps being used (`existing`), and a
legacy unprefixed volume is used as is only when the agent recorded it as its own (`adopted`).

Tunnels are held apart: each tunnel runs on the agent's tunnels network `rma-<instance>-tunnels`
(its way out) and shares an internal network `rma-<instance>-pair-<hash>` with its own service
only, where the service answers to `rma-origin` (core/tunnels.py). A tunnel can reach no other
service, and no other service can reach a tunnel. A service whose HTTP the agent's probe decides
has its tunnel's spec from the start (deferred until it answers: core/tunnels.py), so it joins
its pair network from the start and the tunnel, once made, leaves its spec as it was.

These values are part of the spec, hence of its hash: a change recreates the containers.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, replace

from controller.core.models import ContainerSpec, DesiredState, VolumeMount
from controller.core.tunnels import ORIGIN, TUNNEL_FOR

DEFAULT_PIDS_LIMIT = 1024
NO_GPU = ("NVIDIA_VISIBLE_DEVICES", "void")


def network_name(instance: str) -> str:
    return f"rma-{instance}"


def tunnels_network(instance: str) -> str:
    return f"rma-{instance}-tunnels"


def pair_network(instance: str, service: str) -> str:
    """The internal network a service shares with its tunnel only."""
    return f"rma-{instance}-pair-{hashlib.sha256(service.encode()).hexdigest()[:12]}"


def volume_name(instance: str, name: str) -> str:
    """`rma<N>-<instance>-<name>`, N the instance's length: unambiguous (`a` + `b-data` and
    `a-b` + `data` are `rma1-a-b-data` and `rma3-a-b-data`)."""
    return f"rma{len(instance)}-{instance}-{name}"


def legacy_volume_name(instance: str, name: str) -> str:
    """The name before 0.8 (`rma-<instance>-<name>`), still used when it exists as this
    instance's own volume (clients/docker_owned.py)."""
    return f"rma-{instance}-{name}"


@dataclass(frozen=True)
class Containment:
    instance: str
    pids_limit: int = DEFAULT_PIDS_LIMIT
    cgroup_parent: str = ""
    adopted: frozenset[str] = frozenset()  # legacy volume names recorded as the agent's own
    existing: frozenset[str] = frozenset()  # this instance's own volumes when it started

    @property
    def network(self) -> str:
        return network_name(self.instance)

    def volume(self, name: str) -> str:
        if name in self.adopted:
            return name
        legacy = legacy_volume_name(self.instance, name)
        return legacy if legacy in self.existing else volume_name(self.instance, name)

    def apply(self, spec: ContainerSpec, tunnelled: frozenset[str] = frozenset()) -> ContainerSpec:
        """`spec` held to the rules; `tunnelled`: the services that have a tunnel."""
        volumes = tuple(VolumeMount(self.volume(v.name), v.path, v.cache) for v in spec.volumes)
        network = self.network
        joins: tuple[tuple[str, str], ...] = ()
        served = spec.labels_dict.get(TUNNEL_FOR)
        if served is not None:
            network = tunnels_network(self.instance)
            joins = ((pair_network(self.instance, served), ""),)
        elif spec.name in tunnelled:
            joins = ((pair_network(self.instance, spec.name), ORIGIN),)
        env = spec.env
        if not spec.gpu:
            env = tuple(sorted({**spec.env_dict, NO_GPU[0]: NO_GPU[1]}.items()))
        return replace(
            spec,
            env=env,
            network=network,
            joins=joins,
            pids_limit=self.pids_limit,
            cgroup_parent=self.cgroup_parent,
            volumes=volumes,
        )

    def apply_all(self, desired: DesiredState) -> DesiredState:
        tunnelled = frozenset(
            served for s in desired.specs if (served := s.labels_dict.get(TUNNEL_FOR))
        )
        return replace(desired, specs=tuple(self.apply(s, tunnelled) for s in desired.specs))
