"""DockerRuntime against the real engine: ownership filtering, idempotent removal, error
translation, and the event stream."""

from __future__ import annotations

import os
import stat
import threading
from pathlib import Path

import docker
import pytest

from controller.clients.docker_runtime import DockerRuntime
from controller.core.errors import NameConflictError, PermanentError, TransientError
from controller.core.models import LABEL_SPEC_HASH, ContainerSpec
from controller.core.runtime import ContainerEvent
from rma_testkit.engine import LOCAL_IMAGE, LOOP, push_random_image, wait_until

pytestmark = pytest.mark.integration


def spec(name: str, **kw: object) -> ContainerSpec:
    return ContainerSpec(name=name, image=LOCAL_IMAGE, command=("sh", "-c", LOOP), **kw)  # type: ignore[arg-type]


def test_lists_only_this_instances_containers(client: docker.DockerClient, instance: str) -> None:
    mine, other = DockerRuntime(instance), DockerRuntime(f"{instance}-other")
    try:
        cid = mine.create(spec(f"{instance}-a"))
        other.create(spec(f"{instance}-other-b"))
        client.containers.create(LOCAL_IMAGE, name=f"{instance}-foreign")
        listed = mine.list_managed()
        assert [(c.id, c.name, c.state) for c in listed] == [(cid, f"{instance}-a", "created")]
        assert listed[0].spec_hash == spec(f"{instance}-a").spec_hash()
        labels = client.api.inspect_container(cid)["Config"]["Labels"]
        assert labels[LABEL_SPEC_HASH] == listed[0].spec_hash
    finally:
        for c in client.containers.list(all=True, filters={"name": f"{instance}-other"}):
            c.remove(force=True)
        mine.close()
        other.close()


def test_start_stop_remove_are_idempotent(client: docker.DockerClient, instance: str) -> None:
    rt = DockerRuntime(instance)
    cid = rt.create(spec(f"{instance}-a", memory_limit="32m", cpus=0.5))
    rt.start(cid)
    rt.start(cid)  # already running: fine
    host = client.api.inspect_container(cid)["HostConfig"]
    assert host["Memory"] == 32 * 1024**2 and host["NanoCpus"] == 500_000_000
    assert host["SecurityOpt"] == ["no-new-privileges"]
    rt.stop(cid, grace=2)
    rt.remove(cid)
    rt.remove(cid)  # NotFound is success
    rt.stop(cid, grace=1)
    assert rt.list_managed() == []
    rt.close()


def test_a_taken_name_is_a_name_conflict(client: docker.DockerClient, instance: str) -> None:
    client.containers.create(LOCAL_IMAGE, name=f"{instance}-taken")
    rt = DockerRuntime(instance)
    with pytest.raises(NameConflictError):
        rt.create(spec(f"{instance}-taken"))
    rt.close()


def test_pulling_a_missing_image_is_permanent(registry_image: str, instance: str) -> None:
    rt = DockerRuntime(instance)
    with pytest.raises(PermanentError):
        rt.pull("127.0.0.1:5000/rma-test/does-not-exist:1")
    assert not rt.image_present("127.0.0.1:5000/rma-test/does-not-exist:1")
    rt.close()


def test_an_unreachable_engine_is_transient(instance: str) -> None:
    rt = DockerRuntime(instance, base_url="unix:///nonexistent/docker.sock", sleep=lambda s: None)
    with pytest.raises(TransientError):
        rt.list_managed()


def test_events_report_deaths_and_close_unblocks(
    client: docker.DockerClient, instance: str
) -> None:
    rt = DockerRuntime(instance)
    cid = rt.create(spec(f"{instance}-e"))
    rt.start(cid)
    stream = rt.events()
    seen: list[ContainerEvent] = []
    done = threading.Event()

    def read() -> None:
        seen.extend(stream)
        done.set()

    threading.Thread(target=read, daemon=True).start()
    client.containers.get(cid).kill()
    wait_until(lambda: any(e.action == "die" for e in seen), 10, "a die event")
    assert all(e.name == f"{instance}-e" for e in seen)
    stream.close()
    assert done.wait(10)
    rt.close()


def test_pull_reports_layer_progress(
    client: docker.DockerClient, registry_image: str, instance: str
) -> None:
    # An image with a layer of its own (random bytes), so the pull really downloads it.
    image = push_random_image(client, f"127.0.0.1:5000/rma-test/progress-{instance}:1", 3_000_000)
    seen: list[tuple[int, int]] = []
    extracted: list[int] = []
    rt = DockerRuntime(instance)

    def progress(done: int, total: int, unpacked: int) -> None:
        seen.append((done, total))
        extracted.append(unpacked)

    try:
        rt.pull(image, progress=progress)
    finally:
        rt.close()
        client.images.remove(image, force=True)
    assert seen and seen[-1][0] == seen[-1][1] > 1_000_000
    assert all(done <= total for done, total in seen)
    assert extracted[-1] == seen[-1][1]  # extraction counted too (issue 22)


def test_an_amd_gpus_device_nodes_and_groups_are_mapped_by_the_agent(
    client: docker.DockerClient, instance: str, tmp_path: Path
) -> None:
    """The engine part of AMD GPUs (issue 24, item 4), with device nodes this test makes (the
    character device /dev/null is, 1:3, standing in for /dev/kfd and a render node): the
    container sees both at the same paths, runs in the GIDs it was given, and gets no NVIDIA
    device request."""
    kfd, render = tmp_path / "kfd", tmp_path / "renderD128"
    for node in (kfd, render):
        os.mknod(node, 0o666 | stat.S_IFCHR, os.makedev(1, 3))
    rt = DockerRuntime(instance)
    try:
        amd = spec(
            f"{instance}-rocm", gpu=1, gpu_ids=("0",), devices=(str(kfd), str(render)),
            group_add=("44", "993"),
        )  # fmt: skip
        cid = rt.create(amd)
        rt.start(cid)
        host = client.api.inspect_container(cid)["HostConfig"]
        assert not host["DeviceRequests"] and host["GroupAdd"] == ["44", "993"]
        assert [d["PathOnHost"] for d in host["Devices"]] == [str(kfd), str(render)]
        seen = client.containers.get(cid).exec_run(["sh", "-c", f"ls -l {kfd} {render}; id -G"])
        out = seen.output.decode()
        assert seen.exit_code == 0 and out.count("1,   3") == 2, out
        assert {"44", "993"} <= set(out.split("\n")[-2].split())
    finally:
        for c in client.containers.list(all=True, filters={"name": f"{instance}-rocm"}):
            c.remove(force=True)
        rt.close()
