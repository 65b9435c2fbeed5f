"""The volunteer stays in charge, end to end: the agent as a process on the real engine with the
reference coordinator. `rma-worker pause` stops the containers (kept: the same ids, no pull on
resume), withdraws the service's URL and makes the heartbeat say `paused` (a Part 1 coordinator
hears `degraded`); the pause survives a restart of the agent; `resume` starts the same
containers and announces them again; `pause --for` ends by itself; a schedule that excludes now
starts nothing and says when it looks again; closing the terminal (SIGHUP) tears down."""

from __future__ import annotations

import signal
from datetime import datetime, timedelta
from pathlib import Path

import docker
import pytest

from rma_testkit.agent import AgentProcess, StartAgent, agent_status, rma_worker, write_manifest
from rma_testkit.coordinator import (
    Coordinator,
    services_index,
    web_spec,
    write_agent_catalog,
    write_catalog,
)
from rma_testkit.engine import container_spec, managed, running, wait_until

pytestmark = pytest.mark.integration


def states(client: docker.DockerClient, instance: str) -> dict[str, tuple[str, str]]:
    return {n: (r["State"], r["Id"]) for n, r in managed(client, instance).items()}


def health(coord: Coordinator) -> str:
    workers = coord.workers()
    return str(workers[0]["health"]) if len(workers) == 1 else ""


def url_of(coord: Coordinator) -> str:
    entries = services_index(coord).get("notes-coa") or []
    return next((e["service_url"] for e in entries if e["service_url"]), "")


def joined(
    tmp_path: Path, instance: str, image: str, start: StartAgent, dialect: str
) -> tuple[Coordinator, AgentProcess, tuple[str, ...]]:
    spec = web_spec(instance, image)
    coord = Coordinator(tmp_path, write_catalog(tmp_path / "c.yaml", [spec]), "--dialect", dialect)
    catalog = write_agent_catalog(tmp_path / "a.yaml", {"notes-coa": (2, spec)})
    args = (
        *("--catalog", str(catalog), "--heartbeat-interval", "0.5", "--drain-seconds", "1"),
        *("--ingress", "url", "--advertise-url", "http://127.0.0.1:{port}"),
    )
    return coord, start(coord.url, instance, *args), args


def paused_and_kept(
    client: docker.DockerClient,
    coord: Coordinator,
    state: Path,
    instance: str,
    before: dict[str, tuple[str, str]],
) -> dict[str, tuple[str, str]]:
    """`rma-worker pause`: the same containers, stopped; the heartbeat says so; URL withdrawn."""
    paused = rma_worker(state, instance, "pause", timeout=60)
    assert "Confirmed" in paused.stdout, paused.stdout
    after = states(client, instance)
    assert {n: i for n, (_, i) in after.items()} == {n: i for n, (_, i) in before.items()}
    assert {s for s, _ in after.values()} == {"exited"}  # stopped, not removed
    wait_until(lambda: health(coord) == "paused", what="the heartbeat saying paused")
    assert not url_of(coord)  # the URL withdrawn
    status = agent_status(state, instance)
    assert status["state"] == "paused" and "pause" in status["holds"]
    assert {c["state"] for c in status["containers"]} == {"paused"}
    return after


def test_pause_stops_keeps_withdraws_survives_a_restart_and_resume_brings_them_back(
    client: docker.DockerClient,
    instance: str,
    registry_image: str,
    tmp_path: Path,
    start_agent: StartAgent,
) -> None:
    state = tmp_path / "state"
    coord, agent, args = joined(tmp_path, instance, registry_image, start_agent, "full")
    try:
        url = wait_until(lambda: url_of(coord), what="the service announced")
        before = states(client, instance)
        assert {s for s, _ in before.values()} == {"running"}

        after = paused_and_kept(client, coord, state, instance, before)

        # The agent is upgraded (SIGUSR1 leaves everything as it is) and starts again: paused.
        assert agent.stop(signal.SIGUSR1) == 0
        start_agent(coord.url, instance, *args)
        wait_until(lambda: agent_status(state, instance)["state"] == "paused", what="paused")
        assert states(client, instance) == after  # nothing started by the new agent

        resumed = rma_worker(state, instance, "resume", timeout=60)
        assert "Resumed." in resumed.stdout
        wait_until(lambda: set(running(client, instance)) == set(before), what="running again")
        assert {n: i for n, (_, i) in states(client, instance).items()} == {
            n: i for n, (_, i) in before.items()
        }  # the same containers: started, not pulled or created
        wait_until(lambda: url_of(coord) == url, what="announced again")
        wait_until(lambda: health(coord) == "healthy", what="healthy again")
    finally:
        coord.stop()


def test_a_part1_coordinator_hears_degraded(
    instance: str, registry_image: str, tmp_path: Path, start_agent: StartAgent
) -> None:
    coord, _agent, _ = joined(tmp_path, instance, registry_image, start_agent, "part1")
    try:
        wait_until(lambda: health(coord) == "healthy", what="a healthy heartbeat")
        rma_worker(tmp_path / "state", instance, "pause", timeout=60)
        wait_until(lambda: health(coord) == "degraded", what="degraded: out of its routing")
        rma_worker(tmp_path / "state", instance, "resume", timeout=60)
        wait_until(lambda: health(coord) == "healthy", what="healthy again")
    finally:
        coord.stop()


def test_sighup_tears_down_and_unregisters(
    client: docker.DockerClient,
    instance: str,
    registry_image: str,
    tmp_path: Path,
    start_agent: StartAgent,
) -> None:
    coord, agent, _ = joined(tmp_path, instance, registry_image, start_agent, "full")
    try:
        wait_until(lambda: running(client, instance), what="the service running")
        assert agent.stop(signal.SIGHUP) == 0  # the terminal the agent ran in was closed
        assert managed(client, instance) == {}
        assert coord.workers() == []
        assert "teardown_done" in [e["event"] for e in agent.events()]
    finally:
        coord.stop()


def test_pause_for_a_while_ends_by_itself(
    client: docker.DockerClient,
    instance: str,
    registry_image: str,
    tmp_path: Path,
    start_agent: StartAgent,
) -> None:
    manifest = write_manifest(
        tmp_path / "m.json", [container_spec(f"{instance}-a", registry_image)]
    )
    start_agent(manifest, instance)
    state = tmp_path / "state"
    ids = wait_until(lambda: running(client, instance), what="running")
    rma_worker(state, instance, "pause", "--for", "3s", timeout=60)
    assert states(client, instance)[f"{instance}-a"][0] == "exited"
    wait_until(lambda: running(client, instance) == ids, what="started again by itself")
    assert not (state / f"{instance}.pause.json").exists()
    assert agent_status(state, instance)["state"] != "paused"


def test_outside_the_schedule_nothing_starts_and_status_says_when_it_looks_again(
    client: docker.DockerClient,
    instance: str,
    registry_image: str,
    tmp_path: Path,
    start_agent: StartAgent,
) -> None:
    tomorrow = (datetime.now() + timedelta(days=1)).strftime("%a").lower()
    manifest = write_manifest(
        tmp_path / "m.json", [container_spec(f"{instance}-a", registry_image)]
    )
    start_agent(manifest, instance, "--schedule", tomorrow)
    state = tmp_path / "state"
    status = wait_until(
        lambda: (s := agent_status(state, instance))["containers"] and s, what="a first pass"
    )
    assert status["state"] == "paused" and managed(client, instance) == {}
    schedule = next(c for c in status["conditions"] if c["name"] == "schedule")
    midnight = datetime.combine(datetime.now().date() + timedelta(days=1), datetime.min.time())
    assert schedule["active"] and schedule["reason"] == f"outside the schedule {tomorrow!r}"
    assert (
        datetime.fromisoformat(schedule["next_check"]).astimezone().replace(tzinfo=None) == midnight
    )
    text = rma_worker(state, instance, "status").stdout
    assert "Condition:      schedule: HOLDS: outside the schedule" in text
