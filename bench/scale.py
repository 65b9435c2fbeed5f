"""Scale: one agent (manifest mode) with 200 managed containers. Reports how long a converged
resync pass takes (list, plan, nothing to do), how long a pass that changes one container takes,
and the end-to-end latency of that change (manifest written → the new container started, which
includes noticing the file change, polled every 0.5 s). Cold converge and teardown of the 200 are
reported too.
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
)
from rma_testkit.agent import write_manifest

INSTANCE = "bench-scale"


def _passes(agent: Agent, planned: int) -> list[float]:
    return [
        float(e["seconds"])
        for e in agent.events("pass_done")
        if (e.get("planned") == 0) == (planned == 0)
    ]


def _wait_count(agent: Agent, planned: int, count: int, timeout: float = 300) -> list[float]:
    deadline = time.monotonic() + timeout
    while len(found := _passes(agent, planned)) < count:
        if time.monotonic() > deadline:
            raise TimeoutError(f"fewer than {count} passes in {agent.log_path}")
        time.sleep(0.1)
    return found


def _changes(
    agent: Agent, watcher: StartWatcher, manifest: Path, specs: list[dict[str, Any]], changes: int
) -> dict[str, Any]:
    """Change one container at a time: the pass that acts, and manifest written -> running."""
    end_to_end, acted = [], []
    for i in range(changes):
        before = len(_passes(agent, 1))
        target = specs[(i * 37) % len(specs)]
        target["env"] = {"REV": str(i)}
        t0 = time.time_ns()
        write_manifest(manifest, specs)
        end_to_end.append((watcher.wait_start(target["name"], t0) - t0) / 1e9)
        acted.append(_wait_count(agent, 1, before + 1)[before])
    return {"one_change_pass_s": summary(acted, 4), "one_change_end_to_end_s": summary(end_to_end)}


def run(
    cli: docker.DockerClient, work: Path, containers: int, resyncs: int, changes: int
) -> dict[str, Any]:
    specs = manifest_specs("bench-scale", containers)
    manifest = write_manifest(work / "scale.yaml", specs)
    agent = Agent(
        work,
        INSTANCE,
        "--manifest",
        str(manifest),
        "--log-level",
        "debug",
        "--resync-interval",
        "1",
    )
    watcher = StartWatcher(cli, instance_label(INSTANCE))
    result: dict[str, Any] = {"containers": containers}
    try:
        t0 = time.time_ns()
        agent.start()
        result["cold_converge_s"] = round(
            (watcher.wait_all([s["name"] for s in specs], t0, timeout=600) - t0) / 1e9, 2
        )
        seen = len(_wait_count(agent, 0, 1))
        result["converged_pass_s"] = summary(_wait_count(agent, 0, seen + resyncs)[seen:], 4)
        result |= _changes(agent, watcher, manifest, specs, changes)
        stop_at = time.monotonic()
        agent.stop(timeout=600)
        result["teardown_s"] = round(time.monotonic() - stop_at, 2)
    finally:
        watcher.close()
        agent.stop()
        remove_labelled(cli, instance_label(INSTANCE))
    return result
