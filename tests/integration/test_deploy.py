"""The ways volunteers run the agent: the container image with the host's Docker socket, Docker
Compose, and the systemd unit."""

from __future__ import annotations

import configparser
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import docker
import pytest
import requests

from controller.core.models import LABEL_INSTANCE
from rma_testkit.coordinator import Coordinator
from rma_testkit.engine import managed, running, wait_until
from rma_testkit.postgres import fresh_database

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]
IMAGE = "rma-worker:local"
HEALTHCHECK = [
    "python3",
    "-c",
    "import urllib.request; urllib.request.urlopen('http://127.0.0.1:9321/healthz', timeout=4)",
]


def run(
    *argv: str, env: dict[str, str] | None = None, timeout: float = 600, cwd: Path = ROOT
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        argv,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **(env or {})},
        check=False,
    )


@pytest.fixture(scope="session")
def image(client: docker.DockerClient) -> str:
    done = run("bash", "manifests/image.sh", env={"PYTHON": sys.executable})
    assert done.returncode == 0, done.stderr + done.stdout
    return IMAGE


def test_systemd_unit_verifies_and_outlasts_the_agents_shutdown(tmp_path: Path) -> None:
    unit = (ROOT / "manifests/rma-worker.service").read_text()
    binary = shutil.which("rma-worker") or str(Path(sys.executable).parent / "rma-worker")
    local = tmp_path / "rma-worker.service"
    local.write_text(unit.replace("/usr/local/bin/rma-worker", binary))
    done = run("systemd-analyze", "verify", str(local))
    assert done.returncode == 0 and "rma-worker.service" not in done.stderr, done.stderr
    ini = configparser.ConfigParser(strict=False, interpolation=None)
    ini.read_string(unit)
    assert "docker.service" in ini["Unit"]["After"] and ini["Unit"]["Requires"] == "docker.service"
    service = ini["Service"]
    assert (service["Restart"], service["KillSignal"]) == ("always", "SIGTERM")
    assert service["StateDirectory"] == "rma-worker"
    grace = next(
        int(line.split("=")[2])
        for line in unit.splitlines()
        if line.startswith("Environment=RMA_STOP_GRACE=")
    )
    assert int(service["TimeoutStopSec"]) > grace + 5 + 10  # grace + unregister + margin


def test_make_install_service_installs_and_enables(tmp_path: Path) -> None:
    done = run("make", "install-service", f"ROOT={tmp_path}", f"PYTHON={sys.executable}")
    assert done.returncode == 0, done.stderr
    wants = tmp_path / "etc/systemd/system/multi-user.target.wants/rma-worker.service"
    assert wants.is_symlink()
    assert (tmp_path / "etc/systemd/system/rma-worker.service").read_text() == (
        ROOT / "manifests/rma-worker.service"
    ).read_text()
    version = run(str(tmp_path / "opt/rma-worker/bin/rma-worker"), "--version")
    assert version.stdout.startswith("rma-worker ")
    # The coordinator's default catalog is package data: found outside the source tree.
    tiers = run(
        str(tmp_path / "opt/rma-worker/bin/python"),
        "-c",
        "from rma_coordinator.tiers import Catalog; print(sorted(Catalog.load().tiers))",
        cwd=tmp_path,
    )
    assert tiers.stdout.strip() == "[1, 2, 3]", tiers.stderr


def test_compose_file_is_valid_and_has_the_seed_shape() -> None:
    done = run(
        "docker-compose",
        "-f",
        "manifests/docker-compose.yml",
        "config",
        env={"COORDINATOR_URL": "http://127.0.0.1:1"},
    )
    assert done.returncode == 0, done.stderr
    assert "/var/run/docker.sock:/var/run/docker.sock" in done.stdout
    assert "restart: unless-stopped" in done.stdout and "healthcheck" in done.stdout
    assert "COORDINATOR_URL: http://127.0.0.1:1" in done.stdout


def test_the_image_runs_the_agent_with_the_socket_and_docker_stop_cleans_up(
    client: docker.DockerClient, image: str, instance: str, coordinator: Coordinator
) -> None:
    config = client.images.get(image).attrs["Config"]
    assert config["Entrypoint"] == ["rma-worker"]  # exec form: SIGTERM reaches the agent
    assert "/var/lib/rma-worker" in config["Volumes"] and config["Healthcheck"]["Test"]
    agent = client.containers.run(
        image,
        name=f"{instance}-agent",
        detach=True,
        network_mode="host",
        volumes={"/var/run/docker.sock": {"bind": "/var/run/docker.sock", "mode": "rw"}},
        environment={
            "COORDINATOR_URL": coordinator.url,
            "RMA_INSTANCE": instance,
            "RMA_PUBLISH_ADDRESS": "127.0.0.1",
            "RMA_ALLOWED_REGISTRIES": "127.0.0.1:5000",
        },
    )
    names = {f"{instance}-svc1", f"{instance}-svc2"}
    wait_until(lambda: set(running(client, instance)) == names, 60, "sibling containers")
    wait_until(
        lambda: coordinator.workers() and coordinator.workers()[0]["heartbeats"] >= 1,
        30,
        "heartbeats from the containerised agent",
    )
    assert agent.exec_run(HEALTHCHECK).exit_code == 0
    agent.stop(timeout=60)
    agent.reload()
    assert agent.attrs["State"]["ExitCode"] == 0, agent.logs()[-2000:]
    assert managed(client, instance) == {} and coordinator.workers() == []


def test_compose_brings_the_agent_up_and_stop_cleans_up(
    client: docker.DockerClient, image: str, instance: str, coordinator: Coordinator
) -> None:
    env = {
        "COORDINATOR_URL": coordinator.url,
        "RMA_INSTANCE": instance,
        "RMA_PUBLISH_ADDRESS": "127.0.0.1",
        "RMA_ALLOWED_REGISTRIES": "127.0.0.1:5000",
    }
    compose = ("docker-compose", "-p", instance, "-f", "manifests/docker-compose.yml")
    try:
        up = run(*compose, "up", "-d", env=env)
        assert up.returncode == 0, up.stderr
        names = {f"{instance}-svc1", f"{instance}-svc2"}
        wait_until(lambda: set(running(client, instance)) == names, 60, "sibling containers")
        [agent] = client.containers.list(
            filters={"label": "com.docker.compose.project=" + instance}
        )
        assert agent.attrs["HostConfig"]["RestartPolicy"]["Name"] == "unless-stopped"
        assert agent.attrs["HostConfig"]["PidMode"] == "host"  # whose GPU processes are whose
        assert LABEL_INSTANCE not in agent.labels  # the agent does not manage itself
        # The owner pauses the agent in its container: the same pause file, in its state volume.
        ids = running(client, instance)
        paused = run(*compose, "exec", "-T", "rma-worker", "rma-worker", "pause", env=env)
        assert paused.returncode == 0 and "Confirmed" in paused.stdout, paused.stdout
        assert {n: r["State"] for n, r in managed(client, instance).items()} == dict.fromkeys(
            names, "exited"
        )
        resumed = run(*compose, "exec", "-T", "rma-worker", "rma-worker", "resume", env=env)
        assert resumed.returncode == 0, resumed.stderr
        wait_until(lambda: running(client, instance) == ids, 60, "the same containers again")
        stop = run(*compose, "stop", env=env)
        assert stop.returncode == 0, stop.stderr
        assert managed(client, instance) == {} and coordinator.workers() == []
    finally:
        run(*compose, "down", "-v", env=env)


def test_the_coordinators_compose_file_runs_two_replicas_on_one_postgresql(
    client: docker.DockerClient, instance: str
) -> None:
    """manifests/coordinator-postgres.yml (issue 25): its two replicas, from the coordinator
    image, on the PostgreSQL `make services` runs (its own `db` service is for a machine without
    one: postgres:16 cannot be pulled here): a worker registered on one is listed by the other."""
    built = run(
        "bash", "manifests/image.sh",
        env={"PYTHON": sys.executable, "RMA_IMAGE_EXTRAS": "coordinator",
             "RMA_IMAGE": "rma-coordinator:local"},
    )  # fmt: skip
    assert built.returncode == 0, built.stderr + built.stdout
    ports = [free_port(), free_port()]
    with fresh_database() as db:
        env = {"RMA_COORDINATOR_DB": db, "RMA_ADMIN_TOKEN": "adm",
               "RMA_PORT_A": str(ports[0]), "RMA_PORT_B": str(ports[1]),
               "RMA_COORDINATOR_HOST": "127.0.0.1"}  # fmt: skip
        compose = ("docker-compose", "-p", instance, "-f", "manifests/coordinator-postgres.yml")
        try:
            up = run(*compose, "up", "-d", "--no-deps", "coordinator-a", "coordinator-b", env=env)
            assert up.returncode == 0, up.stderr
            urls = [f"http://127.0.0.1:{p}" for p in ports]
            wait_until(lambda: all(_answers(u + "/health") for u in urls), 60, "both replicas")
            body = {"capabilities": {"cpu_cores": 4, "ram": "16.0GB", "storage": "100.0GB"}}
            reg = requests.post(urls[0] + "/api/worker/register", json=body, timeout=10)
            assert reg.status_code == 200, reg.text
            listed = requests.get(
                urls[1] + "/api/admin/workers", headers={"Authorization": "Bearer adm"}, timeout=10
            ).json()
            assert [w["id"] for w in listed] == [reg.json()["worker_id"]]
        finally:
            run(*compose, "down", env=env)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _answers(url: str) -> bool:
    try:
        return requests.get(url, timeout=2).status_code == 200
    except requests.RequestException:
        return False
