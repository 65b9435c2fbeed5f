"""Idle cost: an agent registered with the reference coordinator and running 20 containers, over a
window of at least 60 s once converged: its CPU time as a share of one core, its resident memory,
and the requests it makes to the Docker engine and to the coordinator, counted by proxies.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import docker
import psutil

from bench.common import Agent, instance_label, manifest_specs, remove_labelled, wait_running
from bench.proxy import CountingProxy
from rma_testkit.coordinator import Coordinator, write_catalog

INSTANCE = "bench-idle"
DOCKER_SOCKET = Path("/var/run/docker.sock")


def _per_minute(before: dict[str, int], after: dict[str, int], seconds: float) -> dict[str, float]:
    keys = set(before) | set(after)
    rates = {k: round((after.get(k, 0) - before.get(k, 0)) * 60 / seconds, 2) for k in keys}
    return {k: v for k, v in sorted(rates.items()) if v}


def _window(
    proc: psutil.Process, docker_proxy: CountingProxy, coord_proxy: CountingProxy, seconds: float
) -> dict[str, Any]:
    cpu0, d0, c0, t0 = (
        proc.cpu_times(),
        docker_proxy.snapshot(),
        coord_proxy.snapshot(),
        time.monotonic(),
    )
    rss: list[int] = []
    while time.monotonic() - t0 < seconds:
        rss.append(proc.memory_info().rss)
        time.sleep(1.0)
    cpu1, d1, c1, elapsed = (
        proc.cpu_times(),
        docker_proxy.snapshot(),
        coord_proxy.snapshot(),
        time.monotonic() - t0,
    )
    cpu = (cpu1.user + cpu1.system) - (cpu0.user + cpu0.system)
    docker_calls = _per_minute(d0, d1, elapsed)
    coord_calls = _per_minute(c0, c1, elapsed)
    return {
        "window_s": round(elapsed, 1),
        "cpu_percent_of_one_core": round(100 * cpu / elapsed, 3),
        "rss_mb_max": round(max(rss) / 2**20, 1),
        "rss_mb_end": round(rss[-1] / 2**20, 1),
        "threads": proc.num_threads(),
        "docker_calls_per_minute": round(sum(docker_calls.values()), 2),
        "docker_calls": docker_calls,
        "coordinator_requests_per_minute": round(sum(coord_calls.values()), 2),
        "coordinator_requests": coord_calls,
    }


def run(cli: docker.DockerClient, work: Path, containers: int, seconds: float) -> dict[str, Any]:
    specs = manifest_specs("bench-idle", containers)
    coordinator = Coordinator(work, write_catalog(work / "idle-catalog.yaml", specs))
    docker_proxy = CountingProxy(work / "docker.sock", DOCKER_SOCKET)
    coord_proxy = CountingProxy(("127.0.0.1", 0), ("127.0.0.1", coordinator.port))
    agent = Agent(
        work,
        INSTANCE,
        "--coordinator",
        f"http://127.0.0.1:{coord_proxy.address[1]}",
        "--docker-host",
        f"unix://{work / 'docker.sock'}",
    )
    try:
        proc = psutil.Process(agent.start().pid)
        wait_running(cli, agent, {s["name"] for s in specs})
        time.sleep(5)  # the passes confirming convergence, the first heartbeat
        result = _window(proc, docker_proxy, coord_proxy, seconds)
    finally:
        agent.stop()
        coordinator.stop()
        docker_proxy.close()
        coord_proxy.close()
        remove_labelled(cli, instance_label(INSTANCE))
    return {"containers": containers, **result}
