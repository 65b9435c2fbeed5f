"""The composition root: builds the runtime, puller, executor, desired-state source, lifecycle and
loop from Settings, installs the signal handlers, and holds the instance lock so two agents never
fight over the same containers.

Signals: SIGTERM/SIGINT stop gracefully (containers removed, worker unregistered); SIGUSR1 stops
and leaves the containers running and the worker registered (for agent upgrades: the next start
adopts them); a second signal during shutdown exits at once.
"""

from __future__ import annotations

import fcntl
import os
import signal
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any, TextIO

import structlog

from controller import __version__
from controller.agent import Agent, DesiredSource, Doorbell
from controller.assignment import AssignmentSource
from controller.capabilities import capabilities
from controller.caps import Caps
from controller.coordinator import CoordinatorClient
from controller.docker_runtime import DockerRuntime
from controller.errors import AgentError, ConfigError
from controller.executor import Executor
from controller.hardware import detect, disk_usage, load_snapshot
from controller.health import HealthServer, parse_addr
from controller.imagegc import PulledImages, collect, floor_error
from controller.images import ImagePuller
from controller.lifecycle import Lifecycle
from controller.manifest import ManifestSource
from controller.metrics import Metrics
from controller.models import LABEL_INSTANCE
from controller.observe import PullProgress
from controller.policy import ImagePolicy
from controller.settings import Settings
from controller.snapshot import Snapshot
from controller.state import StateStore
from controller.status import heartbeat_fields

log = structlog.get_logger(__name__)


def caps_from(settings: Settings) -> Caps:
    try:
        return Caps.from_settings(settings.max_cpus, settings.max_memory, settings.gpus)
    except ValueError as exc:
        raise ConfigError(str(exc)) from exc


def detect_capabilities(runtime: DockerRuntime, caps: Caps) -> dict[str, Any]:
    """The registration capabilities, as offered under the contributor's caps; storage is read
    where Docker keeps its data, if reachable."""
    try:
        data_root = runtime.data_root()
    except AgentError as exc:
        log.debug("docker_data_root_unknown", error=str(exc))
        data_root = None
    return capabilities(caps.offered(detect(data_root)), version=__version__)


def print_capabilities(settings: Settings) -> dict[str, Any]:
    runtime = DockerRuntime(settings.instance, base_url=settings.docker_host, timeout=5)
    try:
        return detect_capabilities(runtime, caps_from(settings))
    finally:
        runtime.close()


class Signals:
    """Turns SIGTERM/SIGINT/SIGUSR1 into events; restores the previous handlers on close."""

    def __init__(self, stop: threading.Event, doorbell: Doorbell) -> None:
        self.stop = stop
        self.leave_running = threading.Event()
        self._doorbell = doorbell
        self._previous = {sig: signal.signal(sig, self._handle)
                          for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGUSR1)}

    def _handle(self, signum: int, _frame: FrameType | None) -> None:
        name = signal.Signals(signum).name
        if self.stop.is_set():
            log.warning("forced_exit", signal=name, containers="left running",
                        cleanup=f"docker ps -a --filter label={LABEL_INSTANCE}")
            os._exit(130)
        if signum == signal.SIGUSR1:
            self.leave_running.set()
        log.info("shutdown_requested", signal=name,
                 containers="left running" if self.leave_running.is_set() else "removed")
        self.stop.set()
        self._doorbell.ring()

    def close(self) -> None:
        for sig, old in self._previous.items():
            signal.signal(sig, old)


def lock_instance(state_dir: Path, instance: str) -> TextIO:
    """An exclusive lock per instance; the returned file must stay open while the agent runs."""
    try:
        state_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        handle = open(state_dir / f"{instance}.lock", "w")  # noqa: SIM115 (held for life)
    except OSError as exc:
        raise ConfigError(f"cannot use state dir {state_dir}: {exc.strerror}") from exc
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as exc:
        handle.close()
        raise ConfigError(f"another agent with instance {instance!r} is running "
                          f"(lock {state_dir / (instance + '.lock')})") from exc
    handle.write(f"{os.getpid()}\n")
    handle.flush()
    return handle


def _lifecycle(settings: Settings, *, runtime: DockerRuntime, source: AssignmentSource,
               agent: Agent, stop: threading.Event, doorbell: Doorbell,
               observer: Metrics) -> Lifecycle:
    client = CoordinatorClient(settings.effective_coordinator,
                               ca_bundle=str(settings.ca_bundle) if settings.ca_bundle else None)

    def report() -> dict[str, Any]:
        return heartbeat_fields(agent.status(), *load_snapshot())

    return Lifecycle(client, StateStore(settings.state_dir, settings.instance), source,
                     capabilities=lambda: detect_capabilities(runtime, caps_from(settings)),
                     report=report,
                     stop=stop, on_change=doorbell.ring,
                     heartbeat_override=settings.heartbeat_interval, observer=observer,
                     long_poll_wait=settings.long_poll_wait)


def start_health(settings: Settings, snap: Snapshot, metrics: Metrics) -> HealthServer | None:
    """The health/metrics/status endpoint; its URL is written to the state dir for `status`."""
    addr = parse_addr(settings.health_addr)
    url_file = settings.state_dir / f"{settings.instance}.health"
    if addr is None:
        url_file.unlink(missing_ok=True)
        return None
    try:
        server = HealthServer(addr, alive=snap.alive, ready=snap.ready, status=snap.status,
                              metrics=metrics.render)
    except OSError as exc:
        log.error("health_endpoint_failed", address=settings.health_addr, error=exc.strerror,
                  effect="running without /healthz, /metrics and `rma-worker status`")
        return None
    server.start()
    url_file.write_text(server.url + "\n")
    return server


def _disk(runtime: DockerRuntime) -> Callable[[], tuple[int, int]]:
    """(free, total) bytes where Docker keeps its data (the root dir is asked once)."""
    root: list[str] = []

    def usage() -> tuple[int, int]:
        if not root:
            try:
                root.append(runtime.data_root() or "/")
            except AgentError:
                return disk_usage("/")
        return disk_usage(root[0])

    return usage


@dataclass
class Parts:
    runtime: DockerRuntime
    agent: Agent
    lifecycle: Lifecycle | None
    health: HealthServer | None


def build(settings: Settings, stop: threading.Event, doorbell: Doorbell,
          progress_sink: Callable[[PullProgress], None] | None) -> Parts:
    """Wire the agent from its settings (nothing runs yet but the health endpoint)."""
    metrics = Metrics()
    runtime = DockerRuntime(settings.instance, base_url=settings.docker_host,
                            pool_size=settings.concurrency + 4)
    disk = _disk(runtime)
    pulled = PulledImages(StateStore(settings.state_dir, settings.instance))
    puller = ImagePuller(runtime, on_done=doorbell.ring,
                         refresh_interval=settings.image_refresh_interval, observer=metrics,
                         progress_sink=progress_sink, on_pulled=pulled.add,
                         floor=lambda: floor_error(disk, settings.min_free_disk))
    executor = Executor(runtime, puller, concurrency=settings.concurrency,
                        stop_grace=settings.stop_grace, should_stop=stop.is_set)
    source: DesiredSource
    if settings.manifest is not None:
        source = ManifestSource(settings.manifest, publish_address=settings.publish_address)
    else:
        source = AssignmentSource(settings.publish_address, ImagePolicy.from_setting(
            settings.allowed_registries, settings.require_digest))
    agent = Agent(source, runtime, executor, stop=stop, doorbell=doorbell,
                  resync_interval=settings.resync_interval, observer=metrics,
                  image_gc=lambda in_use: collect(pulled, runtime.remove_image, disk, in_use,
                                                  high=settings.image_gc_high,
                                                  low=settings.image_gc_low),
                  shape=caps_from(settings).apply_all)
    lifecycle = (_lifecycle(settings, runtime=runtime, source=source, agent=agent, stop=stop,
                            doorbell=doorbell, observer=metrics)
                 if isinstance(source, AssignmentSource) else None)
    health = start_health(settings, Snapshot(settings, agent, lifecycle, puller), metrics)
    return Parts(runtime, agent, lifecycle, health)


def run(settings: Settings, progress_sink: Callable[[PullProgress], None] | None = None) -> int:
    """Keep Docker converged to the manifest or the coordinator's assignment until shutdown."""
    lock = lock_instance(settings.state_dir, settings.instance)
    stop, doorbell = threading.Event(), Doorbell()
    signals = Signals(stop, doorbell)
    parts = build(settings, stop, doorbell, progress_sink)
    log.info("agent_config", version=__version__, instance=settings.instance,
             once=settings.once, coordinator=settings.effective_coordinator
             if parts.lifecycle else None, manifest=str(settings.manifest or "") or None)
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
