"""A coordinator away for minutes, seen from the whole agent in-process on virtual time: the
containers are not touched, the outage is said once, and the agent finds the coordinator again.
This was a destructive (opt-in) test that slept 130 real seconds."""

from __future__ import annotations

from pathlib import Path

import requests
import structlog

from rma_testkit.component import in_process, settings_for
from rma_testkit.served import ADMIN, CATALOG, Served

IMAGES = {spec["image"] for specs in CATALOG.tiers.values() for spec in specs}


def test_a_coordinator_down_for_minutes_touches_nothing(tmp_path: Path) -> None:
    served = Served(tmp_path)
    settings = settings_for(
        tmp_path / "state",
        "away",
        ("coordinator_url", served.url),
        ("heartbeat_interval", 5.0),
        ("publish_address", "127.0.0.1"),
    )
    try:
        with structlog.testing.capture_logs() as logs, in_process(settings, IMAGES) as agent:
            agent.settle(lambda: agent.time.knows("lifecycle"))
            running = agent.until(agent.runtime.running)
            calls = len(agent.runtime.calls)
            ids = {c.name: c.id for c in agent.runtime.containers.values()}
            served.close()
            agent.advance(130)  # over two minutes of heartbeats into the void
            assert agent.runtime.running() == running
            assert {c.name: c.id for c in agent.runtime.containers.values()} == ids
            acted = [c for c in agent.runtime.calls[calls:] if c != "list"]
            assert acted == []  # nothing stopped, started or removed
            killed = sorted(running)[0]
            agent.runtime.set_state(killed, "exited")  # self-healing goes on meanwhile
            agent.until(lambda: agent.runtime.running() == running, within=40)
            served = Served(tmp_path, port=served.port)  # the same coordinator, back
            beats = _heartbeats(served)
            agent.until(lambda: any(e["event"] == "coordinator_reachable_again" for e in logs))
            failed = [e for e in logs if e["event"] == "heartbeat_failed"]
            assert len(failed) == 1  # one line per outage, not one per heartbeat
            agent.until(lambda: _heartbeats(served) > beats)
    finally:
        served.close()


def _heartbeats(served: Served) -> int:
    workers = requests.get(
        served.url + "/api/admin/workers", headers={"Authorization": f"Bearer {ADMIN}"}, timeout=5
    ).json()
    return sum(int(w["heartbeats"]) for w in workers)
