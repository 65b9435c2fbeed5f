"""The edge coordinator's test mode, seen from the whole agent in-process: it answers a
registration and forgets the worker at once, and the agent must neither hammer it nor touch its
containers. This was a process-level test that slept 5 real seconds (ten heartbeat intervals);
the coordinator is the reference one, served in this process."""

from __future__ import annotations

from pathlib import Path

import requests
import structlog

from rma_testkit.component import in_process, settings_for
from rma_testkit.coordinator import write_agent_catalog
from rma_testkit.served import Served

IMAGE = "img:1"
SERVICES = {"notes-coa": 2, "ner-extraction": 2, "redis": 3}


def test_edge_test_mode_is_not_hammered_and_nothing_is_touched(tmp_path: Path) -> None:
    catalog = write_agent_catalog(
        tmp_path / "agent-catalog.yaml",
        {
            name: (tier, {"name": f"tm-{name}", "image": IMAGE, "command": ["sleep", "3600"]})
            for name, tier in SERVICES.items()
        },
    )
    served = Served(tmp_path, dialect="edge", test_mode=True)
    settings = settings_for(
        tmp_path / "state",
        "tm",
        ("coordinator_url", served.url),
        ("catalog", catalog),
        ("heartbeat_interval", 0.5),  # the agent's own: a coordinator's is raised to 5 s
        ("publish_address", "127.0.0.1"),
    )
    try:
        with structlog.testing.capture_logs() as logs, in_process(settings, {IMAGE}) as agent:
            agent.settle(lambda: agent.time.knows("lifecycle"))
            life = agent.parts.lifecycle
            assert life is not None
            notice = agent.until(lambda: life.notice)
            assert "coordinator_forgets_worker" in notice
            tiers = ({f"tm-{n}" for n, t in SERVICES.items() if t == tier} for tier in (2, 3))
            expected = list(tiers)
            agent.until(lambda: agent.runtime.running() in expected)
            ids = {c.name: c.id for c in agent.runtime.containers.values()}
            seen = _requests(served)
            agent.advance(5)  # ten heartbeat intervals: a hammering agent would register ten times
            now = _requests(served)
            assert now["register"] - seen.get("register", 0) <= 2, (seen, now)
            assert now.get("heartbeat", 0) - seen.get("heartbeat", 0) <= 2, (seen, now)
            assert {c.name: c.id for c in agent.runtime.containers.values()} == ids  # untouched
            forgets = [e for e in logs if e["event"] == "coordinator_forgets_worker"]
            assert len(forgets) == 1
    finally:
        served.close()


def _requests(served: Served) -> dict[str, int]:
    return dict(requests.get(served.url + "/health", timeout=5).json()["requests"])
