"""Fault injection: a coordinator that misbehaves under a running agent, and an agent killed
with SIGKILL at many points of its work. Each must end with the machine converged."""

from __future__ import annotations

import json
import random
import signal
import subprocess
import time
from pathlib import Path

import docker
import psutil
import pytest

from tests.integration.bad_coordinator import MODES, BadCoordinator
from tests.integration.conftest import (
    LOCAL_IMAGE,
    StartAgent,
    container_spec,
    drop_image,
    managed,
    run_once,
    running,
    wait_running,
    wait_until,
    write_manifest,
)
from tests.integration.coordinator import Coordinator

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("mode", MODES)
def test_a_misbehaving_coordinator_touches_no_container(
        client: docker.DockerClient, instance: str, coordinator: Coordinator,
        start_agent: StartAgent, mode: str) -> None:
    agent = start_agent(coordinator.url, instance)
    names = {f"{instance}-svc1", f"{instance}-svc2"}
    before = wait_running(client, instance, names, what="containers up")
    coordinator.stop()
    bad = BadCoordinator(coordinator.port, mode)
    try:
        wait_until(lambda: bad.requests >= 3 or (mode == "hang" and bad.requests >= 1),
                   what="the agent to talk to the bad coordinator")
        time.sleep(2)
        assert running(client, instance) == before  # nothing touched, nothing restarted
        rss = psutil.Process(agent.proc.pid).memory_info().rss
        assert rss < 250 * 1024 * 1024, rss
        assert agent.proc.poll() is None  # still alive
        if mode != "hang":
            assert "heartbeat_failed" in agent.log()
        started = time.monotonic()
        assert agent.stop(signal.SIGTERM, timeout=60) == 0
        assert time.monotonic() - started < 30  # bounded even with this coordinator
        assert managed(client, instance) == {}
    finally:
        bad.close()


def test_sigkill_at_many_points_then_restart_converges_without_orphans(
        client: docker.DockerClient, registry_image: str, instance: str, tmp_path: Path,
        start_agent: StartAgent) -> None:
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
    wait_until(lambda: set(running(client, instance)) == names
               and set(managed(client, instance)) == names, what="convergence after kills")
    for s in specs[:4]:
        env = client.api.inspect_container(s["name"])["Config"]["Env"]
        assert "ROUND=3" in env
    assert agent.stop() == 0
    assert managed(client, instance) == {}


def test_sigkill_during_coordinator_work_keeps_the_worker_id(
        client: docker.DockerClient, instance: str, tmp_path: Path,
        coordinator: Coordinator, start_agent: StartAgent) -> None:
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
    wait_until(lambda: set(running(client, instance)) == names
               and set(managed(client, instance)) == names, what="convergence")
    assert [w["id"] for w in coordinator.workers()] == [worker_id]  # no ghost, same id
    assert last.stop() == 0 and coordinator.workers() == []


def test_a_corrupt_state_file_is_recovered_with_a_clear_log_line(
        client: docker.DockerClient, instance: str, tmp_path: Path,
        coordinator: Coordinator, start_agent: StartAgent) -> None:
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


def test_the_engine_restarted_under_a_running_agent(
        client: docker.DockerClient, registry_image: str, instance: str, tmp_path: Path,
        start_agent: StartAgent) -> None:
    specs = [container_spec(f"{instance}-a", registry_image),
             container_spec(f"{instance}-b", registry_image, restart="no")]
    agent = start_agent(write_manifest(tmp_path / "m.json", specs), instance)
    names = {s["name"] for s in specs}
    wait_until(lambda: set(running(client, instance)) == names, what="containers up")
    engine = next(p for p in psutil.process_iter(["name"]) if p.info["name"] == "dockerd")
    engine.terminate()
    engine.wait(60)
    restart = subprocess.run(["bash", "manifests/services.sh", "engine"], cwd=ROOT,
                             capture_output=True, text=True, timeout=120, check=False)
    assert restart.returncode == 0, restart.stderr
    # `a` comes back by its restart policy, `b` (restart: no) only because the agent starts it.
    wait_until(lambda: set(running(client, instance)) == names, 120,
               "convergence after restart")
    assert agent.proc.poll() is None
    assert "event_stream_ended" in agent.log() or "event_stream_failed" in agent.log()
    assert agent.stop() == 0 and managed(client, instance) == {}


def test_image_gc_removes_only_unused_images_the_agent_pulled(
        client: docker.DockerClient, registry_image: str, instance: str, tmp_path: Path) -> None:
    drop_image(client, registry_image)  # the agent pulls it: its own
    manifest = write_manifest(tmp_path / "m.json",
                              [container_spec(f"{instance}-x", registry_image)])
    state = tmp_path / "state"
    gc = ("--image-gc-high", "0", "--image-gc-low", "0")  # "the disk is always full"
    done = run_once(manifest, instance, state, *gc)
    assert done.returncode == 0, done.stderr
    assert registry_image in json.loads((state / f"{instance}.images.json").read_text())
    client.images.get(registry_image)  # in use: kept
    # Switch to the demo image, which the agent did not pull: the old one goes, it stays.
    write_manifest(manifest, [container_spec(f"{instance}-x", LOCAL_IMAGE)])
    done = run_once(manifest, instance, state, *gc)
    assert done.returncode == 0, done.stderr
    run_once(manifest, instance, state, *gc)  # a pass after the old container is gone
    with pytest.raises(docker.errors.ImageNotFound):
        client.images.get(registry_image)
    client.images.get(LOCAL_IMAGE)
    assert "image_removed" in done.stderr or json.loads(
        (state / f"{instance}.images.json").read_text()) == {}


def test_a_pull_under_the_disk_floor_is_refused_clearly(
        client: docker.DockerClient, registry_image: str, instance: str, tmp_path: Path) -> None:
    drop_image(client, registry_image)
    manifest = write_manifest(tmp_path / "m.json",
                              [container_spec(f"{instance}-x", registry_image)])
    done = run_once(manifest, instance, tmp_path / "state", "--min-free-disk", "1000000")
    assert done.returncode == 1
    assert "floor" in done.stderr and "image_pull_refused" in done.stderr
    with pytest.raises(docker.errors.ImageNotFound):
        client.images.get(registry_image)


def test_coordinator_down_for_minutes_touches_nothing(
        client: docker.DockerClient, instance: str, tmp_path: Path,
        coordinator: Coordinator, start_agent: StartAgent) -> None:
    agent = start_agent(coordinator.url, instance)
    names = {f"{instance}-svc1", f"{instance}-svc2"}
    before = wait_running(client, instance, names, what="containers up")
    started = {n: client.api.inspect_container(n)["State"]["StartedAt"] for n in names}
    coordinator.stop()
    time.sleep(130)  # over two minutes of heartbeats into the void
    assert running(client, instance) == before
    assert {n: client.api.inspect_container(n)["State"]["StartedAt"]
            for n in names} == started
    coordinator.start()
    wait_until(lambda: "coordinator_reachable_again" in agent.log(), what="recovery")
    failed = [e for e in agent.events() if e.get("event") == "heartbeat_failed"]
    assert len(failed) == 1  # one line per outage, not one per heartbeat
    assert agent.stop() == 0
