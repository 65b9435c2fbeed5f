"""Spec hashing, and the edge schema that turns coordinator/manifest JSON into specs."""

from __future__ import annotations

from dataclasses import fields, replace

import pytest

from controller.contract.schema import ContainerSpecModel, parse_specs
from controller.core.models import (
    GPU_ALL,
    ContainerSpec,
    HealthCheck,
    PortMapping,
    Readiness,
    VolumeMount,
)

PART1_ENTRY = {
    "name": "rma-upload-worker",
    "image": "ghcr.io/rma/upload-worker:latest",
    "port": 8103,
    "env": {"WORKER_ID": "worker-e9886285", "COORDINATOR_URL": "http://coordinator:8080"},
}


def test_hash_is_stable_and_ignores_field_order() -> None:
    a = ContainerSpec("w", "img:1", env=(("A", "1"), ("B", "2")))
    b = ContainerSpec("w", "img:1", env=(("A", "1"), ("B", "2")))
    assert a.spec_hash() == b.spec_hash()
    assert len(a.spec_hash()) == 24


def test_hash_pins_the_canonical_form() -> None:
    # Recorded values: if these change, every running container is recreated on upgrade.
    assert ContainerSpec("w", "img:1").spec_hash() == "4cc000cd763029ecace42365"
    richer = ContainerSpec(
        "w", "img:1", ports=(PortMapping(80, 8080),), env=(("A", "1"),), gpu=GPU_ALL
    )
    assert richer.spec_hash() == "20889cd4eec7797050c77ae7"
    assert ContainerSpec("w", "img:1").canonical() == {"name": "w", "image": "img:1"}


HASH_CHANGES: list[dict[str, object]] = [
    {"image": "img:2"},
    {"env": (("A", "2"),)},
    {"command": ("sh",)},
    {"gpu": 1},
    {"ports": (PortMapping(80, 8080),)},
    {"volumes": (VolumeMount("v", "/d"),)},
    {"memory_limit": "1g"},
    {"cpus": 0.5},
    {"restart": "always"},
    {"labels": (("k", "v"),)},
    {"gpu_ids": ("0",)},
    {"network": "rma-x"},
    {"pids_limit": 1024},
    {"cgroup_parent": "rma.slice"},
    {"joins": (("rma-i-pair-x", "rma-origin"),)},
    {"shm_size": "1g"},
    {"ulimits": (("nofile", 1024, 2048),)},
    {"stop_grace": 60.0},
    {"entrypoint": ("/bin/sh",)},
    {"working_dir": "/app"},
    {"user": "1000:1000"},
    {"tmpfs": (("/tmp", "64m"),)},
    {"healthcheck": HealthCheck(("CMD", "true"))},
    {"readiness": Readiness("/v1/models")},
    {"gpu_memory_min": 6000},
    {"cuda_min": "12.4"},
    {"image_rocm": "ollama/ollama:0.3.14-rocm"},
    {"devices": ("/dev/kfd",)},
    {"group_add": ("44",)},
]
NOT_HASHED = {"ignored_fields"}  # a newer coordinator's field must not recreate a container


@pytest.mark.parametrize("change", HASH_CHANGES)
def test_every_field_changes_the_hash(change: dict[str, object]) -> None:
    base = ContainerSpec("w", "img:1", env=(("A", "1"),))
    assert replace(base, **change).spec_hash() != base.spec_hash()  # type: ignore[arg-type]


def test_the_hash_table_covers_every_field() -> None:
    """A field added to ContainerSpec must be added to the table above (or its hash is untested)."""
    covered = {"name", "image"} | {next(iter(c)) for c in HASH_CHANGES} | NOT_HASHED
    assert covered == {f.name for f in fields(ContainerSpec)}
    base = ContainerSpec("w", "img:1")
    assert replace(base, ignored_fields=("newer",)).spec_hash() == base.spec_hash()


def test_part1_entry_converts() -> None:
    s = ContainerSpecModel.model_validate(PART1_ENTRY).to_spec()
    assert s.ports == (PortMapping(8103, 8103, "tcp", ""),)
    assert s.env_dict["WORKER_ID"] == "worker-e9886285"
    assert s.restart == "unless-stopped"
    assert s.gpu == 0


def test_part2_fields_and_unknown_fields() -> None:
    s = ContainerSpecModel.model_validate(
        {
            "name": "pg",
            "image": "postgres:16",
            "ports": [{"container": 5432, "host": 15432}],
            "env": {"N": 3, "FLAG": True},
            "command": "postgres -c 'max_connections=50'",
            "gpu": True,
            "volumes": [{"name": "pgdata", "path": "/var/lib/postgresql/data"}],
            "memory_limit": "2G",
            "cpus": 1.5,
            "restart": "always",
            "labels": {"team": "rma"},
            "healthcheck_url": "/health",
            "network_mode": "bridge",
            "privileged": False,
        }
    ).to_spec("127.0.0.1")
    assert s.ports == (PortMapping(5432, 15432, "tcp", "127.0.0.1"),)
    assert s.env == (("FLAG", "true"), ("N", "3"))
    assert s.command == ("postgres", "-c", "max_connections=50")
    assert s.gpu == GPU_ALL
    assert s.volumes == (VolumeMount("pgdata", "/var/lib/postgresql/data"),)
    assert (s.memory_limit, s.cpus, s.restart) == ("2g", 1.5, "always")
    assert set(s.canonical()) <= {
        "name",
        "image",
        "ports",
        "env",
        "command",
        "gpu",
        "volumes",
        "memory_limit",
        "cpus",
        "restart",
        "labels",
    }


def test_port_and_ports_merge_without_duplicates() -> None:
    s = ContainerSpecModel.model_validate(
        {
            "name": "a",
            "image": "i",
            "port": 80,
            "ports": [{"container": 80}, {"container": 53, "protocol": "udp"}],
        }
    ).to_spec()
    assert s.ports == (PortMapping(53, 53, "udp"), PortMapping(80, 80, "tcp"))


@pytest.mark.parametrize(
    ("entry", "why"),
    [
        ({"name": "a", "image": "i", "volumes": [{"name": "/etc", "path": "/x"}]}, "named volume"),
        ({"name": "a", "image": "i", "volumes": [{"name": "../x", "path": "/x"}]}, "named volume"),
        ({"name": "a", "image": "i", "volumes": [{"name": "v", "path": "rel"}]}, "absolute"),
        ({"name": "bad name", "image": "i"}, "not a valid container name"),
        ({"name": "-a", "image": "i"}, "not a valid container name"),
        ({"name": "a", "image": ""}, "image"),
        ({"name": "a", "image": "i", "gpu": -2}, "gpu"),
        ({"name": "a", "image": "i", "labels": {"org.rma.worker.managed": "x"}}, "reserved"),
        ({"name": "a", "image": "i", "labels": {"traefik.enable": "true"}}, "not allowed"),
        ({"name": "a", "image": "i", "labels": {"com.docker.compose.project": "x"}}, "not allowed"),
        ({"name": "a", "image": "i", "labels": {"Team": "x"}}, "not allowed"),
        ({"name": "a", "image": "i", "labels": {f"k{i}": "v" for i in range(33)}}, "at most"),
        ({"name": "a", "image": "i", "memory_limit": "lots"}, "memory_limit"),
        ({"name": "a", "image": "i", "port": 70000}, "port"),
        ({"name": "a", "image": "i", "restart": "sometimes"}, "restart"),
    ],
)
def test_refused_entries(entry: dict[str, object], why: str) -> None:
    specs, errors = parse_specs([entry])
    assert specs == []
    assert len(errors) == 1 and why in errors[0].message


def test_parse_specs_keeps_good_entries_and_reports_bad_ones() -> None:
    specs, errors = parse_specs([PART1_ENTRY, {"name": "x"}, PART1_ENTRY])
    assert [s.name for s in specs] == ["rma-upload-worker"]
    assert [e.name for e in errors] == ["x", "rma-upload-worker"]
    assert "duplicate" in errors[1].message


def test_parse_specs_rejects_non_list() -> None:
    assert parse_specs({"name": "a"})[1][0].message == "expected a list of container specs"


def test_labels_from_the_allow_list_pass() -> None:
    labels = {"team": "rma", "rma.service": "ollama", "org.opencontainers.image.version": "1"}
    specs, errors = parse_specs([{"name": "a", "image": "i", "labels": labels}])
    assert errors == [] and specs[0].labels_dict == labels
