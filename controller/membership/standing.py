"""What the membership threads share, and nothing else: the worker's standing with its
coordinator (identity, heartbeat interval and path, the assignment's ETag and tier) as one
immutable record, swapped whole under a lock, so a thread reads a consistent record with one
reference read and never sees a token from one registration with the id of another. Events
carry the rest: `forgotten` (register again), `wake` (heartbeat now), `ready` (registered).

`apply` is the one way an assignment enters: persisted, handed to the desired-state source,
and the loop woken. `wait` is the only way the membership threads wait (an event, at most so
long): injected, so that tests run the threads on a virtual clock instead of real seconds.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, replace

from controller.clients.store import Identity, StateStore, StoredAssignment
from controller.contract.api import HEARTBEAT_PATH
from controller.membership.source import AssignmentSource

DEFAULT_INTERVAL = 30.0
MIN_INTERVAL = 5.0  # a coordinator asking for more heartbeats than this is not obeyed


def heartbeat_interval(asked: float | None) -> float:
    """The coordinator's interval, raised to 5 s (the owner's --heartbeat-interval is not)."""
    return max(MIN_INTERVAL, asked or DEFAULT_INTERVAL)


Wait = Callable[[threading.Event, float], bool]


def real_wait(event: threading.Event, timeout: float) -> bool:
    return event.wait(timeout)


@dataclass(frozen=True)
class Standing:
    identity: Identity | None = None
    interval: float = DEFAULT_INTERVAL
    heartbeat_path: str = HEARTBEAT_PATH
    etag: str | None = None
    tier: int | None = None


class Shared:
    def __init__(
        self,
        store: StateStore,
        source: AssignmentSource,
        *,
        on_change: Callable[[], None],
        heartbeat_override: float | None,
        wait: Wait = real_wait,
    ) -> None:
        self.store = store
        self.source = source
        self.wait = wait
        self._on_change = on_change
        self._override = heartbeat_override
        self._lock = threading.Lock()
        self._standing = Standing(interval=heartbeat_override or DEFAULT_INTERVAL)
        self._persisted: StoredAssignment | None = None
        self.forgotten = threading.Event()
        self.wake = threading.Event()
        self.ready = threading.Event()
        # A coordinator that forgets every fresh registration (the edge coordinator's debugging
        # build): `answered` is whether a heartbeat was answered since the registration;
        # `forgets` how many fresh registrations in a row were forgotten before one was.
        self.answered = True
        self.forgets = 0

    @property
    def standing(self) -> Standing:
        return self._standing  # one reference read: always a whole record

    def adopt(self, identity: Identity, *, fresh: bool = False) -> None:
        """Take `identity` as ours (`fresh`: a new registration, so no ETag carries over)."""
        with self._lock:
            self._standing = replace(
                self._standing,
                identity=identity,
                interval=self._override or heartbeat_interval(identity.heartbeat_interval),
                heartbeat_path=identity.heartbeat_url or HEARTBEAT_PATH,
                etag=None if fresh else self._standing.etag,
            )
            self.answered = not fresh
        self.ready.set()

    def drop_identity(self) -> None:
        """Forget who we are (the coordinator keeps refusing our token): register anew."""
        with self._lock:
            self._standing = replace(self._standing, identity=None, etag=None)
            self.store.forget_identity()

    def apply(self, assignment: StoredAssignment, *, persist: bool = True) -> None:
        with self._lock:
            if persist and assignment != self._persisted:  # an unchanged one is not rewritten
                self.store.save_assignment(assignment)
            self._persisted = assignment
            identity = self._standing.identity
            self.source.set(
                assignment.tier,
                assignment.containers,
                assignment.generation,
                assignment.services,
                marks_http=bool(identity and identity.assignment_url),  # Part 2
            )
            self._standing = replace(
                self._standing, tier=assignment.tier, etag=assignment.etag or self._standing.etag
            )
        self._on_change()
