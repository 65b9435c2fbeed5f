"""The networks, volumes and parent cgroup the agent owns on the Docker engine, as
balena-supervisor owns an app's.

A network or volume is the agent's only when it carries this instance's ownership labels (and, for
a volume, the default `local` driver with no options: a `local` volume with bind options is a host
directory in disguise). The agent creates them itself, with those labels, before a container needs
them; one that exists without them is never used: the container that asked is refused (reported;
the rest runs). A legacy volume the agent recorded as its own (state dir) is used as it is.
The parent cgroup (clients/cgroups.py) is prepared before the first container that needs it, once
the engine has said which cgroup driver it uses.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import docker
import structlog

from controller.clients import cgroups, firewall
from controller.core.containment import network_name
from controller.core.errors import NotFoundError, PermanentError
from controller.core.limits import Limits
from controller.core.models import (
    LABEL_CACHE,
    LABEL_INSTANCE,
    LABEL_MANAGED,
    LABEL_VOLUME,
    owner_labels,
)
from controller.core.runtime import OwnedVolume

log = structlog.get_logger(__name__)
T = TypeVar("T")
Call = Callable[[Callable[[], Any]], Any]


@dataclass(frozen=True)
class Holding:
    """What this instance's containers are held to beyond their own specs: the volumes it
    adopted from an earlier version, the totals its parent cgroup enforces (None: not ours to
    write), and whether its network is cut off from the LAN (--isolate-lan)."""

    adopted_volumes: frozenset[str] = frozenset()
    totals: Limits | None = None
    isolate_lan: bool = False


class OwnedResources:
    """Ensures, lists and removes the agent's network and volumes through `call` (the runtime's
    retrying error boundary)."""

    def __init__(
        self,
        instance: str,
        client: Callable[[], docker.DockerClient],
        call: Call,
        totals: Limits | None = None,
        isolate: bool = False,
    ):
        self._instance = instance
        self._client = client
        self._call = call
        self._lock = threading.Lock()
        self._endpoints = threading.Lock()  # one network endpoint released at a time
        self.totals = totals
        self.isolate = isolate
        self._isolated: str | None = None  # the network id the rules were made for
        self._ensured: set[str] = set()  # the networks checked (or made)
        self._guarded: dict[str, str] = {}  # internal networks whose bridge is isolated: id
        self._cgroup: tuple[str, str] | None = None  # (driver, parent) once prepared

    # -- parent cgroup ------------------------------------------------------------------------

    def cgroup_parent(self) -> str:
        """The engine's name for the agent's parent cgroup, prepared (limited) on first use; ""
        when it cannot be made here (not root, say): the caps then bound each container only,
        and the log says so once."""
        with self._lock:
            if self._cgroup is None:
                self._cgroup = self._prepare_cgroup()
            return self._cgroup[1]

    def _prepare_cgroup(self) -> tuple[str, str]:
        if self.totals is None:
            return ("", "")
        info = self._call(lambda: self._client().api.info())  # noqa: PLW0108 (lazy)
        driver, version = str(info.get("CgroupDriver")), str(info.get("CgroupVersion"))
        try:
            made = cgroups.prepare(self._instance, self.totals, driver, version)
        except PermanentError as exc:
            log.error("caps_not_totals", error=str(exc), effect="each container is capped alone")
            return (driver, "")
        log.info("caps_as_totals", parent=made.parent, how=made.how)
        return (driver, made.parent)

    def release_cgroup(self) -> None:
        with self._lock:
            if self._cgroup is not None:
                cgroups.release(self._instance, self._cgroup[0])
                self._cgroup = None

    def _owned(self, labels: dict[str, str] | None) -> bool:
        labels = labels or {}
        return all(labels.get(k) == v for k, v in owner_labels(self._instance).items())

    # -- network ------------------------------------------------------------------------------

    def ensure_network(self, name: str, *, again: bool = False, internal: bool = False) -> None:
        """An agent bridge: adopted when it carries our labels, created when missing (`internal`:
        with no way out, a service and its tunnel's own); with `isolate`, the --isolate-lan
        rules follow the services' network (clients/firewall.py). Checked once, then `again`
        when a create found it gone."""
        if name in self._ensured and not again:
            return
        main = network_name(self._instance)
        if internal and self.isolate:  # its bridge is guarded with the chains made for main
            self.ensure_network(main)
        with self._lock:
            api = self._client().api
            try:
                found = self._call(lambda: api.inspect_network(name))
            except NotFoundError:
                labels = owner_labels(self._instance)
                self._call(
                    lambda: api.create_network(
                        name, driver="bridge", labels=labels, internal=internal
                    )
                )
                found = self._call(lambda: api.inspect_network(name))
            if not self._owned(found.get("Labels")) or found.get("Driver") != "bridge":
                raise PermanentError(
                    f"network {name!r} exists and is not this agent's (no ownership labels or "
                    "not a bridge); it is left alone and no container is started on it"
                )
            if bool(found.get("Internal")) != internal:
                raise PermanentError(
                    f"network {name!r} is not {'internal' if internal else 'open'}"
                )
            if self.isolate and name == main and found.get("Id") != self._isolated:
                self._isolate(found)
            if self.isolate and internal and self._guarded.get(name) != found.get("Id"):
                firewall.guard_bridge(self._instance, _bridge(found))
                self._guarded[name] = str(found.get("Id"))
            self._ensured.add(name)

    def _isolate(self, network: dict[str, Any]) -> None:
        configs = (network.get("IPAM") or {}).get("Config") or []
        subnets = [str(c["Subnet"]) for c in configs if c.get("Subnet")]
        bridge = _bridge(network)
        firewall.isolate(self._instance, subnets, bridge)
        self._isolated = network.get("Id")
        # the rules were made anew: internal bridges are guarded again when next ensured
        self._ensured -= set(self._guarded)
        self._guarded.clear()
        log.info("lan_isolated", network=network.get("Name"), subnets=subnets, bridge=bridge)

    def join_network(self, container_id: str, name: str, aliases: Sequence[str]) -> None:
        """Connect a container (stopped by a hold, which left the network) again before it
        starts, under its name; one already connected is fine."""
        with self._endpoints:
            try:
                self._call(
                    lambda: self._client().api.connect_container_to_network(
                        container_id, name, aliases=list(aliases)
                    )
                )
            except PermanentError as exc:
                if "already exists" not in str(exc):
                    raise

    def join_all(self, container_id: str, joins: Collection[tuple[str, str]], name: str) -> None:
        """The internal networks a service shares with its tunnel (core/containment.py), each
        made when missing, joined under its alias (or the container's name) before it starts."""
        for network, alias in joins:
            self.ensure_network(network, internal=True, again=True)
            self.join_network(container_id, network, [alias or name])

    def leave_network(self, container_id: str, name: str) -> None:
        """Disconnect a container from the agent's network, one at a time (see
        DockerRuntime.stop); one not connected, or already gone, is fine."""
        with self._endpoints:
            try:
                self._call(
                    lambda: self._client().api.disconnect_container_from_network(
                        container_id, name, force=True
                    )
                )
            except PermanentError as exc:  # NotFound included: nothing left to release
                log.debug("network_not_left", container=container_id[:12], reason=str(exc))

    def remove_network(self, name: str, *, any_instance: bool = False) -> None:
        """Remove an agent network (this instance's, or with `any_instance` any agent
        instance's, for `cleanup`) and, always, the --isolate-lan rules left for it."""
        api = self._client().api
        instance = self._instance
        try:
            found = self._call(lambda: api.inspect_network(name))
            labels = found.get("Labels") or {}
            if any_instance and labels.get(LABEL_MANAGED) == "true":
                instance = labels.get(LABEL_INSTANCE, instance)
            if labels.get(LABEL_MANAGED) == "true" and labels.get(LABEL_INSTANCE) == instance:
                self._call(lambda: api.remove_network(name))
        except NotFoundError:
            pass
        firewall.remove(instance)
        if instance == self._instance:
            self._isolated = None
            self._ensured.discard(name)

    def prune_networks(self, keep: Collection[str]) -> None:
        """Remove this instance's networks that no desired container uses (a tunnel's pair
        network after its service left); one still in use stays (Docker refuses)."""
        for name in self.networks():
            if name in keep:
                continue
            try:
                self._call(lambda n=name: self._client().api.remove_network(n))  # type: ignore[misc]
            except PermanentError as exc:  # NotFound included
                log.debug("network_kept", network=name, reason=str(exc))
            self._ensured.discard(name)

    def networks(self, all_instances: bool = False) -> list[str]:
        """The agent's networks (this instance's, or every instance's)."""
        answer = self._call(
            lambda: self._client().api.networks(filters=self._filters(all_instances))
        )
        return sorted(str(n["Name"]) for n in answer or [])

    # -- volumes ------------------------------------------------------------------------------

    def ensure_volume(
        self, name: str, adopted: Collection[str] = (), *, cache: bool = False
    ) -> None:
        """Create `name` with our labels (`cache`: a model cache, `cleanup --caches` empties
        it), or check that the existing one is ours."""
        api = self._client().api
        try:
            found = self._call(lambda: api.inspect_volume(name))
        except NotFoundError:
            labels = {**owner_labels(self._instance), LABEL_VOLUME: name}
            if cache:
                labels[LABEL_CACHE] = "true"
            self._call(lambda: api.create_volume(name, driver="local", labels=labels))
            return
        if name in adopted:
            return
        problem = _foreign(found, self._owned(found.get("Labels")))
        if problem:
            raise PermanentError(f"volume {name!r} {problem}; it is never mounted")

    def check_adoptable(self, name: str) -> None:
        """A legacy volume the owner declares the agent's (`adopt-volume`): it must exist, with
        the local driver and no options (never a bind mount in disguise)."""
        found = self._call(lambda: self._client().api.inspect_volume(name))
        problem = _foreign(found, owned=True)
        if problem:
            raise PermanentError(f"volume {name!r} {problem}; not adopted")

    def list_volumes(self, all_instances: bool = False) -> list[OwnedVolume]:
        filters = self._filters(all_instances)
        answer = self._call(lambda: self._client().api.volumes(filters=filters))
        rows = (answer or {}).get("Volumes") or []
        return [
            OwnedVolume(
                str(v["Name"]),
                str((v.get("Labels") or {}).get(LABEL_INSTANCE, "")),
                str(v.get("CreatedAt", "")),
                (v.get("Labels") or {}).get(LABEL_CACHE) == "true",
            )
            for v in rows
        ]

    def volume_path(self, name: str) -> str:
        """Where the engine keeps the volume's files (its Mountpoint on this machine)."""
        found = self._call(lambda: self._client().api.inspect_volume(name))
        return str(found.get("Mountpoint") or "")

    def remove_volume(self, name: str) -> None:
        try:
            self._call(lambda: self._client().api.remove_volume(name))
        except NotFoundError:
            return

    def _filters(self, all_instances: bool) -> dict[str, list[str]]:
        label = f"{LABEL_MANAGED}=true"
        return {
            "label": [label] if all_instances else [label, f"{LABEL_INSTANCE}={self._instance}"]
        }


def _bridge(network: dict[str, Any]) -> str:
    options = network.get("Options") or {}
    return str(options.get("com.docker.network.bridge.name") or f"br-{network['Id'][:12]}")


def _foreign(found: dict[str, Any], owned: bool) -> str:
    if not owned:
        return "exists and was not created by this agent (no ownership labels)"
    if found.get("Driver") != "local":
        return f"uses the {found.get('Driver')!r} driver, not 'local'"
    if found.get("Options"):
        return "has driver options (a bind mount in disguise)"
    return ""
