"""End to end: the reference coordinator over HTTP, the agent as a process, the real engine and
the local registry."""

from __future__ import annotations

import json
import signal
from pathlib import Path
from typing import Any

import docker
import pytest

from rma_testkit.agent import AgentProcess, StartAgent, agent_status
from rma_testkit.coordinator import Coordinator
from rma_testkit.engine import container_spec, managed, running, wait_until

pytestmark = pytest.mark.integration


def converged(client: docker.DockerClient, instance: str, names: set[str]) -> dict[str, str]:
    """{name: id} once exactly `names` are the instance's containers and all run."""
    now = running(client, instance)
    return now if set(now) == names and set(managed(client, instance)) == names else {}


def join(
    client: docker.DockerClient, instance: str, coordinator: Coordinator, start_agent: StartAgent
) -> tuple[AgentProcess, set[str], dict[str, str]]:
    """Start an agent against the coordinator; wait until its two containers run."""
    agent = start_agent(coordinator.url, instance)
    names = {f"{instance}-svc1", f"{instance}-svc2"}
    return (
        agent,
        names,
        wait_until(lambda: converged(client, instance, names), what="containers up"),
    )


def follow_worker_id(
    client: docker.DockerClient, instance: str, names: set[str], worker_id: str
) -> None:
    """Until the containers run again, created for the worker's new id (svc1 may be missing
    for a moment while it is recreated)."""

    def followed() -> bool:
        try:
            env = client.api.inspect_container(f"{instance}-svc1")["Config"]["Env"]
        except docker.errors.NotFound:
            return False
        return f"WORKER_ID={worker_id}" in env and bool(converged(client, instance, names))

    wait_until(followed, what="convergence to the new assignment")


def the_worker(coord: Coordinator) -> dict[str, Any]:
    workers = coord.workers()
    assert len(workers) == 1, workers
    return workers[0]


def test_registers_runs_its_containers_and_heartbeats(
    client: docker.DockerClient,
    instance: str,
    coordinator: Coordinator,
    start_agent: StartAgent,
    tmp_path: Path,
) -> None:
    agent, names, _ = join(client, instance, coordinator, start_agent)
    wait_until(
        lambda: (
            the_worker(coordinator)["heartbeats"] >= 2
            and the_worker(coordinator)["health"] == "healthy"
        ),
        what="healthy heartbeats",
    )
    worker = the_worker(coordinator)
    assert worker["tier"] in (2, 3)
    assert worker["capabilities"]["cpu_cores"] >= 1 and worker["capabilities"]["ram"].endswith("GB")
    assert {c["name"]: c["state"] for c in worker["reported"]} == dict.fromkeys(names, "running")
    env = client.api.inspect_container(f"{instance}-svc1")["Config"]["Env"]
    assert f"WORKER_ID={worker['id']}" in env
    shown = agent_status(tmp_path / "state", instance)
    assert (shown["worker_id"], shown["tier"], shown["mode"]) == (
        worker["id"],
        worker["tier"],
        "coordinator",
    )
    assert shown["last_heartbeat"] is not None and shown["coordinator"] == coordinator.url
    assert agent.stop() == 0


@pytest.mark.parametrize("coordinator", [("--heartbeat-interval", "300")], indirect=True)
def test_an_admin_change_arrives_through_the_long_poll(
    client: docker.DockerClient,
    registry_image: str,
    instance: str,
    coordinator: Coordinator,
    start_agent: StartAgent,
) -> None:
    agent, _, before = join(client, instance, coordinator, start_agent)
    worker = the_worker(coordinator)
    worker_id = worker["id"]
    # Heartbeats are 300 s apart here: only the long poll can bring this change in time.
    svc1 = next(c for c in worker["containers"] if c["name"] == f"{instance}-svc1")
    new = [svc1, container_spec(f"{instance}-svc3", registry_image)]
    coordinator.set_assignment(worker_id, new)
    after = wait_until(
        lambda: converged(client, instance, {f"{instance}-svc1", f"{instance}-svc3"}),
        timeout=20,
        what="the new assignment",
    )
    assert after[f"{instance}-svc1"] == before[f"{instance}-svc1"]  # unchanged: kept
    assert agent.stop() == 0


def test_coordinator_restarted_with_its_database_deleted(
    client: docker.DockerClient, instance: str, coordinator: Coordinator, start_agent: StartAgent
) -> None:
    agent, names, _ = join(client, instance, coordinator, start_agent)
    worker_id = the_worker(coordinator)["id"]
    # Once it is known (a 404 on a fresh registration's first heartbeat is a coordinator that
    # forgets every registration: that one is backed off, test_dialects_e2e.py).
    wait_until(lambda: the_worker(coordinator)["heartbeats"] >= 1, what="heartbeats")
    coordinator.restart(wipe=True)
    wait_until(coordinator.workers, what="the agent to register again")
    # Nothing left to prove the old id against: a new id (never a claimable one), and the
    # containers follow the new assignment (their WORKER_ID changed).
    new_id = the_worker(coordinator)["id"]
    assert new_id != worker_id
    wait_until(lambda: the_worker(coordinator)["heartbeats"] >= 1, what="heartbeats")
    follow_worker_id(client, instance, names, new_id)
    assert "worker_forgotten" in agent.log()
    assert agent.stop() == 0


def test_a_forgotten_worker_proves_its_id_and_keeps_its_containers(
    client: docker.DockerClient, instance: str, coordinator: Coordinator, start_agent: StartAgent
) -> None:
    agent, names, before = join(client, instance, coordinator, start_agent)
    worker_id = the_worker(coordinator)["id"]
    wait_until(lambda: the_worker(coordinator)["heartbeats"] >= 1, what="heartbeats")
    coordinator.forget(worker_id)  # as the sweep does after a long silence
    wait_until(coordinator.workers, what="the agent to register again")
    assert the_worker(coordinator)["id"] == worker_id  # its old token proved it
    wait_until(lambda: the_worker(coordinator)["heartbeats"] >= 1, what="heartbeats")
    assert converged(client, instance, names) == before  # nothing restarted
    assert agent.stop() == 0


@pytest.mark.parametrize(
    "coordinator", [("--part1-only", "--heartbeat-interval", "0.5")], indirect=True
)
def test_against_a_part1_only_coordinator(
    client: docker.DockerClient, instance: str, coordinator: Coordinator, start_agent: StartAgent
) -> None:
    agent, names, _ = join(client, instance, coordinator, start_agent)
    first = the_worker(coordinator)["id"]
    wait_until(lambda: the_worker(coordinator)["heartbeats"] >= 1, what="heartbeats")
    coordinator.restart(wipe=True)
    # The deployed coordinator hands out a new id; the containers follow the new assignment.
    second = wait_until(
        lambda: coordinator.workers() and coordinator.workers()[0]["id"], what="re-registration"
    )
    follow_worker_id(client, instance, names, second)
    assert len(coordinator.workers()) == 1 and (first != second)
    assert agent.stop() == 0
    assert coordinator.workers() == [] and managed(client, instance) == {}


def test_agent_restart_keeps_its_id_and_its_containers(
    client: docker.DockerClient, instance: str, coordinator: Coordinator, start_agent: StartAgent
) -> None:
    agent, names, before = join(client, instance, coordinator, start_agent)
    started = {n: client.api.inspect_container(n)["State"]["StartedAt"] for n in names}
    worker_id = the_worker(coordinator)["id"]
    assert agent.stop(signal.SIGUSR1) == 0  # upgrade path: leave the containers running
    assert converged(client, instance, names) == before
    coordinator.stop()  # and even with the coordinator away, the next start runs them
    second = start_agent(coordinator.url, instance)
    wait_until(lambda: "resumed" in second.log(), what="resume from stored state")
    coordinator.start()
    wait_until(lambda: the_worker(coordinator)["heartbeats"] >= 2, what="heartbeats")
    assert the_worker(coordinator)["id"] == worker_id and len(coordinator.workers()) == 1
    assert converged(client, instance, names) == before
    assert {n: client.api.inspect_container(n)["State"]["StartedAt"] for n in names} == started
    assert second.stop() == 0


def test_sigterm_removes_the_containers_and_unregisters(
    client: docker.DockerClient,
    instance: str,
    coordinator: Coordinator,
    start_agent: StartAgent,
    tmp_path: Path,
) -> None:
    agent, _, _ = join(client, instance, coordinator, start_agent)
    assert agent.stop(signal.SIGTERM) == 0
    assert managed(client, instance) == {}
    assert coordinator.workers() == []
    events = [e["event"] for e in agent.events()]
    assert events.index("teardown_done") < events.index("unregistered")
    assert not (tmp_path / "state" / f"{instance}.identity.json").exists()


def test_sigterm_is_bounded_when_the_coordinator_is_unreachable(
    client: docker.DockerClient,
    instance: str,
    coordinator: Coordinator,
    start_agent: StartAgent,
    tmp_path: Path,
) -> None:
    agent = start_agent(coordinator.url, instance)
    wait_until(lambda: len(running(client, instance)) == 2, what="containers up")
    coordinator.stop()
    assert agent.stop(signal.SIGTERM, timeout=60) == 0
    assert managed(client, instance) == {}
    assert "unregister_failed" in agent.log()
    identity = json.loads((tmp_path / "state" / f"{instance}.identity.json").read_text())
    assert identity["worker_id"]  # kept, so the next start does not leave a ghost


def test_a_hostile_assignment_never_reaches_docker(
    client: docker.DockerClient,
    registry_image: str,
    instance: str,
    coordinator: Coordinator,
    start_agent: StartAgent,
) -> None:
    agent, _, before = join(client, instance, coordinator, start_agent)
    worker = the_worker(coordinator)
    hostile = [
        {**container_spec(f"{instance}-h{i}", registry_image), **extra}
        for i, extra in enumerate(HOSTILE)
    ]
    good = next(c for c in worker["containers"] if c["name"] == f"{instance}-svc1")
    coordinator.set_assignment(worker["id"], [good, *hostile])
    wait_until(lambda: converged(client, instance, {f"{instance}-svc1"}), what="svc2 removed")
    assert running(client, instance)[f"{instance}-svc1"] == before[f"{instance}-svc1"]
    every = client.containers.list(all=True, filters={"name": instance})  # not other tests'

    assert not [c.name for c in every if c.name.startswith(f"{instance}-h")]
    for c in every:
        host = c.attrs["HostConfig"]
        assert not host["Privileged"] and host["NetworkMode"] != "host"
    expected = {f"{instance}-h{i}" for i in range(len(HOSTILE))}

    def refusals() -> dict[str, Any]:
        worker = the_worker(coordinator)
        found = {r["name"]: r for r in worker["reported"] or [] if r["state"] == "refused"}
        # svc1 still serves: refusals beside it are listed, the worker not degraded (issue 22)
        return found if set(found) == expected and worker["health"] == "healthy" else {}

    refused = wait_until(refusals, what="a healthy heartbeat listing the refusals")
    assert all(r["error"] for r in refused.values())
    assert "spec_refused" in agent.log()
    assert agent.stop() == 0


HOSTILE: list[dict[str, Any]] = [
    {"privileged": True},
    {"network_mode": "host"},
    {"pid_mode": "host"},
    {"ipc_mode": "host"},
    {"cap_add": ["SYS_ADMIN"]},
    {"devices": ["/dev/sda:/dev/sda"]},
    {"binds": ["/:/host"]},
    {"volumes": [{"name": "/etc", "path": "/host-etc"}]},
    {"security_opt": ["seccomp=unconfined"]},
    {"image": "evil.example.com/miner:1"},
]
