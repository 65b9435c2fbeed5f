"""The composition root's endpoint side: the health/metrics/status endpoint, the owner's page on
it, and the metrics it serves (none when the endpoint is off, so prometheus_client is never
loaded then)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import structlog

from controller.app.parts import limits_from
from controller.clients.disk import docker_root
from controller.clients.pause_file import clear_pause, pause_path, write_pause
from controller.clients.store import StateStore, atomic_write_text
from controller.ops.dashboard import Dashboard
from controller.ops.health import HealthServer
from controller.ops.probes import Snapshot
from controller.settings import Settings

if TYPE_CHECKING:
    from controller.ops.metrics import Metrics

log = structlog.get_logger(__name__)


def dashboard_of(
    settings: Settings, snap: Snapshot, data_root: Callable[[], str | None]
) -> Dashboard:
    """The owner's page: the status and the machine; pause and resume write the same file as
    `rma-worker pause/resume`; its secret is this install's own, kept in the state dir."""
    from controller.clients.hardware import machine_use  # noqa: PLC0415 (psutil: only here)

    path = pause_path(settings.state_dir, settings.instance)
    limits, root = limits_from(settings), docker_root(data_root)

    def data() -> dict[str, Any]:
        return snap.status() | {"machine": machine_use(root(), limits)}

    def pause(seconds: float | None, gpu_only: bool) -> None:
        now = time.time()
        write_pause(path, since=now, until=now + seconds if seconds else None, gpu_only=gpu_only)

    secret = StateStore(settings.state_dir, settings.instance).page_secret()
    writable = settings.dashboard == "on"
    return Dashboard(
        secret=secret,
        data=data,
        pause=pause,
        resume=lambda: clear_pause(path),
        writable=writable,
    )


def start_health(
    settings: Settings, snap: Snapshot, metrics: Metrics | None, dashboard: Dashboard | None = None
) -> HealthServer | None:
    """The health/metrics/status endpoint (and the owner's page); its URL is written to the
    state dir for `status`."""
    addr = settings.health_address
    url_file = settings.state_dir / f"{settings.instance}.health"
    if addr is None or metrics is None:
        url_file.unlink(missing_ok=True)
        return None
    try:
        server = HealthServer(
            addr,
            alive=snap.alive,
            ready=snap.ready,
            status=snap.status,
            metrics=metrics.render,
            routes=dashboard.routes() if dashboard and settings.dashboard != "off" else None,
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


def metrics_of(settings: Settings) -> Metrics | None:
    if settings.health_address is None:
        return None  # nothing would serve them
    from controller.ops.metrics import Metrics  # noqa: PLC0415

    return Metrics()
