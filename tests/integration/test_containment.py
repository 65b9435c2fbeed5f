"""A hostile coordinator against the real engine: what it asks for is contained or refused, and
the result is checked with the Docker API (issue 11): ports, GPUs and images refused; volumes the
agent's own; every container on the agent's network, with least privilege, a pids limit and
rotated logs."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import docker
import pytest

from controller.core.models import LABEL_VOLUME, owner_labels
from rma_testkit.agent import AgentProcess, StartAgent, agent_status
from rma_testkit.coordinator import Coordinator
from rma_testkit.engine import LOCAL_IMAGE, REGISTRY, managed, running, wait_until
from rma_testkit.host import HostService, gateway_of

pytestmark = pytest.mark.integration
HTTPD = "mkdir -p /w && echo hello-rma > /w/index.html && httpd -f -p 8080 -h /w"
IDLE = "trap 'exit 0' TERM; while true; do sleep 1 & wait; done"
Assign = Callable[..., dict[str, Any]]


@pytest.fixture
def assign(
    client: docker.DockerClient,
    registry_image: str,
    instance: str,
    coordinator: Coordinator,
    start_agent: StartAgent,
) -> Callable[..., tuple[AgentProcess, Assign]]:
    """Start an agent; return it and `push(entries, *agent_flags)`, which sets its assignment
    (tier 2) from {suffix: extra spec fields} and returns the worker."""

    def start(*flags: str) -> tuple[AgentProcess, Assign]:
        agent = start_agent(coordinator.url, instance, *flags)
        worker = wait_until(lambda: (w := coordinator.workers()) and w[0], what="registration")

        def push(entries: dict[str, dict[str, Any]]) -> dict[str, Any]:
            specs = [
                {"name": f"{instance}-{n}", "image": registry_image, **spec_command(IDLE), **x}
                for n, x in entries.items()
            ]
            coordinator.set_assignment(worker["id"], specs, tier=2)
            return dict(worker)

        return agent, push

    return start


def spec_command(command: str) -> dict[str, Any]:
    return {"command": ["sh", "-c", command]}


def reported(coordinator: Coordinator, names: set[str]) -> dict[str, dict[str, Any]]:
    """The heartbeat's rows for `names`, once every one is reported as not running."""
    rows = {r["name"]: r for r in coordinator.workers()[0]["reported"] or []}
    bad = {n: rows[n] for n in names if n in rows and rows[n]["state"] != "running"}
    return bad if set(bad) == names else {}


def test_ports_gpus_and_images_out_of_bounds_are_refused_and_the_rest_runs(
    client: docker.DockerClient,
    registry_image: str,
    instance: str,
    coordinator: Coordinator,
    assign: Callable[..., tuple[AgentProcess, Assign]],
) -> None:
    agent, push = assign()
    unpushed = f"{REGISTRY}/rma-test/never-pushed-{instance}:1"
    client.images.get(LOCAL_IMAGE).tag(unpushed)  # on the machine, in no registry
    refused = {
        "port25": {"port": 25},
        "ports9": {"ports": [{"container": 2000 + i} for i in range(9)]},
        "gpu": {"gpu": True},
        "byid": {"image": client.images.get(registry_image).id},
        "upper": {"image": "LOCALHOST/rma-test/busybox:1"},
    }
    push({**refused, "unpushed": {"image": unpushed}, "web": {"port": 18080}})
    wait_until(lambda: set(running(client, instance)) == {f"{instance}-web"}, what="web up")
    names = {f"{instance}-{n}" for n in (*refused, "unpushed")}
    rows = wait_until(lambda: reported(coordinator, names), what="refusals in the heartbeat")
    assert {n for n, r in rows.items() if r["state"] == "refused"} == names - {
        f"{instance}-unpushed"
    }
    assert rows[f"{instance}-unpushed"]["error"]  # pulled, not taken from the machine: failed
    assert set(managed(client, instance)) == {f"{instance}-web"}
    host = client.api.inspect_container(f"{instance}-web")["HostConfig"]
    assert host["PortBindings"]["18080/tcp"] == [{"HostIp": "127.0.0.1", "HostPort": "18080"}]
    mine = client.containers.list(filters={"name": instance})  # other tests' run beside
    assert not any(c.attrs["HostConfig"].get("DeviceRequests") for c in mine)
    assert agent.stop() == 0
    client.images.remove(unpushed)


def test_volumes_are_the_agents_own_and_kept_when_their_container_leaves(
    client: docker.DockerClient,
    registry_image: str,
    instance: str,
    coordinator: Coordinator,
    assign: Callable[..., tuple[AgentProcess, Assign]],
    tmp_path: Path,
) -> None:
    mine = f"{instance}-mine"  # the volunteer's own volume, with a secret in it
    put = "echo s3cret > /v/secret"
    client.containers.run(registry_image, ["sh", "-c", put], volumes=[f"{mine}:/v"], remove=True)
    prefix = f"rma{len(instance)}-{instance}"
    client.volumes.create(f"{prefix}-taken")  # the agent's name, not the agent's volume
    old = f"rma-{instance}-old"  # made by an agent before 0.8, under the name of then
    client.volumes.create(old, labels={**owner_labels(instance), LABEL_VOLUME: old})
    agent, push = assign()
    push(
        {
            "reader": {"volumes": [{"name": mine, "path": "/v"}, {"name": "old", "path": "/o"}]},
            "taken": {"volumes": [{"name": "taken", "path": "/v"}]},
        }
    )
    wait_until(lambda: set(running(client, instance)) == {f"{instance}-reader"}, what="reader")
    row = wait_until(lambda: reported(coordinator, {f"{instance}-taken"}), what="taken refused")
    assert "not created by this agent" in row[f"{instance}-taken"]["error"]
    ours = f"{prefix}-{mine}"
    mounts = client.api.inspect_container(f"{instance}-reader")["Mounts"]
    assert {m["Name"] for m in mounts} == {ours, old}  # the old one kept, by its old name
    volume = client.api.inspect_volume(ours)
    assert volume["Labels"]["org.rma.worker.instance"] == instance and not volume["Options"]
    read = client.containers.get(f"{instance}-reader").exec_run(["cat", "/v/secret"])
    assert read.exit_code != 0  # the secret stayed in the volunteer's volume
    push({"other": {}})  # the reader leaves the assignment
    state = tmp_path / "state"
    wait_until(lambda: ours in agent_status(state, instance)["unused_volumes"], what="listed")
    assert client.volumes.get(ours)  # kept: it holds data
    assert agent.stop() == 0
    assert not client.networks.list(names=[f"rma-{instance}"])  # removed at teardown


def test_containers_share_the_agents_network_and_reach_nothing_else(
    client: docker.DockerClient,
    instance: str,
    assign: Callable[..., tuple[AgentProcess, Assign]],
) -> None:
    foreign = client.containers.run(
        LOCAL_IMAGE, ["sh", "-c", HTTPD], name=f"{instance}-foreign", detach=True
    )
    agent, push = assign()
    push({"web": spec_command(HTTPD), "peer": {}})
    both = {f"{instance}-web", f"{instance}-peer"}
    wait_until(lambda: set(running(client, instance)) == both, what="both up")
    network = f"rma-{instance}"
    for name in ("web", "peer"):
        attrs = client.api.inspect_container(f"{instance}-{name}")
        assert list(attrs["NetworkSettings"]["Networks"]) == [network]  # never the default bridge
    assert client.api.inspect_network(network)["Labels"]["org.rma.worker.instance"] == instance
    peer = client.containers.get(f"{instance}-peer")
    # (busybox-static's `wget -T` crashes: `timeout` bounds it instead)
    by_name = peer.exec_run(["sh", "-c", f"timeout 10 wget -q -O- http://{instance}-web:8080/"])
    assert by_name.exit_code == 0 and b"hello-rma" in by_name.output  # services find each other
    foreign.reload()
    ip = foreign.attrs["NetworkSettings"]["Networks"]["bridge"]["IPAddress"]
    lateral = peer.exec_run(["sh", "-c", f"timeout 3 wget -q -O- http://{ip}:8080/"])
    assert lateral.exit_code != 0  # the volunteer's own container is out of reach
    assert agent.stop() == 0
    foreign.remove(force=True)


@pytest.mark.serial  # a fork bomb at its limit and 40 MB of logs load the engine: alone
def test_every_container_has_least_privilege_a_pids_limit_and_rotated_logs(
    client: docker.DockerClient,
    instance: str,
    assign: Callable[..., tuple[AgentProcess, Assign]],
) -> None:
    agent, push = assign("--pids-limit", "64")
    line = "x" * 1000
    push(
        {
            # a fork bomb beside the main process (the shell that forks dies at the limit)
            "forker": spec_command(
                'sh -c "while true; do sleep 300 & done" 2>/dev/null & exec sleep 300'
            ),
            "talker": spec_command(f"yes {line} | head -c 40000000; sleep 300"),
        }
    )
    both = {f"{instance}-forker", f"{instance}-talker"}
    wait_until(lambda: set(running(client, instance)) == both, what="both up")
    for name in ("forker", "talker"):
        host = client.api.inspect_container(f"{instance}-{name}")["HostConfig"]
        assert host["CapDrop"] == ["NET_RAW", "MKNOD", "AUDIT_WRITE"]
        assert host["SecurityOpt"] == ["no-new-privileges"] and host["PidsLimit"] == 64
        rotation = {"max-size": "10m", "max-file": "3"}
        assert host["LogConfig"] == {"Type": "json-file", "Config": rotation}
    forker = client.containers.get(f"{instance}-forker")
    wait_until(lambda: len(forker.top()["Processes"]) >= 50, what="the forker at its limit")
    assert len(forker.top()["Processes"]) <= 64
    log_path = client.api.inspect_container(f"{instance}-talker")["LogPath"]
    wait_until(lambda: os.path.exists(log_path + ".2"), timeout=90, what="log rotation")
    sizes = [os.path.getsize(p) for p in (log_path, log_path + ".1", log_path + ".2")]
    assert max(sizes) <= 11 * 1024 * 1024 and not os.path.exists(log_path + ".3")
    assert agent.stop() == 0


def test_caps_are_totals_under_the_agents_parent_cgroup(
    client: docker.DockerClient,
    instance: str,
    assign: Callable[..., tuple[AgentProcess, Assign]],
) -> None:
    """Three containers each filling 40 MB of memory (tmpfs pages) under --max-memory 64m: once
    145 MiB together; now the parent group holds the sum to 64 MiB."""
    agent, push = assign("--max-memory", "64m", "--max-cpus", "1")
    fill = "dd if=/dev/zero of=/dev/shm/fill bs=1M count=40 2>/dev/null; exec sleep 300"
    push({f"fill{i}": spec_command(fill) for i in range(3)})
    names = {f"{instance}-fill{i}" for i in range(3)}
    wait_until(lambda: names <= set(managed(client, instance)), what="three containers")

    def parents() -> set[str]:
        """Each container's parent cgroup (one pressed out of memory may be between its
        removal and its new self for a moment: asked again then)."""
        try:
            return {client.api.inspect_container(n)["HostConfig"]["CgroupParent"] for n in names}
        except docker.errors.NotFound:
            return set()

    assert wait_until(parents, what="the three created") == {f"/rma-{instance}"}
    info = client.info()
    v2 = str(info.get("CgroupVersion")) == "2"
    memory = Path("/sys/fs/cgroup") / ("" if v2 else "memory") / f"rma-{instance}"
    limit = (memory / ("memory.max" if v2 else "memory.limit_in_bytes")).read_text().strip()
    assert int(limit) == 64 * 1024**2
    peak = memory / ("memory.peak" if v2 else "memory.max_usage_in_bytes")
    near = 56 * 1024**2  # 120 MB asked for: the three press against the parent's limit
    wait_until(lambda: int(peak.read_text()) >= near, what="the three at the parent's limit")
    # the sum, not 3 x 40 MB (the kernel may overshoot its limit by a page or a charge batch)
    assert int(peak.read_text()) <= 65 * 1024**2
    cpu = Path("/sys/fs/cgroup") / ("" if v2 else "cpu") / f"rma-{instance}"
    quota = (cpu / ("cpu.max" if v2 else "cpu.cfs_quota_us")).read_text().split()[0]
    assert int(quota) == 100_000
    assert agent.stop() == 0
    assert not memory.exists()  # removed with the containers


@pytest.mark.parametrize("isolated", [False, True], ids=["default", "isolate-lan"])
def test_isolate_lan_keeps_containers_off_this_machine(
    client: docker.DockerClient,
    instance: str,
    assign: Callable[..., tuple[AgentProcess, Assign]],
    isolated: bool,
) -> None:
    """A service of this machine's (on its address on the agent's network, which the test
    made: never a foreign one) answers the agent's containers by default, and not with
    --isolate-lan; the containers still reach each other."""
    agent, push = assign(*(["--isolate-lan"] if isolated else []))
    push({"web": spec_command(HTTPD), "peer": {}})
    both = {f"{instance}-web", f"{instance}-peer"}
    wait_until(lambda: set(running(client, instance)) == both, what="both up")
    gateway = gateway_of(client, f"rma-{instance}")
    with HostService(gateway) as port:
        peer = client.containers.get(f"{instance}-peer")
        host = peer.exec_run(["sh", "-c", f"timeout 3 wget -q -O- http://{gateway}:{port}/"])
        assert (host.exit_code == 0) is not isolated, host
        inside = peer.exec_run(["sh", "-c", f"timeout 10 wget -q -O- http://{instance}-web:8080/"])
        assert inside.exit_code == 0 and b"hello-rma" in inside.output
        assert agent.stop() == 0
    rules = subprocess.run(["iptables", "-S"], capture_output=True, text=True, check=True).stdout
    assert "RMA-" not in rules  # removed at teardown
