"""The composition root: builds the runtime, puller, executor, desired-state source, membership
and loop from Settings, and runs them. Nothing else in the agent sees Settings; every part below
gets plain values. Signals (ops/signals.py) and the instance lock (ops/lock.py) are used here,
not defined here.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import structlog

from controller import __version__
from controller.app.containment import totals_of
from controller.app.credits import Credits, credits_of
from controller.app.endpoint import dashboard_of, metrics_of, start_health
from controller.app.owner import Owner, owner_of
from controller.app.parts import (
    GpuFacts,
    Wiring,
    gpu_placement,
    limits_from,
    loop_of,
    reach_of,
    source_of,
)
from controller.clients.docker_owned import Holding
from controller.clients.docker_runtime import DockerRuntime
from controller.clients.store import StateStore
from controller.core.observe import PullProgress
from controller.engine.doorbell import Doorbell
from controller.engine.drain import Drain
from controller.engine.hooks import Listener, Stage
from controller.engine.loop import Reconciler
from controller.ops.health import HealthServer
from controller.ops.lock import lock_instance
from controller.ops.probes import Facts, Snapshot
from controller.ops.signals import Signals
from controller.settings import Settings

if TYPE_CHECKING:
    from controller.contract.services import Announcement
    from controller.core.limits import Limits
    from controller.membership.lifecycle import Lifecycle
    from controller.membership.source import AssignmentSource

log = structlog.get_logger(__name__)


def probe_capabilities(settings: Settings) -> dict[str, Any]:
    """What this machine would register with (`--test-capabilities`)."""
    from controller.clients.hardware import offered_capabilities  # noqa: PLC0415

    runtime = DockerRuntime(settings.instance, base_url=settings.docker_host, timeout=5)
    try:
        return offered_capabilities(limits_from(settings), runtime, __version__)
    finally:
        runtime.close()


def _reporting(
    settings: Settings,
    source: AssignmentSource,
    agent: Reconciler,
    runtime: DockerRuntime,
    wiring: Wiring,
    *,
    owner: Owner,
) -> tuple[Callable[[], Announcement], Callable[[], dict[str, Any]]]:
    """What the worker announces (its services' URLs) and the heartbeat it sends."""
    from controller.clients import hardware  # noqa: PLC0415
    from controller.contract import services as svc  # noqa: PLC0415
    from controller.contract.api import heartbeat_fields  # noqa: PLC0415

    reach, limits = reach_of(settings, runtime), limits_from(settings)
    lent, lock, ready = frozenset(limits.gpus or ()), threading.Lock(), [frozenset[str]()]

    def announcement() -> Announcement:
        if wiring.withdrawn.is_set():  # shutting down: nothing is reachable any more
            return svc.Announcement()
        with lock:  # the lifecycle thread and the status endpoint both ask
            ready[0] = svc.serving(agent.status(), ready[0])
            desired = source.current()
            serving_now = ready[0] - wiring.drain.withdrawing()  # not those about to stop
            return svc.announce(desired.specs if desired else (), svc.only(serving_now, reach()))

    def report() -> dict[str, Any]:
        gpu = hardware.gpu_utilization(lent=lent) if limits.gpus != () else None
        status, announced = agent.status(), announcement()
        hidden = svc.not_reachable(status, announced, settings.ingress_mode)
        load = hardware.load_snapshot()
        return (
            heartbeat_fields(
                status, *load, announced=announced, gpu_utilization=gpu, unreachable=hidden
            )
            | owner.heartbeat()
        )

    return announcement, report


def _lifecycle(
    settings: Settings,
    *,
    runtime: DockerRuntime,
    source: AssignmentSource,
    agent: Reconciler,
    wiring: Wiring,
    owner: Owner,
    credits: Credits,
) -> Lifecycle:
    # Imported here: an agent in manifest mode never needs them (a faster start).
    from controller.clients import hardware  # noqa: PLC0415
    from controller.clients.coordinator import CoordinatorClient  # noqa: PLC0415
    from controller.membership.lifecycle import Lifecycle, Telling, Timing  # noqa: PLC0415

    clock = wiring.doorbell.clock

    def client() -> CoordinatorClient:  # one per thread: no session is shared
        return CoordinatorClient(
            settings.effective_coordinator,
            sleep=lambda seconds: clock.wait(wiring.stop, seconds),
            ca_bundle=str(settings.ca_bundle) if settings.ca_bundle else None,
            allow_insecure=settings.allow_insecure_coordinator,
        )

    announcement, report = _reporting(settings, source, agent, runtime, wiring, owner=owner)
    limits = wiring.limits
    return Lifecycle(
        client(),
        StateStore(settings.state_dir, settings.instance),
        source,
        Telling(
            capabilities=lambda: hardware.offered_capabilities(limits, runtime, __version__),
            report=report,
            announcement=announcement,
            ip_address=settings.advertise_ip,
            observer=wiring.observer,
            ledger=credits.ledger,
            presented=credits.presented(),
        ),
        stop=wiring.stop,
        poll_client=client(),
        on_change=wiring.doorbell.ring,
        timing=Timing(settings.heartbeat_interval, settings.long_poll_wait, clock=clock),
    )


@dataclass
class Parts:
    runtime: DockerRuntime
    agent: Reconciler
    lifecycle: Lifecycle | None
    health: HealthServer | None
    withdrawn: threading.Event
    owner: Owner
    credits: Credits | None = None


def _on_state_change(agent: Reconciler, notify: Callable[[], None]) -> Listener:
    """After a pass: when a container's state or health changed, `notify` (what is announced
    may change: the membership looks now rather than at the next heartbeat)."""
    seen: list[frozenset[tuple[str, str, str]]] = [frozenset()]

    def after_pass(*_: object) -> None:
        now = frozenset((c.name, c.state, c.health) for c in agent.status().containers)
        if now != seen[0]:
            seen[0] = now
            notify()

    return Listener("membership", after_pass)


def _runtime(settings: Settings, limits: Limits) -> DockerRuntime:
    # Docker calls keep a plain sleep between their (at most 2 s of) retries: the teardown after
    # a stop must still ride out an engine blip.
    return DockerRuntime(
        settings.instance,
        base_url=settings.docker_host,
        pool_size=settings.concurrency + 4,
        holding=Holding(
            adopted_volumes=StateStore(settings.state_dir, settings.instance).load_adopted(),
            totals=totals_of(settings, limits),
            isolate_lan=settings.isolate_lan,
        ),
        pull_stall=settings.pull_stall_timeout,
    )


def build(
    settings: Settings,
    stop: threading.Event,
    doorbell: Doorbell,
    progress_sink: Callable[[PullProgress], None] | None,
    runtime: DockerRuntime | None = None,
) -> Parts:
    """Wire the agent from its settings (nothing runs yet but the health endpoint)."""
    limits, drain = limits_from(settings), Drain(settings.drain_seconds, clock=doorbell.clock.now)
    wiring = Wiring(stop, doorbell, metrics_of(settings), progress_sink, limits, drain=drain)
    runtime = runtime or _runtime(settings, limits)
    source = source_of(settings, wiring.limits, doorbell.clock)
    built: list[Reconciler] = []  # the owner's sensors read the loop's latest listing
    owner = owner_of(settings, wiring, lambda: built[0] if built else None)
    facts = GpuFacts(wiring.limits, runtime)
    gpus = gpu_placement(owner.gpu_others, facts)
    holds = (gpus, Stage("owner's conditions", owner.conditions.apply))
    puller, agent, keeper, caches = loop_of(settings, runtime, source, wiring, holds, facts)
    built.append(agent)
    lifecycle, credits = None, None
    if settings.manifest is None:  # a coordinator's assignment (parts.py: source_of)
        from controller.membership.source import AssignmentSource  # noqa: PLC0415

        assert isinstance(source, AssignmentSource)
        life: list[Lifecycle] = []
        store = StateStore(settings.state_dir, settings.instance)

        def worker_id() -> str:  # the coordinator's id for this worker, else its own
            identity = life[0].identity if life else None
            return identity.worker_id if identity is not None else store.own_worker_id()

        credits = credits_of(settings, agent, owner.meter, worker_id, doorbell.clock)
        lifecycle = _lifecycle(
            settings,
            runtime=runtime,
            source=source,
            agent=agent,
            wiring=wiring,
            owner=owner,
            credits=credits,
        )
        life.append(lifecycle)
        wiring.drain.connect(lifecycle.announced_containers, lifecycle.wake_now)
        wiring.after_pass.append(_on_state_change(agent, lifecycle.states_changed))
    snap = Snapshot(
        agent,
        lifecycle,
        puller,
        Facts(
            instance=settings.instance,
            coordinator=settings.effective_coordinator,
            manifest=str(settings.manifest) if settings.manifest else None,
            resync_interval=settings.resync_interval,
            ingress=settings.ingress_mode,
        ),
        kept_volumes=lambda: keeper.kept,
        owner=lambda: (
            owner.view()
            | {"model_caches": caches.view()}
            | ({"credits": credits.view(lifecycle)} if credits is not None else {})
        ),
    )
    health = start_health(
        settings, snap, wiring.metrics, dashboard_of(settings, snap, runtime.data_root)
    )
    return Parts(runtime, agent, lifecycle, health, wiring.withdrawn, owner, credits)


@dataclass(frozen=True)
class Host:
    """What the process gives the agent: the doorbell (with the stop event and the clock every
    thread waits on), `leave_running` (set: the teardown is skipped), and the container runtime
    (None: Docker, as Settings say). The component tests pass an in-memory engine and a virtual
    clock (rma_testkit/component.py)."""

    doorbell: Doorbell
    leave_running: threading.Event = field(default_factory=threading.Event)
    runtime: DockerRuntime | None = None
    on_built: Callable[[Parts], None] = lambda parts: None  # what a component test reads


def _drained(settings: Settings, parts: Parts, host: Host) -> bool:
    """Before the teardown (False: leave the containers running): withdraw the services' URLs,
    then give requests in flight `--drain-seconds` (the seed's "stop accepting new tasks,
    complete current tasks, then stop and remove containers, then unregister")."""
    if host.leave_running.is_set():
        return False
    life = parts.lifecycle
    if life is None or settings.drain_seconds <= 0 or not life.announced():
        return True
    life.close()  # the membership threads are done: this thread speaks for the worker now
    parts.withdrawn.set()
    life.withdraw()
    log.info(
        "draining",
        seconds=settings.drain_seconds,
        note="requests in flight finish; a second signal stops at once",
    )
    host.doorbell.clock.wait(threading.Event(), settings.drain_seconds)
    return True


def run(settings: Settings, progress_sink: Callable[[PullProgress], None] | None = None) -> int:
    """Keep Docker converged to the manifest or the coordinator's assignment until a signal."""
    stop = threading.Event()
    doorbell = Doorbell(stop)
    signals = Signals(stop, doorbell.ring)
    try:
        return serve(settings, Host(doorbell, signals.leave_running), progress_sink)
    finally:
        signals.close()


def serve(
    settings: Settings,
    host: Host,
    progress_sink: Callable[[PullProgress], None] | None = None,
) -> int:
    """The agent's whole life on `host`: build, converge until its stop event, tear down."""
    lock = lock_instance(settings.state_dir, settings.instance)
    stop, doorbell = host.doorbell.stop, host.doorbell
    parts = build(settings, stop, doorbell, progress_sink, runtime=host.runtime)
    host.on_built(parts)
    log.info(
        "agent_config",
        version=__version__,
        instance=settings.instance,
        once=settings.once,
        coordinator=settings.effective_coordinator if parts.lifecycle else None,
        manifest=str(settings.manifest or "") or None,
    )
    try:
        parts.owner.start(stop)  # its first check before the first pass: a pause holds at once
        if parts.lifecycle is not None:
            parts.lifecycle.start()
        if parts.credits is not None:
            parts.credits.start(stop, doorbell.clock.wait)
        if settings.once:
            return parts.agent.run_once(settings.once_timeout)
        code = parts.agent.run(teardown=lambda: _drained(settings, parts, host))
        if parts.lifecycle is not None:
            parts.lifecycle.close()
            if parts.credits is not None:  # the window so far sealed, and delivered if it can be
                parts.credits.keeper.close()
                parts.lifecycle.deliver_receipts()
            if not host.leave_running.is_set():
                parts.lifecycle.unregister()
        return code
    finally:
        stop.set()
        parts.owner.close()
        if parts.health is not None:
            parts.health.close()
        parts.runtime.close()
        lock.close()
