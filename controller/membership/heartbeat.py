"""The heartbeat: the worker's report every interval (Part 1 fields, Part 2 container states and
the assignment generation it runs). An outage only produces log lines: the desired state is kept,
so running containers are never touched because the coordinator is away. A 404 means the
coordinator forgot this worker: the main thread registers again at once. A token refused three
times in a row (401/403) drops the identity and registers anew. A newer generation in the answer
(Part 2) fetches the assignment now.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

import structlog

from controller.clients.store import Identity
from controller.core.errors import AgentError, CoordinatorRejected, WorkerForgotten
from controller.core.observe import Observer
from controller.membership.api import CoordinatorAPI
from controller.membership.standing import Shared

log = structlog.get_logger(__name__)
TOKEN_REFUSALS = 3  # worker-scoped 401/403 in a row before the identity is dropped


def mark_forgotten(
    shared: Shared, stop: threading.Event, exc: WorkerForgotten, identity: Identity
) -> None:
    """The coordinator forgot `identity` (the one the failed call was made with): the main
    thread registers again at once. A 404 for an identity already replaced is stale (a long poll
    that outlived a re-registration) and changes nothing: it must not register a second time."""
    if stop.is_set():
        return  # shutting down: our own unregister ends the open long poll with a 404
    if shared.standing.identity is not identity:
        return
    if not shared.answered and not shared.forgotten.is_set():
        shared.forgets += 1
        if shared.forgets == 1:
            log.warning(
                "coordinator_forgets_worker",
                worker_id=identity.worker_id,
                error=str(exc),
                action="registering again with growing waits (30 s doubling to 10 min)",
                containers="untouched",
            )
    elif not shared.forgotten.is_set():
        log.warning(
            "worker_forgotten",
            worker_id=identity.worker_id,
            error=str(exc),
            action="registering again",
        )
    shared.forgotten.set()
    shared.wake.set()


class Heartbeater:
    def __init__(
        self,
        client: CoordinatorAPI,
        shared: Shared,
        *,
        report: Callable[[], dict[str, Any]],
        observer: Observer,
        stop: threading.Event,
        fetch_now: Callable[[], None],
    ) -> None:
        self._client = client
        self._shared = shared
        self._report = report
        self._observer = observer
        self._stop = stop
        self._fetch_now = fetch_now
        self._outage = False
        self._refusals = 0  # 401/403 in a row
        self.last_heartbeat_at: float | None = None  # wall clock of the last answered heartbeat
        self.last_error: str | None = None

    def beat(self) -> None:
        standing = self._shared.standing
        identity = standing.identity
        if identity is None:
            return
        body = self._body(identity)
        generation = self._shared.source.generation
        if generation is not None:
            body["assignment_generation"] = generation
        try:
            resp = self._client.heartbeat(standing.heartbeat_path, body, token=identity.token)
        except WorkerForgotten as exc:
            self._observer.heartbeat(False)
            mark_forgotten(self._shared, self._stop, exc, identity)
            return
        except CoordinatorRejected as exc:
            self._observer.heartbeat(False)
            self._rejected(exc)
            return
        except AgentError as exc:
            self._observer.heartbeat(False)
            self.last_error = str(exc)
            if not self._outage:
                log.warning("heartbeat_failed", error=str(exc), containers="untouched")
            self._outage = True
            return
        self._observer.heartbeat(True)
        self._refusals = 0
        if self._shared.forgets:
            log.info("coordinator_remembers_worker", worker_id=identity.worker_id)
        self._shared.answered, self._shared.forgets = True, 0
        self.last_heartbeat_at, self.last_error = time.time(), None
        if self._outage:
            log.info("coordinator_reachable_again", worker_id=identity.worker_id)
        self._outage = False
        hinted = resp.assignment_generation
        if hinted is not None and hinted != generation and identity.assignment_url:
            self._fetch_now()

    def _body(self, identity: Identity) -> dict[str, Any]:
        body = {"worker_id": identity.worker_id, **self._report()}
        if body.get("status") == "paused" and not identity.assignment_url:
            body["status"] = "degraded"  # Part 1 knows two states: this one takes us out of routing
        return body

    def _rejected(self, exc: CoordinatorRejected) -> None:
        """A refused heartbeat is logged; a token refused (401/403) three times in a row means
        this identity is no good any more: drop it and register anew."""
        self.last_error = str(exc)
        if not self._outage:
            log.warning("heartbeat_failed", error=str(exc), containers="untouched")
        self._outage = True
        self._refusals = self._refusals + 1 if exc.status in (401, 403) else 0
        if self._refusals >= TOKEN_REFUSALS:
            log.warning("worker_token_refused", times=self._refusals, action="registering anew")
            self._refusals = 0
            self._shared.drop_identity()
            self._shared.forgotten.set()
            self._shared.wake.set()
