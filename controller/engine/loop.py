"""The reconciler: level-based, idempotent, and alive until it is told to stop.

Every pass re-reads the desired state (when its source changed), shapes it and applies the
owner's holds (engine/hooks.py names each stage), reads the actual state (one list call), plans,
lets the gates hold actions back, executes, and tells the after-pass listeners. Its result says
when to look again (`PassResult.look_again`, one pure function in core/pacing.py for `run` and
`run_once`); the doorbell wakes it sooner — rung by a desired-state change, an engine event about
a managed container, a finished pull, the owner's conditions, and shutdown. Nothing is polled.
Teardown converges to nothing (stops and removes every managed container), then removes the
agent's own network.
"""

from __future__ import annotations

import itertools
import threading
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import replace

import structlog

from controller.core.errors import AgentError, TransientError
from controller.core.models import ActualContainer, DesiredState
from controller.core.observe import NullObserver
from controller.core.pacing import Pace, next_look, rechecks_after
from controller.core.planner import Action, plan
from controller.core.results import ActionOutcome, ExecutionReport, PassResult
from controller.core.runtime import ContainerEvent, ContainerRuntime
from controller.core.status import AgentStatus, build_status
from controller.engine.crashloop import CrashLoop
from controller.engine.doorbell import Doorbell
from controller.engine.executor import Executor
from controller.engine.hooks import ActionGate, DesiredSource, Hooks, shaped
from controller.engine.watcher import EventWatcher

log = structlog.get_logger(__name__)
SETTLE = 0.05  # after a ring, let a burst of engine events settle into one pass
STOP_CHECK = 1.0  # the longest a wait goes without looking at the stop event


def _healed(before: AgentStatus, done: list[ActionOutcome], resumed: frozenset[str]) -> None:
    """A container the last pass saw running and this one had to create or start again was
    healed (removed or stopped behind the agent's back): said once, for the owner's page."""
    was = {c.name for c in before.containers if c.state == "running"}
    for o in done:
        if o.action in ("create", "start") and o.name in was and o.name not in resumed:
            how = "removed: created again" if o.action == "create" else "stopped: started again"
            log.warning("container_healed", container=o.name, how=how)


def _held(
    gates: Sequence[ActionGate], actions: list[Action]
) -> tuple[list[Action], list[ActionOutcome]]:
    """The actions every gate lets through, in order (the drain, then the crash loop)."""
    held: list[ActionOutcome] = []
    for gate in gates:
        actions, kept_back = gate.hold(actions)
        held.extend(kept_back)
    return actions, held


def _teardown(runtime: ContainerRuntime, executor: Executor, network: str) -> bool:
    """Stop and remove every managed container, then the agent's network. True when none is
    left."""
    log.info("teardown_started")
    try:
        actions = plan(DesiredState(), runtime.list_managed())
    except AgentError as exc:
        log.error("teardown_failed", error=str(exc))
        return False
    report = executor.execute(actions)
    ok = not report.failures
    if ok and network:
        try:
            runtime.release(network)
        except AgentError as exc:
            log.warning("network_not_removed", network=network, error=str(exc))
    (log.info if ok else log.error)(
        "teardown_done", removed=len(actions), failed=len(report.failures)
    )
    return ok


class Reconciler:
    def __init__(
        self,
        source: DesiredSource,
        runtime: ContainerRuntime,
        executor: Executor,
        hooks: Hooks | None = None,
        *,
        doorbell: Doorbell,
        resync: float = 30.0,
        network: str = "",
    ) -> None:
        self._source, self._runtime, self._executor = source, runtime, executor
        self._hooks = hooks or Hooks()
        self._doorbell, self._stop, self._clock = doorbell, doorbell.stop, doorbell.clock
        self._resync, self._network = resync, network  # network: removed after a full teardown
        gates = self._hooks.gates
        self._gates = gates if gates is not None else (CrashLoop(clock=self._clock.now),)
        self._observer = self._hooks.observer or NullObserver()
        self._desired: DesiredState | None = None
        self._load_error: AgentError | None = None
        self._pass_ids, self._failures = itertools.count(1), 0
        self._event_seen, self._restarts = threading.Event(), Counter[str]()
        self._rechecks: tuple[float, ...] = ()
        self._status, self._actual = AgentStatus(), tuple[ActualContainer, ...]()
        self.last_success_at: float | None = None

    # -- one pass -----------------------------------------------------------------------------

    def reconcile(self) -> PassResult:
        pass_id = next(self._pass_ids)
        event = self._event_seen.is_set()
        self._event_seen.clear()
        with structlog.contextvars.bound_contextvars(pass_id=pass_id):
            started = self._clock.now()
            try:
                result = self._reconcile(pass_id)
            except AgentError as exc:
                result = PassResult(pass_id, error=str(exc))
                log.error("pass_failed", error=str(exc), kind=type(exc).__name__)
            except Exception as exc:  # a bug must cost one pass, never the agent
                result = PassResult(pass_id, error=f"{type(exc).__name__}: {exc}")
                log.exception("pass_crashed", error=str(exc))
            seconds = self._clock.now() - started
            self._log_pass(result, seconds)
        self._failures = self._failures + 1 if result.error else 0
        self._observe(result, seconds)
        return self._paced(result, event=event)

    def _paced(self, result: PassResult, *, event: bool) -> PassResult:
        """The result with when to look again (and the rechecks left after this one)."""
        rechecks = rechecks_after(result, self._rechecks, event=event)
        due = (d.next_due() for d in (*self._gates, *self._hooks.dues))
        dues = tuple(d for d in due if d is not None)
        pace = Pace(self._resync, self._failures, dues, rechecks)
        self._rechecks = rechecks[1:]
        return replace(result, look_again=next_look(result, pace))

    def _observe(self, result: PassResult, seconds: float) -> None:
        if result.error is None:
            self.last_success_at = self._clock.now()
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
        desired = shaped(self._hooks.holds, desired)
        actual = self._runtime.list_managed()
        self._actual = tuple(actual)
        actions = plan(desired, actual)
        for gate in self._gates:
            gate.forget(desired, actual)
        allowed, held = _held(self._gates, actions)
        executed = self._executor.execute(allowed)
        report = ExecutionReport(executed.outcomes + tuple(held))
        self._account(desired, actual, report, converged=not actions)
        for listener in self._hooks.after:
            listener.after_pass(desired, actual)
        return PassResult(pass_id, planned=len(actions), report=report)

    def _account(
        self,
        desired: DesiredState,
        actual: list[ActualContainer],
        report: ExecutionReport,
        *,
        converged: bool,
    ) -> None:
        """Count the restarts (not the resumes a gate excused), say what was healed, and keep
        the pass's status."""
        done = [o for o in report.outcomes if o.ok]
        resumed = frozenset[str]().union(*(gate.settle(done) for gate in self._gates))
        self._restarts.update(
            o.name for o in done if o.action in ("start", "recreate") and o.name not in resumed
        )
        _healed(self._status, done, resumed)
        self._status = build_status(desired, actual, report, self._restarts, converged=converged)

    def status(self) -> AgentStatus:
        """The latest pass's view of the containers, with each one's readiness (any thread)."""
        overlay = self._hooks.overlay
        return overlay.overlay(self._status) if overlay is not None else self._status

    def actual(self) -> tuple[ActualContainer, ...]:
        """The managed containers as the latest pass listed them (for the owner's sensors)."""
        return self._actual

    def _refresh_desired(self) -> DesiredState | None:
        if self._desired is None or self._source.changed():
            try:
                self._desired = shaped(self._hooks.shape, self._source.load())
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
        watcher = EventWatcher(self._runtime, self.on_event, self._stop, clock=self._clock)
        watcher.start()
        self._source.watch(self._doorbell.ring, self._stop)
        log.info("agent_started", source=self._source.describe())
        try:
            while not self._stop.is_set():
                self._wait_for_trigger(self.reconcile().look_again)
        finally:
            watcher.close()
        if not teardown():
            log.info("containers_left_running", note="the next start adopts them")
            return 0
        return 0 if self.teardown() else 1

    def run_once(self, timeout: float) -> int:
        """Converge, leave the containers running; 0 when converged, 1 when not."""
        deadline = self._clock.now() + timeout
        while not self._stop.is_set() and self._clock.now() < deadline:
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
            self._doorbell.wait(min(result.look_again, deadline - self._clock.now()))
        log.error("not_converged", reason="timeout" if not self._stop.is_set() else "stopped")
        return 1

    def _wait_for_trigger(self, timeout: float) -> None:
        """Sleep until the doorbell rings, the pass's `look_again` is up, or shutdown."""
        deadline = self._clock.now() + timeout
        while not self._stop.is_set():
            remaining = deadline - self._clock.now()
            if remaining <= 0:
                return
            if self._doorbell.wait(min(STOP_CHECK, remaining)):
                self._clock.wait(self._stop, SETTLE)
                self._doorbell.wait(0)
                return

    def teardown(self) -> bool:
        """Stop and remove every managed container. True when none is left."""
        return _teardown(self._runtime, self._executor, self._network)
