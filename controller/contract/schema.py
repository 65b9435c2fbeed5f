"""Pydantic models for container specs as they arrive from outside (manifest files, coordinator
JSON), and their conversion into the frozen `ContainerSpec` used inside.

Unknown fields are never passed on to Docker, nor dropped silently: each spec lists them
(`ignored_fields`, in status and the heartbeat) and still runs, so a newer coordinator does not
break an older agent. Values that could reach the host in a dangerous way if taken literally (a
volume name that is really a path, a container name that is not a Docker name, labels in the
agent's own namespace or in one that other software acts on) are refused here, and the fields
real services need (shm_size, ulimits, stop_grace_period, entrypoint, working_dir, user, tmpfs,
healthcheck: spec_fields.py) are bounded.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import replace
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from controller.contract.spec_fields import (
    MAX_STOP_GRACE,
    MAX_TMPFS,
    HealthCheckModel,
    ReadinessModel,
    Seconds,
    UlimitModel,
    check_fields,
    check_ulimits,
    ignored_fields,
    ulimit_tuples,
)
from controller.core.limits import MEMORY_PATTERN
from controller.core.models import (
    ALIASES_LABEL,
    GPU_ALL,
    HTTP_LABEL,
    LABEL_PREFIX,
    NAME_RE,
    SERVICE_LABEL,
    ContainerSpec,
    PortMapping,
    Refusal,
    VolumeMount,
)
from controller.core.policy import dangerous_fields
from controller.core.text import has_controls

# Label keys a spec may set: plain names, and the rma.* and OCI image namespaces; never keys that
# other software on the machine acts on (traefik.*, com.docker.*, com.centurylinklabs.*, …).
LABEL_KEY = re.compile(
    r"^(?:[a-z0-9][a-z0-9_-]{0,62}|(?:rma|org\.opencontainers\.image)\.[a-z0-9._-]{1,100})\Z"
)
SERVICE_VALUE = re.compile(r"[a-z0-9][a-z0-9._-]{0,62}")  # the `rma.service` label: a service name
ALIASES_VALUE = re.compile(r"[a-z0-9][a-z0-9_-]{0,62}(?:,[a-z0-9][a-z0-9_-]{0,62}){0,3}")
MAX_LABELS, MAX_LABEL_VALUE = 32, 1024
MAX_GPU_MEMORY = 1024 * 1024  # MiB: a terabyte of GPU memory, more than any card has


class PortModel(BaseModel):
    model_config = ConfigDict(extra="ignore")
    container: int = Field(ge=1, le=65535)
    host: int | None = Field(default=None, ge=1, le=65535)
    protocol: Literal["tcp", "udp"] = "tcp"


class VolumeModel(BaseModel):
    model_config = ConfigDict(extra="ignore")
    name: str
    path: str
    cache: bool = False  # a model cache: measured, held to --model-cache-max (issue 24)

    @field_validator("name")
    @classmethod
    def _named_volume_only(cls, v: str) -> str:
        if not NAME_RE.match(v):
            raise ValueError(f"volume {v!r} is not a named volume (host paths are never mounted)")
        return v

    @field_validator("path")
    @classmethod
    def _absolute(cls, v: str) -> str:
        if not v.startswith("/") or ".." in v.split("/"):
            raise ValueError(f"mount path {v!r} must be absolute and without '..'")
        return v


class ContainerSpecModel(BaseModel):
    """A ContainerSpec on the wire: Part 2 of the coordinator contract, a superset of Part 1."""

    model_config = ConfigDict(extra="ignore")
    name: str
    image: str = Field(min_length=1, max_length=512, pattern=r"^[^\s]+$")
    port: int | None = Field(default=None, ge=1, le=65535)
    ports: list[PortModel] = []
    env: dict[str, str | int | float | bool] = {}
    command: list[str] | str | None = None
    gpu: bool | int = False
    volumes: list[VolumeModel] = []
    memory_limit: str | None = Field(default=None, pattern=MEMORY_PATTERN)
    cpus: float | None = Field(default=None, gt=0, le=1024)
    restart: Literal["no", "always", "unless-stopped", "on-failure"] = "unless-stopped"
    labels: dict[str, str] = {}
    http: bool = False  # Part 4: it speaks HTTP on its first port (the `rma.http` label)
    shm_size: str | None = Field(default=None, pattern=MEMORY_PATTERN)
    ulimits: dict[str, int | UlimitModel] = Field(default={}, max_length=3)
    stop_grace_period: Seconds | None = Field(default=None, ge=0, le=MAX_STOP_GRACE)
    entrypoint: list[str] | str | None = None
    working_dir: str | None = Field(default=None, max_length=256)
    user: str | None = Field(default=None, max_length=65)
    tmpfs: dict[str, str] = Field(default={}, max_length=MAX_TMPFS)
    healthcheck: HealthCheckModel | None = None
    readiness: ReadinessModel | None = None
    gpu_memory_min: int = Field(default=0, ge=0, le=MAX_GPU_MEMORY)  # MiB (issue 24)
    cuda_min: str = Field(default="", pattern=r"^(\d{1,2}\.\d{1,2})?$")  # "12.4" (issue 24)
    image_rocm: str = Field(default="", max_length=512, pattern=r"^[^\s]*$")  # on AMD GPUs

    @model_validator(mode="after")
    def _real_service_fields(self) -> ContainerSpecModel:
        check_fields(self.shm_size, self.tmpfs, self.memory_limit, self.working_dir, self.user)
        check_ulimits(self.ulimits, gpu=self.gpu is not False and self.gpu != 0)
        return self

    @model_validator(mode="before")
    @classmethod
    def _never_accepted(cls, raw: Any) -> Any:
        if isinstance(raw, dict):
            found = dangerous_fields(raw)
            if found:
                raise ValueError(
                    "refused, the agent never runs containers with: " + ", ".join(found)
                )
        return raw

    @field_validator("name")
    @classmethod
    def _docker_name(cls, v: str) -> str:
        if not NAME_RE.match(v):
            raise ValueError(f"{v!r} is not a valid container name")
        return v

    @field_validator("gpu")
    @classmethod
    def _gpu_count(cls, v: bool | int) -> bool | int:
        if not isinstance(v, bool) and v < 0:
            raise ValueError("gpu must be true, false or a count >= 0")
        return v

    @field_validator("labels")
    @classmethod
    def _allowed_labels(cls, v: dict[str, str]) -> dict[str, str]:
        reserved = [k for k in v if k.startswith(LABEL_PREFIX)]
        if reserved:
            raise ValueError(f"labels {reserved} use the agent's reserved prefix {LABEL_PREFIX}")
        other = sorted(k for k in v if not LABEL_KEY.match(k))
        if other:  # traefik.*, com.docker.*, watchtower…: labels other software acts on
            raise ValueError(
                f"labels {other[:5]} are not allowed (plain names, rma.* and "
                "org.opencontainers.image.* only)"
            )
        if len(v) > MAX_LABELS or any(len(x) > MAX_LABEL_VALUE for x in v.values()):
            raise ValueError(f"at most {MAX_LABELS} labels of {MAX_LABEL_VALUE} characters")
        if any(has_controls(x) for x in v.values()):
            raise ValueError("label values may not hold control characters")
        service = v.get(SERVICE_LABEL)
        if service is not None and not SERVICE_VALUE.fullmatch(service):
            raise ValueError(f"{SERVICE_LABEL} must be a service name (a-z, 0-9, '.', '_', '-')")
        aliases = v.get(ALIASES_LABEL)
        if aliases is not None and not ALIASES_VALUE.fullmatch(aliases):
            raise ValueError(f"{ALIASES_LABEL} must be up to 4 plain names, comma-separated")
        return v

    def to_spec(self, publish_address: str = "") -> ContainerSpec:
        return replace(self._basic(publish_address), **self._real_service())

    def _real_service(self) -> dict[str, Any]:
        return {
            "shm_size": self.shm_size.lower() if self.shm_size else None,
            "ulimits": ulimit_tuples(self.ulimits),
            "stop_grace": self.stop_grace_period,
            "entrypoint": _words(self.entrypoint),
            "working_dir": self.working_dir,
            "user": self.user,
            "tmpfs": tuple(sorted((k, v.lower()) for k, v in self.tmpfs.items())),
            "healthcheck": self.healthcheck.to_check() if self.healthcheck else None,
            "readiness": self.readiness.to_readiness() if self.readiness else None,
            "gpu_memory_min": self.gpu_memory_min,
            "cuda_min": self.cuda_min,
            "image_rocm": self.image_rocm,
        }

    def _basic(self, publish_address: str) -> ContainerSpec:
        return ContainerSpec(
            name=self.name,
            image=self.image,
            ports=self._ports(publish_address),
            env=tuple(sorted((k, _env_value(v)) for k, v in self.env.items())),
            command=self._command(),
            gpu=GPU_ALL if self.gpu is True else int(self.gpu),
            volumes=tuple(VolumeMount(v.name, v.path, v.cache) for v in self.volumes),
            memory_limit=self.memory_limit.lower() if self.memory_limit else None,
            cpus=self.cpus,
            restart=self.restart,
            labels=tuple(sorted({**self.labels, **self._http_label()}.items())),
        )

    def _http_label(self) -> dict[str, str]:
        return {HTTP_LABEL: "true"} if self.http else {}

    def _ports(self, host_ip: str) -> tuple[PortMapping, ...]:
        found = [
            PortMapping(p.container, p.host or p.container, p.protocol, host_ip) for p in self.ports
        ]
        if self.port is not None and not any(p.container == self.port for p in found):
            found.insert(0, PortMapping(self.port, self.port, "tcp", host_ip))
        return tuple(sorted(set(found), key=lambda p: (p.container, p.protocol, p.host)))

    def _command(self) -> tuple[str, ...] | None:
        return _words(self.command)


def _words(value: list[str] | str | None) -> tuple[str, ...] | None:
    """A command or entrypoint: a list as it is, a string shell-split."""
    if value is None:
        return None
    return tuple(shlex.split(value)) if isinstance(value, str) else tuple(value)


def _env_value(v: str | int | float | bool) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    return str(v)


SpecError = Refusal
KNOWN_FIELDS = frozenset(ContainerSpecModel.model_fields)


def parse_specs(
    entries: Any, publish_address: str = ""
) -> tuple[list[ContainerSpec], list[SpecError]]:
    """Convert a list of raw entries; bad entries become SpecErrors, the rest are kept."""
    if not isinstance(entries, list):
        return [], [SpecError("*", "expected a list of container specs")]
    specs: list[ContainerSpec] = []
    errors: list[SpecError] = []
    seen: set[str] = set()
    for index, raw in enumerate(entries):
        label = raw.get("name", f"#{index}") if isinstance(raw, dict) else f"#{index}"
        try:
            spec = ContainerSpecModel.model_validate(raw).to_spec(publish_address)
        except ValidationError as exc:
            errors.append(SpecError(str(label), one_line(exc)))
            continue
        spec = replace(spec, ignored_fields=ignored_fields(raw, KNOWN_FIELDS))
        if spec.name in seen:
            errors.append(SpecError(spec.name, "duplicate container name"))
            continue
        seen.add(spec.name)
        specs.append(spec)
    return specs, errors


def one_line(exc: ValidationError) -> str:
    """A pydantic error as one human line: `field: message; field: message`."""
    parts = []
    for err in exc.errors():
        where = ".".join(str(p) for p in err["loc"]) or "value"
        parts.append(f"{where}: {err['msg']}")
    return "; ".join(parts)
