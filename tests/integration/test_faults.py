"""Fault injection: a coordinator that misbehaves under a running agent, and an agent killed
with SIGKILL at many points of its work. Each must end with the machine converged."""

from __future__ import annotations

import json
import random
import signal
import time
from pathlib import Path

import docker
import psutil
import pytest

from rma_testkit.agent import StartAgent, run_once, write_manifest
from rma_testkit.bad_coordinator import MODES, BadCoordinator
from rma_testkit.coordinator import Coordinator
from rma_testkit.engine import (
    LOCAL_IMAGE,
    container_spec,
    managed,
    running,
    wait_running,
    wait_until,
)

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("mode", MODES)
def test_a_misbehaving_coordinator_touches_no_container(
    client: docker.DockerClient,
    instance: str,
    coordinator: Coordinator,
    start_agent: StartAgent,
    mode: str,
) -> None:
    agent = start_agent(coordinator.url, instance)
    names = {f"{instance}-svc1", f"{instance}-svc2"}
    before = wait_running(client, instance, names, what="containers up")
    coordinator.stop()
    bad = BadCoordinator(coordinator.port, mode)
    try:
        wait_until(
            lambda: bad.requests >= 3 or (mode == "hang" and bad.requests >= 1),
            what="the agent to talk to the bad coordinator",
        )
        time.sleep(2)
        assert running(client, instance) == before  # nothing touched, nothing restarted
        rss = psutil.Process(agent.proc.pid).memory_info().rss
        assert rss < 250 * 1024 * 1024, rss
        assert agent.proc.poll() is None  # still alive
        if mode != "hang":  # the next heartbeat (every 5 s at most) fails
            wait_until(lambda: "heartbeat_failed" in agent.log(), what="a failed heartbeat")
        started = time.monotonic()
        assert agent.stop(signal.SIGTERM, timeout=60) == 0
        assert time.monotonic() - started < 30  # bounded even with this coordinator
        assert managed(client, instance) == {}
    finally:
        bad.close()


def test_sigkill_at_many_points_then_restart_converges_without_orphans(
    client: docker.DockerClient,
    registry_image: str,
    instance: str,
    tmp_path: Path,
    start_agent: StartAgent,
) -> None:
    specs = [container_spec(f"{instance}-c{i}", registry_image) for i in range(8)]
    manifest = write_manifest(tmp_path / "m.json", specs)
    rng = random.Random(7)
    for round_ in range(6):
        if round_ == 3:  # change half of the specs mid-way: recreates get interrupted too
            for s in specs[:4]:
                s["env"] = {"ROUND": str(round_)}
            write_manifest(manifest, specs)
        agent = start_agent(manifest, instance)
        time.sleep(rng.uniform(0.05, 0.8))
        agent.proc.send_signal(signal.SIGKILL)
        agent.proc.wait(10)
    agent = start_agent(manifest, instance)
    names = {s["name"] for s in specs}
    wait_until(
        lambda: set(running(client, instance)) == names and set(managed(client, instance)) == names,
        what="convergence after kills",
    )
    for s in specs[:4]:
        env = client.api.inspect_container(s["name"])["Config"]["Env"]
        assert "ROUND=3" in env
    assert agent.stop() == 0
    assert managed(client, instance) == {}


def test_sigkill_during_coordinator_work_keeps_the_worker_id(
    client: docker.DockerClient,
    instance: str,
    tmp_path: Path,
    coordinator: Coordinator,
    start_agent: StartAgent,
) -> None:
    first = start_agent(coordinator.url, instance)
    wait_until(lambda: len(coordinator.workers()) == 1, what="registration")
    worker_id = coordinator.workers()[0]["id"]
    first.proc.send_signal(signal.SIGKILL)
    first.proc.wait(10)
    for delay in (0.05, 0.2, 0.5, 1.0):
        agent = start_agent(coordinator.url, instance)
        time.sleep(delay)
        agent.proc.send_signal(signal.SIGKILL)
        agent.proc.wait(10)
    last = start_agent(coordinator.url, instance)
    names = {f"{instance}-svc1", f"{instance}-svc2"}
    wait_until(
        lambda: set(running(client, instance)) == names and set(managed(client, instance)) == names,
        what="convergence",
    )
    assert [w["id"] for w in coordinator.workers()] == [worker_id]  # no ghost, same id
    assert last.stop() == 0 and coordinator.workers() == []


def test_a_corrupt_state_file_is_recovered_with_a_clear_log_line(
    client: docker.DockerClient,
    instance: str,
    tmp_path: Path,
    coordinator: Coordinator,
    start_agent: StartAgent,
) -> None:
    state = tmp_path / "state"
    state.mkdir(mode=0o700)
    (state / f"{instance}.identity.json").write_text('{"worker_id": "worker-0')  # truncated
    (state / f"{instance}.assignment.json").write_bytes(b"\x00\xff garbage")
    agent = start_agent(coordinator.url, instance)
    wait_until(lambda: len(running(client, instance)) == 2, what="convergence")
    lines = [e for e in agent.events() if e.get("event") == "state_file_unreadable"]
    assert {Path(e["path"]).name for e in lines} >= {f"{instance}.identity.json"}
    assert json.loads((state / f"{instance}.identity.json").read_text())["worker_id"]
    assert agent.stop() == 0


def test_image_gc_removes_only_unused_images_the_agent_pulled(
    client: docker.DockerClient, own_image: str, instance: str, tmp_path: Path
) -> None:
    manifest = write_manifest(tmp_path / "m.json", [container_spec(f"{instance}-x", own_image)])
    state = tmp_path / "state"
    gc = ("--image-gc-high", "0", "--image-gc-low", "0")  # "the disk is always full"
    done = run_once(manifest, instance, state, *gc)
    assert done.returncode == 0, done.stderr
    assert own_image in json.loads((state / f"{instance}.images.json").read_text())
    client.images.get(own_image)  # in use: kept
    # Switch to the demo image, which the agent did not pull: the old one goes, it stays.
    write_manifest(manifest, [container_spec(f"{instance}-x", LOCAL_IMAGE)])
    done = run_once(manifest, instance, state, *gc)
    assert done.returncode == 0, done.stderr
    run_once(manifest, instance, state, *gc)  # a pass after the old container is gone
    with pytest.raises(docker.errors.ImageNotFound):
        client.images.get(own_image)
    client.images.get(LOCAL_IMAGE)
    assert (
        "image_removed" in done.stderr
        or json.loads((state / f"{instance}.images.json").read_text()) == {}
    )


def test_a_pull_under_the_disk_floor_is_refused_clearly(
    client: docker.DockerClient, own_image: str, instance: str, tmp_path: Path
) -> None:
    manifest = write_manifest(tmp_path / "m.json", [container_spec(f"{instance}-x", own_image)])
    done = run_once(manifest, instance, tmp_path / "state", "--min-free-disk", "1000000")
    assert done.returncode == 1
    assert "floor" in done.stderr and "image_pull_refused" in done.stderr
    with pytest.raises(docker.errors.ImageNotFound):
        client.images.get(own_image)
