"""Containment, round 2 (issue 21), against the real engine with each attack's own request from a
hostile coordinator: the host's PIDs, our own tunnel pointed elsewhere, the GPU through an env
var, the disk through a writable layer, the owner's terminal — each refused or contained, and
checked with the Docker API, the cgroup tree and from inside the containers."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import docker
import pytest

from controller.clients.registry import image_size
from rma_testkit.agent import StartAgent, rma_worker
from rma_testkit.coordinator import Coordinator
from rma_testkit.engine import TUNNEL_URL, managed, running, wait_until
from rma_testkit.host import HostService, gateway_of
from tests.integration.test_containment import HTTPD, IDLE

pytestmark = pytest.mark.integration
TITLE = "\x1b]0;owned\x07"
LIST = "application/vnd.docker.distribution.manifest.list.v2+json"


def assign(coordinator: Coordinator, specs: list[dict[str, Any]]) -> None:
    worker = wait_until(lambda: (w := coordinator.workers()) and w[0], what="registration")
    coordinator.set_assignment(worker["id"], specs, tier=2)


def refused(coordinator: Coordinator, names: set[str]) -> dict[str, str]:
    rows = {r["name"]: r for r in coordinator.workers()[0]["reported"] or []}
    found = {n: str(r.get("error")) for n, r in rows.items() if r["state"] == "refused"}
    return found if names <= set(found) else {}


def sh(name: str, image: str, command: str, **extra: Any) -> dict[str, Any]:
    return {"name": name, "image": image, "command": ["sh", "-c", command], **extra}


@pytest.mark.serial  # two fork bombs at the budget load the engine: twice CI's agent hung on it
def test_a_process_budget_holds_every_container_together(
    client: docker.DockerClient,
    registry_image: str,
    instance: str,
    coordinator: Coordinator,
    start_agent: StartAgent,
) -> None:
    """Two fork bombs, each allowed 1 024 processes, under `--max-pids 100` and no caps: a
    parent group is made anyway, and the two together stay within 100."""
    agent = start_agent(coordinator.url, instance, "--max-pids", "100")
    bomb = 'sh -c "while true; do sleep 300 & done" 2>/dev/null & exec sleep 300'
    assign(coordinator, [sh(f"{instance}-bomb{i}", registry_image, bomb) for i in range(2)])
    names = {f"{instance}-bomb0", f"{instance}-bomb1"}
    wait_until(lambda: names <= set(running(client, instance)), what="both bombs up")
    for name in names:
        host = client.api.inspect_container(name)["HostConfig"]
        assert host["CgroupParent"] == f"/rma-{instance}" and host["PidsLimit"] == 100
    v2 = str(client.info().get("CgroupVersion")) == "2"
    group = Path("/sys/fs/cgroup") / ("" if v2 else "pids") / f"rma-{instance}"
    assert (group / "pids.max").read_text().strip() == "100"
    wait_until(lambda: int((group / "pids.current").read_text()) >= 90, what="the budget used")
    assert int((group / "pids.current").read_text()) <= 100
    assert agent.stop() == 0


def test_names_gpu_variables_and_the_tunnels_own_network(
    client: docker.DockerClient,
    registry_image: str,
    tunnel_image: str,
    instance: str,
    coordinator: Coordinator,
    start_agent: StartAgent,
    tmp_path: Path,
) -> None:
    """Specs named like an address or a dotted host, one asking for every GPU through
    NVIDIA_VISIBLE_DEVICES and one named with an escape sequence are refused; the HTTP service's
    tunnel reaches it by the agent's alias on a network of their own, and nothing else; the
    service cannot reach this machine through that network's gateway (--isolate-lan)."""
    agent = start_agent(
        coordinator.url, instance, "--isolate-lan", "--ingress", "tunnel",
        "--tunnel-image", tunnel_image, "--tunnel-url-pattern", TUNNEL_URL,
    )  # fmt: skip
    web, peer = f"{instance}-web", f"{instance}-peer"
    hostile = _hostile(instance)
    specs = [sh(n, registry_image, IDLE, **x) for n, x in hostile.items()]
    specs += [
        sh(web, registry_image, HTTPD, port=8080, http=True),
        sh(peer, registry_image, HTTPD.replace("8080", "8081"), port=8081),
    ]
    assign(coordinator, specs)
    tunnel = f"rma-tunnel-{web}"
    wait_until(lambda: {web, peer, tunnel} <= set(running(client, instance)), what="all up")
    reasons = wait_until(lambda: refused(coordinator, set(hostile)), what="refusals reported")
    assert "reads as an address" in reasons["api.trycloudflare.com"]
    assert "granted by the agent only" in reasons[f"{instance}-gpu"]
    assert set(managed(client, instance)) == {web, peer, tunnel}
    _the_tunnel_reaches_its_service_only(client, instance, web, peer, tunnel)
    env = client.api.inspect_container(peer)["Config"]["Env"]
    assert "NVIDIA_VISIBLE_DEVICES=void" in env
    status = rma_worker(tmp_path / "state", instance, "status").stdout
    assert "\x1b" not in status and "\\x1b]0;owned\\x07" in status
    assert agent.stop() == 0
    assert not client.networks.list(filters={"label": f"org.rma.worker.instance={instance}"})


def _hostile(instance: str) -> dict[str, dict[str, Any]]:
    """Named like this machine's gateway, Cloudflare's API and 127.0.0.1 in decimal (each with a
    tunnel asked for), every GPU through the environment, a name that retitles a terminal."""
    return {
        "172.17.0.1": {"port": 8080, "http": True},
        "api.trycloudflare.com": {"port": 8080, "http": True},
        "2130706433": {"port": 8080, "http": True},
        f"{instance}-gpu": {"env": {"NVIDIA_VISIBLE_DEVICES": "all"}},
        f"{instance}-x{TITLE}": {},
    }


def _the_tunnel_reaches_its_service_only(
    client: docker.DockerClient, instance: str, web: str, peer: str, tunnel: str
) -> None:
    attrs = client.api.inspect_container(tunnel)
    assert attrs["Config"]["Cmd"][-1] == "http://rma-origin:8080"
    pair = next(n for n in attrs["NetworkSettings"]["Networks"] if "-pair-" in n)
    assert set(attrs["NetworkSettings"]["Networks"]) == {f"rma-{instance}-tunnels", pair}
    assert client.api.inspect_network(pair)["Internal"] is True
    web_nets = client.api.inspect_container(web)["NetworkSettings"]["Networks"]
    assert set(web_nets) == {f"rma-{instance}", pair}
    box = client.containers.get(tunnel)
    ask = "printf 'GET / HTTP/1.0\\r\\n\\r\\n' | timeout 5 nc {} {}"
    own = box.exec_run(["sh", "-c", ask.format("rma-origin", 8080)])
    assert b"hello-rma" in own.output, own
    other = box.exec_run(["sh", "-c", ask.format(peer, 8081)])
    assert b"hello-rma" not in other.output  # not on the services' network: no such name
    gateway = gateway_of(client, pair)
    with HostService(gateway) as port:  # this machine, on the pair network's own address
        sneak = client.containers.get(web).exec_run(
            ["sh", "-c", f"timeout 3 wget -q -O- http://{gateway}:{port}/"]
        )
        assert sneak.exit_code != 0 and b"host-secret" not in sneak.output


def test_a_container_filling_its_writable_layer_is_created_anew(
    client: docker.DockerClient,
    registry_image: str,
    instance: str,
    coordinator: Coordinator,
    start_agent: StartAgent,
) -> None:
    """100 MB written to the container's own filesystem had no limit."""
    agent = start_agent(
        coordinator.url, instance, "--max-container-disk", "20m", "--container-disk-interval", "1"
    )
    fill = "dd if=/dev/zero of=/fill bs=1M count=40 2>/dev/null; exec sleep 300"
    assign(coordinator, [sh(f"{instance}-filler", registry_image, fill)])
    first = wait_until(lambda: running(client, instance).get(f"{instance}-filler"), what="up")
    wait_until(
        lambda: running(client, instance).get(f"{instance}-filler") not in (None, first),
        timeout=60,
        what="the filler removed and created anew",
    )
    events = [e for e in agent.events() if e.get("event") == "container_disk_exceeded"]
    assert events and events[0]["container"] == f"{instance}-filler"
    assert agent.stop() == 0


def test_an_images_size_is_read_from_its_registry_before_the_pull(
    client: docker.DockerClient, registry_image: str
) -> None:
    """What the disk floor counts for a pull (its compressed layers), from the local registry."""
    size = image_size(registry_image)
    assert size is not None and 0 < size <= client.images.get(registry_image).attrs["Size"]
    assert image_size(registry_image.replace("busybox", "never-pushed")) is None


def test_an_image_with_no_build_for_this_cpu_is_unavailable_before_the_pull(
    registry_image: str,
) -> None:
    """An index pushed to the local registry that lists only a linux/riscv64 build (the test
    image's manifest, declared for another CPU): the Distribution API as the agent reads it says
    there is nothing for this machine, so the image is `unavailable`, not pulled (issue 24)."""
    import requests  # noqa: PLC0415 (the test speaks to the registry itself)

    from controller.clients.registry import machine_platform, platform_name  # noqa: PLC0415
    from controller.core.errors import UnavailableError  # noqa: PLC0415

    host, _, rest = registry_image.partition("/")
    name, _, tag = rest.partition(":")
    kind = "application/vnd.docker.distribution.manifest.v2+json"
    got = requests.get(
        f"http://{host}/v2/{name}/manifests/{tag}", headers={"Accept": kind}, timeout=10
    )
    got.raise_for_status()
    entry = {
        "mediaType": kind,
        "digest": got.headers["Docker-Content-Digest"],
        "size": len(got.content),
        "platform": {"os": "linux", "architecture": "riscv64"},
    }
    index = {"schemaVersion": 2, "mediaType": LIST, "manifests": [entry]}
    put = requests.put(  # one fixed tag beside the image's own, overwritten each run
        f"http://{host}/v2/{name}/manifests/other-cpu",
        data=json.dumps(index),
        headers={"Content-Type": LIST},
        timeout=10,
    )
    assert put.status_code == 201, put.text
    with pytest.raises(UnavailableError) as refused:
        image_size(f"{host}/{name}:other-cpu")
    here = platform_name(machine_platform())
    assert str(refused.value) == f"unavailable: no {here} image (it has linux/riscv64)"
