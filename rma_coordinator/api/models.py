"""Request bodies as the coordinator accepts them (unknown fields allowed, as the deployed
coordinator does)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class Capabilities(BaseModel):
    model_config = ConfigDict(extra="allow")
    cpu_cores: int | float | str
    ram: str | float | int


class Announced(BaseModel):
    """A service a worker says it runs (Parts 3 and 4)."""

    model_config = ConfigDict(extra="ignore")
    name: str = Field(min_length=1, max_length=100)
    service_url: str | None = Field(default=None, max_length=2048)
    port: int | None = None
    health_endpoint: str | None = Field(default=None, max_length=256)
    version: str | None = Field(default=None, max_length=128)


class RegisterBody(BaseModel):
    model_config = ConfigDict(extra="allow")
    capabilities: Capabilities
    ip_address: str | None = None
    previous_worker_id: str | None = None
    tunnel_url: str | None = None
    containers: list[Announced] | None = Field(default=None, max_length=64)
    public_key: Any = None  # Part 5: judged by the ledger (a bad one is ignored, not a 422)
    display_name: Any = None


class EdgeRegisterBody(BaseModel):
    """The edge coordinator reads every key as optional; `services` is the older name list."""

    model_config = ConfigDict(extra="allow")
    worker_id: str | None = Field(default=None, max_length=256)
    capabilities: dict[str, Any] = {}
    tunnel_url: str | None = None
    ip_address: str | None = None
    containers: list[Announced] | None = Field(default=None, max_length=64)
    services: list[str] | None = Field(default=None, max_length=64)


class LocalRegisterBody(EdgeRegisterBody):
    """The local coordinator REQUIRES a worker id and a tunnel URL (422 without them); it picks
    the tier from flags, not from the capability strings."""

    worker_id: str = Field(min_length=1, max_length=256)
    tunnel_url: str
    has_gpu: bool = False
    has_storage: bool = False
    has_edge: bool = False
    has_public_ip: bool = False
    worker_type: str | None = None


class HeartbeatBody(BaseModel):
    model_config = ConfigDict(extra="allow")
    worker_id: str
    status: str = "healthy"
    current_load: float | None = None
    available_memory: str | None = None
    assignment_generation: int | None = None
    containers: list[dict[str, Any]] | None = None
    services_status: dict[str, str] | None = None
    gpu_utilization: float | None = None


class AssignmentBody(BaseModel):
    containers: list[dict[str, Any]]
    tier: int | None = Field(default=None, ge=1, le=4)
