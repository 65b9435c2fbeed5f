"""What the agent knows about its containers after a pass, in the shapes the heartbeat needs.

Pure: built from the desired state, the listing the pass read, and the pass's outcomes. A worker
is `degraded` only when something the owner or the coordinator should act on is wrong: an entry
refused, an action that failed, a name taken by a foreign container, a crash loop. A container
still being pulled or started is not a reason (the service coordinator takes a degraded worker
out of all its routing); per-service health goes in `services_status` (contract/services.py).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from controller.core.models import HTTP_LABEL, SERVICE_LABEL, ActualContainer, DesiredState
from controller.core.results import ExecutionReport

ACTIONABLE = frozenset({"refused", "failed", "conflict", "backoff"})


@dataclass(frozen=True)
class ContainerStatus:
    name: str
    state: str  # running, exited, missing, pulling, refused, conflict, failed…
    image: str
    restarts: int = 0
    error: str | None = None
    service: str = ""  # the RMA service it serves (its rma.service label, else its name)
    health: str = ""  # Docker's health state, when the image checks one
    unknown_service: bool = False
    http: bool = False  # it speaks HTTP (a tunnel can carry it)

    def as_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "state": self.state,
            "image": self.image,
            "restarts": self.restarts,
            "error": self.error,
        }


@dataclass(frozen=True)
class AgentStatus:
    containers: tuple[ContainerStatus, ...] = ()
    converged: bool = False

    @property
    def healthy(self) -> bool:
        return not any(c.state in ACTIONABLE or c.error for c in self.containers)


def build_status(
    desired: DesiredState,
    actual: list[ActualContainer],
    report: ExecutionReport,
    restarts: Mapping[str, int],
    *,
    converged: bool,
) -> AgentStatus:
    seen = {c.name: c for c in actual if c.managed}
    outcomes = {o.name: o for o in report.outcomes}
    rows: list[ContainerStatus] = []
    for spec in desired.specs:
        outcome = outcomes.get(spec.name)
        current = seen.get(spec.name)
        state = current.state if current else "missing"
        error = None
        if outcome is not None and outcome.ok:
            state = "running"
        elif outcome is not None and outcome.action == "draining":
            state = "draining"  # still running, its URL withdrawn: stopped after the drain
        elif outcome is not None and outcome.pending:
            state = "pulling"
        elif outcome is not None:
            state = outcome.action if outcome.action in ("conflict", "backoff") else "failed"
            error = outcome.error
        service = spec.labels_dict.get(SERVICE_LABEL, spec.name)
        health = current.health if current and state == "running" else ""
        count = restarts.get(spec.name, 0)
        http = spec.labels_dict.get(HTTP_LABEL) == "true"
        rows.append(
            ContainerStatus(spec.name, state, spec.image, count, error, service, health, http=http)
        )
    rows += [
        ContainerStatus(r.name, "refused", "", 0, r.message, unknown_service=r.unknown_service)
        for r in desired.refused
    ]
    return AgentStatus(tuple(rows), converged=converged)
