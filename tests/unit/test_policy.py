"""The contract's "never accepts" list and the image policy."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from controller.clients.docker_specs import create_kwargs
from controller.contract.assignment import assignment_to_desired
from controller.contract.schema import parse_specs
from controller.core.admission import Admission
from controller.core.containment import Containment
from controller.core.policy import ImagePolicy, dangerous_fields, image_registry

OK = {"name": "svc", "image": "ghcr.io/rma/rag-service:latest"}
HOSTILE: list[dict[str, Any]] = [
    {"privileged": True},
    {"network_mode": "host"},
    {"network": "host"},
    {"pid": "host"},
    {"pid_mode": "host"},
    {"ipc_mode": "host"},
    {"uts": "host"},
    {"userns_mode": "host"},
    {"cap_add": ["SYS_ADMIN"]},
    {"capabilities": ["NET_ADMIN"]},
    {"devices": ["/dev/sda"]},
    {"device_requests": [{"count": -1}]},
    {"binds": ["/:/host"]},
    {"mounts": [{"type": "bind", "source": "/etc", "target": "/x"}]},
    {"volumes_from": ["other"]},
    {"security_opt": ["seccomp=unconfined"]},
    {"runtime": "runc-unsafe"},
    {"sysctls": {"net.ipv4.ip_forward": "1"}},
    {"cgroup_parent": "/"},
    {"volumes": [{"name": "/var/run/docker.sock", "path": "/var/run/docker.sock"}]},
    {"volumes": [{"name": "../../etc", "path": "/etc"}]},
    {"image": "evil.example.com/miner:latest"},
    {"name": "../escape"},
]


@pytest.mark.parametrize("extra", HOSTILE, ids=[str(h) for h in HOSTILE])
def test_every_hostile_spec_is_refused_and_the_rest_runs(extra: dict[str, Any]) -> None:
    desired = assignment_to_desired(2, [{**OK, "name": "good"}, {**OK, "name": "bad", **extra}])
    assert [s.name for s in desired.specs] == ["good"]
    assert len(desired.refused) == 1 and desired.refused[0].message


def test_harmless_values_are_not_refused() -> None:
    assert dangerous_fields({"privileged": False, "network_mode": "bridge", "cap_add": []}) == []
    specs, refused = parse_specs([{**OK, "healthcheck": {"test": "x"}, "network": "default"}])
    assert refused == [] and len(specs) == 1
    assert specs[0].healthcheck is not None  # taken now (issue 22), not dropped


def test_nothing_dangerous_ever_reaches_docker() -> None:
    desired = assignment_to_desired(
        1,
        [{**OK, "gpu": 2, "volumes": [{"name": "data", "path": "/data"}]}],
        admission=Admission(gpu_machine=True),
    )
    spec = Containment("i").apply(desired.specs[0])
    kwargs = create_kwargs(spec, "i")
    host = kwargs["host_config"]
    assert not host.get("Privileged") and host["NetworkMode"] == "rma-i"
    assert kwargs["networking_config"] == {"EndpointsConfig": {"rma-i": {"Aliases": ["svc"]}}}
    assert host["CapDrop"] == ["NET_RAW", "MKNOD", "AUDIT_WRITE"] and host["PidsLimit"] == 1024
    assert host["LogConfig"] == {
        "Type": "json-file",
        "Config": {"max-size": "10m", "max-file": "3"},
    }
    assert host["Mounts"][0]["Source"] == "rma1-i-data"
    assert (
        not {
            "CapAdd",
            "Devices",
            "Binds",
            "PidMode",
            "IpcMode",
            "UsernsMode",
            "Sysctls",
            "CgroupParent",
            "Runtime",
        }
        & host.keys()
    )
    assert host["SecurityOpt"] == ["no-new-privileges"]
    assert host["Mounts"][0]["Type"] == "volume"
    assert host["DeviceRequests"][0]["Count"] == 2  # the GPU request of a GPU spec only


@pytest.mark.parametrize(
    ("image", "registry"),
    [
        ("redis:7", "docker.io"),
        ("library/redis", "docker.io"),
        ("vllm/vllm-openai:v1", "docker.io"),
        ("ghcr.io/rma/x:1", "ghcr.io"),
        ("127.0.0.1:5000/a/b:1", "127.0.0.1:5000"),
        ("localhost/x", "localhost"),
        ("index.docker.io/library/redis", "docker.io"),
        ("Quay.IO/x/y", "quay.io"),
    ],
)
def test_image_registry(image: str, registry: str) -> None:
    assert image_registry(image) == registry


def test_image_policy() -> None:
    default = ImagePolicy()
    assert default.check("redis:7") is None and default.check("ghcr.io/rma/x:1") is None
    assert "not an allowed registry" in str(default.check("quay.io/x/y:1"))
    pinned = ImagePolicy.from_setting("ghcr.io", require_digest=True)
    assert "not pinned" in str(pinned.check("ghcr.io/rma/x:1"))
    assert pinned.check("ghcr.io/rma/x@sha256:" + "a" * 64) is None
    assert ImagePolicy.from_setting("*", False).check("quay.io/x/y:1") is None
    assert ImagePolicy.from_setting(" , ", False) == ImagePolicy()


def test_the_catalog_images_pass_the_default_policy() -> None:
    from controller.clients.catalog import load_catalog  # noqa: PLC0415

    catalog = replace(load_catalog(), run_placeholders=True)  # every image, placeholders too
    for tier in (1, 2, 3):
        admission = Admission(gpu_machine=True)
        desired = assignment_to_desired(tier, catalog.for_tier(tier)[0], admission=admission)
        assert desired.refused == (), desired.refused
        assert len(desired.specs) == len(catalog.for_tier(tier)[0])
