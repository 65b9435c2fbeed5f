"""What the agent knows about its containers after a pass, in the shapes the heartbeat needs.

Pure: built from the desired state, the listing the pass read, and the pass's outcomes. A worker
is `degraded` only when nothing assigned can serve: every container refused, failed, in conflict
or crash-looping (issue 22). One missing image, one refused spec or one service still starting
beside a working one is no reason — the service coordinator takes a degraded worker out of all
its routing, the working service with it; per-service states go in `services_status`
(contract/services.py). What cannot run here through nobody's fault (`unavailable`: a
placeholder image) counts neither way.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from controller.core.models import (
    HTTP_FROM,
    HTTP_LABEL,
    RUNNING_STATES,
    SERVICE_LABEL,
    ActualContainer,
    DesiredState,
    Hold,
    Refusal,
)
from controller.core.results import ActionOutcome, ExecutionReport

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
    reason: str = ""  # held stopped (paused, yielded): why
    uptime: str = ""  # Docker's words while it runs ("Up 5 minutes")
    ignored_fields: tuple[str, ...] = ()  # spec fields this agent does not know (not run)
    starting_for: int | None = None  # seconds since it started, until its first ready probe
    http_from: str = ""  # why a coordinator's spec counts as HTTP ("catalog": it knew it)
    gpus: tuple[str, ...] = ()  # the GPUs it is placed on (issue 24)

    def as_json(self) -> dict[str, Any]:
        row: dict[str, Any] = {
            "name": self.name,
            "state": self.state,
            "image": self.image,
            "restarts": self.restarts,
            "error": self.error,
        }
        if self.reason:
            row["reason"] = self.reason
        if self.ignored_fields:
            row["ignored_fields"] = list(self.ignored_fields)
        if self.starting_for is not None:
            row["starting_for"] = self.starting_for
        if self.http_from:
            row["http_from"] = self.http_from
        if self.gpus:
            row["gpus"] = list(self.gpus)
        return row


@dataclass(frozen=True)
class AgentStatus:
    containers: tuple[ContainerStatus, ...] = ()
    converged: bool = False
    holds: tuple[Hold, ...] = ()  # the owner's conditions holding containers stopped now

    @property
    def healthy(self) -> bool:
        """Something assigned can serve (or nothing is assigned that could)."""
        counted = [c for c in self.containers if c.state != "unavailable"]
        return not counted or any(c.state not in ACTIONABLE for c in counted)

    @property
    def paused(self) -> bool:
        """Everything is held: the owner paused it, the schedule, the battery, a busy CPU."""
        return any(h.scope == "all" for h in self.holds)

    @property
    def yielded(self) -> tuple[Hold, ...]:
        return tuple(h for h in self.holds if h.state == "yielded")

    @property
    def state(self) -> str:
        """The worker in one word: paused, yielded, degraded, converged or converging."""
        if self.paused:
            return "paused"
        if self.yielded:
            return "yielded"
        if not self.healthy:
            return "degraded"
        return "converged" if self.converged else "converging"


def _state(
    current: ActualContainer | None,
    outcome: ActionOutcome | None,
    hold: Hold | None,
    deferred: bool = False,
) -> tuple[str, str | None]:
    """A desired container's state after the pass (and the error that explains it)."""
    state = current.state if current else ("waiting" if deferred else "missing")
    if hold is not None and (outcome is None or outcome.ok):
        stopped = current is None or current.state not in RUNNING_STATES
        return (hold.state if stopped or outcome is not None else "stopping"), None
    if outcome is None or outcome.skipped:  # skipped: not tried, the agent is shutting down
        return state, None
    if outcome.ok:
        return "running", None
    if outcome.action == "draining":
        return "draining", None  # still running, its URL withdrawn: stopped after the drain
    if outcome.pending or outcome.unavailable:
        return ("unavailable", outcome.error) if outcome.unavailable else ("pulling", None)
    kind = outcome.action if outcome.action in ("conflict", "backoff") else "failed"
    return kind, outcome.error


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
    held = desired.held_by_name()
    rows: list[ContainerStatus] = []
    for spec in desired.specs:
        current, hold = seen.get(spec.name), held.get(spec.name)
        deferred = spec.name in desired.deferred
        state, error = _state(current, outcomes.get(spec.name), hold, deferred)
        labels = spec.labels_dict
        rows.append(
            ContainerStatus(
                spec.name,
                state,
                spec.image,
                restarts.get(spec.name, 0),
                error,
                labels.get(SERVICE_LABEL, spec.name),
                current.health if current and state == "running" else "",
                http=labels.get(HTTP_LABEL) == "true",
                reason=hold.reason if hold is not None else "",
                uptime=current.status if current and state == "running" else "",
                ignored_fields=spec.ignored_fields,
                http_from=labels.get(HTTP_FROM, "") if labels.get(HTTP_LABEL) == "true" else "",
                gpus=spec.gpu_ids if spec.gpu else (),
            )
        )
    rows += [_refused_row(r) for r in desired.refused]
    return AgentStatus(tuple(rows), converged=converged, holds=desired.holds)


def _refused_row(r: Refusal) -> ContainerStatus:
    """A refused entry (`refused`), or one that cannot run here through nobody's fault
    (`unavailable`)."""
    state = "unavailable" if r.unavailable else "refused"
    service = r.name if r.unavailable else ""
    return ContainerStatus(
        r.name, state, "", 0, r.message, service, unknown_service=r.unknown_service
    )
