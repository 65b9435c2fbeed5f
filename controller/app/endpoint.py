"""The composition root's endpoint side: the health/metrics/status endpoint and the metrics it
serves (none when the endpoint is off, so prometheus_client is never loaded then)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import structlog

from controller.clients.store import atomic_write_text
from controller.ops.health import HealthServer
from controller.ops.probes import Snapshot
from controller.settings import Settings

if TYPE_CHECKING:
    from controller.ops.metrics import Metrics

log = structlog.get_logger(__name__)


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


def metrics_of(settings: Settings) -> Metrics | None:
    if settings.health_address is None:
        return None  # nothing would serve them
    from controller.ops.metrics import Metrics  # noqa: PLC0415

    return Metrics()
