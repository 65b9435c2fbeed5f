"""Self-heal latency: a managed container removed (`docker rm -f`) or killed (`docker kill`) by
hand, until the engine reports it started again. The agent runs in manifest mode with a handful
of containers; the clock starts when the removal or kill has returned. Each container is killed
once: a second kill soon after is a crash loop, and its restart is held back on purpose
(CrashLoopBackOff, 10 s at first).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import docker

from bench.common import (
    Agent,
    StartWatcher,
    instance_label,
    manifest_specs,
    remove_labelled,
    summary,
    wait_running,
)
from rma_testkit.agent import write_manifest

INSTANCE = "bench-heal"
MIN_CONTAINERS = 5


def _disturb(cli: docker.DockerClient, name: str, how: str) -> None:
    if how == "remove":
        cli.api.remove_container(name, force=True)
    else:
        cli.api.kill(name)


def run(cli: docker.DockerClient, work: Path, repeats: int) -> dict[str, Any]:
    containers = max(MIN_CONTAINERS, repeats)
    specs = manifest_specs("bench-heal", containers)
    names = [s["name"] for s in specs]
    manifest = write_manifest(work / "heal.yaml", specs)
    agent = Agent(work, INSTANCE, "--manifest", str(manifest))
    watcher = StartWatcher(cli, instance_label(INSTANCE))
    results: dict[str, Any] = {"containers": containers}
    try:
        agent.start()
        wait_running(cli, agent, set(names))
        for how in ("remove", "kill"):
            latencies = []
            for i in range(repeats):
                name = names[i % containers]
                time.sleep(1.0)  # let the previous repair settle; not part of the measurement
                _disturb(cli, name, how)
                t0 = time.time_ns()
                latencies.append((watcher.wait_start(name, t0, timeout=60) - t0) / 1e9)
                wait_running(cli, agent, set(names))
            results[how] = summary(latencies)
    finally:
        watcher.close()
        agent.stop()
        remove_labelled(cli, instance_label(INSTANCE))
    return results
