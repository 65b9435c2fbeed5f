"""What the agent reports about the services it runs (Parts 3 and 4): the announcement, each
service's state, `degraded` only when something is actionable, the heartbeat's extra keys, and
the GPU's utilization from NVML."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest

from controller.clients.docker_rows import _health
from controller.clients.hardware import gpu_utilization
from controller.contract.api import heartbeat_fields
from controller.contract.schema import parse_specs
from controller.contract.services import (
    announce,
    at_host,
    from_template,
    services_status,
    unreachable,
)
from controller.core.machine import GIB
from controller.core.status import AgentStatus, ContainerStatus
from tests.unit.test_hardware import fake_nvml

NOTES = {
    "name": "rma-notes",
    "image": "ghcr.io/rma/notes-coa:1.2",
    "port": 8100,
    "labels": {"rma.service": "notes-coa", "rma.health": "/health"},
}
PLAIN = {"name": "plain", "image": "busybox@sha256:" + "a" * 64}


def specs(*entries: dict[str, Any]) -> Any:
    return parse_specs(list(entries))[0]


def test_each_reachable_service_is_announced_at_its_url_with_its_version() -> None:
    ann = announce(specs(NOTES, PLAIN), at_host("203.0.113.7"))
    assert ann.containers() == [  # `plain` publishes no port: not reachable, not announced
        {
            "name": "notes-coa",
            "service_url": "http://203.0.113.7:8100",
            "port": 8100,
            "health_endpoint": "/health",
            "version": "1.2",
        }
    ]
    assert ann.tunnel_url == "http://203.0.113.7:8100"  # the first service's
    assert announce(specs(NOTES), at_host("2001:db8::1")).services[0].service_url == (
        "http://[2001:db8::1]:8100"
    )
    assert announce(specs(NOTES), at_host("")).services == ()  # no address: nothing
    assert announce(specs(NOTES, PLAIN), unreachable) == announce((), unreachable)


def test_the_owners_template_names_the_service_or_its_port() -> None:
    named = announce(specs(NOTES, PLAIN), from_template("https://{service}.example.org"))
    assert [(s.name, s.service_url) for s in named.services] == [
        ("notes-coa", "https://notes-coa.example.org"),
        ("plain", "https://plain.example.org"),
    ]
    forwarded = announce(specs(NOTES, PLAIN), from_template("http://203.0.113.7:{port}"))
    assert [s.service_url for s in forwarded.services] == ["http://203.0.113.7:8100"]


def test_the_digest_changes_with_a_url_and_only_then() -> None:
    one = announce(specs(NOTES), at_host("127.0.0.1"))
    assert one.digest() == announce(specs(NOTES), at_host("127.0.0.1")).digest()
    assert one.digest() != announce(specs(NOTES), at_host("10.0.0.2")).digest()
    other = {**NOTES, "name": "rma-notes-2", "labels": {"rma.service": "notes-2"}, "port": 8101}
    assert one.digest() != announce(specs(NOTES, other), at_host("127.0.0.1")).digest()


@pytest.mark.parametrize(
    ("state", "health", "expected"),
    [
        ("running", "", "healthy"),  # no health check: running is healthy
        ("running", "healthy", "healthy"),
        ("running", "starting", "starting"),
        ("running", "unhealthy", "unhealthy"),
        ("pulling", "", "starting"),
        ("missing", "", "starting"),
        ("backoff", "", "unhealthy"),
        ("restarting", "", "unhealthy"),
        ("exited", "", "stopped"),
        ("failed", "", "failed"),
    ],
)
def test_services_status(state: str, health: str, expected: str) -> None:
    row = ContainerStatus("rma-notes", state, "i", service="notes-coa", health=health)
    refused = ContainerStatus("bad", "refused", "", error="no")
    assert services_status(AgentStatus((row, refused))) == {"notes-coa": expected}


@pytest.mark.parametrize(
    ("state", "error", "degraded"),
    [
        ("running", None, False),
        ("pulling", None, False),  # still on its way: not a reason to leave all routing
        ("missing", None, False),
        ("refused", "privileged", True),
        ("failed", "volume not created by this agent", True),
        ("conflict", "name taken", True),
        ("backoff", "crash loop", True),
    ],
)
def test_degraded_only_when_something_is_actionable(
    state: str, error: str | None, degraded: bool
) -> None:
    status = AgentStatus((ContainerStatus("c", state, "i", error=error),), converged=False)
    assert status.healthy is not degraded


def test_docker_health_from_the_list_status_line() -> None:
    assert _health("Up 3 seconds (health: starting)") == "starting"
    assert _health("Up 2 minutes (healthy)") == "healthy"
    assert _health("Up 2 minutes (unhealthy)") == "unhealthy"
    assert _health("Up 2 minutes") == ""


def test_the_heartbeat_carries_urls_states_unknown_names_and_gpu_only_when_known() -> None:
    rows = (
        ContainerStatus("rma-notes", "running", "i", service="notes-coa"),
        ContainerStatus("document-processing", "refused", "", error="x", unknown_service=True),
    )
    ann = announce(specs(NOTES), at_host("127.0.0.1"))
    body = heartbeat_fields(AgentStatus(rows), 0.5, 8 * GIB, announced=ann)
    assert body["services_status"] == {"notes-coa": "healthy"}
    assert body["unknown_services"] == ["document-processing"]
    assert body["containers"][0]["service_url"] == "http://127.0.0.1:8100"
    assert body["containers"][0]["name"] == "rma-notes"
    assert "gpu_utilization" not in body
    assert "active_requests" not in body and "loaded_models" not in body  # never invented
    with_gpu = heartbeat_fields(AgentStatus(rows), 0.5, 8 * GIB, gpu_utilization=140.0)
    assert with_gpu["gpu_utilization"] == 100.0


def test_gpu_utilization_averages_the_lent_gpus() -> None:
    gpus = [(b"A", 8 * GIB, b"GPU-a"), (b"B", 8 * GIB, b"GPU-b")]
    nvml = fake_nvml(gpus)
    rates = {0: 30, 1: 90}
    nvml.nvmlDeviceGetUtilizationRates = lambda h: SimpleNamespace(gpu=rates[h], memory=0)
    assert gpu_utilization(nvml) == 60.0
    assert gpu_utilization(nvml, frozenset({"GPU-b"})) == 90.0
    assert gpu_utilization(nvml, frozenset({"0"})) == 30.0
    assert gpu_utilization(fake_nvml([], init_error=True)) is None
    assert gpu_utilization(fake_nvml([])) is None  # no GPU: the key is left out


def test_a_service_name_cannot_change_the_advertised_urls_host() -> None:
    """Issue 21, item 7: a label `x@evil.example/#` made the page's link go to evil.example."""
    from controller.contract.services import from_template  # noqa: PLC0415
    from controller.core.models import ContainerSpec  # noqa: PLC0415

    reach = from_template("https://{service}.pool.example:{port}/")
    url = reach(ContainerSpec("c", "i"), "x@evil.example/#", 8080)
    assert url == "https://x%40evil.example%2F%23.pool.example:8080/"


def test_one_missing_image_beside_a_working_service_leaves_the_worker_healthy() -> None:
    """Issue 22, item 2: a failed pull made the heartbeat say `degraded`, and the service
    coordinator then routed nothing to the worker's working vLLM."""
    working = ContainerStatus("rma-llm", "running", "vllm:1", service="llm-inference")
    missing = ContainerStatus("rma-rag", "failed", "rag:1", error="manifest unknown")
    placeholder = ContainerStatus("rma-ner", "unavailable", "", error="not published")
    status = AgentStatus((working, missing, placeholder))
    assert status.healthy and [c.name for c in status.containers if c.error] == [
        "rma-rag",
        "rma-ner",
    ]
    assert services_status(status) == {
        "llm-inference": "healthy",
        "rma-rag": "failed",
        "rma-ner": "unavailable",
    }
    assert not AgentStatus((missing,)).healthy  # nothing assigned can serve: degraded
