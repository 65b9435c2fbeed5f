"""The composition root: builds the runtime, puller, executor, source and loop from Settings,
installs the signal handlers, and holds the instance lock so two agents never fight over the same
containers.
"""

from __future__ import annotations

import fcntl
import os
import signal
import threading
from pathlib import Path
from types import FrameType
from typing import Any, TextIO

import structlog

from controller import __version__
from controller.agent import Agent, Doorbell
from controller.capabilities import capabilities
from controller.docker_runtime import DockerRuntime
from controller.errors import AgentError, ConfigError
from controller.executor import Executor
from controller.hardware import detect
from controller.images import ImagePuller
from controller.manifest import ManifestSource
from controller.models import LABEL_INSTANCE
from controller.settings import Settings

log = structlog.get_logger(__name__)


def detect_capabilities(settings: Settings) -> dict[str, Any]:
    """The registration capabilities; storage is read where Docker keeps its data, if reachable."""
    runtime = DockerRuntime(settings.instance, base_url=settings.docker_host, timeout=5)
    try:
        data_root = runtime.data_root()
    except AgentError as exc:
        log.debug("docker_data_root_unknown", error=str(exc))
        data_root = None
    finally:
        runtime.close()
    return capabilities(detect(data_root), version=__version__)


def install_signal_handlers(stop: threading.Event, doorbell: Doorbell) -> dict[int, Any]:
    """First SIGTERM/SIGINT: graceful shutdown. A second one: exit now, containers left running.
    Returns the previous handlers, for restore_signal_handlers."""

    def handler(signum: int, _frame: FrameType | None) -> None:
        name = signal.Signals(signum).name
        if stop.is_set():
            log.warning("forced_exit", signal=name, containers="left running",
                        cleanup=f"docker ps -a --filter label={LABEL_INSTANCE}")
            os._exit(130)
        log.info("shutdown_requested", signal=name)
        stop.set()
        doorbell.ring()

    return {sig: signal.signal(sig, handler) for sig in (signal.SIGTERM, signal.SIGINT)}


def restore_signal_handlers(previous: dict[int, Any]) -> None:
    for sig, old in previous.items():
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


def run_manifest(settings: Settings) -> int:
    """Keep Docker converged to the manifest until shutdown (or once, with --once)."""
    assert settings.manifest is not None
    lock = lock_instance(settings.state_dir, settings.instance)
    stop, doorbell = threading.Event(), Doorbell()
    previous = install_signal_handlers(stop, doorbell)
    runtime = DockerRuntime(settings.instance, base_url=settings.docker_host,
                            pool_size=settings.concurrency + 4)
    puller = ImagePuller(runtime, on_done=doorbell.ring,
                         refresh_interval=settings.image_refresh_interval)
    executor = Executor(runtime, puller, concurrency=settings.concurrency,
                        stop_grace=settings.stop_grace, should_stop=stop.is_set)
    source = ManifestSource(settings.manifest, publish_address=settings.publish_address)
    agent = Agent(source, runtime, executor, stop=stop, doorbell=doorbell,
                  resync_interval=settings.resync_interval)
    log.info("agent_config", version=__version__, instance=settings.instance,
             manifest=str(settings.manifest), once=settings.once)
    try:
        if settings.once:
            return agent.run_once(settings.once_timeout)
        return agent.run()
    finally:
        restore_signal_handlers(previous)
        runtime.close()
        lock.close()
