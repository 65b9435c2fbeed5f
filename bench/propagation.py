"""Propagation latency: an assignment change at the reference coordinator (admin API), until the
changed container is started on the worker — with the long poll (Part 2), and without it
(`--long-poll-wait 0`: the change is noticed through the generation in the next heartbeat's
answer, so it waits for up to one heartbeat interval).
"""

from __future__ import annotations

import random
import time
from pathlib import Path
from typing import Any

import docker

from bench.common import (
    COMMAND,
    IMAGE,
    Agent,
    StartWatcher,
    instance_label,
    remove_labelled,
    summary,
)
from rma_testkit.coordinator import Coordinator, write_catalog

NAME = "bench-prop-000"


def _spec(revision: int) -> dict[str, Any]:
    return {"name": NAME, "image": IMAGE, "command": COMMAND, "env": {"REV": str(revision)}}


def _measure(
    cli: docker.DockerClient, coordinator: Coordinator, agent: Agent, repeats: int, jitter: float
) -> list[float]:
    label = instance_label(agent.instance)
    watcher = StartWatcher(cli, label)
    try:
        agent.start()
        watcher.wait_start(NAME, 0, timeout=120)
        worker_id = next(w["id"] for w in coordinator.workers() if w["status"] == "online")
        latencies = []
        for i in range(1, repeats + 1):
            # A random moment, so that heartbeat phases are sampled rather than aliased.
            time.sleep(0.5 + random.uniform(0, jitter))
            t0 = time.time_ns()
            coordinator.set_assignment(worker_id, [_spec(i)])
            latencies.append((watcher.wait_start(NAME, t0, timeout=180) - t0) / 1e9)
        return latencies
    finally:
        watcher.close()
        agent.stop()
        remove_labelled(cli, label)


def run(
    cli: docker.DockerClient,
    work: Path,
    repeats: int,
    repeats_no_poll: int,
    heartbeat_interval: float = 30.0,
) -> dict[str, Any]:
    catalog = write_catalog(work / "prop-catalog.yaml", [_spec(0)])
    coordinator = Coordinator(work, catalog, "--heartbeat-interval", str(heartbeat_interval))
    common = ("--coordinator", coordinator.url, "--publish-address", "127.0.0.1")
    try:
        long_poll = _measure(
            cli, coordinator, Agent(work, "bench-prop-lp", *common), repeats, jitter=0.5
        )
        no_poll = _measure(
            cli,
            coordinator,
            Agent(work, "bench-prop-hb", *common, "--long-poll-wait", "0"),
            repeats_no_poll,
            jitter=heartbeat_interval,
        )
    finally:
        coordinator.stop()
    return {
        "heartbeat_interval": heartbeat_interval,
        "long_poll": summary(long_poll),
        "without_long_poll": summary(no_poll),
    }
