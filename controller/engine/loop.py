"""The reconcile loop: level-based, idempotent, and alive until it is told to stop.

Every pass re-reads the desired state (when its source changed), applies the owner's holds, reads
the actual state (one list call), plans, and executes. Passes are triggered by a desired-state
change, an engine event about a managed container, a finished pull, the owner's conditions, and
a resync timer as the safety net. A failed pass is retried with capped backoff. Shutdown sets an
event that interrupts every wait; teardown stops and removes every managed container.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections import Counter
from collections.abc import Callable
from typing import Protocol

import structlog

from controller.core.backoff import Delays
from controller.core.errors import AgentError, TransientError
from controller.core.models import ActualContainer, DesiredState
from controller.core.observe import NullObserver, Observer
from controller.core.planner import plan
from controller.core.results import ActionOutcome, ExecutionReport, PassResult
from controller.core.runtime import ContainerEvent, ContainerRuntime
from controller.core.status import AgentStatus, build_status
from controller.engine.crashloop import CrashLoop
from controller.engine.doorbell import Doorbell
from controller.engine.drain import Drain
from controller.engine.executor import Executor
from controller.engine.teardown import teardown
from controller.engine.watcher import EventWatcher

log = structlog.get_logger(__name__)
# After an engine event or a pass that acted, look again this soon, then later: the engine may
# send `kill`/`die` before its list says `exited`; a pass that acted is confirmed by the next.
RECHECKS = (0.1, 0.4)
# A pass that failed as a whole is retried sooner: 1 s, 2 s … 32 s (never past the resync).
FAILED_PASS = Delays(base=0.5, cap=32.0)
Clock = Callable[[], float]


def _healed(before: AgentStatus, done: list[ActionOutcome], resumed: frozenset[str]) -> None:
    """A container the last pass saw running and this one had to create or start again was
    healed (removed or stopped behind the agent's back): said once, for the owner's page."""
    was = {c.name for c in before.containers if c.state == "running"}
    for o in done:
        if o.action in ("create", "start") and o.name in was and o.name not in resumed:
            how = "removed: created again" if o.action == "create" else "stopped: started again"
            log.warning("container_healed", container=o.name, how=how)


class DesiredSource(Protocol):
    def describe(self) -> str: ...

    def changed(self) -> bool: ...

    def load(self) -> DesiredState: ...


class Agent:
    def __init__(
        self,
        source: DesiredSource,
        runtime: ContainerRuntime,
        executor: Executor,
        *,
        stop: threading.Event,
        doorbell: Doorbell,
        resync_interval: float = 30.0,
        poll_interval: float = 0.5,
        clock: Clock = time.monotonic,
        observer: Observer | None = None,
        crashloop: CrashLoop | None = None,
        housekeeping: Callable[[DesiredState, list[ActualContainer]], None] | None = None,
        network: str = "",
        limit: Callable[[DesiredState], DesiredState] = lambda desired: desired,
        backoffs: tuple[Callable[[], float | None], ...] = (),
        drain: Drain | None = None,
        hold: Callable[[DesiredState], DesiredState] = lambda desired: desired,
        overlay: Callable[[AgentStatus], AgentStatus] = lambda status: status,
    ) -> None:
        self._source, self._runtime, self._executor = source, runtime, executor
        self._stop, self._doorbell, self._clock = stop, doorbell, clock
        self._resync, self._poll = resync_interval, poll_interval
        self._desired: DesiredState | None = None
        self._load_error: AgentError | None = None
        self._pass_ids, self._failures = itertools.count(1), 0
        self._event_seen, self._restarts = threading.Event(), Counter[str]()
        self._status = AgentStatus()
        self._observer: Observer = observer or NullObserver()
        self._crashloop = crashloop or CrashLoop(clock=clock)
        self._housekeeping = housekeeping  # image and volume collection, after a pass
        self._network = network  # the agent's own network, removed after a full teardown
        self._limit, self._drain, self._overlay = limit, drain or Drain(0), overlay  # readiness
        self._hold, self._actual = hold, tuple[ActualContainer, ...]()  # owner's conditions
        self._backoffs = (self._crashloop.next_due, self._drain.next_due, *backoffs)
        self.last_success_at: float | None = None

    # -- one pass -----------------------------------------------------------------------------

    def reconcile(self) -> PassResult:
        pass_id = next(self._pass_ids)
        with structlog.contextvars.bound_contextvars(pass_id=pass_id):
            started = self._clock()
            try:
                result = self._reconcile(pass_id)
            except AgentError as exc:
                result = PassResult(pass_id, error=str(exc))
                log.error("pass_failed", error=str(exc), kind=type(exc).__name__)
            except Exception as exc:  # a bug must cost one pass, never the agent
                result = PassResult(pass_id, error=f"{type(exc).__name__}: {exc}")
                log.exception("pass_crashed", error=str(exc))
            seconds = self._clock() - started
            self._log_pass(result, seconds)
        self._failures = self._failures + 1 if result.error else 0
        self._observe(result, seconds)
        return result

    def _observe(self, result: PassResult, seconds: float) -> None:
        if result.error is None:
            self.last_success_at = self._clock()
        self._observer.pass_done(result.error is None, seconds)
        for o in result.report.outcomes:
            outcome = (
                "ok" if o.ok else "pending" if o.pending else "skipped" if o.skipped else "failed"
            )
            self._observer.action(o.action, outcome)
        self._observer.containers(dict(Counter(c.state for c in self._status.containers)))

    def _reconcile(self, pass_id: int) -> PassResult:
        desired = self._refresh_desired()
        if desired is None:
            waiting = isinstance(self._load_error, TransientError)
            return PassResult(
                pass_id,
                error=f"no valid desired state yet from {self._source.describe()}",
                retryable=waiting,
            )
        desired = self._hold(desired)
        actual = self._runtime.list_managed()
        self._actual = tuple(actual)
        actions = plan(desired, actual)
        self._crashloop.forget_except({s.name for s in desired.specs})
        self._drain.forget_except({c.name for c in actual})
        draining, held_back = self._drain.hold(actions)
        allowed, held = self._crashloop.hold(draining)
        executed = self._executor.execute(allowed)
        report = ExecutionReport(executed.outcomes + tuple(held_back) + tuple(held))
        done = [o for o in report.outcomes if o.ok]
        self._crashloop.stopped(o.name for o in done if o.action == "stop")
        resumed = self._crashloop.resumed
        self._restarts.update(
            o.name for o in done if o.action in ("start", "recreate") and o.name not in resumed
        )
        _healed(self._status, done, resumed)
        self._status = build_status(desired, actual, report, self._restarts, converged=not actions)
        if self._housekeeping is not None:
            self._housekeeping(desired, actual)
        return PassResult(pass_id, planned=len(actions), report=report)

    def status(self) -> AgentStatus:
        """The latest pass's view of the containers, with each one's readiness (any thread)."""
        return self._overlay(self._status)

    def actual(self) -> tuple[ActualContainer, ...]:
        """The managed containers as the latest pass listed them (for the owner's sensors)."""
        return self._actual

    def _refresh_desired(self) -> DesiredState | None:
        if self._desired is None or self._source.changed():
            try:
                self._desired = self._limit(self._source.load())
                self._load_error = None
                log.info(
                    "desired_state_loaded",
                    source=self._source.describe(),
                    containers=[s.name for s in self._desired.specs],
                )
            except TransientError as exc:
                self._load_error = exc
                log.info("desired_state_waiting", reason=str(exc))
            except AgentError as exc:
                self._load_error = exc
                log.error(
                    "desired_state_rejected",
                    source=self._source.describe(),
                    error=str(exc),
                    keeping="last good state"
                    if self._desired is not None
                    else "nothing (no containers touched)",
                )
        return self._desired

    @staticmethod
    def _log_pass(result: PassResult, seconds: float) -> None:
        if result.error:
            return  # already logged as pass_failed / pass_crashed / desired_state_rejected
        report = result.report
        event = log.debug if result.converged else log.info
        event(
            "pass_done",
            planned=result.planned,
            failed=len(report.failures),
            pending=len(report.pending),
            seconds=round(seconds, 4),
        )

    # -- the loop -----------------------------------------------------------------------------

    def on_event(self, event: ContainerEvent | None) -> None:
        self._event_seen.set()
        self._doorbell.ring()

    def run(self, teardown: Callable[[], bool] = lambda: True) -> int:
        """Converge until shutdown, then tear down unless `teardown()` says to leave the
        containers running. Returns the process exit code."""
        watcher = EventWatcher(self._runtime, self.on_event, self._stop)
        watcher.start()
        log.info("agent_started", source=self._source.describe())
        rechecks: list[float] = []
        try:
            while not self._stop.is_set():
                event_driven = self._event_seen.is_set()
                self._event_seen.clear()
                result = self.reconcile()
                timeout = self._next_delay(result)
                # Look again soon after an event or a pass that changed something; a pass whose
                # actions all failed (a name conflict, a refused volume) waits its delay instead:
                # re-arming the rechecks on it would spin, a pass every 0.1-0.4 s for ever.
                if event_driven or any(o.ok for o in result.report.outcomes):
                    rechecks = list(RECHECKS)
                if rechecks:
                    timeout = min(timeout, rechecks.pop(0))
                self._wait_for_trigger(timeout)
        finally:
            watcher.close()
        if not teardown():
            log.info("containers_left_running", note="the next start adopts them")
            return 0
        return 0 if self.teardown() else 1

    def run_once(self, timeout: float) -> int:
        """Converge, leave the containers running; 0 when converged, 1 when not."""
        deadline = self._clock() + timeout
        while not self._stop.is_set() and self._clock() < deadline:
            result = self.reconcile()
            if result.converged:
                log.info("converged", pass_id=result.pass_id)
                return 0
            if result.stuck and not result.report.pending:
                log.error(
                    "not_converged",
                    failures=[
                        {"container": o.name, "error": o.error} for o in result.report.failures
                    ],
                )
                return 1
            self._doorbell.wait(min(self._once_delay(result), deadline - self._clock()))
        log.error("not_converged", reason="timeout" if not self._stop.is_set() else "stopped")
        return 1

    def _next_delay(self, result: PassResult) -> float:
        """How long to wait for a trigger before the next pass runs anyway: the resync
        interval, sooner after a failed pass or when a back-off (crash loop, pull) ends."""
        delay = self._resync
        if result.error:
            delay = FAILED_PASS.delay(self._failures + 1)
        elif any(o.transient for o in result.report.failures):
            delay = 2.0
        due = [d for d in (due() for due in self._backoffs) if d is not None]
        return min([delay, self._resync, *(d + 0.05 for d in due)])

    def _once_delay(self, result: PassResult) -> float:
        if result.report.pending:
            return self._resync  # the finished pull rings the doorbell
        if result.error or result.report.failures:
            return self._next_delay(result)
        return 0.0  # actions went through: verify with the next pass at once

    def _wait_for_trigger(self, timeout: float) -> None:
        """Sleep until something may have changed: doorbell, source change, timer, or stop."""
        deadline = self._clock() + timeout
        while not self._stop.is_set():
            remaining = deadline - self._clock()
            if remaining <= 0:
                return
            if self._doorbell.wait(min(self._poll, remaining)):
                self._stop.wait(0.05)  # let a burst of engine events settle into one pass
                self._doorbell.wait(0)
                return
            if self._source.changed():
                return

    def teardown(self) -> bool:
        """Stop and remove every managed container. True when none is left."""
        return teardown(self._runtime, self._executor, self._network)
