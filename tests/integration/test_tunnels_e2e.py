"""Reachable from the pool, end to end and offline: the agent registered with the reference
coordinator (each dialect) runs an HTTP service and its tunnel (the stand-in of
manifests/tunnel/, which prints a URL like cloudflared and really forwards to the service), the
coordinator lists that URL, and a request to the coordinator's proxy path returns the
container's page. The tunnel killed: back with a new URL, announced again, requests work again.
The service removed: its tunnel is removed and its URL withdrawn."""

from __future__ import annotations

import re
import signal
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import docker
import pytest
import requests

from controller.clients import tunnel_metrics
from controller.clients.docker_runtime import DockerRuntime
from rma_testkit.agent import StartAgent, agent_status
from rma_testkit.coordinator import (
    Coordinator,
    requests_seen,
    services_index,
    web_spec,
    write_agent_catalog,
    write_catalog,
)
from rma_testkit.engine import TUNNEL_URL, managed, running, wait_until

pytestmark = pytest.mark.integration
PAGE = "RMA demo worker"  # manifests/demo/index.html, served by busybox httpd in the service


@dataclass
class Served:
    coord: Coordinator
    dialect: str
    agent_args: tuple[str, ...]

    @property
    def route(self) -> str:
        return "/service" if self.dialect == "local" else "/api/service"


@pytest.fixture
def served(
    tmp_path: Path,
    instance: str,
    registry_image: str,
    tunnel_image: str,
    request: pytest.FixtureRequest,
) -> Iterator[Served]:
    """A coordinator of `request.param`'s dialect whose worker will run `notes-coa`: from its
    own catalog (full, part1) or from the agent's (edge: by tier; local: by name)."""
    spec = web_spec(instance, registry_image)
    args = ("--dialect", request.param, "--heartbeat-interval", "0.5")
    coord = Coordinator(tmp_path, write_catalog(tmp_path / "c.yaml", [spec]), *args)
    catalog = write_agent_catalog(
        tmp_path / "agent-catalog.yaml", {"notes-coa": (2, {**spec, "labels": {}})}
    )
    agent_args = (
        *("--catalog", str(catalog), "--heartbeat-interval", "0.5", "--ingress", "tunnel"),
        *("--tunnel-image", tunnel_image, "--tunnel-url-pattern", TUNNEL_URL),
    )
    yield Served(coord, request.param, agent_args)
    coord.stop()


def url_of(coord: Coordinator) -> str:
    entries = services_index(coord).get("notes-coa") or []
    urls = [e["service_url"] for e in entries if e["service_url"]]
    return urls[0] if len(urls) == 1 else ""


def through(served: Served) -> str:
    try:
        resp = requests.get(f"{served.coord.url}{served.route}/notes-coa/index.html", timeout=5)
    except requests.RequestException:
        return ""
    return resp.text if resp.status_code == 200 and PAGE in resp.text else ""


@pytest.mark.parametrize("served", ["full", "part1", "edge", "local"], indirect=True)
def test_a_request_through_the_coordinator_reaches_the_container(
    client: docker.DockerClient,
    served: Served,
    instance: str,
    tmp_path: Path,
    start_agent: StartAgent,
) -> None:
    coord = served.coord
    agent = start_agent(coord.url, instance, *served.agent_args)
    service = f"{instance}-notes"
    first = wait_until(lambda: url_of(coord), timeout=60, what="the tunnel's URL listed")
    assert re.fullmatch(TUNNEL_URL, first)
    assert wait_until(lambda: through(served), what="the page through the coordinator")
    status = agent_status(tmp_path / "state", instance)
    assert status["ingress"] == "tunnel"
    assert [s["service_url"] for s in status["reachable"]] == [first]
    if served.dialect == "part1":  # no http mark, not in the agent's catalog as HTTP: probed
        row = next(c for c in status["containers"] if c["name"] == service)
        assert row.get("http_from") == "probe"
        # it joined the network it shares with its tunnel from the start (core/containment.py)
        joined = client.containers.get(service).attrs["NetworkSettings"]["Networks"]
        assert any(n.startswith(f"rma-{instance}-pair-") for n in joined)

    if served.dialect == "full":  # what the tunnel carried, as its receipts count it
        for _ in range(3):
            assert through(served)
        runtime = DockerRuntime(instance)
        counted = tunnel_metrics.by_service(runtime.list_managed()) or {}
        runtime.close()
        assert counted.get(service, 0) >= 4  # the page above and these three

    tunnel = f"rma-tunnel-{instance}-notes"
    client.api.remove_container(tunnel, force=True)  # killed: the agent brings it back
    second = wait_until(
        lambda: (u := url_of(coord)) and u != first and u, timeout=60, what="a new URL"
    )
    assert re.fullmatch(TUNNEL_URL, second)
    assert wait_until(lambda: through(served), what="the page again")
    assert len(coord.workers()) == 1  # no ghost left by registering again (part1)
    # Registered; again with the URL, without it while the tunnel was down, with the new one
    # (Part 2's heartbeats carry them instead): the service recreated for each new id of the
    # service coordinator kept its URL, so no registration more, never a loop.
    assert requests_seen(coord)["register"] <= (1 if served.dialect == "full" else 4)
    assert agent.stop() == 0
    assert managed(client, instance) == {}


@pytest.mark.parametrize("served", ["full"], indirect=True)
def test_a_removed_service_takes_its_tunnel_and_url_with_it(
    client: docker.DockerClient, served: Served, instance: str, start_agent: StartAgent
) -> None:
    coord = served.coord
    start_agent(coord.url, instance, *served.agent_args)
    wait_until(lambda: url_of(coord), timeout=60, what="the tunnel's URL listed")
    coord.set_assignment(coord.workers()[0]["id"], [])
    wait_until(lambda: managed(client, instance) == {}, what="service and tunnel removed")
    wait_until(lambda: services_index(coord) == {}, what="the URL withdrawn")
    resp = requests.get(f"{coord.url}/api/service/notes-coa/index.html", timeout=5)
    assert resp.status_code == 503


SLOW = (
    "busybox mkdir -p /w/cgi-bin && printf '#!/bin/sh\\necho Content-Type: text/plain\\necho\\n"
    "sleep 3\\necho done\\n' > /w/cgi-bin/slow && busybox chmod +x /w/cgi-bin/slow && "
    "trap 'exit 0' TERM; httpd -f -p 8080 -h /w & wait"
)


@pytest.mark.parametrize("dialect", ["edge", "full"])
def test_sigterm_withdraws_the_url_first_and_a_slow_request_completes(
    client: docker.DockerClient,
    instance: str,
    registry_image: str,
    tmp_path: Path,
    start_agent: StartAgent,
    dialect: str,
) -> None:
    spec = {**web_spec(instance, registry_image), "command": ["sh", "-c", SLOW]}
    coord = Coordinator(tmp_path, write_catalog(tmp_path / "c.yaml", [spec]), "--dialect", dialect)
    try:
        catalog = write_agent_catalog(tmp_path / "a.yaml", {"notes-coa": (2, spec)})
        agent = start_agent(
            coord.url,
            instance,
            *("--catalog", str(catalog), "--heartbeat-interval", "0.5", "--drain-seconds", "5"),
            *("--ingress", "url", "--advertise-url", "http://127.0.0.1:{port}"),
        )
        wait_until(lambda: url_of(coord), what="the URL listed")
        answers: list[requests.Response] = []
        slow = threading.Thread(
            target=lambda: answers.append(
                requests.get(f"{coord.url}/api/service/notes-coa/cgi-bin/slow", timeout=20)
            )
        )
        slow.start()
        time.sleep(0.5)  # the request is in flight at the service
        agent.proc.send_signal(signal.SIGTERM)
        wait_until(lambda: not url_of(coord), what="the URL withdrawn")
        assert running(client, instance)  # withdrawn while the service still runs
        slow.join(20)
        assert answers and answers[0].status_code == 200 and answers[0].text.strip() == "done"
        assert agent.proc.wait(30) == 0
        assert managed(client, instance) == {}
        events = [e["event"] for e in agent.events()]
        assert events.index("services_withdrawn") < events.index("teardown_started")
    finally:
        coord.stop()


def test_a_recreated_service_drains_first_and_comes_back_announced(
    client: docker.DockerClient,
    instance: str,
    registry_image: str,
    tmp_path: Path,
    start_agent: StartAgent,
) -> None:
    spec = {**web_spec(instance, registry_image), "command": ["sh", "-c", SLOW]}
    coord = Coordinator(tmp_path, write_catalog(tmp_path / "c.yaml", [spec]), "--dialect", "full")
    try:
        start_agent(
            coord.url,
            instance,
            *("--heartbeat-interval", "0.5", "--drain-seconds", "5"),
            *("--ingress", "url", "--advertise-url", "http://127.0.0.1:{port}"),
        )
        wait_until(lambda: url_of(coord), what="the URL listed")
        before = running(client, instance)
        answers: list[requests.Response] = []
        slow = threading.Thread(
            target=lambda: answers.append(
                requests.get(f"{coord.url}/api/service/notes-coa/cgi-bin/slow", timeout=20)
            )
        )
        slow.start()
        time.sleep(0.5)
        changed = {**spec, "env": {"VERSION": "2"}}  # a new spec: the container is recreated
        coord.set_assignment(coord.workers()[0]["id"], [changed])
        wait_until(lambda: not url_of(coord), what="the URL withdrawn before the stop")
        assert running(client, instance) == before  # still the old container, serving
        slow.join(20)
        assert answers and answers[0].status_code == 200 and answers[0].text.strip() == "done"
        wait_until(lambda: (now := running(client, instance)) and now != before, what="recreated")
        wait_until(lambda: url_of(coord), what="announced again once it runs")
        again = requests.get(f"{coord.url}/api/service/notes-coa/cgi-bin/slow", timeout=20)
        assert again.status_code == 200 and again.text.strip() == "done"
    finally:
        coord.stop()
