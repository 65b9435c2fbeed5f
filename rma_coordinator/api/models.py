"""Request bodies as the coordinator accepts them (unknown fields allowed, as the deployed
coordinator does)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class Capabilities(BaseModel):
    model_config = ConfigDict(extra="allow")
    cpu_cores: int | float | str
    ram: str | float | int


class RegisterBody(BaseModel):
    model_config = ConfigDict(extra="allow")
    capabilities: Capabilities
    ip_address: str | None = None
    previous_worker_id: str | None = None


class HeartbeatBody(BaseModel):
    model_config = ConfigDict(extra="allow")
    worker_id: str
    status: str = "healthy"
    current_load: float | None = None
    available_memory: str | None = None
    assignment_generation: int | None = None
    containers: list[dict[str, Any]] | None = None


class AssignmentBody(BaseModel):
    containers: list[dict[str, Any]]
    tier: int | None = Field(default=None, ge=1, le=3)
