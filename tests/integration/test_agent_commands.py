"""The agent's commands against a running agent on the real engine: `status` (table and JSON),
`cleanup`, and a crash loop as `status` shows it."""

from __future__ import annotations

import signal
import time
from pathlib import Path

import docker

from rma_testkit.agent import StartAgent, agent_status, rma_worker, write_manifest
from rma_testkit.engine import container_spec, managed, running, three_containers, wait_until


def test_status_and_cleanup_commands(
    client: docker.DockerClient,
    registry_image: str,
    instance: str,
    tmp_path: Path,
    start_agent: StartAgent,
) -> None:
    manifest = write_manifest(tmp_path / "m.json", three_containers(instance, registry_image))
    agent = start_agent(manifest, instance)
    wait_until(lambda: len(running(client, instance)) == 3, what="convergence")
    state = tmp_path / "state"
    data = wait_until(
        lambda: (s := agent_status(state, instance))["converged"] and s, what="converged"
    )
    assert data["mode"] == "manifest" and data["healthy"] is True
    assert {c["name"] for c in data["containers"]} == set(running(client, instance))
    table = rma_worker(state, instance, "status").stdout
    assert f"{instance}-web" in table and "converged, healthy" in table
    dry = rma_worker(state, instance, "cleanup", "--dry-run").stdout
    assert f"would remove {instance}-worker" in dry and len(running(client, instance)) == 3
    assert agent.stop(signal.SIGUSR1) == 0  # leaves the containers, as after a crash
    assert len(running(client, instance)) == 3
    gone = rma_worker(state, instance, "cleanup", "--instance-only", timeout=60).stdout
    assert gone.count("removed ") == 4 and managed(client, instance) == {}
    assert f"removed rma-{instance} (network)" in gone  # the agent's network goes with them
    volume = f"rma-{instance}-{instance}-vol"
    assert client.volumes.get(volume)  # kept: it holds data
    wiped = rma_worker(state, instance, "cleanup", "--instance-only", "--volumes").stdout
    assert wiped.strip() == f"removed {volume} (volume)"
    down = rma_worker(state, instance, "status", check=False)
    assert down.returncode == 1 and "no running agent" in down.stderr


def test_a_crashing_container_backs_off_without_delaying_the_others(
    client: docker.DockerClient,
    registry_image: str,
    instance: str,
    tmp_path: Path,
    start_agent: StartAgent,
) -> None:
    crasher = {
        "name": f"{instance}-crash",
        "image": registry_image,
        "command": ["sh", "-c", "exit 3"],
        "restart": "no",
    }
    manifest = write_manifest(
        tmp_path / "m.json", [crasher, container_spec(f"{instance}-ok", registry_image)]
    )
    agent = start_agent(manifest, instance)
    wait_until(lambda: f"{instance}-ok" in running(client, instance), what="the good one")

    def crash_state() -> dict[str, object] | None:
        containers = agent_status(tmp_path / "state", instance)["containers"]
        row = {c["name"]: c for c in containers}.get(f"{instance}-crash")
        return row if row and row["state"] == "backoff" else None

    row = wait_until(crash_state, what="the crash loop back-off")
    assert "back-off" in str(row["error"])
    time.sleep(3)  # well inside the first 10 s back-off
    after = crash_state()
    assert after is not None and after["restarts"] == row["restarts"] == 1  # no hot loop
    assert f"{instance}-ok" in running(client, instance)
    assert agent.stop() == 0
