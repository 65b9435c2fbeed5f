"""Registration and identity: reuse the stored identity when it is for the same coordinator (no
ghost registrations) and run the stored assignment at once; otherwise register, retrying with
capped, jittered backoff until the coordinator answers; unregister on a clean stop.

One body for every dialect (contract/capabilities.py): the agent's own stable worker id (a
coordinator that assigns its own still wins), its capabilities and the services it announces.
An outage is retried from 1 s to 1 min; a refusal (4xx) is logged with the coordinator's own
words and retried from 30 s doubling to 10 min: neither touches a running container. When the
announced services change and no Part 2 heartbeat carries them, the worker registers again —
under its id; where the coordinator assigned the id (the service coordinator, which hands out a
new one each time and forgets none), after unregistering the old one, so no ghost is left.
"""

from __future__ import annotations

import random
import threading
from collections.abc import Callable
from typing import Any

import structlog

from controller.clients.store import Identity, StoredAssignment
from controller.contract.api import RegisterResponse
from controller.contract.capabilities import registration_body
from controller.contract.services import Announcement
from controller.core.backoff import Delays
from controller.core.errors import AgentError, CoordinatorRejected, CoordinatorUnreachable
from controller.membership.api import CoordinatorAPI
from controller.membership.standing import Shared

log = structlog.get_logger(__name__)
REFUSED = Delays(base=30.0, cap=600.0, jitter="half")  # a 4xx answer to a registration


class Registrar:
    def __init__(
        self,
        client: CoordinatorAPI,
        shared: Shared,
        *,
        capabilities: Callable[[], dict[str, Any]],
        stop: threading.Event,
        delays: Delays,
        announcement: Callable[[], Announcement] = Announcement,
        ip_address: str | None = None,
        presented: dict[str, str] | None = None,
    ) -> None:
        self._client = client
        self._shared = shared
        self._capabilities = capabilities
        self._announcement = announcement
        self._ip = ip_address
        # Part 5: the public key its receipts are signed with, the opt-in display name
        self._presented = dict(presented or {})
        self._stop = stop
        self._delays = delays
        self._refused = REFUSED  # a 4xx answer's delays
        self.last_refusal: str | None = None
        # Registrations again for a changed announcement, in a row, and heartbeat ticks to let
        # pass before the next: a coordinator whose every answer changes what the worker runs
        # (so what it announces) is re-registered with at most once per 21 ticks, not each.
        self._streak = self._hold = 0

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
                containers=len(stored.containers) if stored.containers is not None else None,
                services=stored.services,
                note="running the last assignment",
            )
        heartbeat()
        if self._shared.forgotten.is_set():
            self.register_until_done()

    def register_until_done(self) -> None:
        outages = refusals = 0
        while not self._stop.is_set():
            previous = self._shared.standing.identity or self._shared.store.load_identity()
            announced = self._announcement()
            try:
                answer = self._client.register(
                    self._body(previous, announced), token=previous.token if previous else None
                )
                self._on_registered(answer, announced)
                return
            except CoordinatorUnreachable as exc:
                outages += 1
                delay = self._delays.delay(outages, random.random())
                log.warning(
                    "coordinator_unreachable",
                    error=str(exc),
                    retry_in=round(delay, 1),
                    containers="untouched",
                )
            except CoordinatorRejected as exc:
                refusals += 1
                delay = self._refused.delay(refusals, random.random())
                self.last_refusal = str(exc)
                log.error(
                    "registration_refused",
                    status=exc.status,
                    error=str(exc),
                    retry_in=round(delay, 1),
                    containers="untouched",
                )
            except AgentError as exc:
                outages += 1
                delay = self._delays.delay(outages, random.random())
                log.error("registration_failed", error=str(exc), retry_in=round(delay, 1))
            self._shared.wait(self._stop, delay)

    def reannounce(self) -> None:
        """Register again because the announced services changed (no Part 2 heartbeat carries
        them). A coordinator that assigned the id gets the old one unregistered first."""
        identity = self._shared.standing.identity
        if identity is not None and identity.worker_id != self._shared.store.own_worker_id():
            try:
                self._client.unregister(identity.worker_id, token=identity.token)
            except AgentError as exc:
                log.warning("unregister_failed", worker_id=identity.worker_id, error=str(exc))
        log.info("services_changed", action="registering again to announce them")
        self._streak += 1
        self._hold = min(2 ** (self._streak - 1) - 1, 20)  # 0, 1, 3, 7, 15, 20 ticks
        self.register_until_done()

    def withdraw(self, beat: Callable[[], None]) -> bool:
        """Stop the pool routing to this worker before its containers stop (the announcement
        is already empty): a heartbeat without the URLs (Part 2), a registration under the same
        id without services (a coordinator that keeps ids), else — the service coordinator,
        which routes by worker — unregistering now. True when the coordinator heard it."""
        identity = self._shared.standing.identity
        if identity is None:
            return False
        try:
            if identity.assignment_url:
                beat()
                how = "a heartbeat without them"
            elif identity.worker_id == self._shared.store.own_worker_id():
                self._client.register(self._body(identity, Announcement()), token=identity.token)
                how = "a registration without them"
            else:
                self._client.unregister(identity.worker_id, token=identity.token)
                how = "unregistering"
        except AgentError as exc:
            log.warning("withdraw_failed", error=str(exc), effect="requests may still arrive")
            return False
        log.info("services_withdrawn", how=how)
        return True

    def announcement(self) -> Announcement:
        return self._announcement()

    def announced(self) -> list[dict[str, Any]]:
        return self._announcement().containers()

    def announcement_changed(self) -> bool:
        """Whether to register again now for what is announced (checked once a tick)."""
        identity = self._shared.standing.identity
        if identity is None or identity.assignment_url:  # Part 2 heartbeats carry the URLs
            return False
        if self._announcement().digest() == identity.announced:
            self._streak = 0
            return False
        if self._hold:
            self._hold -= 1
            return False
        return True

    def _body(self, previous: Identity | None, announced: Announcement) -> dict[str, Any]:
        body = registration_body(
            self._shared.store.own_worker_id(),
            self._capabilities(),
            announced.containers(),
            tunnel_url=announced.tunnel_url,
            ip_address=self._ip,
        )
        body |= self._presented  # every dialect ignores a field it does not read
        if previous is not None:
            # Extension: a coordinator may give the id back to whoever shows its old token
            # (sent as the bearer token of this request).
            body["previous_worker_id"] = previous.worker_id
        return body

    def _on_registered(self, resp: RegisterResponse, announced: Announcement) -> None:
        identity = Identity(
            resp.worker_id or self._shared.store.own_worker_id(),
            self._client.base_url,
            resp.token,
            resp.assignment_url,
            resp.heartbeat_url,
            resp.heartbeat_interval,
            announced.digest(),
            resp.contributor_key,
        )
        self._shared.store.save_identity(identity)
        self._shared.forgotten.clear()
        self.last_refusal = None
        self._shared.adopt(identity, fresh=True)
        services = resp.assigned_services
        self._shared.apply(
            StoredAssignment(
                resp.tier,
                resp.assigned_containers,
                services=[str(n)[:100] for n in services] if services is not None else None,
            )
        )
        if not resp.assignment_url and self._announcement().digest() != identity.announced:
            self._shared.wake.set()  # what it runs now changes what it announces: tell at once
        log.info(
            "registered",
            worker_id=identity.worker_id,
            tier=resp.tier,
            desired_from=_origin(resp),
            announced=len(announced.services),
            heartbeat_interval=self._shared.standing.interval,
            part2=bool(resp.assignment_url),
            coordinator_status=resp.status,
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


def _origin(resp: RegisterResponse) -> str:
    """Where the desired set comes from (Part 3's order), for the log."""
    if resp.assigned_containers is not None:
        return f"assigned_containers ({len(resp.assigned_containers)})"
    if resp.assigned_services is not None:
        return f"assigned_services ({len(resp.assigned_services)}) through the catalog"
    return f"the catalog's containers for tier {resp.tier} (no assignment key)"
