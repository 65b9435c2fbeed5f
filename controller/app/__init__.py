"""The composition root: builds the runtime, puller, executor, desired-state source, membership
and loop from Settings, and runs them. Nothing else in the agent sees Settings; every part below
gets plain values. Signals (ops/signals.py) and the instance lock (ops/lock.py) are used here,
not defined here.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import structlog

from controller import __version__
from controller.clients.disk import docker_disk
from controller.clients.docker_runtime import DockerRuntime
from controller.clients.manifest import ManifestSource
from controller.clients.store import StateStore, atomic_write_text
from controller.core.errors import ConfigError
from controller.core.limits import Limits
from controller.core.observe import NullObserver, Observer, PullProgress
from controller.core.policy import ImagePolicy
from controller.engine.executor import Executor
from controller.engine.imagegc import Disk, PulledImages, collect, floor_error
from controller.engine.images import ImagePuller
from controller.engine.loop import Agent, DesiredSource, Doorbell
from controller.membership.source import AssignmentSource
from controller.ops.health import HealthServer
from controller.ops.lock import lock_instance
from controller.ops.probes import Snapshot
from controller.ops.signals import Signals
from controller.settings import Settings

if TYPE_CHECKING:
    from controller.membership.lifecycle import Lifecycle
    from controller.ops.metrics import Metrics

log = structlog.get_logger(__name__)


def limits_from(settings: Settings) -> Limits:
    try:
        return Limits.from_settings(settings.max_cpus, settings.max_memory, settings.gpus)
    except ValueError as exc:
        raise ConfigError(str(exc)) from exc


def probe_capabilities(settings: Settings) -> dict[str, Any]:
    """What this machine would register with (`--test-capabilities`)."""
    from controller.clients.hardware import offered_capabilities  # noqa: PLC0415

    runtime = DockerRuntime(settings.instance, base_url=settings.docker_host, timeout=5)
    try:
        return offered_capabilities(limits_from(settings), runtime.data_root, __version__)
    finally:
        runtime.close()


def _image_gc(
    settings: Settings, runtime: DockerRuntime, disk: Disk, pulled: PulledImages
) -> Callable[[set[str]], list[str]]:
    def image_gc(in_use: set[str]) -> list[str]:
        high, low = settings.image_gc_high, settings.image_gc_low
        return collect(pulled, runtime.remove_image, disk, in_use, high=high, low=low)

    return image_gc


@dataclass(frozen=True)
class Wiring:
    """What every part is connected through: the stop event, the loop's doorbell, metrics
    (None when the endpoint that serves them is off: then prometheus_client is never loaded),
    and the contributor's limits (applied to the specs and to what is offered)."""

    stop: threading.Event
    doorbell: Doorbell
    metrics: Metrics | None
    progress_sink: Callable[[PullProgress], None] | None
    limits: Limits

    @property
    def observer(self) -> Observer:
        return self.metrics if self.metrics is not None else NullObserver()


def _lifecycle(
    settings: Settings,
    *,
    runtime: DockerRuntime,
    source: AssignmentSource,
    agent: Agent,
    wiring: Wiring,
) -> Lifecycle:
    # Imported here: an agent in manifest mode never needs them (a faster start).
    from controller.clients.coordinator import CoordinatorClient  # noqa: PLC0415
    from controller.clients.hardware import load_snapshot, offered_capabilities  # noqa: PLC0415
    from controller.contract.api import heartbeat_fields  # noqa: PLC0415
    from controller.membership.lifecycle import Lifecycle  # noqa: PLC0415

    def client() -> CoordinatorClient:  # one per thread: no session is shared
        return CoordinatorClient(
            settings.effective_coordinator,
            sleep=wiring.stop.wait,
            ca_bundle=str(settings.ca_bundle) if settings.ca_bundle else None,
            allow_insecure=settings.allow_insecure_coordinator,
        )

    def report() -> dict[str, Any]:
        return heartbeat_fields(agent.status(), *load_snapshot())

    limits = wiring.limits
    return Lifecycle(
        client(),
        StateStore(settings.state_dir, settings.instance),
        source,
        poll_client=client(),
        capabilities=lambda: offered_capabilities(limits, runtime.data_root, __version__),
        report=report,
        stop=wiring.stop,
        on_change=wiring.doorbell.ring,
        heartbeat_override=settings.heartbeat_interval,
        observer=wiring.observer,
        long_poll_wait=settings.long_poll_wait,
    )


def start_health(
    settings: Settings, snap: Snapshot, metrics: Metrics | None
) -> HealthServer | None:
    """The health/metrics/status endpoint; its URL is written to the state dir for `status`."""
    addr = settings.health_address
    url_file = settings.state_dir / f"{settings.instance}.health"
    if addr is None or metrics is None:
        url_file.unlink(missing_ok=True)
        return None
    try:
        server = HealthServer(
            addr, alive=snap.alive, ready=snap.ready, status=snap.status, metrics=metrics.render
        )
    except OSError as exc:
        log.error(
            "health_endpoint_failed",
            address=settings.health_addr,
            error=exc.strerror,
            effect="running without /healthz, /metrics and `rma-worker status`",
        )
        return None
    server.start()
    atomic_write_text(url_file, server.url + "\n")
    return server


@dataclass
class Parts:
    runtime: DockerRuntime
    agent: Agent
    lifecycle: Lifecycle | None
    health: HealthServer | None


def _source(settings: Settings) -> DesiredSource:
    if settings.manifest is not None:
        return ManifestSource(settings.manifest, publish_address=settings.publish_address)
    return AssignmentSource(
        settings.publish_address,
        ImagePolicy.from_setting(settings.allowed_registries, settings.require_digest),
    )


def _loop(
    settings: Settings, runtime: DockerRuntime, source: DesiredSource, wiring: Wiring
) -> tuple[ImagePuller, Agent]:
    """The puller, executor and reconcile loop."""
    stop, doorbell, metrics = wiring.stop, wiring.doorbell, wiring.observer
    disk = docker_disk(runtime.data_root)
    pulled = PulledImages(StateStore(settings.state_dir, settings.instance))
    puller = ImagePuller(
        runtime,
        on_done=doorbell.ring,
        refresh_interval=settings.image_refresh_interval,
        observer=metrics,
        progress_sink=wiring.progress_sink,
        on_pulled=pulled.add,
        floor=lambda: floor_error(disk, settings.min_free_disk),
    )
    executor = Executor(
        runtime,
        puller,
        concurrency=settings.concurrency,
        stop_grace=settings.stop_grace,
        should_stop=stop.is_set,
    )
    agent = Agent(
        source,
        runtime,
        executor,
        stop=stop,
        doorbell=doorbell,
        resync_interval=settings.resync_interval,
        observer=metrics,
        image_gc=_image_gc(settings, runtime, disk, pulled),
        limit=wiring.limits.apply_all,
        backoffs=(puller.next_due,),
    )
    return puller, agent


def _metrics(settings: Settings) -> Metrics | None:
    if settings.health_address is None:
        return None  # nothing would serve them
    from controller.ops.metrics import Metrics  # noqa: PLC0415

    return Metrics()


def build(
    settings: Settings,
    stop: threading.Event,
    doorbell: Doorbell,
    progress_sink: Callable[[PullProgress], None] | None,
) -> Parts:
    """Wire the agent from its settings (nothing runs yet but the health endpoint)."""
    wiring = Wiring(stop, doorbell, _metrics(settings), progress_sink, limits_from(settings))
    # Docker calls keep a plain sleep between their (at most 2 s of) retries: the teardown after
    # a stop must still ride out an engine blip.
    runtime = DockerRuntime(
        settings.instance, base_url=settings.docker_host, pool_size=settings.concurrency + 4
    )
    source = _source(settings)
    puller, agent = _loop(settings, runtime, source, wiring)
    lifecycle = None
    if isinstance(source, AssignmentSource):
        lifecycle = _lifecycle(settings, runtime=runtime, source=source, agent=agent, wiring=wiring)
    snap = Snapshot(
        agent,
        lifecycle,
        puller,
        instance=settings.instance,
        coordinator=settings.effective_coordinator,
        manifest=str(settings.manifest) if settings.manifest else None,
        resync_interval=settings.resync_interval,
    )
    health = start_health(settings, snap, wiring.metrics)
    return Parts(runtime, agent, lifecycle, health)


def run(settings: Settings, progress_sink: Callable[[PullProgress], None] | None = None) -> int:
    """Keep Docker converged to the manifest or the coordinator's assignment until shutdown."""
    lock = lock_instance(settings.state_dir, settings.instance)
    stop, doorbell = threading.Event(), Doorbell()
    signals = Signals(stop, doorbell.ring)
    parts = build(settings, stop, doorbell, progress_sink)
    log.info(
        "agent_config",
        version=__version__,
        instance=settings.instance,
        once=settings.once,
        coordinator=settings.effective_coordinator if parts.lifecycle else None,
        manifest=str(settings.manifest or "") or None,
    )
    try:
        if parts.lifecycle is not None:
            parts.lifecycle.start()
        if settings.once:
            return parts.agent.run_once(settings.once_timeout)
        code = parts.agent.run(teardown=lambda: not signals.leave_running.is_set())
        if parts.lifecycle is not None:
            parts.lifecycle.close()
            if not signals.leave_running.is_set():
                parts.lifecycle.unregister()
        return code
    finally:
        stop.set()
        if parts.health is not None:
            parts.health.close()
        signals.close()
        parts.runtime.close()
        lock.close()
