"""Serve what runs, end to end on the real engine with the reference coordinator (issue 22): the
stand-in model server (manifests/model-server/) answers 503 while it "loads"; it is announced
only once the agent's probe succeeds — the coordinator's proxy answers 503 (nobody serves it)
before and 200 after, never a 502 from a half-started service — while an image that does not
exist beside it leaves the worker healthy; one that never gets ready is restarted."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import docker
import pytest
import requests

from rma_testkit.agent import StartAgent, agent_status
from rma_testkit.coordinator import Coordinator, free_port, services_index
from rma_testkit.engine import REGISTRY, wait_until

pytestmark = pytest.mark.integration
REACH = ("--ingress", "url", "--advertise-url", "http://127.0.0.1:{port}")


def model(instance: str, image: str, load: int, start_period: int = 60) -> dict[str, Any]:
    return {
        "name": f"{instance}-llm",
        "image": image,
        "env": {"LOAD_SECONDS": load, "MODEL": "qwen-stand-in"},
        "ports": [{"container": 8000, "host": free_port()}],
        "http": True,
        "labels": {"rma.service": "llm-inference"},
        "readiness": {"path": "/cgi-bin/models", "contains": "qwen", "start_period": start_period},
    }


def proxied(coordinator: Coordinator) -> int:
    url = f"{coordinator.url}/api/service/llm-inference/cgi-bin/models"
    return requests.get(url, timeout=10).status_code


def test_announced_only_when_ready_and_a_missing_image_leaves_the_worker_healthy(
    client: docker.DockerClient,
    model_image: str,
    instance: str,
    coordinator: Coordinator,
    start_agent: StartAgent,
    tmp_path: Path,
) -> None:
    start_agent(coordinator.url, instance, *REACH)
    worker = wait_until(lambda: (w := coordinator.workers()) and w[0], what="registration")
    missing = {"name": f"{instance}-rag", "image": f"{REGISTRY}/rma-test/never-{instance}:1"}
    coordinator.set_assignment(worker["id"], [model(instance, model_image, 6), missing], tier=2)
    seen: list[int] = []

    def ready() -> bool:
        seen.append(proxied(coordinator))
        return seen[-1] == 200

    wait_until(ready, timeout=60, step=0.2, what="the model served through the proxy")
    assert 503 in seen and 502 not in seen, seen  # nobody served it, then it did: never a 502
    rows = {r["name"]: r for r in coordinator.workers()[0]["reported"]}
    assert rows[f"{instance}-rag"]["state"] in ("failed", "pulling")
    status = agent_status(tmp_path / "state", instance)
    assert status["healthy"] is True  # a missing image beside a working service
    assert coordinator.workers()[0]["status"] != "degraded"
    entries = services_index(coordinator)["llm-inference"]
    assert entries and entries[0]["service_url"].startswith("http://127.0.0.1:")


def test_a_service_never_ready_in_its_start_period_is_restarted(
    client: docker.DockerClient,
    model_image: str,
    instance: str,
    coordinator: Coordinator,
    start_agent: StartAgent,
    tmp_path: Path,
) -> None:
    agent = start_agent(coordinator.url, instance, *REACH)
    worker = wait_until(lambda: (w := coordinator.workers()) and w[0], what="registration")
    spec = model(instance, model_image, load=10_000, start_period=3)
    coordinator.set_assignment(worker["id"], [spec], tier=2)
    state = tmp_path / "state"

    def starting() -> dict[str, Any] | None:
        rows = {c["name"]: c for c in agent_status(state, instance)["containers"]}
        row = rows.get(spec["name"])
        return row if row and row.get("starting_for") is not None else None

    # Until the stand-in listens, the probe's error is a refused connection; then its 503.
    row = wait_until(
        lambda: (r := starting()) and "HTTP 503" in str(r["error"]) and r,
        timeout=60,
        what="starting, with for how long, the server answering 503 while it loads",
    )
    assert "HTTP 503" in str(row["error"])
    assert proxied(coordinator) == 503  # not announced while it loads
    wait_until(
        lambda: any(e.get("event") == "service_not_ready" for e in agent.events()),
        timeout=30,
        what="the restart after its start period",
    )
    wait_until(
        lambda: (
            {c["name"]: c for c in agent_status(state, instance)["containers"]}[spec["name"]][
                "restarts"
            ]
            >= 1
        ),
        timeout=30,
        what="the restart counted",
    )
