"""The agent's configuration: every option is an environment variable (`RMA_` prefix; the seed's
`COORDINATOR_URL` is honoured as is) and a command-line flag that overrides it. The CLI builds its
flags from the fields below, so the two cannot drift apart.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

from pydantic import AliasChoices, Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from controller.models import NAME_RE

DEFAULT_COORDINATOR = "http://localhost:8080"


def default_state_dir() -> Path:
    if os.geteuid() == 0:
        return Path("/var/lib/rma-worker")
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "rma-worker"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="RMA_", extra="ignore", populate_by_name=True)

    coordinator_url: str | None = Field(
        default=None,
        validation_alias=AliasChoices("coordinator_url", "COORDINATOR_URL", "RMA_COORDINATOR_URL"),
        description=f"coordinator base URL (default {DEFAULT_COORDINATOR} when no --manifest)",
    )
    manifest: Path | None = Field(
        default=None, description="run the containers listed in this YAML/JSON file instead "
        "of asking a coordinator")
    state_dir: Path = Field(default_factory=default_state_dir,
                            description="where the agent keeps its identity and lock")
    heartbeat_interval: float | None = Field(
        default=None, gt=0, description="seconds between heartbeats (overrides the coordinator)")
    long_poll_wait: float = Field(
        default=55.0, ge=0, le=60, description="seconds the coordinator may hold an assignment "
        "long poll open (0: no long poll; changes then arrive with the next heartbeat)")
    log_format: Literal["json", "console", "auto"] = Field(
        default="auto", description="json | console (auto: json unless stdout is a terminal)")
    log_level: Literal["debug", "info", "warning", "error"] = Field(
        default="info", description="lowest level logged")
    once: bool = Field(default=False, description="converge once, leave the containers "
                       "running, exit 0 when converged and 1 when not")
    once_timeout: float = Field(default=600.0, gt=0,
                                description="with --once: give up after this many seconds")
    instance: str = Field(default="default", description="name of this agent instance; it "
                          "owns only containers labelled with it")
    resync_interval: float = Field(default=30.0, gt=0,
                                   description="seconds between full safety-net passes")
    stop_grace: float = Field(default=10.0, ge=0, description="seconds a container gets to "
                              "stop on SIGTERM before it is killed")
    concurrency: int = Field(default=8, ge=1, le=64,
                             description="containers created/started/removed at once")
    publish_address: str = Field(default="", description="host address that published "
                                 "ports bind to (empty: all interfaces)")
    image_refresh_interval: float = Field(
        default=6 * 3600.0, ge=0,
        description="seconds between background refreshes of a mutable image tag (0: never)")
    allowed_registries: str = Field(
        default="docker.io,ghcr.io", description="comma-separated registries a coordinator's "
        "images may come from ('*': any)")
    require_digest: bool = Field(default=False, description="refuse coordinator images that "
                                 "are not pinned by digest")
    min_free_disk: float = Field(default=5.0, ge=0, description="GiB that must stay free on "
                                 "Docker's disk: pulls are refused under it")
    image_gc_high: float = Field(default=85.0, ge=0, le=100, description="disk use (%%) above "
                                 "which images the agent pulled and no longer uses are removed")
    image_gc_low: float = Field(default=80.0, ge=0, le=100, description="disk use (%%) image "
                                "removal brings the disk back under")
    max_cpus: float | None = Field(default=None, gt=0, description="at most this many CPUs "
                                   "for each of the agent's containers (also what is offered)")
    max_memory: str | None = Field(default=None, pattern=r"^[0-9]+(\.[0-9]+)?[bkmgBKMG]?$",
                                   description="at most this much memory for each container, "
                                   "e.g. 8g (also what is offered)")
    gpus: str | None = Field(default=None, description="comma-separated GPU indices or UUIDs "
                             "the containers may use (default: all; empty: none)")
    health_addr: str = Field(default="127.0.0.1:9321", description="host:port of the health, "
                             "metrics and status endpoint, or 'off'")
    ca_bundle: Path | None = Field(default=None, description="CA bundle to verify the "
                                   "coordinator's TLS certificate (default: system CAs)")
    docker_host: str | None = Field(default=None, description="Docker engine URL (default: "
                                    "DOCKER_HOST or the local socket)")

    @field_validator("instance")
    @classmethod
    def _instance_name(cls, v: str) -> str:
        if not NAME_RE.match(v):
            raise ValueError("instance must be letters, digits, '_', '.', '-'")
        return v

    @property
    def effective_coordinator(self) -> str:
        return (self.coordinator_url or DEFAULT_COORDINATOR).rstrip("/")


# CLI flag names that differ from the field name.
FLAG_NAMES = {"coordinator_url": "--coordinator"}


def flag_for(field: str) -> str:
    return FLAG_NAMES.get(field, "--" + field.replace("_", "-"))


def env_for(field: str) -> str:
    return "COORDINATOR_URL" if field == "coordinator_url" else "RMA_" + field.upper()
