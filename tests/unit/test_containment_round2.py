"""Containment, round 2 (issue 21), as pure rules: the process budget, names that read as
addresses, GPU variables, the totals of an assignment with its tunnels, a tunnel's own network,
unambiguous volume names."""

from __future__ import annotations

from typing import Any

import pytest

from controller.contract.assignment import assignment_to_desired
from controller.core.admission import Admission, AssignmentTooLarge
from controller.core.containment import (
    Containment,
    legacy_volume_name,
    pair_network,
    tunnels_network,
    volume_name,
)
from controller.core.limits import default_max_pids
from controller.core.models import ContainerSpec, DesiredState, PortMapping, VolumeMount
from controller.core.tunnels import ORIGIN, with_tunnels

IMG = "ghcr.io/rma/svc:1"


def entry(name: str, **kw: Any) -> dict[str, Any]:
    return {"name": name, "image": IMG, **kw}


def refused(entries: list[dict[str, Any]], tier: int = 2, **kw: Any) -> dict[str, str]:
    desired = assignment_to_desired(tier, entries, "127.0.0.1", Admission(**kw))
    return {r.name: r.message for r in desired.refused}


def test_the_default_process_budget_is_a_quarter_of_pid_max_at_most_8192() -> None:
    assert default_max_pids(32768) == 8192
    assert default_max_pids(4194304) == 8192
    assert default_max_pids(16384) == 4096


@pytest.mark.parametrize(
    "name",
    ["192.168.1.1", "10.0.0.1", "api.trycloudflare.com", "region1.v2.argotunnel.com",
     "2130706433", "0x7f000001", "host.docker.internal"],
)  # fmt: skip
def test_names_that_read_as_addresses_or_host_names_are_refused(name: str) -> None:
    found = refused([entry(name, port=8080, http=True), entry("web", port=8081)])
    assert "reads as an address" in found[name]
    assert "web" not in found


@pytest.mark.parametrize(
    "env",
    [{"NVIDIA_VISIBLE_DEVICES": "all"}, {"NVIDIA_DRIVER_CAPABILITIES": "all"},
     {"HIP_VISIBLE_DEVICES": "0"}, {"ROCR_VISIBLE_DEVICES": "0"},
     {"CUDA_VISIBLE_DEVICES": "0"}],
)  # fmt: skip
def test_gpu_variables_are_refused_without_a_grant(env: dict[str, str]) -> None:
    assert "granted by the agent only" in refused([entry("x", env=env)])["x"]


def test_cuda_visible_devices_passes_with_a_gpu_grant_nvidia_never() -> None:
    ok = entry("g", gpu=True, env={"CUDA_VISIBLE_DEVICES": "0"})
    assert refused([ok], tier=1, gpu_machine=True) == {}
    bad = entry("n", gpu=True, env={"NVIDIA_VISIBLE_DEVICES": "all"})
    assert "NVIDIA_VISIBLE_DEVICES" in refused([bad], tier=1, gpu_machine=True)["n"]


def test_every_container_without_a_grant_sees_no_gpu() -> None:
    contain = Containment("i")
    plain = contain.apply(ContainerSpec("a", IMG, env=(("NVIDIA_VISIBLE_DEVICES", "all"),)))
    assert plain.env_dict["NVIDIA_VISIBLE_DEVICES"] == "void"
    granted = contain.apply(ContainerSpec("g", IMG, gpu=-1))
    assert "NVIDIA_VISIBLE_DEVICES" not in granted.env_dict


def test_tunnels_count_in_the_container_limit() -> None:
    http = [entry(f"w{i}", port=8000 + i, http=True) for i in range(17)]
    assignment_to_desired(2, http, "", Admission(tunnels=False))  # 17 alone fit in 32
    with pytest.raises(AssignmentTooLarge, match="17 tunnels"):
        assignment_to_desired(2, http, "", Admission(tunnels=True))


def test_published_ports_and_volumes_are_bounded_per_assignment() -> None:
    ports = [entry(f"p{i}", ports=[{"container": 2000 + 8 * i + j} for j in range(8)])
             for i in range(9)]  # fmt: skip
    with pytest.raises(AssignmentTooLarge, match="72 published ports"):
        assignment_to_desired(2, ports, "")
    vols = [entry(f"v{i}", volumes=[{"name": f"d{i}-{j}", "path": f"/d{j}"} for j in range(7)])
            for i in range(5)]  # fmt: skip
    with pytest.raises(AssignmentTooLarge, match="35 volumes"):
        assignment_to_desired(2, vols, "")
    nine = [{"name": f"d{j}", "path": f"/d{j}"} for j in range(9)]
    assert "9 volumes" in refused([entry("many", volumes=nine)])["many"]


def test_a_tunnel_shares_a_network_with_its_own_service_only() -> None:
    web = ContainerSpec(
        "web", IMG, ports=(PortMapping(8080, 8080),), labels=(("rma.http", "true"),)
    )
    db = ContainerSpec("db", IMG, ports=(PortMapping(5432, 5432),))
    held = Containment("i").apply_all(with_tunnels(DesiredState((web, db)), "tunnel:1")).by_name()
    tunnel, service, other = held["rma-tunnel-web"], held["web"], held["db"]
    pair = pair_network("i", "web")
    assert tunnel.network == tunnels_network("i") != service.network == "rma-i"
    assert tunnel.joins == ((pair, ""),) and service.joins == ((pair, ORIGIN),)
    assert other.joins == () and other.network == "rma-i"
    assert tunnel.command is not None and tunnel.command[-1] == f"http://{ORIGIN}:8080"


def test_volume_names_are_unambiguous_and_old_ones_are_kept() -> None:
    assert volume_name("a", "b-data") != volume_name("a-b", "data")
    old = legacy_volume_name("w1", "pgdata")
    spec = ContainerSpec("db", IMG, volumes=(VolumeMount("pgdata", "/d"),))
    assert Containment("w1", existing=frozenset({old})).apply(spec).volumes[0].name == old
    assert Containment("w1").apply(spec).volumes[0].name == volume_name("w1", "pgdata")
