"""Frozen value types shared by every layer: the desired container spec, what the engine reports
about a managed container, and the ownership labels that tie the two together.

A spec's hash is computed from its canonical form with default-valued fields left out, so adding a
new optional field in a later version does not change the hash of existing specs (and does not
recreate every container on an agent upgrade).
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from typing import Any

LABEL_PREFIX = "org.rma.worker"
LABEL_MANAGED = f"{LABEL_PREFIX}.managed"
LABEL_INSTANCE = f"{LABEL_PREFIX}.instance"
LABEL_NAME = f"{LABEL_PREFIX}.name"
LABEL_SPEC_HASH = f"{LABEL_PREFIX}.spec-hash"
LABEL_VOLUME = f"{LABEL_PREFIX}.volume"  # on a volume: the spec's name for it
LABEL_CACHE = f"{LABEL_PREFIX}.cache"  # on a volume: a model cache (`cleanup --caches`)
LABEL_STOP_GRACE = f"{LABEL_PREFIX}.stop-grace"  # seconds it is given to stop (its spec's)
# A spec's own labels that say which RMA service it is and where its health check answers (the
# catalog sets them; contract/services.py reads them for what the agent announces).
SERVICE_LABEL = "rma.service"
HEALTH_LABEL = "rma.health"
HTTP_LABEL = "rma.http"  # "true": the service speaks HTTP (it may get a tunnel)
HTTP_FROM = "rma.http-from"  # why a coordinator's spec counts as HTTP: catalog, or probe
ALIASES_LABEL = "rma.aliases"  # the catalog's: more names on the agent's network (ollama, neo4j)

NAME_RE = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,127}\Z")
GPU_ALL = -1


@dataclass(frozen=True)
class PortMapping:
    """One published port: `host_ip:host` on the machine forwards to `container` inside."""

    container: int
    host: int
    protocol: str = "tcp"
    host_ip: str = ""


@dataclass(frozen=True)
class VolumeMount:
    """A named Docker volume mounted at `path`. Never a host path. `cache`: a model cache
    (Hugging Face's, Ollama's): measured and held to --model-cache-max (issue 24, item 8)."""

    name: str
    path: str
    cache: bool = False


@dataclass(frozen=True)
class HealthCheck:
    """Docker's own health check (`HEALTHCHECK`): `test` as Docker takes it (`CMD …` or
    `CMD-SHELL …`), durations in seconds."""

    test: tuple[str, ...]
    interval: float = 30.0
    timeout: float = 30.0
    retries: int = 3
    start_period: float = 0.0


@dataclass(frozen=True)
class Warmup:
    """Done once a service answers and before it counts as ready: a POST of `body` (JSON) to
    `path` that must answer 2xx within `timeout` seconds — Ollama pulling its model through its
    own API (`/api/pull`), so the first user does not wait for a download."""

    path: str
    body: str = ""
    timeout: float = 1800.0


@dataclass(frozen=True)
class Readiness:
    """When a service counts as ready (the agent's own probe, engine/readiness.py): an HTTP GET
    of `path` on `port` (None: the spec's first port) answering a status in `expect_status`
    (empty: 200-399) whose body holds `contains`. Seconds: `start_period` to become ready before
    a restart, `period` between probes once ready (1 s while starting), `timeout` per probe;
    `failure_threshold` failures in a row make a ready service unhealthy."""

    path: str
    port: int | None = None
    expect_status: tuple[int, ...] = ()
    contains: str = ""
    start_period: float = 60.0
    period: float = 10.0
    timeout: float = 2.0
    failure_threshold: int = 3
    warmup: Warmup | None = None


@dataclass(frozen=True)
class ContainerSpec:
    """One container the agent should keep running, exactly as the agent will create it."""

    name: str
    image: str
    ports: tuple[PortMapping, ...] = ()
    env: tuple[tuple[str, str], ...] = ()
    command: tuple[str, ...] | None = None
    gpu: int = 0  # 0: none, GPU_ALL: every GPU, n > 0: that many
    volumes: tuple[VolumeMount, ...] = ()
    memory_limit: str | None = None
    cpus: float | None = None
    restart: str = "unless-stopped"
    labels: tuple[tuple[str, str], ...] = ()
    gpu_ids: tuple[str, ...] = ()  # the devices allowed by the contributor's caps (else any)
    network: str = ""  # the agent's own bridge network (set by containment, never by a spec)
    pids_limit: int = 0  # 0: the engine's default (containment sets one)
    cgroup_parent: str = ""  # the agent's own parent cgroup (containment), never a spec's
    # Internal networks joined after create, as (network, alias): a service and its tunnel share
    # one of their own (containment), never a spec's.
    joins: tuple[tuple[str, str], ...] = ()
    # What real services need (issue 22): each bounded where it arrives (contract/schema.py).
    shm_size: str | None = None  # /dev/shm, a memory size
    ulimits: tuple[tuple[str, int, int], ...] = ()  # (memlock|nofile|stack, soft, hard)
    stop_grace: float | None = None  # seconds to stop before it is killed (else the agent's)
    entrypoint: tuple[str, ...] | None = None
    working_dir: str | None = None
    user: str | None = None  # uid[:gid] or a name
    tmpfs: tuple[tuple[str, str], ...] = ()  # (path, size)
    healthcheck: HealthCheck | None = None
    readiness: Readiness | None = None
    gpu_memory_min: int = 0  # MiB of GPU memory it needs (issue 24: placed where it fits)
    cuda_min: str = ""  # the CUDA version it needs of the driver ("12.4"; "": its image says)
    image_rocm: str = ""  # the image to run on an AMD GPU instead ("": none: unavailable there)
    # An AMD GPU's device nodes and groups, mapped by the agent (never a spec's: refused).
    devices: tuple[str, ...] = ()
    group_add: tuple[str, ...] = ()
    # The wire fields this agent does not know (reported, never run): not part of the hash.
    ignored_fields: tuple[str, ...] = ()

    @property
    def env_dict(self) -> dict[str, str]:
        return dict(self.env)

    @property
    def labels_dict(self) -> dict[str, str]:
        return dict(self.labels)

    @property
    def aliases(self) -> tuple[str, ...]:
        """Its names on the agent's network: its own, then the catalog's (`rma.aliases`)."""
        extra = self.labels_dict.get(ALIASES_LABEL, "")
        return (self.name, *(a for a in extra.split(",") if a))

    def canonical(self) -> dict[str, Any]:
        """The spec as plain data, default-valued fields omitted, in a stable order."""
        data: dict[str, Any] = {"name": self.name, "image": self.image}
        defaults = _DEFAULTS
        for key in (
            "ports",
            "env",
            "command",
            "gpu",
            "volumes",
            "memory_limit",
            "cpus",
            "restart",
            "labels",
            "gpu_ids",
            "network",
            "pids_limit",
            "cgroup_parent",
            "joins",
            "shm_size",
            "ulimits",
            "stop_grace",
            "entrypoint",
            "working_dir",
            "user",
            "tmpfs",
            "healthcheck",
            "readiness",
            "gpu_memory_min",
            "cuda_min",
            "image_rocm",
            "devices",
            "group_add",
        ):
            value = getattr(self, key)
            if value != getattr(defaults, key):
                data[key] = _plain(value)
        return data

    def spec_hash(self) -> str:
        blob = json.dumps(self.canonical(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(blob.encode()).hexdigest()[:24]


_DEFAULTS = ContainerSpec(name="_", image="_")


def _plain(value: Any) -> Any:
    if isinstance(value, VolumeMount) and not value.cache:  # as before `cache` existed
        return {"name": value.name, "path": value.path}
    if isinstance(value, PortMapping | VolumeMount | HealthCheck | Readiness | Warmup):
        return {k: _plain(getattr(value, k)) for k in value.__dataclass_fields__}
    if isinstance(value, tuple):
        return [_plain(v) for v in value]
    return value


@dataclass(frozen=True)
class Refusal:
    """An entry of the desired state that was not accepted, with a message a person can act on."""

    name: str
    message: str
    unknown_service: bool = False  # a service name the catalog does not know (not a spec)
    unavailable: bool = False  # cannot run here, nobody's fault (a placeholder image): not degraded


@dataclass(frozen=True)
class Hold:
    """A reason the owner's machine holds some of the agent's containers stopped (kept, not
    removed): `scope` "all" or "gpu" (the containers with a GPU; with `devices`, only those
    that may use one of them). Wall-clock times; `until`: when it ends by itself. An `urgent`
    hold (the GPU given back) stops at once, without draining."""

    condition: str  # pause, schedule, battery, busy, gpu-busy, gpu-temp
    scope: str  # all, gpu
    reason: str
    since: float
    until: float | None = None
    urgent: bool = False
    devices: tuple[str, ...] = ()  # scope gpu: these GPUs (index and UUID); () every one

    @property
    def state(self) -> str:
        """What a container it holds shows: `yielded` (the GPU given back) or `paused`."""
        return "yielded" if self.condition.startswith("gpu-") else "paused"


@dataclass(frozen=True)
class Held:
    """One desired container held stopped, and the hold that stops it."""

    name: str
    hold: Hold


@dataclass(frozen=True)
class DesiredState:
    """The set of containers this machine should run, keyed by unique name, plus the entries
    that were refused (reported, never run), the holds active now and the containers they hold
    stopped (core/holds.py), and the ones `deferred`: not created yet (a tunnel whose service
    has never run), left as they are when they exist."""

    specs: tuple[ContainerSpec, ...] = ()
    refused: tuple[Refusal, ...] = ()
    holds: tuple[Hold, ...] = ()
    held: tuple[Held, ...] = ()
    deferred: frozenset[str] = frozenset()

    def __post_init__(self) -> None:
        names = [s.name for s in self.specs]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"duplicate container names in desired state: {', '.join(dupes)}")

    def by_name(self) -> dict[str, ContainerSpec]:
        return {s.name: s for s in self.specs}

    def held_by_name(self) -> dict[str, Hold]:
        return {h.name: h.hold for h in self.held}


# Container states as the Docker engine reports them.
RUNNING_STATES = frozenset({"running", "restarting"})
STARTABLE_STATES = frozenset({"created", "exited", "paused"})


@dataclass(frozen=True)
class ActualContainer:
    """What the engine says about one container. `managed` is False for a foreign container."""

    id: str
    name: str
    state: str
    spec_hash: str | None = None
    managed: bool = True
    image: str = ""
    health: str = ""  # Docker's health state (healthy, unhealthy, starting) when it checks one
    status: str = ""  # Docker's own words ("Up 5 minutes"), for people
    stop_grace: float | None = None  # its own grace to stop (the spec's, from its label)
    addresses: tuple[tuple[str, str], ...] = ()  # (network, its IP there) while it runs


def owner_labels(instance: str) -> dict[str, str]:
    """The labels that mark a container as owned by the agent instance `instance`."""
    return {LABEL_MANAGED: "true", LABEL_INSTANCE: instance}
