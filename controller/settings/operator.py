"""How this agent runs (the `operator` group): where its desired state comes from (a coordinator
or a manifest), its instance name and state directory, its logs, its local endpoint and page, the
engine it talks to.
"""

from __future__ import annotations

import ipaddress
from pathlib import Path
from typing import Literal

from pydantic import AliasChoices, field_validator
from pydantic_settings import BaseSettings

from controller.core.models import NAME_RE
from controller.settings.fields import OFF, default_state_dir, parse_host_port, setting

DEFAULT_COORDINATOR = "http://localhost:8080"


class OperatorSettings(BaseSettings):
    dashboard: Literal["on", "read-only", "off"] = setting(
        "on",
        "the owner's page at / on the health endpoint: on (pause and resume from it), read-only, "
        "off. Anyone who can open the endpoint on this machine can use the page: read-only on a "
        "machine shared with people who should not pause it",
    )
    coordinator_url: str | None = setting(
        None,
        f"coordinator base URL ({DEFAULT_COORDINATOR} when neither this nor --manifest is given)",
        "(none)",
        validation_alias=AliasChoices("coordinator_url", "COORDINATOR_URL", "RMA_COORDINATOR_URL"),
    )
    manifest: Path | None = setting(
        None,
        "run the containers listed in this YAML/JSON file instead of asking a coordinator",
        "(none)",
    )
    catalog: Path | None = setting(
        None,
        "service catalog YAML replacing the shipped one (which container runs each RMA service)",
        "(the shipped manifests/catalog.yaml)",
    )
    advertise_ip: str | None = setting(
        None,
        "address the pool reaches this machine at: sent as ip_address and used in the "
        "services' URLs (you forward the ports; set RMA_PUBLISH_ADDRESS to match)",
        "(none: not sent)",
    )
    state_dir: Path = setting(
        default_state_dir,
        "where the agent keeps its identity, "
        "last assignment, pulled-images record, endpoint address and lock",
        "/var/lib/rma-worker (root), else ~/.local/state/rma-worker",
    )
    instance: str = setting(
        "default",
        "name of this agent instance; it owns only containers labelled with it",
    )
    once: bool = setting(
        False,
        "converge once, leave the containers running, exit 0 when converged and 1 when not",
        "off",
    )
    once_timeout: float = setting(600.0, "with --once: give up after this many seconds", gt=0)
    log_format: Literal["json", "console", "auto"] = setting(
        "auto", "json | console (auto: json unless stdout is a terminal)"
    )
    log_level: Literal["debug", "info", "warning", "error"] = setting("info", "lowest level logged")
    health_addr: str = setting(
        "127.0.0.1:9321",
        "host:port of the /healthz, /readyz, /metrics and /status endpoint, or 'off'",
    )
    ca_bundle: Path | None = setting(
        None, "CA bundle that verifies the coordinator's TLS certificate", "system CAs"
    )
    allow_insecure_coordinator: bool = setting(
        False,
        "send the worker token over plain http:// to a coordinator that is "
        "not on this machine (default: refused; use https)",
        "off",
    )
    docker_host: str | None = setting(None, "Docker engine URL", "DOCKER_HOST or the local socket")

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

    @property
    def effective_coordinator(self) -> str:
        return (self.coordinator_url or DEFAULT_COORDINATOR).rstrip("/")

    @property
    def health_address(self) -> tuple[str, int] | None:
        """(host, port) of the endpoint, or None when it is off."""
        return (
            None if self.health_addr.strip().lower() in OFF else parse_host_port(self.health_addr)
        )
