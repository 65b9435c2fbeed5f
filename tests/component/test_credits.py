"""Signed receipts end to end (issue 26), the whole agent in-process on virtual time against the
reference coordinator on the same clock: each window's receipt is delivered and credited; kept
through a coordinator outage and an agent restart, then delivered in order, none missing, none
flagged; `rma-worker credits` says what was earned."""

from __future__ import annotations

import io
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import requests

from controller.cli.credits import credits_command
from rma_coordinator.tiers import Catalog
from rma_testkit.clock import ManualTime
from rma_testkit.component import InProcessAgent, in_process, settings_for
from rma_testkit.served import Served

# A service without a port is ready once it runs (nothing to probe in an in-memory engine).
WORKER = {"name": "batch", "image": "rma/batch:1"}
CATALOG = Catalog({1: [WORKER], 2: [WORKER], 3: [WORKER]})
IMAGES = {"rma/batch:1"}


def _credits(served: Served, worker_id: str) -> dict[str, Any]:
    resp = requests.get(f"{served.url}/api/credits/{worker_id}", timeout=5)
    return dict(resp.json()) if resp.status_code == 200 else {}


def _accepted(served: Served, worker_id: str) -> int:
    return int(_credits(served, worker_id).get("receipts", {}).get("accepted", 0))


def _pending(agent: InProcessAgent) -> int:
    assert agent.parts.credits is not None
    return len(agent.parts.credits.ledger.pending(1000)[1])


def test_receipts_are_credited_kept_through_outages_and_restarts(tmp_path: Path) -> None:
    clock: list[Callable[[], float]] = [time.time]

    def serve(port: int = 0) -> Served:
        return Served(tmp_path, CATALOG, port=port, clock=lambda: clock[0]())  # noqa: PLW0108 (late)

    served = serve()
    settings = settings_for(
        tmp_path / "state",
        "credits",
        ("coordinator_url", served.url),
        ("heartbeat_interval", 5.0),
        ("receipt_window", 60.0),
        ("display_name", "Ada's desktop"),
        ("publish_address", "127.0.0.1"),
    )
    try:
        with in_process(settings, IMAGES) as agent:
            clock[0] = lambda: agent.time.epoch + agent.time.now  # the coordinator on its time
            agent.settle(lambda: agent.time.knows("lifecycle"))
            agent.until(agent.runtime.running)
            life = agent.parts.lifecycle
            assert life is not None
            worker_id = agent.until(lambda: life.identity and life.identity.worker_id)
            agent.advance(130, step=5.0)  # two windows of 60 s
            agent.until(lambda: _accepted(served, worker_id) >= 2, within=60, step=5.0)
            first = _credits(served, worker_id)
            assert first["credits"]["all_time"] > 0 and first["name"] == "Ada's desktop"
            assert first["receipts"]["flagged"] == 0 and not first["held"]
            served.close()  # the coordinator away for three windows
            agent.advance(190, step=5.0)
            assert _pending(agent) >= 3
            served = serve(served.port)  # back, with its database
            agent.until(lambda: _pending(agent) == 0, within=60, step=5.0)
            agent.leave_running.set()  # restarted as for an upgrade (SIGUSR1): still registered
        accepted = _credits(served, worker_id)["receipts"]["accepted"]
        later = ManualTime(agent.time.now, agent.time.epoch)  # time goes on from there
        with in_process(settings, IMAGES, time=later) as again:  # restarted: the chain goes on
            clock[0] = lambda: again.time.epoch + again.time.now
            again.settle(lambda: again.time.knows("lifecycle"))
            again.advance(70, step=5.0)
            again.until(lambda: _accepted(served, worker_id) > accepted, within=30, step=5.0)
            after = _credits(served, worker_id)
            assert after["receipts"]["flagged"] == 0 and not after["held"]
            assert (
                after["flags"] == [] and after["credits"]["all_time"] > first["credits"]["all_time"]
            )
            out = io.StringIO()
            assert credits_command(settings, as_json=False, out=out) == 0
            text = out.getvalue()
            assert "Credits:" in text and "rank #1" in text and "Ada's desktop" in text
            assert "Contributor key: " in text and "(none yet)" not in text
    finally:
        served.close()
