"""The worker's life with its coordinator, on two threads beside the reconcile loop, each with its
own client (HTTP session):

- `lifecycle`: connect (resume or register, registration.py), then a heartbeat every interval
  (heartbeat.py); when the coordinator forgot the worker, register again at once.
- `long-poll`: Part 2's assignment resource (longpoll.py), when the coordinator advertises one.

They share only `Shared` (standing.py): an immutable standing swapped atomically, and events.
This class wires them and is what the rest of the agent sees: start, close, unregister, and the
read-only facts `status` shows.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import structlog

from controller.clients.store import Identity, StateStore
from controller.contract.services import Announcement
from controller.core.backoff import Delays
from controller.core.clock import SYSTEM, Clock
from controller.core.observe import NullObserver, Observer
from controller.membership.api import CoordinatorAPI
from controller.membership.heartbeat import Heartbeater
from controller.membership.longpoll import AssignmentPoller
from controller.membership.receipts import Ledger, ReceiptSender
from controller.membership.registration import Registrar
from controller.membership.source import AssignmentSource
from controller.membership.standing import Shared

log = structlog.get_logger(__name__)
# Registration and long-poll retries: 1 s doubling to 1 min, each drawn in [d/2, d].
RETRY = Delays(base=1.0, cap=60.0, jitter="half")
# After a container changed state: look again after these many seconds, one after the other.
RECHECKS = (0.0, 0.5, 1.0, 2.0, 4.0, 8.0)
# A coordinator that forgets each fresh registration: 30 s doubling to 10 min between them.
FORGETS = Delays(base=30.0, cap=600.0)


@dataclass(frozen=True)
class Telling:
    """What the worker tells its coordinator: its capabilities (at registration), its report
    (each heartbeat), the services it announces and its address; the metrics of each call."""

    capabilities: Callable[[], dict[str, Any]]
    report: Callable[[], dict[str, Any]]
    announcement: Callable[[], Announcement] = Announcement
    ip_address: str | None = None
    observer: Observer | None = None
    ledger: Ledger | None = None  # Part 5: the signed receipts to deliver
    presented: dict[str, str] | None = None  # Part 5: public_key, display_name at registration


@dataclass(frozen=True)
class Timing:
    """The membership's time: the owner's heartbeat interval (None: the coordinator's), how long
    a long poll waits, the retries' delays, and the clock the threads wait on."""

    heartbeat_override: float | None = None
    long_poll_wait: float = 55.0
    retry: Delays = RETRY
    clock: Clock = SYSTEM


DEFAULT_TIMING = Timing()


class Lifecycle:
    def __init__(
        self,
        client: CoordinatorAPI,
        store: StateStore,
        source: AssignmentSource,
        telling: Telling,
        *,
        stop: threading.Event,
        poll_client: CoordinatorAPI | None = None,
        on_change: Callable[[], None] = lambda: None,
        timing: Timing = DEFAULT_TIMING,
    ) -> None:
        clock, retry = timing.clock, timing.retry
        self._stop, self._clock = stop, clock.now
        self._shared = Shared(
            store,
            source,
            on_change=on_change,
            heartbeat_override=timing.heartbeat_override,
            wait=clock.wait,
        )
        self._registrar = Registrar(
            client,
            self._shared,
            capabilities=telling.capabilities,
            stop=stop,
            delays=retry,
            announcement=telling.announcement,
            ip_address=telling.ip_address,
            presented=telling.presented,
        )
        self._poller = AssignmentPoller(
            poll_client or client,
            self._shared,
            stop=stop,
            wait=timing.long_poll_wait,
            delays=retry,
            clock=clock.now,
        )
        self._heartbeater = Heartbeater(
            client,
            self._shared,
            report=telling.report,
            observer=telling.observer or NullObserver(),
            stop=stop,
            fetch_now=self._poller.fetch_now,
        )
        self.receipts = (
            ReceiptSender(client, self._shared, telling.ledger, clock.now)
            if telling.ledger is not None
            else None
        )
        self._threads = self._make_threads()

    def _make_threads(self) -> list[threading.Thread]:
        self._rechecks: list[float] = []  # short looks after a state change (states_changed)
        self._due = 0.0  # when the next heartbeat is due (the clock's time)
        self._told: str | None = None  # the announcement's digest the last heartbeat carried
        return [
            threading.Thread(target=self._main, name="lifecycle", daemon=True),
            threading.Thread(target=self._poller.run, name="long-poll", daemon=True),
        ]

    # -- what status shows --------------------------------------------------------------------

    @property
    def identity(self) -> Identity | None:
        return self._shared.standing.identity

    @property
    def tier(self) -> int | None:
        return self._shared.standing.tier

    @property
    def dialect(self) -> str | None:
        """How the coordinator behaves, in the contract's words (Part 3), once registered."""
        identity = self._shared.standing.identity
        if identity is None:
            return None
        if identity.assignment_url:
            return "Part 2 (assignment resource)"
        if identity.worker_id == self._shared.store.own_worker_id():
            return "keeps the worker's id (edge or local coordinator)"
        return "assigns the worker's id (service coordinator)"

    @property
    def last_heartbeat_at(self) -> float | None:
        return self._heartbeater.last_heartbeat_at

    @property
    def last_error(self) -> str | None:
        return self._heartbeater.last_error

    def withdraw(self) -> bool:
        """Tell the coordinator to stop routing here (the caller emptied the announcement and
        stopped the threads): before the containers stop."""
        return self._registrar.withdraw(self._heartbeater.beat)

    def announced_containers(self) -> frozenset[str]:
        """The containers whose service is announced now and can be withdrawn alone: not with
        a coordinator that assigns the ids and has no Part 2 (the service coordinator), where
        withdrawing one service means a registration, so a new id, so every container
        recreated for it — which would withdraw them again, for ever."""
        identity = self._shared.standing.identity
        if identity is None or not (
            identity.assignment_url or identity.worker_id == self._shared.store.own_worker_id()
        ):
            return frozenset()
        return frozenset(s.container for s in self._registrar.announcement().services)

    def wake_now(self) -> None:
        """Tell the coordinator now (a heartbeat, or a registration where the announcement
        changed), not at the next interval."""
        self._shared.wake.set()

    def states_changed(self) -> None:
        """A container changed state: what is announced may change now or within seconds (a
        tunnel prints its URL after it starts), so look at once and a few times more."""
        self._rechecks = list(RECHECKS)
        self._shared.wake.set()

    def announcement(self) -> Announcement:
        return self._registrar.announcement()

    def announced(self) -> list[dict[str, Any]]:
        """The services the pool can reach now, at their URLs (what a registration sends)."""
        return self._registrar.announced()

    @property
    def notice(self) -> str | None:
        """What the owner should know about the coordinator's behaviour, when anything."""
        refusal = self._registrar.last_refusal
        if refusal:
            return f"registration refused, retried with growing waits: {refusal}"
        forgets = self._shared.forgets
        if forgets:
            return (
                f"coordinator_forgets_worker: the coordinator forgot {forgets} fresh "
                f"registration(s) in a row; registering again in {FORGETS.delay(forgets):g} s "
                "(containers untouched)"
            )
        return None

    # -- running ------------------------------------------------------------------------------

    def start(self) -> None:
        for thread in self._threads:
            thread.start()

    def close(self, timeout: float = 2.0) -> None:
        """Stop taking assignment changes (the caller has set `stop`)."""
        self._shared.wake.set()
        if self._threads[0].is_alive():
            self._threads[0].join(timeout)

    def heartbeat(self) -> None:
        self._heartbeater.beat()

    def unregister(self, timeout: float = 5.0) -> bool:
        return self._registrar.unregister(timeout)

    def _main(self) -> None:
        self._guarded(lambda: self._registrar.connect(self._beat), "connect")
        wake = self._shared.wake
        self._due = self._clock() + self._shared.standing.interval
        while not self._stop.is_set():
            remaining = max(0.0, self._due - self._clock())
            timeout = min(self._rechecks.pop(0), remaining) if self._rechecks else remaining
            self._shared.wait(wake, timeout)
            wake.clear()
            if self._stop.is_set():
                return
            self._tick(regular=self._clock() >= self._due)

    def _tick(self, regular: bool) -> None:
        """One look: register (again), or heartbeat — every interval, and between intervals
        only when what is announced changed (Part 2 carries it in the heartbeat)."""
        if self._shared.forgotten.is_set():
            if self._shared.forgets:  # it forgets each registration: do not hammer it
                self._shared.wait(self._stop, FORGETS.delay(self._shared.forgets))
                if self._stop.is_set():
                    return
            self._guarded(self._registrar.register_until_done, "register")
        elif self._registrar.announcement_changed():
            self._guarded(self._registrar.reannounce, "reannounce")
        elif regular or self._registrar.announcement().digest() != self._told:
            self._guarded(self._beat, "heartbeat")
            return
        else:
            return  # a look between heartbeats that found nothing new to tell
        self._due = self._clock() + self._shared.standing.interval  # registered: it counts

    def _beat(self) -> None:
        self._told = self._registrar.announcement().digest()
        self._due = self._clock() + self._shared.standing.interval
        self._heartbeater.beat()
        if self.receipts is not None and self._heartbeater.last_error is None:
            self._guarded(self._deliver, "receipts")

    def deliver_receipts(self) -> None:
        """Once, now (the agent stops: what the coordinator does not take waits for the next
        start)."""
        self._guarded(self._deliver, "receipts")

    def _deliver(self) -> None:
        if self.receipts is not None:
            self.receipts.send()

    @staticmethod
    def _guarded(step: Callable[[], None], name: str) -> None:
        try:
            step()
        except Exception as exc:  # a bug costs one heartbeat, never the worker's membership
            log.exception("lifecycle_step_crashed", step=name, error=str(exc))
