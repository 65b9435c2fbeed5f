"""Answers for the health endpoint, built from the snapshots the loop, lifecycle and puller
publish: liveness, readiness, and the JSON that `rma-worker status` renders.

Alive: the last successful pass is recent (3 resync intervals, at least 90 s; before the first
pass, counted from start). Ready: the worker is registered (or its manifest loaded) and the last
pass found nothing to do.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from controller import __version__
from controller.contract.services import not_reachable
from controller.core.observe import PullProgress

if TYPE_CHECKING:  # only named: a manifest-mode agent never loads the membership
    from controller.engine.images import ImagePuller
    from controller.engine.loop import Reconciler
    from controller.membership.lifecycle import Lifecycle


@dataclass(frozen=True)
class Facts:
    """What status says about the agent itself: its instance, where its desired state comes
    from (a coordinator or a manifest), its resync interval and its ingress mode."""

    instance: str
    coordinator: str
    manifest: str | None
    resync_interval: float
    ingress: str = "none"


class Snapshot:
    def __init__(
        self,
        agent: Reconciler,
        lifecycle: Lifecycle | None,
        puller: ImagePuller,
        facts: Facts,
        *,
        kept_volumes: Callable[[], tuple[str, ...]] = tuple,
        owner: Callable[[], dict[str, Any]] = dict,
    ) -> None:
        self._owner = owner  # the owner's conditions, GPUs and energy receipt
        self._ingress = facts.ingress
        self._kept_volumes = kept_volumes
        self._instance = facts.instance
        self._coordinator = facts.coordinator
        self._manifest = facts.manifest
        resync_interval = facts.resync_interval
        self._agent = agent
        self._lifecycle = lifecycle
        self._puller = puller
        self._started = time.monotonic()
        self._stale_after = max(3 * resync_interval, 90.0)

    def alive(self) -> tuple[bool, dict[str, Any]]:
        last = self._agent.last_success_at or self._started
        age = time.monotonic() - last
        return age < self._stale_after, {
            "last_success_age": round(age, 1),
            "stale_after": self._stale_after,
        }

    def ready(self) -> tuple[bool, dict[str, Any]]:
        registered = self._lifecycle is None or self._lifecycle.identity is not None
        converged = self._agent.status().converged
        return registered and converged, {"registered": registered, "converged": converged}

    def status(self) -> dict[str, Any]:
        agent_status = self._agent.status()
        life = self._lifecycle
        identity = life.identity if life else None
        return {
            "version": __version__,
            "instance": self._instance,
            "mode": "coordinator" if life else "manifest",
            "coordinator": self._coordinator if life else None,
            "manifest": self._manifest,
            "worker_id": identity.worker_id if identity else None,
            "tier": life.tier if life else None,
            "dialect": life.dialect if life else None,
            "last_heartbeat": _iso(life.last_heartbeat_at) if life else None,
            "heartbeat_error": life.last_error if life else None,
            "coordinator_notice": life.notice if life else None,
            "ingress": self._ingress,
            "reachable": life.announced() if life else [],
            "not_reachable": (
                not_reachable(agent_status, life.announcement(), self._ingress) if life else {}
            ),
            "state": agent_status.state,
            "holds": sorted({h.condition for h in agent_status.holds}),  # as the last pass saw
            "converged": agent_status.converged,
            "healthy": agent_status.healthy,
            "containers": [
                c.as_json() | {"service": c.service, "health": c.health, "uptime": c.uptime}
                for c in agent_status.containers
            ],
            "unused_volumes": list(self._kept_volumes()),
            "pulls": [_pull(p) for p in self._puller.progress()],
        } | self._owner()


def _pull(p: PullProgress) -> dict[str, Any]:
    return {
        "image": p.image,
        "downloaded": p.downloaded,
        "total": p.total,
        "percent": p.percent,
        "rate": p.rate,
    }


def _iso(ts: float | None) -> str | None:
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="seconds") if ts else None
