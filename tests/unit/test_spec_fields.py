"""The spec fields real services need (issue 22, item 5): taken from the wire, the manifest and
the catalog, bounded, handed to Docker; fields the agent does not know are reported, not dropped
silently; a stop uses the container's own grace."""

from __future__ import annotations

from typing import Any

import pytest

from controller.clients.catalog import load_catalog
from controller.clients.docker_specs import create_kwargs
from controller.contract.schema import parse_specs
from controller.contract.services import Announcement
from controller.core.models import ActualContainer, ContainerSpec, DesiredState, HealthCheck
from controller.core.planner import Recreate, Remove, Stop, plan
from controller.core.results import ExecutionReport
from controller.core.status import build_status

IMG = "ghcr.io/rma/svc:1"
REAL = {
    "name": "svc",
    "image": IMG,
    "memory_limit": "2g",
    "shm_size": "1g",
    "ulimits": {"nofile": {"soft": 1024, "hard": 65536}, "stack": 67108864},
    "stop_grace_period": "1m30s",
    "entrypoint": "/bin/sh -c",
    "working_dir": "/app",
    "user": "1000:100",
    "tmpfs": {"/tmp": "256m", "/run": "16m"},
    "healthcheck": {"test": ["CMD", "true"], "interval": "10s", "retries": 5},
}


def one(raw: dict[str, Any]) -> ContainerSpec:
    specs, errors = parse_specs([raw])
    assert errors == [], errors
    return specs[0]


def refusal(raw: dict[str, Any]) -> str:
    specs, errors = parse_specs([raw])
    assert specs == [] and len(errors) == 1
    return errors[0].message


def test_the_fields_are_taken_and_reach_docker() -> None:
    spec = one(REAL)
    assert spec.stop_grace == 90.0 and spec.entrypoint == ("/bin/sh", "-c")
    assert spec.healthcheck == HealthCheck(("CMD", "true"), 10.0, 30.0, 5, 0.0)
    kwargs = create_kwargs(spec, "i")
    host = kwargs["host_config"]
    assert host["ShmSize"] == 1024**3
    assert host["Tmpfs"] == {"/run": "size=16m", "/tmp": "size=256m"}
    assert {u["Name"]: (u["Soft"], u["Hard"]) for u in host["Ulimits"]} == {
        "nofile": (1024, 65536),
        "stack": (67108864, 67108864),
    }
    assert kwargs["entrypoint"] == ["/bin/sh", "-c"] and kwargs["working_dir"] == "/app"
    assert kwargs["user"] == "1000:100" and kwargs["stop_timeout"] == 90
    assert kwargs["healthcheck"]["interval"] == 10 * 10**9
    assert kwargs["labels"]["org.rma.worker.stop-grace"] == "90"


@pytest.mark.parametrize(
    ("extra", "why"),
    [
        ({"shm_size": "4g"}, "over memory_limit"),
        ({"tmpfs": {"/a": "1g", "/b": "1g", "/c": "1g"}}, "over memory_limit"),
        ({"tmpfs": {f"/t{i}": "1m" for i in range(5)}}, "at most 4"),
        ({"tmpfs": {"relative": "1m"}}, "absolute"),
        ({"ulimits": {"core": 1}}, "only"),
        ({"ulimits": {"memlock": -1}}, "only for memlock of a GPU spec"),
        ({"ulimits": {"nofile": {"soft": 10, "hard": 5}}}, "over hard"),
        ({"stop_grace_period": 301}, "less than or equal to 300"),
        ({"working_dir": "/a/../b"}, "without '..'"),
        ({"user": "root; rm -rf"}, "uid[:gid]"),
        ({"healthcheck": {"test": "true", "interval": 1}}, "greater than or equal to 5"),
        ({"healthcheck": {"test": ["NONE"]}}, "leave healthcheck out"),
    ],
)
def test_each_field_is_bounded(extra: dict[str, Any], why: str) -> None:
    assert why in refusal({**REAL, **extra})


def test_memlock_unlimited_for_a_gpu_spec_and_ipc_still_refused() -> None:
    assert one({**REAL, "gpu": True, "ulimits": {"memlock": -1}}).ulimits == (("memlock", -1, -1),)
    assert "IPC" in refusal({**REAL, "ipc": "host"})


def test_unknown_fields_are_reported_not_dropped_silently() -> None:
    spec = one({"name": "n", "image": IMG, "sidecars": [], "x-future": 1, "http": True})
    assert spec.ignored_fields == ("sidecars", "x-future")
    desired = DesiredState((spec,))
    status = build_status(desired, [], ExecutionReport(), {}, converged=False)
    assert status.containers[0].as_json()["ignored_fields"] == ["sidecars", "x-future"]
    from controller.contract.api import heartbeat_fields  # noqa: PLC0415

    rows = heartbeat_fields(status, 0.0, 0, announced=Announcement())["containers"]
    assert rows[0]["ignored_fields"] == ["sidecars", "x-future"]


def test_a_stop_uses_the_containers_own_grace() -> None:
    old = ActualContainer("id1", "db", "running", "stale", stop_grace=60.0)
    gone = ActualContainer("id2", "old", "running", "h", stop_grace=45.0)
    actions = plan(DesiredState((ContainerSpec("db", IMG),)), [old, gone])
    assert (
        Remove("old", "id2", 45.0) in actions
        and Recreate(ContainerSpec("db", IMG), "id1", 60.0) in actions
    )
    assert Stop("x", "i", urgent=True, grace=60.0).grace == 60.0


def test_the_catalog_gives_vllm_shared_memory_and_the_databases_time_to_stop() -> None:
    specs = {e.service: e.spec for e in load_catalog(None).entries}
    parsed = {s.name: s for s in parse_specs([specs["llm-inference"], specs["postgres"]])[0]}
    assert parsed["rma-llm-inference"].shm_size == "8g"
    assert ("memlock", -1, -1) in parsed["rma-llm-inference"].ulimits
    assert parsed["rma-postgres"].stop_grace == 60.0
    ready = parsed["rma-llm-inference"].readiness
    assert ready is not None and ready.path == "/v1/models" and ready.start_period == 900
    assert ready.contains == "Qwen/Qwen2.5-7B-Instruct"  # ready once the model is listed


def test_status_says_which_fields_were_not_applied() -> None:
    from controller.cli.console import render_status  # noqa: PLC0415
    from tests.unit.test_observability import STATUS  # noqa: PLC0415

    rows = [{**STATUS["containers"][0], "ignored_fields": ["sidecars"]}]
    text = render_status({**STATUS, "containers": rows})
    assert "rag: fields this agent does not know, not applied: sidecars" in text
