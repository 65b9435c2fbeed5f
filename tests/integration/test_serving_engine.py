"""What real services need, against the real engine (issue 22): the spec fields as Docker took
them, a pull cut off when its registry stalls, the catalog's aliases resolving from another
container, and the agent's network really made again when it was deleted."""

from __future__ import annotations

import time

import docker
import pytest

from controller.clients.docker_runtime import DockerRuntime
from controller.core.errors import PermanentError, TransientError
from controller.core.models import ContainerSpec
from rma_testkit.engine import LOCAL_IMAGE, push_random_image, wait_until

pytestmark = pytest.mark.integration


def test_a_deleted_network_is_really_made_again(client: docker.DockerClient, instance: str) -> None:
    """Issue 22, found on the way: with a container that cannot start (so none attached) and its
    network removed, every pass said `recreated` while the network stayed gone, and the loop
    ran ~7 passes a second."""
    rt = DockerRuntime(instance)
    net = f"rma-{instance}"
    broken = ContainerSpec(f"{instance}-a", LOCAL_IMAGE, command=("/nonexistent",), network=net)
    try:
        cid = rt.create(broken)
        with pytest.raises(PermanentError, match="nonexistent"):
            rt.start(cid, network=net, aliases=broken.aliases)
        client.networks.get(net).remove()
        with pytest.raises(TransientError, match="made again"):
            rt.start(cid, network=net, aliases=broken.aliases)
        assert client.networks.get(net).attrs["Labels"]["org.rma.worker.instance"] == instance
        assert rt.list_managed() == []  # removed: the next pass creates it on the new network
        again = rt.create(broken)
        with pytest.raises(PermanentError, match="nonexistent"):  # its own failure, back off
            rt.start(again, network=net, aliases=broken.aliases)
    finally:
        rt.close()


REAL_FIELDS = {
    "image": LOCAL_IMAGE,
    "memory_limit": "256m",
    "shm_size": "128m",
    "ulimits": {"nofile": {"soft": 1024, "hard": 4096}},
    "stop_grace_period": 60,
    "entrypoint": ["sh", "-c"],
    "command": ["sleep 300"],
    "working_dir": "/tmp",
    "user": "1000:1000",
    "tmpfs": {"/scratch": "16m"},
    "healthcheck": {"test": "true", "interval": "5s"},
}


def test_the_fields_real_services_need_are_visible_in_docker_inspect(
    client: docker.DockerClient, instance: str
) -> None:
    """Issue 22, item 5: shm_size, ulimits, the stop grace, entrypoint, working_dir, user, tmpfs
    and Docker's health check, as the engine took them."""
    from controller.contract.schema import parse_specs  # noqa: PLC0415

    raw = {**REAL_FIELDS, "name": f"{instance}-real"}
    (spec,), errors = parse_specs([raw])
    assert errors == []
    rt = DockerRuntime(instance)
    try:
        cid = rt.create(spec)
        rt.start(cid)
        attrs = client.api.inspect_container(cid)
        host, config = attrs["HostConfig"], attrs["Config"]
        assert host["ShmSize"] == 128 * 1024**2 and host["Tmpfs"] == {"/scratch": "size=16m"}
        assert host["Ulimits"] == [{"Name": "nofile", "Soft": 1024, "Hard": 4096}]
        assert config["Entrypoint"] == ["sh", "-c"] and config["WorkingDir"] == "/tmp"
        assert config["User"] == "1000:1000" and config["StopTimeout"] == 60
        assert config["Healthcheck"]["Test"] == ["CMD-SHELL", "true"]
        assert rt.list_managed()[0].stop_grace == 60.0  # read back for the agent's own stops
        whoami = client.containers.get(cid).exec_run(["sh", "-c", "id -u; df /scratch"])
        assert whoami.output.decode().startswith("1000") and b"tmpfs" in whoami.output
    finally:
        rt.remove(cid)
        rt.close()


def test_a_stalled_pull_is_aborted_within_its_timeout(
    client: docker.DockerClient, instance: str
) -> None:
    """Issue 22, item 4: a registry that stops sending mid-blob kept a pull `pulling` for ever."""
    from rma_testkit.relay import StallingRelay  # noqa: PLC0415

    image = push_random_image(client, f"127.0.0.1:5000/rma-test/stall-{instance}:1", 4_000_000)
    relay = StallingRelay(("127.0.0.1", 5000), cut_after=1_000_000)
    rt = DockerRuntime(instance, pull_stall=2.0)
    stalled = image.replace("127.0.0.1:5000", f"127.0.0.1:{relay.port}")
    started = time.monotonic()
    try:
        with pytest.raises(TransientError, match="pull stalled: no progress for 2 s"):
            rt.pull(stalled)
        assert time.monotonic() - started < 2 + 10
        assert not rt.image_present(stalled)
    finally:
        relay.close()
        rt.close()


def test_a_catalog_alias_resolves_from_another_container(
    client: docker.DockerClient, instance: str
) -> None:
    """Issue 22, item 6: RMA's services look for `http://ollama:11434`; ours were only
    `rma-<name>` — now the catalog's aliases answer too, after a stop and start as well."""
    net = f"rma-{instance}"
    serve = "mkdir -p /w && echo via-alias > /w/index.html && httpd -f -p 8080 -h /w"
    alias = (("rma.aliases", f"ollama-{instance}"),)
    ollama = ContainerSpec(
        f"{instance}-ocr", LOCAL_IMAGE, command=("sh", "-c", serve), network=net, labels=alias
    )
    asker = ContainerSpec(f"{instance}-ask", LOCAL_IMAGE, command=("sleep", "300"), network=net)
    rt = DockerRuntime(instance)
    fetch = ["sh", "-c", f"timeout 5 wget -q -O- http://ollama-{instance}:8080/"]
    try:
        for spec in (ollama, asker):
            rt.start(rt.create(spec))
        ask = client.containers.get(asker.name)
        got = wait_until(lambda: (r := ask.exec_run(fetch)).exit_code == 0 and r, what="alias")
        assert b"via-alias" in got.output
        cid = client.containers.get(ollama.name).id
        rt.stop(cid, 1)  # leaves the network; joined again under every alias
        rt.start(cid, network=net, aliases=ollama.aliases)
        assert wait_until(lambda: ask.exec_run(fetch).exit_code == 0, what="alias again")
    finally:
        for c in rt.list_managed():
            rt.remove(c.id)
        rt.close()
