"""The agent's configuration: every option is an environment variable (`RMA_` prefix; the seed's
`COORDINATOR_URL` is honoured as is) and a command-line flag that overrides it. The CLI builds its
flags and the README's settings table (`make settings-table`) from the fields below, so the three
cannot drift apart. Fields are grouped by who sets them: the contributor (what the volunteer
lends), the operator (how this agent runs) and tuning (timings few need to touch).

This module sits between the command line and the composition root (`app`): nothing below `app`
sees Settings; every part gets plain values. Cross-field rules are checked here, so a bad
combination is a configuration error (exit 2) before anything starts.
"""

from __future__ import annotations

import ipaddress
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

from pydantic import AliasChoices, field_validator, model_validator
from pydantic_settings import SettingsConfigDict

from controller.core.addresses import loopback
from controller.core.limits import MEMORY_PATTERN
from controller.core.models import NAME_RE
from controller.settings_fields import OFF, ContainmentSettings, default_state_dir
from controller.settings_fields import setting as _f
from controller.settings_ingress import IngressSettings
from controller.settings_owner import OwnerSettings

__all__ = ["GROUPS", "Settings", "env_for", "flag_for", "group_of", "parse_host_port"]

DEFAULT_COORDINATOR = "http://localhost:8080"
GROUPS = ("contributor", "operator", "tuning")


class Settings(ContainmentSettings, IngressSettings, OwnerSettings):
    model_config = SettingsConfigDict(env_prefix="RMA_", extra="ignore", populate_by_name=True)

    # -- operator: how this agent runs ---------------------------------------------------------
    coordinator_url: str | None = _f(
        None,
        "operator",
        f"coordinator base URL ({DEFAULT_COORDINATOR} when neither this nor --manifest is given)",
        "(none)",
        validation_alias=AliasChoices("coordinator_url", "COORDINATOR_URL", "RMA_COORDINATOR_URL"),
    )
    manifest: Path | None = _f(
        None,
        "operator",
        "run the containers listed in this YAML/JSON file instead of asking a coordinator",
        "(none)",
    )
    catalog: Path | None = _f(
        None,
        "operator",
        "service catalog YAML replacing the shipped one (which container runs each RMA service)",
        "(the shipped manifests/catalog.yaml)",
    )
    advertise_ip: str | None = _f(
        None,
        "operator",
        "address the pool reaches this machine at: sent as ip_address and used in the "
        "services' URLs (you forward the ports; set RMA_PUBLISH_ADDRESS to match)",
        "(none: not sent)",
    )
    state_dir: Path = _f(
        default_state_dir,
        "operator",
        "where the agent keeps its identity, "
        "last assignment, pulled-images record, endpoint address and lock",
        "/var/lib/rma-worker (root), else ~/.local/state/rma-worker",
    )
    instance: str = _f(
        "default",
        "operator",
        "name of this agent instance; it owns only containers labelled with it",
    )
    once: bool = _f(
        False,
        "operator",
        "converge once, leave the containers running, exit 0 when converged and 1 when not",
        "off",
    )
    once_timeout: float = _f(
        600.0, "operator", "with --once: give up after this many seconds", gt=0
    )
    log_format: Literal["json", "console", "auto"] = _f(
        "auto", "operator", "json | console (auto: json unless stdout is a terminal)"
    )
    log_level: Literal["debug", "info", "warning", "error"] = _f(
        "info", "operator", "lowest level logged"
    )
    health_addr: str = _f(
        "127.0.0.1:9321",
        "operator",
        "host:port of the /healthz, /readyz, /metrics and /status endpoint, or 'off'",
    )
    ca_bundle: Path | None = _f(
        None, "operator", "CA bundle that verifies the coordinator's TLS certificate", "system CAs"
    )
    allow_insecure_coordinator: bool = _f(
        False,
        "operator",
        "send the worker token over plain http:// to a coordinator that is "
        "not on this machine (default: refused; use https)",
        "off",
    )
    docker_host: str | None = _f(
        None, "operator", "Docker engine URL", "DOCKER_HOST or the local socket"
    )

    # -- contributor: what the volunteer lends -------------------------------------------------
    max_cpus: float | None = _f(
        None,
        "contributor",
        "at most this many CPUs for each of the agent's containers (also what is offered)",
        "(no cap)",
        gt=0,
    )
    max_memory: str | None = _f(
        None,
        "contributor",
        "at most this much memory for each container, e.g. 8g (also what is offered)",
        "(no cap)",
        pattern=MEMORY_PATTERN,
    )
    gpus: str | None = _f(
        None,
        "contributor",
        "comma-separated GPU indices or UUIDs the containers may use (empty: none)",
        "(all)",
    )
    allowed_registries: str = _f(
        "docker.io,ghcr.io",
        "contributor",
        "comma-separated registries a coordinator's images may come from ('*': any)",
    )
    require_digest: bool = _f(
        False,
        "contributor",
        "refuse coordinator images that are not pinned by @sha256: digest",
        "off",
    )
    min_free_disk: float = _f(
        5.0,
        "contributor",
        "GiB that must stay free on Docker's disk: pulls are refused under it",
        ge=0,
    )
    pull_stall_timeout: float = _f(
        120.0,
        "tuning",
        "seconds a pull may go without a byte downloaded or extracted before it is aborted "
        "(`pull_stalled`) and tried again with back-off",
        gt=0,
    )
    image_gc_high: float = _f(
        85.0,
        "contributor",
        "disk use (%) above which images the agent pulled and no longer uses are removed",
        ge=0,
        le=100,
    )
    image_gc_low: float = _f(
        80.0,
        "contributor",
        "disk use (%) that image removal brings the disk back under (at most --image-gc-high)",
        ge=0,
        le=100,
    )

    # -- tuning --------------------------------------------------------------------------------
    heartbeat_interval: float | None = _f(
        None,
        "tuning",
        "seconds between heartbeats (overrides the coordinator's)",
        "(the coordinator's)",
        gt=0,
    )
    long_poll_wait: float = _f(
        55.0,
        "tuning",
        "seconds the coordinator may hold an assignment "
        "long poll open (0: no long poll; changes then arrive with the "
        "next heartbeat)",
        ge=0,
        le=60,
    )
    resync_interval: float = _f(30.0, "tuning", "seconds between full safety-net passes", gt=0)
    stop_grace: float = _f(
        10.0, "tuning", "seconds a container gets to stop before it is killed", ge=0
    )
    concurrency: int = _f(8, "tuning", "containers created/started/removed at once", ge=1, le=64)
    image_refresh_interval: float = _f(
        6 * 3600.0,
        "tuning",
        "seconds between background refreshes of a mutable image tag (0: never)",
        ge=0,
    )

    @field_validator("instance")
    @classmethod
    def _instance_name(cls, v: str) -> str:
        if not NAME_RE.match(v):
            raise ValueError("instance must be letters, digits, '_', '.', '-'")
        return v

    @field_validator("advertise_ip")
    @classmethod
    def _an_address(cls, v: str | None) -> str | None:
        if v:
            ipaddress.ip_address(v)  # ValueError: not an IP address
        return v or None

    @field_validator("health_addr")
    @classmethod
    def _health_addr(cls, v: str) -> str:
        if v.strip().lower() not in OFF:
            parse_host_port(v)
        return v

    @model_validator(mode="after")
    def _image_gc_marks(self) -> Settings:
        if self.image_gc_low > self.image_gc_high:
            raise ValueError(
                f"image_gc_low ({self.image_gc_low:g}) must not be above "
                f"image_gc_high ({self.image_gc_high:g})"
            )
        return self

    @model_validator(mode="after")
    def _url_needs_an_address(self) -> Settings:
        if self.ingress == "url" and not (self.advertise_url or self.advertise_ip):
            raise ValueError("--ingress url needs --advertise-url (or --advertise-ip)")
        return self

    @property
    def ingress_mode(self) -> str:
        """`auto` resolved: a tunnel for a coordinator elsewhere, none for one on this machine
        and in manifest mode."""
        if self.ingress != "auto":
            return self.ingress
        if self.manifest is not None:
            return "none"
        host = urlsplit(self.effective_coordinator).hostname or ""
        return "none" if loopback(host) else "tunnel"

    @property
    def effective_coordinator(self) -> str:
        return (self.coordinator_url or DEFAULT_COORDINATOR).rstrip("/")

    @property
    def health_address(self) -> tuple[str, int] | None:
        """(host, port) of the endpoint, or None when it is off."""
        return (
            None if self.health_addr.strip().lower() in OFF else parse_host_port(self.health_addr)
        )


def parse_host_port(addr: str) -> tuple[str, int]:
    """'host:port' (host may be empty: 127.0.0.1; IPv6 in brackets) -> (host, port)."""
    host, sep, port = addr.strip().rpartition(":")
    if not sep or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ValueError(f"{addr!r} is not host:port (e.g. 127.0.0.1:9321), nor 'off'")
    return host.strip("[]") or "127.0.0.1", int(port)


# CLI flag names that differ from the field name.
FLAG_NAMES = {"coordinator_url": "--coordinator"}


def flag_for(field: str) -> str:
    return FLAG_NAMES.get(field, "--" + field.replace("_", "-"))


def env_for(field: str) -> str:
    return "COORDINATOR_URL" if field == "coordinator_url" else "RMA_" + field.upper()


def group_of(field: str) -> str:
    extra = Settings.model_fields[field].json_schema_extra
    return str(extra.get("group", "operator")) if isinstance(extra, dict) else "operator"
