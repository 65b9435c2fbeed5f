"""Readiness (issue 22): the stand-in model server (manifests/model-server/) answers 503 while it
"loads" for a few seconds; the agent announces it only after its own probe first succeeds. How
soon after that first success (the agent's `service_healthy` log line) is its URL listed at the
reference coordinator, and what the coordinator's proxy answers meanwhile: 503 (nobody serves
it) before, 200 after — never a 502 from a half-started service.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from datetime import datetime
from pathlib import Path
from typing import Any

import docker
import requests

from bench.common import Agent, instance_label, remove_labelled, summary
from rma_testkit.coordinator import Coordinator, free_port, services_index, write_catalog
from rma_testkit.engine import wait_until

NAME = "bench-ready-llm"
MODEL_IMAGE = "rma-test/model-server:1"  # built by `make services` (manifests/services.sh)
LOAD_SECONDS = 3


def _spec(name: str) -> dict[str, Any]:
    return {
        "name": name,
        "image": MODEL_IMAGE,
        "env": {"LOAD_SECONDS": LOAD_SECONDS, "MODEL": "qwen-stand-in"},
        "ports": [{"container": 8000, "host": free_port()}],
        "http": True,
        "labels": {"rma.service": "llm-inference"},
        "readiness": {"path": "/cgi-bin/models", "contains": "qwen"},
    }


def _listed(coordinator: Coordinator) -> bool:
    entries = services_index(coordinator).get("llm-inference") or []
    return any(e["service_url"] for e in entries)


def _proxied(coordinator: Coordinator) -> int:
    url = f"{coordinator.url}/api/service/llm-inference/cgi-bin/models"
    try:
        return requests.get(url, timeout=5).status_code
    except requests.RequestException:
        return 0


def _ready_at(agent: Agent, name: str) -> float | None:
    """When the agent's probe first succeeded (its log line), in epoch seconds."""
    for line in agent.log_path.read_text().splitlines():
        try:
            event = json.loads(line)
        except ValueError:
            continue
        if event.get("event") == "service_healthy" and event.get("container") == name:
            return datetime.fromisoformat(
                str(event["timestamp"]).replace("Z", "+00:00")
            ).timestamp()
    return None


def _round(
    coordinator: Coordinator, worker: str, agent: Agent, codes: Counter[int], n: int
) -> float:
    """One model server, a name of its own each round (never the one still being removed)."""
    coordinator.set_assignment(worker, [])
    wait_until(lambda: not _listed(coordinator), 60, "withdrawn", step=0.05)
    t0, name = time.time(), f"{NAME}-{n}"
    coordinator.set_assignment(worker, [_spec(name)])
    while not _listed(coordinator):
        codes[_proxied(coordinator)] += 1
        time.sleep(0.02)  # the timing's resolution
        if time.time() - t0 > 120:
            raise AssertionError("the model server was never listed")
    listed = time.time()
    codes[_proxied(coordinator)] += 1
    ready: float = wait_until(lambda: _ready_at(agent, name), 10, "the ready line", step=0.05)
    return max(0.0, listed - ready)


def run(cli: docker.DockerClient, work: Path, repeats: int) -> dict[str, Any]:
    coordinator = Coordinator(work, write_catalog(work / "ready-catalog.yaml", []))
    agent = Agent(
        work,
        "bench-ready",
        *("--coordinator", coordinator.url, "--publish-address", "127.0.0.1"),
        *("--ingress", "url", "--advertise-url", "http://127.0.0.1:{port}"),
        *("--drain-seconds", "0", "--heartbeat-interval", "30"),
    )
    label = instance_label(agent.instance)
    codes: Counter[int] = Counter()
    try:
        agent.start()
        wait_until(coordinator.workers, 60, "registration")
        worker = coordinator.workers()[0]["id"]
        delays = [_round(coordinator, worker, agent, codes, n) for n in range(repeats)]
    finally:
        agent.stop()
        remove_labelled(cli, label)
        coordinator.stop()
    return {
        "load_seconds": LOAD_SECONDS,
        "ready_to_listed": summary(delays),
        "proxy_answers": {str(k): v for k, v in sorted(codes.items())},
        "proxy_502": codes.get(502, 0),
    }
