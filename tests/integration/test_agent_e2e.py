"""The agent process against the real engine and the local registry: converge, self-heal, edit,
foreign clash, SIGTERM, adoption."""

from __future__ import annotations

import json
import signal
import urllib.request
from pathlib import Path

import docker
import pytest

from rma_testkit.agent import StartAgent, run_once, write_manifest
from rma_testkit.engine import (
    container_spec,
    managed,
    running,
    three_containers,
    wait_running,
    wait_until,
)

pytestmark = pytest.mark.integration


def test_converges_from_empty_pulling_from_the_local_registry(
    client: docker.DockerClient, own_image: str, instance: str, tmp_path: Path
) -> None:
    manifest = write_manifest(tmp_path / "m.json", three_containers(instance, own_image))
    done = run_once(manifest, instance, tmp_path / "state")
    assert done.returncode == 0, done.stderr
    assert set(running(client, instance)) == {f"{instance}-{n}" for n in ("web", "worker", "data")}
    client.images.get(own_image)  # pulled
    logged = [json.loads(line)["event"] for line in done.stderr.splitlines()]
    assert "image_pulled" in logged and "converged" in logged
    data = client.containers.get(f"{instance}-data")
    assert data.attrs["Mounts"][0]["Name"] == f"rma{len(instance)}-{instance}-{instance}-vol"
    assert data.attrs["Mounts"][0]["Type"] == "volume"


def test_published_port_serves_on_loopback(
    client: docker.DockerClient, registry_image: str, instance: str, tmp_path: Path
) -> None:
    web = {
        "name": f"{instance}-http",
        "image": registry_image,
        "command": ["sh", "-c", "trap 'exit 0' TERM; httpd -f -p 8080 -h /www & wait"],
        "ports": [{"container": 8080, "host": 18931}],
    }
    done = run_once(write_manifest(tmp_path / "m.json", [web]), instance, tmp_path / "state")
    assert done.returncode == 0, done.stderr
    ports = client.api.inspect_container(f"{instance}-http")["HostConfig"]["PortBindings"]
    assert ports == {"8080/tcp": [{"HostIp": "127.0.0.1", "HostPort": "18931"}]}
    body = wait_until(lambda: _get("http://127.0.0.1:18931/"), 10, "the web page")
    assert b"RMA demo worker" in body


def _get(url: str) -> bytes | None:
    try:
        with urllib.request.urlopen(url, timeout=2) as resp:
            return bytes(resp.read())
    except OSError:
        return None


@pytest.mark.parametrize("how", ["kill", "stop", "remove"])
def test_a_container_broken_by_hand_comes_back(
    client: docker.DockerClient,
    registry_image: str,
    instance: str,
    tmp_path: Path,
    start_agent: StartAgent,
    how: str,
) -> None:
    manifest = write_manifest(tmp_path / "m.json", three_containers(instance, registry_image))
    agent = start_agent(manifest, instance)
    names = {f"{instance}-{n}" for n in ("web", "worker", "data")}
    before = wait_running(client, instance, names, what="convergence")
    victim = client.containers.get(f"{instance}-worker")
    {
        "kill": victim.kill,
        "stop": lambda: victim.stop(timeout=5),
        "remove": lambda: victim.remove(force=True),
    }[how]()
    after = wait_running(client, instance, names, what=f"the {how} container to come back")
    # Only the victim was touched; the others kept their containers.
    assert after[f"{instance}-web"] == before[f"{instance}-web"]
    assert after[f"{instance}-data"] == before[f"{instance}-data"]
    assert (after[f"{instance}-worker"] == before[f"{instance}-worker"]) == (how != "remove")
    assert agent.stop() == 0


def test_editing_the_manifest_recreates_only_the_changed_container(
    client: docker.DockerClient,
    registry_image: str,
    instance: str,
    tmp_path: Path,
    start_agent: StartAgent,
) -> None:
    specs = three_containers(instance, registry_image)
    manifest = write_manifest(tmp_path / "m.json", specs)
    agent = start_agent(manifest, instance)
    web, worker, data = (f"{instance}-{n}" for n in ("web", "worker", "data"))
    before = wait_running(client, instance, {web, worker, data})
    specs[1]["env"] = {"ROLE": "worker", "EDITED": "1"}
    write_manifest(manifest, specs)
    after = wait_until(
        lambda: (
            (now := running(client, instance)).get(worker, before[worker]) != before[worker]
            and len(now) == 3
            and now
        ),
        what="the recreate",
    )
    assert (after[web], after[data]) == (before[web], before[data])
    assert "EDITED=1" in client.api.inspect_container(worker)["Config"]["Env"]
    # Removing an entry removes its container; adding one creates it; others stay.
    new = f"{instance}-new"
    write_manifest(manifest, [specs[0], specs[1], container_spec(new, registry_image)])
    wanted = {web, worker, new}
    wait_until(lambda: set(managed(client, instance)) == wanted, what="add/remove")
    assert wait_running(client, instance, wanted)[web] == before[web]
    assert agent.stop() == 0


def test_an_invalid_edit_keeps_everything_running(
    client: docker.DockerClient,
    registry_image: str,
    instance: str,
    tmp_path: Path,
    start_agent: StartAgent,
) -> None:
    manifest = write_manifest(tmp_path / "m.json", three_containers(instance, registry_image))
    agent = start_agent(manifest, instance)
    before = wait_until(
        lambda: running(client, instance) if len(running(client, instance)) == 3 else None,
        what="convergence",
    )
    manifest.write_text('{"containers": [{"name": "x"')
    wait_until(lambda: "desired_state_rejected" in agent.log(), what="the rejection log line")
    assert running(client, instance) == before
    assert agent.stop() == 0


def test_a_foreign_container_with_a_clashing_name_is_left_untouched(
    client: docker.DockerClient,
    registry_image: str,
    instance: str,
    tmp_path: Path,
    start_agent: StartAgent,
) -> None:
    client.images.pull(registry_image)
    foreign = client.containers.run(
        registry_image, ["sh", "-c", "sleep 3600"], name=f"{instance}-worker", detach=True
    )
    manifest = write_manifest(tmp_path / "m.json", three_containers(instance, registry_image))
    done = run_once(manifest, instance, tmp_path / "state")
    assert done.returncode == 1
    assert "not managed by this agent" in done.stderr or "already in use" in done.stderr
    agent = start_agent(manifest, instance)
    wait_until(
        lambda: set(running(client, instance)) == {f"{instance}-web", f"{instance}-data"},
        what="the other containers",
    )
    foreign.kill()  # a foreign container's events must not make the agent take it over
    foreign.start()
    assert agent.stop() == 0
    foreign.reload()
    assert foreign.status == "running" and foreign.attrs["Config"]["Labels"] == {}
    assert managed(client, instance) == {}


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_leaves_no_managed_container_behind(
    client: docker.DockerClient,
    registry_image: str,
    instance: str,
    tmp_path: Path,
    start_agent: StartAgent,
    sig: int,
) -> None:
    manifest = write_manifest(tmp_path / "m.json", three_containers(instance, registry_image))
    agent = start_agent(manifest, instance)
    wait_until(lambda: len(running(client, instance)) == 3, what="convergence")
    assert agent.stop(sig) == 0
    assert managed(client, instance) == {}
    assert "teardown_done" in agent.log()


def test_a_second_start_adopts_without_restarting_and_removes_stale_ones(
    client: docker.DockerClient,
    registry_image: str,
    instance: str,
    tmp_path: Path,
    start_agent: StartAgent,
) -> None:
    specs = three_containers(instance, registry_image)
    manifest = write_manifest(tmp_path / "m.json", specs)
    assert run_once(manifest, instance, tmp_path / "state").returncode == 0
    started = {
        n: client.api.inspect_container(n)["State"]["StartedAt"] for n in running(client, instance)
    }
    ids = running(client, instance)
    # Next start: web unchanged, worker changed, data gone from the manifest.
    specs[1]["env"] = {"ROLE": "v2"}
    write_manifest(manifest, specs[:2])
    agent = start_agent(manifest, instance)

    def adopted() -> bool:  # one listing: the worker may be mid-recreate between two
        now = running(client, instance)
        return (
            set(managed(client, instance)) == {f"{instance}-web", f"{instance}-worker"}
            and len(now) == 2
            and now.get(f"{instance}-worker") not in (None, ids[f"{instance}-worker"])
        )

    wait_until(adopted, what="adoption")
    web = f"{instance}-web"
    assert running(client, instance)[web] == ids[web]
    assert client.api.inspect_container(web)["State"]["StartedAt"] == started[web]
    assert agent.stop(signal.SIGTERM) == 0


def test_one_failing_container_does_not_stop_the_others(
    client: docker.DockerClient, registry_image: str, instance: str, tmp_path: Path
) -> None:
    specs = [
        container_spec(f"{instance}-ok", registry_image),
        container_spec(f"{instance}-gpu", registry_image, gpu=True),
        container_spec(f"{instance}-missing", "127.0.0.1:5000/rma-test/nope:1"),
    ]
    done = run_once(write_manifest(tmp_path / "m.json", specs), instance, tmp_path / "state")
    assert done.returncode == 1
    assert set(running(client, instance)) == {f"{instance}-ok"}
    failures = next(
        json.loads(line) for line in done.stderr.splitlines() if '"not_converged"' in line
    )["failures"]
    assert {f["container"] for f in failures} == {f"{instance}-gpu", f"{instance}-missing"}


def test_contributor_caps_bound_the_containers(
    client: docker.DockerClient, registry_image: str, instance: str, tmp_path: Path
) -> None:
    specs = [
        container_spec(f"{instance}-free", registry_image),
        container_spec(f"{instance}-big", registry_image, cpus=4, memory_limit="1g"),
    ]
    done = run_once(
        write_manifest(tmp_path / "m.json", specs),
        instance,
        tmp_path / "state",
        "--max-cpus",
        "0.5",
        "--max-memory",
        "64m",
    )
    assert done.returncode == 0, done.stderr
    for name in (f"{instance}-free", f"{instance}-big"):
        host = client.api.inspect_container(name)["HostConfig"]
        assert (host["NanoCpus"], host["Memory"]) == (500_000_000, 64 * 1024**2)
