"""The worker API of the coordinator as the agent speaks it (the RMA coordinator API contract,
Parts 1 and 2; see docs/architecture.md): the paths, the answers it accepts (validated here, at
the edge: every field is bounded, unknown ones ignored) and the heartbeat body it sends.

The reference coordinator (rma_coordinator/) implements the same document independently; the
contract tests (tests/contract/) check the two against each other, never by sharing this code.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from controller.contract.services import Announcement, services_status
from controller.core.machine import format_gb
from controller.core.status import AgentStatus

WORKER_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:@-]{0,255}")
TOKEN = re.compile(r"[\x21-\x7e]{1,1024}")
REGISTER_PATH = "/api/worker/register"
HEARTBEAT_PATH = "/api/worker/heartbeat"  # the default; the coordinator may name another


def unregister_path(worker_id: str) -> str:
    return f"/api/worker/unregister/{worker_id}"


def receipts_path(worker_id: str) -> str:
    """Part 5 (docs/worker-api.md): where the worker's signed receipts are delivered."""
    return f"/api/worker/{worker_id}/receipts"


def credits_path(worker_id: str) -> str:
    """Part 5: what the coordinator credited the worker with."""
    return f"/api/credits/{worker_id}"


class RegisterResponse(BaseModel):
    """Every dialect's answer (Part 3): a missing assignment key stays None ("not said")."""

    model_config = ConfigDict(extra="ignore")
    worker_id: str | None = Field(default=None, min_length=1, max_length=256)
    tier: int = Field(ge=1, le=4)
    assigned_containers: list[Any] | None = None
    assigned_services: list[Any] | None = None
    status: str | None = Field(default=None, max_length=64)
    heartbeat_url: str = HEARTBEAT_PATH
    heartbeat_interval: float = Field(default=30.0, gt=0, le=3600)
    coordinator_url: str | None = None
    token: str | None = Field(default=None, max_length=1024)
    assignment_url: str | None = None
    contributor_key: str | None = Field(default=None, max_length=256)  # Part 5: priority

    @field_validator("worker_id")
    @classmethod
    def _plain_id(cls, v: str | None) -> str | None:
        """An id is shown to the owner and put in URLs: a plain name, or refused whole."""
        if v is not None and not WORKER_ID.fullmatch(v):
            raise ValueError("worker_id must be letters, digits and . _ : @ - (no controls)")
        return v

    @field_validator("token")
    @classmethod
    def _plain_token(cls, v: str | None) -> str | None:
        if v is not None and not TOKEN.fullmatch(v):
            raise ValueError("token must be printable ASCII without spaces")
        return v


class AssignmentResponse(BaseModel):
    model_config = ConfigDict(extra="ignore")
    generation: int
    tier: int = Field(ge=1, le=4)
    containers: list[Any]  # required: a missing list is a malformed answer, never "run nothing"
    etag: str | None = None


class ReceiptsResponse(BaseModel):
    """Part 5: the highest sequence number of the worker's chain the coordinator accepted."""

    model_config = ConfigDict(extra="ignore")
    highest_accepted: int = Field(ge=0)


class Credited(BaseModel):
    model_config = ConfigDict(extra="ignore")
    today: float = 0.0
    week: float = 0.0
    all_time: float = 0.0


class CreditsResponse(BaseModel):
    """Part 5: a worker's credits as its coordinator counts them (shown to the owner only)."""

    model_config = ConfigDict(extra="ignore")
    name: str = Field(default="", max_length=100)
    rank: int | None = Field(default=None, ge=1)
    credits: Credited = Credited()
    held: bool = False
    flags: list[str] = Field(default_factory=list, max_length=20)

    @field_validator("flags")
    @classmethod
    def _short(cls, v: list[str]) -> list[str]:
        return [f[:200] for f in v]


class HeartbeatResponse(BaseModel):
    model_config = ConfigDict(extra="ignore")
    status: str = "ok"
    assignment_generation: int | None = None


def heartbeat_fields(
    status: AgentStatus,
    load: float,
    available_bytes: int,
    *,
    announced: Announcement | None = None,
    gpu_utilization: float | None = None,
    unreachable: dict[str, str] | None = None,
) -> dict[str, Any]:
    """The heartbeat body, less worker_id: Part 1 fields; Part 2's containers, each with the
    URL it is served at (Part 4); Part 3's services_status and GPU use (absent when unknown).
    `status` is `paused` while the owner holds everything stopped (the heartbeater says
    `degraded` instead to a coordinator without Part 2, which knows only those two)."""
    body: dict[str, Any] = {
        "status": "paused" if status.paused else "healthy" if status.healthy else "degraded",
        "current_load": round(min(max(load, 0.0), 1.0), 3),
        "available_memory": format_gb(available_bytes),
        "containers": _rows(status, announced),
        "services_status": services_status(status),
    }
    unknown = [c.name for c in status.containers if c.state == "refused" and c.unknown_service]
    if unknown:
        body["unknown_services"] = unknown
    if unreachable:
        body["not_reachable"] = unreachable
    if gpu_utilization is not None:
        body["gpu_utilization"] = round(min(max(gpu_utilization, 0.0), 100.0), 1)
    return body | held_fields(status)


def _rows(status: AgentStatus, announced: Announcement | None) -> list[dict[str, Any]]:
    """Part 2's container rows, each announced one with its service's URL (Part 4)."""
    urls = {s.container: s for s in (announced.services if announced else ())}
    rows = []
    for c in status.containers:
        row = c.as_json()
        service = urls.get(c.name)
        if service is not None:
            row |= {
                "service": service.name,
                "service_url": service.service_url,
                "port": service.port,
                "health_endpoint": service.health_endpoint,
            }
        rows.append(row)
    return rows


def held_fields(status: AgentStatus) -> dict[str, Any]:
    """Why the owner holds containers stopped (extra keys): `paused` (everything: the owner's
    pause, the schedule, the battery, a busy CPU) and `yielded` (each GPU given back)."""
    out: dict[str, Any] = {}
    whole = [h for h in status.holds if h.scope == "all"]
    if whole:
        out["paused"] = {"reason": whole[0].reason, "since": _iso(whole[0].since)}
    yielded = [
        {"gpu": h.devices[0] if h.devices else "all", "since": _iso(h.since), "reason": h.reason}
        for h in status.yielded
    ]
    if yielded:
        out["yielded"] = yielded
    return out


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="seconds")
