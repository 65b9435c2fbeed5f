"""What the agent knows about its containers after a pass, in the shapes the heartbeat needs.

Pure: built from the desired state, the listing the pass read, and the pass's outcomes. A worker
is `healthy` when every desired container is running as specified and nothing was refused or
failed; otherwise `degraded`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from controller.core.models import ActualContainer, DesiredState
from controller.core.results import ExecutionReport


@dataclass(frozen=True)
class ContainerStatus:
    name: str
    state: str  # running, exited, missing, pulling, refused, conflict, failed…
    image: str
    restarts: int = 0
    error: str | None = None

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
        return self.converged and all(
            c.state == "running" and c.error is None for c in self.containers
        )


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
        elif outcome is not None and outcome.pending:
            state = "pulling"
        elif outcome is not None:
            state = outcome.action if outcome.action in ("conflict", "backoff") else "failed"
            error = outcome.error
        rows.append(
            ContainerStatus(spec.name, state, spec.image, restarts.get(spec.name, 0), error)
        )
    rows += [ContainerStatus(r.name, "refused", "", 0, r.message) for r in desired.refused]
    return AgentStatus(tuple(rows), converged=converged)
