"""The agent's commands against a running agent on the real engine: `status` (table and JSON),
`cleanup` (with `--volumes`), `adopt-volume` (the upgrade path for an earlier agent's volumes),
and a crash loop as `status` shows it."""

from __future__ import annotations

import contextlib
import signal
from pathlib import Path

import docker

from controller.core.models import owner_labels
from rma_testkit.agent import StartAgent, agent_status, rma_worker, write_manifest
from rma_testkit.engine import container_spec, managed, running, three_containers, wait_until


def test_status_and_cleanup_commands(
    client: docker.DockerClient,
    registry_image: str,
    instance: str,
    tmp_path: Path,
    start_agent: StartAgent,
) -> None:
    manifest = write_manifest(tmp_path / "m.json", three_containers(instance, registry_image))
    agent = start_agent(manifest, instance)
    wait_until(lambda: len(running(client, instance)) == 3, what="convergence")
    state = tmp_path / "state"
    data = wait_until(
        lambda: (s := agent_status(state, instance))["converged"] and s, what="converged"
    )
    assert data["mode"] == "manifest" and data["healthy"] is True
    assert {c["name"] for c in data["containers"]} == set(running(client, instance))
    table = rma_worker(state, instance, "status").stdout
    assert f"{instance}-web" in table and "converged, healthy" in table
    dry = rma_worker(state, instance, "cleanup", "--dry-run").stdout
    assert f"would remove {instance}-worker" in dry and len(running(client, instance)) == 3
    assert agent.stop(signal.SIGUSR1) == 0  # leaves the containers, as after a crash
    assert len(running(client, instance)) == 3
    gone = rma_worker(state, instance, "cleanup", timeout=60).stdout
    assert gone.count("removed ") == 4 and managed(client, instance) == {}
    assert f"removed rma-{instance} (network)" in gone  # the agent's network goes with them
    volume = f"rma{len(instance)}-{instance}-{instance}-vol"
    assert client.volumes.get(volume)  # kept: it holds data
    # the option from before 0.8 is still taken
    wiped = rma_worker(state, instance, "cleanup", "--instance-only", "--volumes").stdout
    assert wiped.strip() == f"removed {volume} (volume)"
    down = rma_worker(state, instance, "status", check=False)
    assert down.returncode == 1 and "no running agent" in down.stderr


def test_an_upgraded_worker_adopts_its_unprefixed_volume_and_keeps_its_data(
    client: docker.DockerClient,
    registry_image: str,
    instance: str,
    tmp_path: Path,
    start_agent: StartAgent,
) -> None:
    """Before issue 11 the agent mounted `pgdata` as is; after it, `rma-<instance>-pgdata`. The
    owner adopts the old one, and the data is still there."""
    legacy = f"{instance}-pgdata"
    keep = "echo precious > /v/data"
    client.containers.run(registry_image, ["sh", "-c", keep], volumes=[f"{legacy}:/v"], remove=True)
    bind = f"{instance}-bind"  # a bind mount in disguise is never adopted
    client.volumes.create(bind, driver_opts={"type": "none", "o": "bind", "device": "/tmp"})
    state = tmp_path / "state"
    refused = rma_worker(state, instance, "adopt-volume", bind, check=False)
    assert refused.returncode == 1 and "driver options" in refused.stderr
    done = rma_worker(state, instance, "adopt-volume", legacy)
    assert f"adopted {legacy}" in done.stdout
    spec = container_spec(
        f"{instance}-db", registry_image, volumes=[{"name": legacy, "path": "/v"}]
    )
    start_agent(write_manifest(tmp_path / "m.json", [spec]), instance)
    wait_until(lambda: f"{instance}-db" in running(client, instance), what="db up")
    db = client.containers.get(f"{instance}-db")
    assert db.attrs["Mounts"][0]["Name"] == legacy
    assert db.exec_run(["cat", "/v/data"]).output == b"precious\n"


def test_a_deleted_network_is_recreated_and_its_containers_with_it(
    client: docker.DockerClient,
    registry_image: str,
    instance: str,
    tmp_path: Path,
    start_agent: StartAgent,
) -> None:
    """`docker network prune` while the agent was away and its container stopped: the next start
    recreates the network and the container (which could not start on a deleted network)."""
    manifest = write_manifest(
        tmp_path / "m.json", [container_spec(f"{instance}-a", registry_image)]
    )
    agent = start_agent(manifest, instance)
    wait_until(lambda: f"{instance}-a" in running(client, instance), what="a up")
    assert agent.stop(signal.SIGUSR1) == 0  # the agent leaves, its container keeps running
    client.containers.get(f"{instance}-a").stop(timeout=1)
    client.networks.get(f"rma-{instance}").remove()
    start_agent(manifest, instance)
    wait_until(lambda: f"{instance}-a" in running(client, instance), what="a recreated")
    attrs = client.api.inspect_container(f"{instance}-a")
    assert list(attrs["NetworkSettings"]["Networks"]) == [f"rma-{instance}"]


def test_cleanup_of_one_instance_leaves_the_others_alone(
    client: docker.DockerClient, registry_image: str, instance: str, tmp_path: Path
) -> None:
    """Issue 21, item 6: `cleanup --instance X` removed every instance's containers."""
    other = f"{instance}-other"
    made = [
        client.containers.create(
            registry_image, name=f"{who}-c", labels=owner_labels(who), command=["true"]
        )
        for who in (instance, other)
    ]
    try:
        state = tmp_path / "state"
        mine = rma_worker(state, instance, "cleanup", "--dry-run").stdout
        assert f"would remove {instance}-c" in mine and f"{other}-c" not in mine
        every = rma_worker(state, instance, "cleanup", "--all-instances", "--dry-run").stdout
        assert f"would remove {instance}-c" in every and f"would remove {other}-c" in every
        gone = rma_worker(state, instance, "cleanup", timeout=60).stdout
        assert f"removed {instance}-c" in gone and client.containers.get(f"{other}-c")
    finally:
        for container in made:
            with contextlib.suppress(docker.errors.NotFound):
                container.remove(force=True)


def test_model_caches_are_measured_and_cleanup_caches_empties_only_them(
    client: docker.DockerClient, registry_image: str, instance: str, tmp_path: Path
) -> None:
    """Issue 24, item 8, on the real engine: a cache volume the agent made (labelled so) holds
    the 3 MB a container wrote, as the agent's walk of its Mountpoint counts it; `cleanup
    --caches` removes it (a cache in use is left, with what to do) and leaves a data volume."""
    from controller.clients.disk import tree_size  # noqa: PLC0415
    from controller.clients.docker_runtime import DockerRuntime  # noqa: PLC0415

    runtime = DockerRuntime(instance)
    cache, data = f"rma-{instance}-hf-cache", f"rma-{instance}-redis"
    try:
        runtime.owned.ensure_volume(cache, cache=True)
        runtime.owned.ensure_volume(data)
        fill = "dd if=/dev/zero of=/c/model.bin bs=1M count=3 2>/dev/null"
        client.containers.run(
            registry_image, ["sh", "-c", fill], volumes={cache: {"bind": "/c"}}, remove=True
        )
        held, finished = tree_size(runtime.owned.volume_path(cache), 10.0)
        assert finished and 3 * 2**20 <= held < 4 * 2**20
        user = client.containers.create(registry_image, ["true"], volumes={cache: {"bind": "/c"}})
        state = tmp_path / "state"
        busy = rma_worker(state, instance, "cleanup", "--caches", "--yes", check=False)
        assert busy.returncode == 1 and "rma-worker pause" in busy.stderr
        user.remove()
        dry = rma_worker(state, instance, "cleanup", "--caches", "--dry-run").stdout
        assert dry == f"would remove {cache} (model cache)\n"
        gone = rma_worker(state, instance, "cleanup", "--caches", "--yes").stdout
        assert gone == f"removed {cache} (model cache)\n"
        assert [v.name for v in runtime.owned.list_volumes()] == [data]
    finally:
        for name in (cache, data):
            runtime.owned.remove_volume(name)
        runtime.close()
