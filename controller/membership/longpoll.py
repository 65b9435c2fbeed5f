"""Part 2's assignment resource: when the coordinator advertises one, a thread long-polls it with
the last ETag so that changes arrive within a request's round trip; a heartbeat's generation hint
fetches it at once. With `long_poll_wait` 0 only the hint is used, and so it is when the
coordinator sends no ETag (a long poll cannot then wait for a change). A long poll answered early
(under a second, 304 or not) is spaced at least a second from the next, and one with nothing new
backs off while the coordinator keeps doing so: a coordinator cannot make the agent spin, and a
real change is held back at most that second.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable

import structlog

from controller.clients.store import StoredAssignment
from controller.contract.api import AssignmentResponse
from controller.core.backoff import Delays
from controller.core.errors import AgentError, WorkerForgotten
from controller.membership.api import CoordinatorAPI
from controller.membership.heartbeat import mark_forgotten
from controller.membership.standing import Shared

log = structlog.get_logger(__name__)
MIN_POLL_SPACING = 1.0


class AssignmentPoller:
    def __init__(
        self,
        client: CoordinatorAPI,
        shared: Shared,
        *,
        stop: threading.Event,
        wait: float,
        delays: Delays,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._clock = clock
        self._client = client
        self._shared = shared
        self._stop = stop
        self._wait = wait
        self._delays = delays

    def fetch_now(self) -> None:
        """Fetch without waiting; failures are logged and left to the poller/heartbeat."""
        try:
            self._fetch(wait=0)
        except AgentError as exc:
            log.warning("assignment_fetch_failed", error=str(exc))

    def _fetch(self, wait: float) -> AssignmentResponse | None:
        standing = self._shared.standing
        identity = standing.identity
        if identity is None or not identity.assignment_url:
            return None
        try:
            got = self._client.fetch_assignment(
                identity.assignment_url, token=identity.token, etag=standing.etag, wait=wait
            )
        except WorkerForgotten as exc:
            mark_forgotten(self._shared, self._stop, exc, identity)
            return None
        if got is not None and self._shared.standing.identity is identity:  # else: stale
            self._on_assignment(got)
        return got

    def _on_assignment(self, got: AssignmentResponse) -> None:
        log.info(
            "assignment_changed",
            generation=got.generation,
            tier=got.tier,
            containers=len(got.containers),
        )
        self._shared.apply(StoredAssignment(got.tier, got.containers, got.generation, got.etag))

    def run(self) -> None:
        if self._wait <= 0:
            return  # no long poll: the heartbeat's generation hint triggers a fetch
        failures = early = 0
        while not self._stop.is_set():
            self._shared.wait(self._shared.ready, 1.0)
            identity = self._shared.standing.identity
            if identity is None or not identity.assignment_url or self._shared.forgotten.is_set():
                self._shared.wait(self._stop, 0.5)
                continue
            started = self._clock()
            try:
                got = self._fetch(wait=self._wait)
                failures = 0
            except AgentError as exc:
                failures += 1
                delay = self._delays.delay(failures, random.random())
                log.debug("long_poll_failed", error=str(exc), retry_in=round(delay, 2))
                self._shared.wait(self._stop, delay)
                continue
            if got is not None and not got.etag:
                log.warning(
                    "long_poll_stopped",
                    reason="the assignment carries no ETag",
                    instead="fetched when a heartbeat announces a new generation",
                )
                return
            early = self._space(self._clock() - started, early, changed=got is not None)

    def _space(self, took: float, early: int, *, changed: bool) -> int:
        """A long poll answered in under a second is followed by a pause so that polls start at
        least a second apart; one answered early with nothing new (304) also backs off while
        the coordinator keeps doing so. A change is never held back more than that second."""
        if took >= MIN_POLL_SPACING:
            return 0
        if changed:
            self._shared.wait(self._stop, MIN_POLL_SPACING - took)
            return 0
        early += 1
        pause = max(MIN_POLL_SPACING - took, self._delays.delay(early, random.random()))
        if early >= 3:
            log.debug("long_poll_answered_early", times=early, pause=round(pause, 2))
        self._shared.wait(self._stop, pause)
        return early
