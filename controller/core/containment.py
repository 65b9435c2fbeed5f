"""What every container the agent runs is held to, whatever its spec asked for (pure).

Balena prefixes an app's volumes and networks with the app id; kubelet puts every pod under its
own cgroup. The same here: each container joins the agent's own bridge network `rma-<instance>`
(never the default bridge, so it cannot reach the volunteer's own containers there), has a pids
limit, runs under the agent's parent cgroup when one is set, and mounts only volumes named
`rma-<instance>-<name>`, which the agent creates itself (clients/docker_volumes.py). A legacy
unprefixed volume is used as is only when the agent recorded it as its own (`adopted`).

These values are part of the spec, hence of its hash: a change recreates the containers.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from controller.core.models import ContainerSpec, DesiredState, VolumeMount

DEFAULT_PIDS_LIMIT = 1024


def network_name(instance: str) -> str:
    return f"rma-{instance}"


def volume_name(instance: str, name: str) -> str:
    return f"rma-{instance}-{name}"


@dataclass(frozen=True)
class Containment:
    instance: str
    pids_limit: int = DEFAULT_PIDS_LIMIT
    cgroup_parent: str = ""
    adopted: frozenset[str] = frozenset()  # legacy volume names recorded as the agent's own

    @property
    def network(self) -> str:
        return network_name(self.instance)

    def volume(self, name: str) -> str:
        return name if name in self.adopted else volume_name(self.instance, name)

    def apply(self, spec: ContainerSpec) -> ContainerSpec:
        volumes = tuple(VolumeMount(self.volume(v.name), v.path) for v in spec.volumes)
        return replace(
            spec,
            network=self.network,
            pids_limit=self.pids_limit,
            cgroup_parent=self.cgroup_parent,
            volumes=volumes,
        )

    def apply_all(self, desired: DesiredState) -> DesiredState:
        return replace(desired, specs=tuple(self.apply(s) for s in desired.specs))
