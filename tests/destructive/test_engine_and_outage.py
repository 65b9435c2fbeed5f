"""Tests that stop the host's Docker engine: left out of `make test` unless RMA_DESTRUCTIVE=1 (CI
sets it). The coordinator away for minutes is a component test now (tests/component/)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import docker
import psutil
import pytest

from rma_testkit.agent import StartAgent, write_manifest
from rma_testkit.engine import container_spec, managed, running, wait_until

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.serial  # it stops the host's engine: every other test would fail meanwhile
def test_the_engine_restarted_under_a_running_agent(
    client: docker.DockerClient,
    registry_image: str,
    instance: str,
    tmp_path: Path,
    start_agent: StartAgent,
) -> None:
    specs = [
        container_spec(f"{instance}-a", registry_image),
        container_spec(f"{instance}-b", registry_image, restart="no"),
    ]
    agent = start_agent(write_manifest(tmp_path / "m.json", specs), instance)
    names = {s["name"] for s in specs}
    wait_until(lambda: set(running(client, instance)) == names, what="containers up")
    engine = next(p for p in psutil.process_iter(["name"]) if p.info["name"] == "dockerd")
    engine.terminate()
    engine.wait(60)
    restart = subprocess.run(
        ["bash", "manifests/services.sh", "engine"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert restart.returncode == 0, restart.stderr
    # `a` comes back by its restart policy, `b` (restart: no) only because the agent starts it.
    wait_until(lambda: set(running(client, instance)) == names, 120, "convergence after restart")
    assert agent.proc.poll() is None
    assert "event_stream_ended" in agent.log() or "event_stream_failed" in agent.log()
    assert agent.stop() == 0 and managed(client, instance) == {}
