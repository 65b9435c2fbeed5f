"""End to end with each of Part 3's coordinators: the reference coordinator speaking the edge and
local dialects (and the edge's debugging build), a coordinator that refuses or has no backend,
the agent as a process with a catalog of test services, the real engine and the local registry.
What runs, what the coordinator lists, and how many requests the agent sends."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import docker
import pytest

from rma_testkit.agent import AgentProcess, StartAgent, agent_status
from rma_testkit.coordinator import (
    Coordinator,
    free_port,
    requests_seen,
    services_index,
    write_agent_catalog,
    write_catalog,
)
from rma_testkit.engine import container_spec, managed, running, wait_until

pytestmark = pytest.mark.integration
BEAT = ("--heartbeat-interval", "0.5")  # the agent's own: a coordinator's is raised to 5 s
# The coordinator is on loopback (no tunnel by default): the services are announced where the
# agent publishes them.
REACH = ("--ingress", "url", "--advertise-url", "http://127.0.0.1:{port}")


class Pool:
    """A catalog of test services for tiers 2 and 3 (this machine qualifies for 2; the tests
    read the tier the coordinator gave), each on a free host port."""

    def __init__(self, tmp_path: Path, instance: str, image: str) -> None:
        self.ports = {"notes-coa": free_port(), "ner-extraction": free_port(), "redis": free_port()}
        tiers = {"notes-coa": 2, "ner-extraction": 2, "redis": 3}
        self.containers = {name: f"{instance}-{name}" for name in tiers}
        self.catalog = write_agent_catalog(
            tmp_path / "agent-catalog.yaml",
            {
                name: (tier, self._listening(self.containers[name], image, self.ports[name]))
                for name, tier in tiers.items()
            },
        )

    @staticmethod
    def _listening(name: str, image: str, port: int) -> dict[str, Any]:
        """A service that answers on its port (the agent announces only what answers)."""
        serve = f"trap 'exit 0' TERM; mkdir -p /w && httpd -f -p {port} -h /w & wait"
        return {**container_spec(name, image, port=port), "command": ["sh", "-c", serve]}

    def for_tier(self, tier: int) -> set[str]:
        names = {2: {"notes-coa", "ner-extraction"}, 3: {"redis"}}[tier]
        return {self.containers[n] for n in names}


@pytest.fixture
def pool(tmp_path: Path, instance: str, registry_image: str) -> Pool:
    return Pool(tmp_path, instance, registry_image)


@pytest.fixture
def dialect(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Coordinator]:
    """The reference coordinator speaking `request.param`'s flags."""
    coord = Coordinator(tmp_path, write_catalog(tmp_path / "c.yaml", []), *request.param)
    yield coord
    coord.stop()


def own_id(tmp_path: Path, instance: str) -> str:
    return str(
        json.loads((tmp_path / "state" / f"{instance}.worker.json").read_text())["worker_id"]
    )


def the_worker(coord: Coordinator) -> dict[str, Any]:
    workers = coord.workers()
    assert len(workers) == 1, workers
    return workers[0]


def runs(client: docker.DockerClient, instance: str, names: set[str]) -> dict[str, str]:
    now = running(client, instance)
    return now if set(now) == names and set(managed(client, instance)) == names else {}


def join(
    client: docker.DockerClient, instance: str, url: str, pool: Pool, start: StartAgent
) -> AgentProcess:
    return start(url, instance, "--catalog", str(pool.catalog), *BEAT, *REACH)


@pytest.mark.parametrize("dialect", [("--dialect", "edge")], indirect=True)
def test_edge_runs_the_catalog_for_its_tier_and_lists_its_services(
    client: docker.DockerClient,
    dialect: Coordinator,
    pool: Pool,
    instance: str,
    tmp_path: Path,
    start_agent: StartAgent,
) -> None:
    agent = join(client, instance, dialect.url, pool, start_agent)
    tier = int(wait_until(lambda: dialect.workers() and the_worker(dialect)["tier"]))
    expected = pool.for_tier(tier)
    wait_until(lambda: runs(client, instance, expected), what="the catalog's services")
    worker = the_worker(dialect)
    assert worker["id"] == own_id(tmp_path, instance)  # the coordinator kept the agent's id

    def listed() -> dict[str, Any]:
        index = services_index(dialect)
        ok = all(e[0]["status"] == "healthy" for e in index.values()) and len(index) == len(
            expected
        )
        return index if ok else {}

    index = wait_until(listed, what="the coordinator to list the services, healthy")
    for name, entries in index.items():
        assert entries == [
            {
                "worker_id": worker["id"],
                "service_url": f"http://127.0.0.1:{pool.ports[name]}",
                "port": pool.ports[name],
                "status": "healthy",
            }
        ]
    wait_until(lambda: requests_seen(dialect).get("heartbeat", 0) >= 4, what="heartbeats")
    assert requests_seen(dialect)["register"] == 2  # registered, then announced what it runs
    assert agent_status(tmp_path / "state", instance)["healthy"] is True
    assert agent.stop() == 0
    assert managed(client, instance) == {}


@pytest.mark.parametrize("dialect", [("--dialect", "local")], indirect=True)
def test_local_names_services_and_a_silent_coordinator_after_it_removes_nothing(
    client: docker.DockerClient,
    dialect: Coordinator,
    pool: Pool,
    instance: str,
    tmp_path: Path,
    start_agent: StartAgent,
) -> None:
    join(client, instance, dialect.url, pool, start_agent)
    worker = wait_until(lambda: dialect.workers() and the_worker(dialect))
    assert worker["id"] == own_id(tmp_path, instance) and worker["tier"] == 2
    expected = pool.for_tier(2)  # of ner-extraction, document-processing, notes-coa: two known
    ids = wait_until(lambda: runs(client, instance, expected), what="the named services")
    status = wait_until(
        lambda: (s := agent_status(tmp_path / "state", instance))["containers"] and s
    )
    refused = [c for c in status["containers"] if c["state"] == "refused"]
    assert [c["name"] for c in refused] == ["document-processing"]
    both = {"notes-coa": "healthy", "ner-extraction": "healthy"}  # once they answer
    beat = wait_until(lambda: (w := the_worker(dialect))["services_status"] == both and w)
    # a name it cannot run is reported, and the two that serve keep the worker healthy
    assert beat["health"] == "healthy"
    assert {"document-processing"} <= {c["name"] for c in beat["reported"]}

    # The public address moves to an edge coordinator: it forgets the worker (404 {"error"})
    # and its answer carries no assignment key. The catalog's tier-2 services are the same
    # ones: nothing is removed or recreated.
    dialect.restart(wipe=True, dialect="edge")
    wait_until(dialect.workers, what="the agent to register with the new dialect")
    wait_until(lambda: len(services_index(dialect)) == 2, what="the services listed again")
    assert running(client, instance) == ids
