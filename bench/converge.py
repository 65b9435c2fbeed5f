"""Cold converge: N small containers from an image already present, by three contenders in turn —
the agent (manifest mode, `--once`, from process start), Debian's `docker-compose up -d` on the
same set, and the engine's limit (docker-py creating and starting them concurrently, no agent).
Every contender is timed from its start to the engine's `start` event of the last container
(`agent`, `compose`, `limit`); the two commands also from their process start to their exit, when
each has said every container runs (`agent_exit`, `compose_exit`: what a person waiting on the
command sees). Each puts its containers on a user-defined bridge (the agent's own network,
compose's project network, one made for the limit), since attaching there costs the engine more
than the default bridge.
"""

from __future__ import annotations

import subprocess
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import docker
import yaml

from bench.common import (
    BENCH_LABEL,
    COMMAND,
    IMAGE,
    MEMORY,
    Agent,
    StartWatcher,
    instance_label,
    manifest_specs,
    remove_labelled,
    summary,
)
from rma_testkit.agent import write_manifest

# The agent's default concurrency; on 2 cores 2..32 threads all land within noise of it.
LIMIT_CONCURRENCY = 8
AGENT_INSTANCE = "bench-converge"
# Every contender puts its containers on a user-defined bridge, as the agent does (its own
# network) and docker-compose does (the project's): the same engine work for each.
LIMIT_NETWORK = "bench-limit-net"


def _agent(
    cli: docker.DockerClient, work: Path, n: int, watcher: StartWatcher
) -> tuple[float, float]:
    instance = AGENT_INSTANCE
    specs = manifest_specs("bench-agent", n)
    manifest = write_manifest(work / "converge.yaml", specs)
    agent = Agent(work, instance, "--manifest", str(manifest), "--once")
    t0 = time.time_ns()
    proc = agent.start()
    proc.wait(600)
    exited = time.time_ns()
    if agent.stop() != 0:
        raise RuntimeError(f"agent --once failed: {agent.log_path.read_text()[-2000:]}")
    done = watcher.wait_all([s["name"] for s in specs], t0)
    remove_labelled(cli, instance_label(instance))
    return (done - t0) / 1e9, (exited - t0) / 1e9


def _compose(
    cli: docker.DockerClient, work: Path, n: int, watcher: StartWatcher
) -> tuple[float, float]:
    names = [f"bench-compose-{i:03d}" for i in range(n)]
    services = {
        name: {
            "image": IMAGE,
            "command": COMMAND,
            "container_name": name,
            "mem_limit": MEMORY,  # what the agent's containers have: the same engine work
            "labels": {BENCH_LABEL: "compose"},
        }
        for name in names
    }
    path = work / "docker-compose.yml"
    path.write_text(yaml.safe_dump({"version": "2.4", "services": services}))
    t0 = time.time_ns()
    subprocess.run(
        ["docker-compose", "-p", "rmabench", "-f", str(path), "up", "-d"],
        check=True,
        capture_output=True,
        timeout=600,
    )
    exited = time.time_ns()
    done = watcher.wait_all(names, t0)
    remove_labelled(cli, f"{BENCH_LABEL}=compose")
    return (done - t0) / 1e9, (exited - t0) / 1e9


def _limit(cli: docker.DockerClient, n: int, watcher: StartWatcher) -> float:
    names = [f"bench-limit-{i:03d}" for i in range(n)]

    host = cli.api.create_host_config(network_mode=LIMIT_NETWORK, mem_limit=MEMORY)

    def create_and_start(name: str) -> None:
        created = cli.api.create_container(
            IMAGE, COMMAND, name=name, labels={BENCH_LABEL: "limit"}, host_config=host
        )
        cli.api.start(created["Id"])

    t0 = time.time_ns()
    with ThreadPoolExecutor(min(n, LIMIT_CONCURRENCY)) as pool:
        list(pool.map(create_and_start, names))
    done = watcher.wait_all(names, t0)
    remove_labelled(cli, f"{BENCH_LABEL}=limit")
    return (done - t0) / 1e9


def _size(
    cli: docker.DockerClient,
    work: Path,
    n: int,
    repeats: int,
    watchers: tuple[StartWatcher, StartWatcher],
) -> dict[str, Any]:
    watcher, agent_watch = watchers
    times: dict[str, list[float]] = {k: [] for k in ("agent", "compose", "limit")}
    times |= {"agent_exit": [], "compose_exit": []}
    for _ in range(repeats):
        for who, (running, exited) in (
            ("agent", _agent(cli, work, n, agent_watch)),
            ("compose", _compose(cli, work, n, watcher)),
        ):
            times[who].append(running)
            times[f"{who}_exit"].append(exited)
        times["limit"].append(_limit(cli, n, watcher))
    row: dict[str, Any] = {k: summary(v) for k, v in times.items()}
    agent, compose, limit = (row[k]["median"] for k in ("agent", "compose", "limit"))
    row["agent_over_compose"] = round(agent / compose, 2)
    row["agent_over_limit"] = round(agent / limit, 2)
    exits = row["agent_exit"]["median"] / row["compose_exit"]["median"]
    row["agent_over_compose_exit"] = round(exits, 2)
    return row


def run(
    cli: docker.DockerClient, work: Path, sizes: list[int], repeats: dict[int, int]
) -> dict[str, Any]:
    """Contenders alternate within each repetition, so drift affects all three alike."""
    results: dict[str, Any] = {"sizes": {}, "limit_concurrency": LIMIT_CONCURRENCY}
    watcher = StartWatcher(cli, BENCH_LABEL)
    agent_watch = StartWatcher(cli, instance_label(AGENT_INSTANCE))
    for stale in cli.networks.list(names=[LIMIT_NETWORK]):  # a run that was killed left it
        stale.remove()
    network = cli.networks.create(LIMIT_NETWORK, driver="bridge")
    try:
        for n in sizes:
            results["sizes"][str(n)] = _size(
                cli, work, n, repeats.get(n, 3), (watcher, agent_watch)
            )
    finally:
        watcher.close()
        agent_watch.close()
        remove_labelled(cli, BENCH_LABEL)
        remove_labelled(cli, instance_label(AGENT_INSTANCE))
        network.remove()
        for name in (f"rma-{AGENT_INSTANCE}", "rmabench_default"):
            for left in cli.networks.list(names=[name]):
                left.remove()
    return results
