"""Fixtures for tests against the real Docker engine and the local registry (`make services`).

Each test gets its own agent instance name, so its agent owns only that test's containers; every
container and volume a test creates is removed afterwards, whatever the outcome.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import docker
import pytest

from controller.core.models import LABEL_INSTANCE
from tests.integration.coordinator import Coordinator, write_catalog

REGISTRY = os.environ.get("RMA_TEST_REGISTRY", "127.0.0.1:5000")
LOCAL_IMAGE = "rma-demo/busybox:1"
REGISTRY_IMAGE = f"{REGISTRY}/rma-test/busybox:1"
# PID 1 shells ignore SIGTERM unless they trap it.
LOOP = "trap 'exit 0' TERM; while true; do sleep 1 & wait; done"

pytestmark = pytest.mark.integration


@pytest.fixture(scope="session")
def client() -> Iterator[docker.DockerClient]:
    try:
        c = docker.from_env(version="auto", timeout=60)
        c.ping()
    except docker.errors.DockerException as exc:
        pytest.fail(f"no Docker engine ({exc}): run `make services` first")
    yield c
    c.close()


@pytest.fixture(scope="session")
def registry_image(client: docker.DockerClient) -> str:
    """The test image, pushed to the local registry (the agent must pull it from there)."""
    try:
        image = client.images.get(LOCAL_IMAGE)
    except docker.errors.ImageNotFound:
        pytest.fail(f"{LOCAL_IMAGE} missing: run `make services`")
    image.tag(REGISTRY_IMAGE)
    for line in client.api.push(REGISTRY_IMAGE, stream=True, decode=True):
        if "error" in line:
            pytest.fail(f"push to the local registry failed: {line['error']}")
    return REGISTRY_IMAGE


@pytest.fixture
def instance(client: docker.DockerClient) -> Iterator[str]:
    name = f"t{uuid.uuid4().hex[:8]}"
    yield name
    for c in client.containers.list(all=True, filters={"label": f"{LABEL_INSTANCE}={name}"}):
        c.remove(force=True, v=True)
    for c in client.containers.list(all=True, filters={"name": name}):
        c.remove(force=True, v=True)
    for v in client.volumes.list(filters={"name": name}):
        v.remove(force=True)


def drop_image(client: docker.DockerClient, ref: str) -> None:
    """Make sure `ref` is not present locally (so that the next use must pull it)."""
    with contextlib.suppress(docker.errors.ImageNotFound):
        client.images.remove(ref, force=True)


def managed(client: docker.DockerClient, instance: str) -> dict[str, dict[str, Any]]:
    """name -> container summary for every container the instance owns."""
    rows = client.api.containers(all=True, filters={"label": f"{LABEL_INSTANCE}={instance}"})
    return {r["Names"][0].lstrip("/"): r for r in rows}


def running(client: docker.DockerClient, instance: str) -> dict[str, str]:
    """name -> container id for the instance's running containers."""
    return {n: r["Id"] for n, r in managed(client, instance).items() if r["State"] == "running"}


def wait_until(cond: Callable[[], Any], timeout: float = 30.0, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = cond()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def wait_running(client: docker.DockerClient, instance: str, names: set[str],
                 what: str = "convergence") -> dict[str, str]:
    """Until exactly `names` run for the instance; then name -> container id."""
    def check() -> dict[str, str] | None:
        now = running(client, instance)
        return now if set(now) == names else None

    return dict(wait_until(check, what=what))


def container_spec(name: str, image: str, **extra: Any) -> dict[str, Any]:
    return {"name": name, "image": image, "command": ["sh", "-c", LOOP], **extra}


def services(instance: str, image: str) -> list[dict[str, Any]]:
    """The two containers the test coordinator's catalog assigns (tiers 2 and 3)."""
    return [container_spec(f"{instance}-svc1", image), container_spec(f"{instance}-svc2", image)]


@pytest.fixture
def coordinator(tmp_path: Path, registry_image: str, instance: str,
                request: pytest.FixtureRequest) -> Iterator[Coordinator]:
    """The reference coordinator on a loopback port; other flags through indirect params."""
    args = getattr(request, "param", ("--heartbeat-interval", "0.5"))
    catalog = write_catalog(tmp_path / "catalog.yaml", services(instance, registry_image))
    coord = Coordinator(tmp_path, catalog, *args)
    yield coord
    coord.stop()


def write_manifest(path: Path, containers: list[dict[str, Any]]) -> Path:
    """Write atomically, as an editor or config tool would."""
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps({"containers": containers}))
    os.replace(tmp, path)
    return path


def agent_argv(source: Path | str, instance: str, state: Path, *extra: str) -> list[str]:
    """A manifest path, or a coordinator URL."""
    where = ["--manifest", str(source)] if isinstance(source, Path) else [
        "--coordinator", source]
    return [sys.executable, "-m", "controller", *where, "--instance",
            instance, "--state-dir", str(state), "--publish-address", "127.0.0.1",
            "--log-format", "json", "--stop-grace", "2", "--image-refresh-interval", "0",
            "--health-addr", "127.0.0.1:0", "--allowed-registries", f"{REGISTRY},docker.io",
            # Independent of how full this machine's disk is; the disk tests set their own.
            "--min-free-disk", "0.2", "--image-gc-high", "100",
            *extra]


class AgentProcess:
    """The agent as a volunteer runs it: a separate process, stopped by a signal."""

    def __init__(self, argv: list[str], log_path: Path) -> None:
        self.log_path = log_path
        self._log = log_path.open("w")
        self.proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=self._log)

    def log(self) -> str:
        return self.log_path.read_text()

    def events(self) -> list[dict[str, Any]]:
        out = []
        for line in self.log().splitlines():
            try:
                out.append(json.loads(line))
            except ValueError:
                continue
        return out

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 60) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            return self.proc.wait(timeout)
        finally:
            self._log.close()


StartAgent = Callable[..., AgentProcess]


@pytest.fixture
def start_agent(tmp_path: Path) -> Iterator[Callable[..., AgentProcess]]:
    agents: list[AgentProcess] = []

    def start(source: Path | str, instance: str, *extra: str) -> AgentProcess:
        argv = agent_argv(source, instance, tmp_path / "state", *extra)
        agent = AgentProcess(argv, tmp_path / f"agent{len(agents)}.log")
        agents.append(agent)
        # Signals sent before the agent installs its handlers would just kill it.
        wait_until(lambda: any(e.get("event") == "agent_started" for e in agent.events())
                   or agent.proc.poll() is not None, what="the agent to start")
        return agent

    yield start
    for agent in agents:
        if agent.proc.poll() is None:
            agent.proc.kill()
            agent.proc.wait(10)


def run_once(
    manifest: Path, instance: str, state: Path, *extra: str
) -> subprocess.CompletedProcess[str]:
    argv = agent_argv(manifest, instance, state, "--once", "--once-timeout", "60", *extra)
    return subprocess.run(argv, capture_output=True, text=True, timeout=120, check=False)
