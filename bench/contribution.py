"""The volunteer's headline number: from starting `rma-worker` to the first request answered
through the reference coordinator's proxy — a fresh state dir each round (so a registration, not
a resume), local images, the stand-in tunnel (manifests/tunnel/, offline), the coordinator already
running with a web service in the worker's tier. Rounds run one after the other; each new worker
is the only one that can answer (the last one unregistered when it stopped).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import docker

from bench.common import Agent, instance_label, remove_labelled, summary
from bench.reach import TUNNEL_IMAGE, _spec, _until, _works
from rma_testkit.coordinator import Coordinator, write_catalog
from rma_testkit.engine import TUNNEL_URL


def _round(cli: docker.DockerClient, work: Path, coordinator: Coordinator, i: int) -> float:
    home = work / f"contribution-{i}"
    home.mkdir(parents=True, exist_ok=True)
    agent = Agent(
        home,
        f"bench-contrib-{i}",
        *("--coordinator", coordinator.url, "--publish-address", "127.0.0.1"),
        *("--ingress", "tunnel", "--tunnel-image", TUNNEL_IMAGE),
        *("--tunnel-url-pattern", TUNNEL_URL, "--drain-seconds", "0"),
    )
    try:
        t0 = time.monotonic()
        agent.start()
        _until(lambda: _works(coordinator), timeout=120)
        return time.monotonic() - t0
    finally:
        agent.stop()
        remove_labelled(cli, instance_label(agent.instance))
        _until(lambda: not _works(coordinator), timeout=60)


def run(cli: docker.DockerClient, work: Path, repeats: int) -> dict[str, Any]:
    coordinator = Coordinator(work, write_catalog(work / "contribution-catalog.yaml", [_spec()]))
    try:
        times = [_round(cli, work, coordinator, i) for i in range(repeats)]
    finally:
        coordinator.stop()
    return {"start_to_first_answer": summary(times)}
