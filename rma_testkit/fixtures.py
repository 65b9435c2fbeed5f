"""Fixtures for tests against the real Docker engine and the local registry (`make services`),
loaded by tests/conftest.py as a pytest plugin so that integration and destructive tests share
them. Each test gets its own agent instance name, so its agent owns only that test's containers;
every container and volume a test creates is removed afterwards, whatever the outcome.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import docker
import pytest
from selenium import webdriver
from selenium.webdriver.chrome.options import Options
from selenium.webdriver.chrome.service import Service

from controller.clients import firewall
from controller.core.models import LABEL_INSTANCE
from rma_testkit.agent import AgentProcess, agent_argv
from rma_testkit.coordinator import Coordinator, write_catalog
from rma_testkit.engine import (
    LOCAL_IMAGE,
    LOCAL_MODEL_IMAGE,
    LOCAL_TUNNEL_IMAGE,
    REGISTRY_IMAGE,
    REGISTRY_MODEL_IMAGE,
    REGISTRY_TUNNEL_IMAGE,
    services,
    wait_until,
)


@pytest.fixture(scope="session")
def client() -> Iterator[docker.DockerClient]:
    try:
        c = docker.from_env(version="auto", timeout=60)
        c.ping()
    except docker.errors.DockerException as exc:
        pytest.fail(f"no Docker engine ({exc}): run `make services` first")
    yield c
    c.close()


def pushed(client: docker.DockerClient, local: str, remote: str) -> str:
    """`local`, pushed to the local registry as `remote` (the agent must pull it from there)."""
    try:
        image = client.images.get(local)
    except docker.errors.ImageNotFound:
        pytest.fail(f"{local} missing: run `make services`")
    image.tag(remote)
    for line in client.api.push(remote, stream=True, decode=True):
        if "error" in line:
            pytest.fail(f"push to the local registry failed: {line['error']}")
    return remote


@pytest.fixture(scope="session")
def registry_image(client: docker.DockerClient) -> str:
    """The test image in the local registry."""
    return pushed(client, LOCAL_IMAGE, REGISTRY_IMAGE)


@pytest.fixture(scope="session")
def tunnel_image(client: docker.DockerClient) -> str:
    """The stand-in tunnel (manifests/tunnel/) in the local registry."""
    return pushed(client, LOCAL_TUNNEL_IMAGE, REGISTRY_TUNNEL_IMAGE)


@pytest.fixture(scope="session")
def model_image(client: docker.DockerClient) -> str:
    """The stand-in model server (manifests/model-server/) in the local registry."""
    return pushed(client, LOCAL_MODEL_IMAGE, REGISTRY_MODEL_IMAGE)


@pytest.fixture
def own_image(client: docker.DockerClient, instance: str) -> Iterator[str]:
    """The test image under a name of this test's own, in the local registry and not on this
    machine: the agent must pull it, and no test running beside this one pulls or removes it
    (the shared `registry_image` is everyone's)."""
    remote = f"{REGISTRY_IMAGE.rsplit(':', 1)[0]}-{instance}:1"
    pushed(client, LOCAL_IMAGE, remote)
    client.images.remove(remote)
    yield remote
    with contextlib.suppress(docker.errors.ImageNotFound):
        client.images.remove(remote, force=True)


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
    labelled = client.networks.list(filters={"label": f"{LABEL_INSTANCE}={name}"})
    for n in [*labelled, *client.networks.list(names=[f"rma-{name}"])]:
        with contextlib.suppress(docker.errors.APIError):
            n.remove()
    firewall.remove(name)  # --isolate-lan rules a failed test left
    root = Path("/sys/fs/cgroup")
    for group in [root / f"rma-{name}", *root.glob(f"*/rma-{name}")]:  # the parent group
        with contextlib.suppress(OSError):
            group.rmdir()


@pytest.fixture
def coordinator(
    tmp_path: Path, registry_image: str, instance: str, request: pytest.FixtureRequest
) -> Iterator[Coordinator]:
    """The reference coordinator on a loopback port; other flags through indirect params."""
    args = getattr(request, "param", ("--heartbeat-interval", "0.5"))
    catalog = write_catalog(tmp_path / "catalog.yaml", services(instance, registry_image))
    coord = Coordinator(tmp_path, catalog, *args)
    yield coord
    coord.stop()


@pytest.fixture
def start_agent(tmp_path: Path) -> Iterator[Callable[..., AgentProcess]]:
    agents: list[AgentProcess] = []

    def start(source: Path | str, instance: str, *extra: str) -> AgentProcess:
        argv = agent_argv(source, instance, tmp_path / "state", *extra)
        agent = AgentProcess(argv, tmp_path / f"agent{len(agents)}.log")
        agents.append(agent)
        # Signals sent before the agent installs its handlers would just kill it.
        wait_until(
            lambda: (
                any(e.get("event") == "agent_started" for e in agent.events())
                or agent.proc.poll() is not None
            ),
            what="the agent to start",
        )
        return agent

    yield start
    for agent in agents:
        if agent.proc.poll() is None:
            agent.proc.kill()
            agent.proc.wait(10)


@pytest.fixture
def browser() -> Iterator[webdriver.Chrome]:
    """Debian's chromium, headless, driven by Selenium (the owner's page, the leaderboard)."""
    chromium, driver = shutil.which("chromium"), shutil.which("chromedriver")
    if chromium is None or driver is None:
        message = "no chromium/chromedriver: `make services` installs them"
        if os.environ.get("RMA_REQUIRE_DOCKER") == "1":
            pytest.fail(message)
        pytest.skip(message)
    options = Options()
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage",
                "--window-size=1200,1800", "--disable-gpu"):  # fmt: skip
        options.add_argument(arg)
    options.binary_location = chromium
    chrome = webdriver.Chrome(options=options, service=Service(driver))
    yield chrome
    chrome.quit()
