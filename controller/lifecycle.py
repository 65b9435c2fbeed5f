"""The worker's life with its coordinator, on its own threads beside the reconcile loop.

Start: reuse the stored identity when it is for the same coordinator (no ghost registrations) and
run the stored assignment at once; otherwise register, retrying with capped, jittered backoff
until the coordinator answers. Then heartbeat every interval. A heartbeat answered 404 means the
coordinator forgot this worker: register again at once and converge to the new assignment.
When the coordinator advertises an assignment resource (Part 2), a second thread long-polls it so
changes arrive within a request's round trip. Outages only produce log lines: the desired state is
kept, so running containers are never touched because the coordinator is away.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable
from typing import Any, Protocol

import structlog

from controller.assignment import AssignmentSource
from controller.coordinator import AssignmentResponse, HeartbeatResponse, RegisterResponse
from controller.errors import AgentError, CoordinatorUnreachable, WorkerForgotten
from controller.observe import NullObserver, Observer
from controller.state import Identity, StateStore, StoredAssignment

log = structlog.get_logger(__name__)
DEFAULT_HEARTBEAT_PATH = "/api/worker/heartbeat"


class CoordinatorAPI(Protocol):
    """What the lifecycle needs of controller.coordinator.CoordinatorClient."""

    base_url: str
    token: str | None

    def register(self, body: dict[str, Any]) -> RegisterResponse: ...

    def heartbeat(self, path: str, body: dict[str, Any]) -> HeartbeatResponse: ...

    def fetch_assignment(self, path: str, *, etag: str | None = None,
                         wait: float = 0) -> AssignmentResponse | None: ...

    def unregister(self, worker_id: str, *, timeout: float = 5.0) -> None: ...


class Lifecycle:
    def __init__(
        self,
        client: CoordinatorAPI,
        store: StateStore,
        source: AssignmentSource,
        *,
        capabilities: Callable[[], dict[str, Any]],
        report: Callable[[], dict[str, Any]],
        stop: threading.Event,
        on_change: Callable[[], None] = lambda: None,
        heartbeat_override: float | None = None,
        long_poll_wait: float = 55.0,
        retry_base: float = 1.0,
        retry_cap: float = 60.0,
        observer: Observer | None = None,
    ) -> None:
        self._client = client
        self._store = store
        self._source = source
        self._capabilities = capabilities
        self._report = report
        self._stop = stop
        self._on_change = on_change
        self._override = heartbeat_override
        self._long_poll_wait = long_poll_wait
        self._retry_base = retry_base
        self._retry_cap = retry_cap
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._forgotten = threading.Event()
        self._ready = threading.Event()
        self.identity: Identity | None = None
        self._interval = heartbeat_override or 30.0
        self._heartbeat_path = DEFAULT_HEARTBEAT_PATH
        self._etag: str | None = None
        self._outage = False
        self._observer: Observer = observer or NullObserver()
        self.last_heartbeat_at: float | None = None  # wall clock of the last answered heartbeat
        self.last_error: str | None = None
        self.tier: int | None = None
        self._threads = [threading.Thread(target=self._main, name="lifecycle", daemon=True),
                         threading.Thread(target=self._poll, name="long-poll", daemon=True)]

    def start(self) -> None:
        for thread in self._threads:
            thread.start()

    def close(self, timeout: float = 2.0) -> None:
        """Stop taking assignment changes (the caller has set `stop`)."""
        self._wake.set()
        if self._threads[0].is_alive():
            self._threads[0].join(timeout)

    # -- main thread: connect, heartbeat, re-register -----------------------------------------

    def _main(self) -> None:
        self._guarded(self._connect)
        while not self._stop.is_set():
            self._wake.wait(self._interval)
            self._wake.clear()
            if self._stop.is_set():
                return
            if self._forgotten.is_set():
                self._guarded(self._register_until_done)
            else:
                self._guarded(self.heartbeat)

    @staticmethod
    def _guarded(step: Callable[[], None]) -> None:
        try:
            step()
        except Exception as exc:  # a bug costs one heartbeat, never the worker's membership
            log.exception("lifecycle_step_crashed", step=step.__name__, error=str(exc))

    def _connect(self) -> None:
        stored_id = self._store.load_identity()
        if stored_id is not None and stored_id.coordinator_url != self._client.base_url:
            log.info("coordinator_changed", old=stored_id.coordinator_url,
                     new=self._client.base_url, action="registering anew")
            stored_id = None
        stored = self._store.load_assignment() if stored_id else None
        if stored_id is not None and stored is None and not stored_id.assignment_url:
            # A Part 1 coordinator gives the assignment only at registration: register anew,
            # but first drop the old id so that it does not linger as a ghost.
            self.unregister()
            stored_id = None
        if stored_id is None:
            self._register_until_done()
            return
        self._adopt(stored_id)
        if stored is not None:
            self._apply(stored, persist=False)
            log.info("resumed", worker_id=stored_id.worker_id, tier=stored.tier,
                     containers=len(stored.containers), note="running the last assignment")
        self.heartbeat()
        if self._forgotten.is_set():
            self._register_until_done()

    def _register_until_done(self) -> None:
        delay = self._retry_base
        while not self._stop.is_set():
            try:
                self._on_registered(self._client.register(self._registration_body()))
                return
            except CoordinatorUnreachable as exc:
                log.warning("coordinator_unreachable", error=str(exc), retry_in=round(delay, 1),
                            containers="untouched")
            except AgentError as exc:
                log.error("registration_failed", error=str(exc), retry_in=round(delay, 1))
            self._stop.wait(random.uniform(delay / 2, delay))
            delay = min(delay * 2, self._retry_cap)

    def _registration_body(self) -> dict[str, Any]:
        body: dict[str, Any] = {"capabilities": self._capabilities()}
        previous = self.identity or self._store.load_identity()
        if previous is not None:
            body["previous_worker_id"] = previous.worker_id  # extension: coordinators may reuse
        return body

    def _on_registered(self, resp: RegisterResponse) -> None:
        identity = Identity(resp.worker_id, self._client.base_url, resp.token, resp.assignment_url,
                            resp.heartbeat_url, resp.heartbeat_interval)
        self._store.save_identity(identity)
        self._forgotten.clear()
        self._etag = None
        self._adopt(identity)
        self._apply(StoredAssignment(resp.tier, resp.assigned_containers))
        log.info("registered", worker_id=resp.worker_id, tier=resp.tier,
                 containers=len(resp.assigned_containers), heartbeat_interval=self._interval,
                 part2=bool(resp.assignment_url))

    def _adopt(self, identity: Identity) -> None:
        self._client.token = identity.token
        self._interval = self._override or identity.heartbeat_interval or 30.0
        self._heartbeat_path = identity.heartbeat_url or DEFAULT_HEARTBEAT_PATH
        with self._lock:
            self.identity = identity
        self._ready.set()

    def _apply(self, assignment: StoredAssignment, *, persist: bool = True) -> None:
        with self._lock:
            if persist:
                self._store.save_assignment(assignment)
            self._source.set(assignment.tier, assignment.containers, assignment.generation)
            self.tier = assignment.tier
            self._etag = assignment.etag or self._etag
        self._on_change()

    # -- heartbeat ----------------------------------------------------------------------------

    def heartbeat(self) -> None:
        identity = self.identity
        if identity is None:
            return
        body = {"worker_id": identity.worker_id, **self._report()}
        if self._source.generation is not None:
            body["assignment_generation"] = self._source.generation
        try:
            resp = self._client.heartbeat(self._heartbeat_path, body)
        except WorkerForgotten as exc:
            self._observer.heartbeat(False)
            self._mark_forgotten(exc)
            return
        except AgentError as exc:
            self._observer.heartbeat(False)
            self.last_error = str(exc)
            if not self._outage:
                log.warning("heartbeat_failed", error=str(exc), containers="untouched")
            self._outage = True
            return
        self._observer.heartbeat(True)
        self.last_heartbeat_at, self.last_error = time.time(), None
        if self._outage:
            log.info("coordinator_reachable_again", worker_id=identity.worker_id)
        self._outage = False
        hinted = resp.assignment_generation
        if hinted is not None and hinted != self._source.generation and identity.assignment_url:
            self._try_fetch()

    # -- Part 2: the assignment resource ------------------------------------------------------

    def _try_fetch(self) -> None:
        """Fetch now, without waiting; failures are logged and left to the poller/heartbeat."""
        try:
            self._fetch(wait=0)
        except WorkerForgotten as exc:
            self._mark_forgotten(exc)
        except AgentError as exc:
            log.warning("assignment_fetch_failed", error=str(exc))

    def _mark_forgotten(self, exc: WorkerForgotten) -> None:
        """The coordinator forgot us: the main thread registers again at once."""
        if self._stop.is_set():
            return  # shutting down: our own unregister ends the open long poll with a 404
        if not self._forgotten.is_set():
            worker_id = self.identity.worker_id if self.identity else None
            log.warning("worker_forgotten", worker_id=worker_id, error=str(exc),
                        action="registering again")
        self._forgotten.set()
        self._wake.set()

    def _fetch(self, wait: float) -> None:
        identity = self.identity
        if identity is None or not identity.assignment_url:
            return
        got = self._client.fetch_assignment(identity.assignment_url, etag=self._etag, wait=wait)
        if got is not None:
            self._on_assignment(got)

    def _on_assignment(self, got: AssignmentResponse) -> None:
        log.info("assignment_changed", generation=got.generation, tier=got.tier,
                 containers=len(got.containers))
        self._apply(StoredAssignment(got.tier, got.containers, got.generation, got.etag))

    def _poll(self) -> None:
        if self._long_poll_wait <= 0:
            return  # no long poll: the heartbeat's generation hint triggers a fetch
        delay = self._retry_base
        while not self._stop.is_set():
            self._ready.wait(1.0)
            identity = self.identity
            if identity is None or not identity.assignment_url or self._forgotten.is_set():
                self._stop.wait(0.5)
                continue
            try:
                self._fetch(wait=self._long_poll_wait)
                delay = self._retry_base
            except WorkerForgotten as exc:
                self._mark_forgotten(exc)
            except AgentError as exc:
                log.debug("long_poll_failed", error=str(exc), retry_in=delay)
                self._stop.wait(random.uniform(delay / 2, delay))
                delay = min(delay * 2, self._retry_cap)

    # -- leaving ------------------------------------------------------------------------------

    def unregister(self, timeout: float = 5.0) -> bool:
        """Tell the coordinator this worker is gone; forget the identity when it heard us."""
        identity = self.identity or self._store.load_identity()
        if identity is None:
            return True
        try:
            self._client.unregister(identity.worker_id, timeout=timeout)
        except AgentError as exc:
            log.warning("unregister_failed", worker_id=identity.worker_id, error=str(exc),
                        note="identity kept; the next start reuses it")
            return False
        self._store.forget_identity()
        self._store.forget_assignment()
        log.info("unregistered", worker_id=identity.worker_id)
        return True
