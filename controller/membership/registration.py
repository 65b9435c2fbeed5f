"""Registration and identity: reuse the stored identity when it is for the same coordinator (no
ghost registrations) and run the stored assignment at once; otherwise register, retrying with
capped, jittered backoff until the coordinator answers; unregister on a clean stop.
"""

from __future__ import annotations

import random
import threading
from collections.abc import Callable
from typing import Any

import structlog

from controller.clients.store import Identity, StoredAssignment
from controller.contract.api import RegisterResponse
from controller.core.backoff import Delays
from controller.core.errors import AgentError, CoordinatorUnreachable
from controller.membership.api import CoordinatorAPI
from controller.membership.standing import Shared

log = structlog.get_logger(__name__)


class Registrar:
    def __init__(
        self,
        client: CoordinatorAPI,
        shared: Shared,
        *,
        capabilities: Callable[[], dict[str, Any]],
        stop: threading.Event,
        delays: Delays,
    ) -> None:
        self._client = client
        self._shared = shared
        self._capabilities = capabilities
        self._stop = stop
        self._delays = delays

    def connect(self, heartbeat: Callable[[], None]) -> None:
        """Resume the stored identity (one heartbeat to check it) or register anew."""
        store = self._shared.store
        stored_id = store.load_identity()
        if stored_id is not None and stored_id.coordinator_url != self._client.base_url:
            log.info(
                "coordinator_changed",
                old=stored_id.coordinator_url,
                new=self._client.base_url,
                action="registering anew",
            )
            stored_id = None
        stored = store.load_assignment() if stored_id else None
        if stored_id is not None and stored is None and not stored_id.assignment_url:
            # A Part 1 coordinator gives the assignment only at registration: register anew,
            # but first drop the old id so that it does not linger as a ghost.
            self.unregister()
            stored_id = None
        if stored_id is None:
            self.register_until_done()
            return
        self._shared.adopt(stored_id)
        if stored is not None:
            self._shared.apply(stored, persist=False)
            log.info(
                "resumed",
                worker_id=stored_id.worker_id,
                tier=stored.tier,
                containers=len(stored.containers),
                note="running the last assignment",
            )
        heartbeat()
        if self._shared.forgotten.is_set():
            self.register_until_done()

    def register_until_done(self) -> None:
        attempt = 0
        while not self._stop.is_set():
            attempt += 1
            delay = self._delays.delay(attempt, random.random())
            previous = self._shared.standing.identity or self._shared.store.load_identity()
            try:
                answer = self._client.register(
                    self._body(previous), token=previous.token if previous else None
                )
                self._on_registered(answer)
                return
            except CoordinatorUnreachable as exc:
                log.warning(
                    "coordinator_unreachable",
                    error=str(exc),
                    retry_in=round(delay, 1),
                    containers="untouched",
                )
            except AgentError as exc:
                log.error("registration_failed", error=str(exc), retry_in=round(delay, 1))
            self._shared.wait(self._stop, delay)

    def _body(self, previous: Identity | None) -> dict[str, Any]:
        body: dict[str, Any] = {"capabilities": self._capabilities()}
        if previous is not None:
            # Extension: a coordinator may give the id back to whoever shows its old token
            # (sent as the bearer token of this request).
            body["previous_worker_id"] = previous.worker_id
        return body

    def _on_registered(self, resp: RegisterResponse) -> None:
        identity = Identity(
            resp.worker_id,
            self._client.base_url,
            resp.token,
            resp.assignment_url,
            resp.heartbeat_url,
            resp.heartbeat_interval,
        )
        self._shared.store.save_identity(identity)
        self._shared.forgotten.clear()
        self._shared.adopt(identity, fresh=True)
        self._shared.apply(StoredAssignment(resp.tier, resp.assigned_containers))
        log.info(
            "registered",
            worker_id=resp.worker_id,
            tier=resp.tier,
            containers=len(resp.assigned_containers),
            heartbeat_interval=self._shared.standing.interval,
            part2=bool(resp.assignment_url),
        )

    def unregister(self, timeout: float = 5.0) -> bool:
        """Tell the coordinator this worker is gone; forget the identity when it heard us."""
        store = self._shared.store
        identity = self._shared.standing.identity or store.load_identity()
        if identity is None:
            return True
        try:
            self._client.unregister(identity.worker_id, token=identity.token, timeout=timeout)
        except AgentError as exc:
            log.warning(
                "unregister_failed",
                worker_id=identity.worker_id,
                error=str(exc),
                note="identity kept; the next start reuses it",
            )
            return False
        store.forget_identity()
        store.forget_assignment()
        log.info("unregistered", worker_id=identity.worker_id)
        return True
