"""`make run` — the README's first command — end to end: manifests/demo/run.sh starts the
reference coordinator with the demo catalog and an agent registered with it; the agent runs the
demo containers (an image built on this machine, so it must be allowed as found) and shows its
page; Ctrl-C removes the containers, unregisters and stops the coordinator."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import docker
import pytest
import requests

from rma_testkit.agent import agent_status
from rma_testkit.coordinator import free_port
from rma_testkit.engine import managed, running, wait_until

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]


def test_make_run_runs_the_demo_and_ctrl_c_cleans_up(
    client: docker.DockerClient, instance: str, tmp_path: Path
) -> None:
    state, port = tmp_path / "state", free_port()
    env = {
        **os.environ,
        "BIN": str(Path(sys.executable).parent),
        "RMA_DEMO_PORT": str(port),
        "RMA_STATE_DIR": str(state),
        "RMA_INSTANCE": instance,
        "RMA_HEALTH_ADDR": "127.0.0.1:0",
        "RMA_LOG_FORMAT": "json",
    }
    log = (tmp_path / "run.log").open("w")
    demo = subprocess.Popen(
        ["bash", "manifests/demo/run.sh"], cwd=ROOT, env=env, stdout=log, stderr=log,
        start_new_session=True,
    )  # fmt: skip
    try:
        demo_runs(client, state, instance, port)
        os.killpg(demo.pid, signal.SIGINT)  # Ctrl-C in the terminal
        assert demo.wait(90) == 0, (tmp_path / "run.log").read_text()[-3000:]
        assert managed(client, instance) == {}
        with pytest.raises(requests.ConnectionError):
            requests.get(f"http://127.0.0.1:{port}/health", timeout=2)
    finally:
        if demo.poll() is None:
            os.killpg(demo.pid, signal.SIGKILL)
        log.close()


def demo_runs(client: docker.DockerClient, state: Path, instance: str, port: int) -> None:
    """Converged, every container running, the page answers, one worker at the coordinator."""
    status = wait_until(
        lambda: (s := _status(state, instance)) and s["converged"] and s["containers"] and s,
        90,
        "the demo converged",
    )
    assert {c["state"] for c in status["containers"]} == {"running"}, status["containers"]
    assert set(running(client, instance)) == {c["name"] for c in status["containers"]}
    url = (state / f"{instance}.health").read_text().strip()
    assert requests.get(url + "/", timeout=5).status_code == 200  # the owner's page
    workers = requests.get(
        f"http://127.0.0.1:{port}/api/admin/workers",
        headers={"Authorization": "Bearer demo-admin"},
        timeout=5,
    ).json()
    assert [w["id"] for w in workers] == [status["worker_id"]]


def _status(state: Path, instance: str) -> dict[str, Any] | None:
    try:
        return agent_status(state, instance)
    except (subprocess.CalledProcessError, json.JSONDecodeError):
        return None
