"""The worker API of the coordinator as the agent speaks it (the RMA coordinator API contract,
Parts 1 and 2; see docs/architecture.md): the paths, the answers it accepts (validated here, at
the edge: every field is bounded, unknown ones ignored) and the heartbeat body it sends.

The reference coordinator (rma_coordinator/) implements the same document independently; the
contract tests (tests/contract/) check the two against each other, never by sharing this code.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from controller.core.machine import format_gb
from controller.core.status import AgentStatus

REGISTER_PATH = "/api/worker/register"
HEARTBEAT_PATH = "/api/worker/heartbeat"  # the default; the coordinator may name another


def unregister_path(worker_id: str) -> str:
    return f"/api/worker/unregister/{worker_id}"


class RegisterResponse(BaseModel):
    model_config = ConfigDict(extra="ignore")
    worker_id: str = Field(min_length=1, max_length=256)
    tier: int = Field(ge=1, le=3)
    assigned_containers: list[Any] = []
    heartbeat_url: str = HEARTBEAT_PATH
    heartbeat_interval: float = Field(default=30.0, gt=0, le=3600)
    coordinator_url: str | None = None
    token: str | None = None
    assignment_url: str | None = None


class AssignmentResponse(BaseModel):
    model_config = ConfigDict(extra="ignore")
    generation: int
    tier: int = Field(ge=1, le=3)
    containers: list[Any] = []
    etag: str | None = None


class HeartbeatResponse(BaseModel):
    model_config = ConfigDict(extra="ignore")
    status: str = "ok"
    assignment_generation: int | None = None


def heartbeat_fields(status: AgentStatus, load: float, available_bytes: int) -> dict[str, Any]:
    """The heartbeat body, less worker_id: Part 1 fields, then Part 2's containers."""
    return {
        "status": "healthy" if status.healthy else "degraded",
        "current_load": round(min(max(load, 0.0), 1.0), 3),
        "available_memory": format_gb(available_bytes),
        "containers": [c.as_json() for c in status.containers],
    }
