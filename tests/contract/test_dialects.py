"""The agent's one registration body and its client against each dialect of the reference
coordinator (the contract's Part 3), in process: what each answers, how the client reads it, and
the 404 and 4xx shapes each one uses."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import requests

from controller.contract.api import heartbeat_fields
from controller.contract.capabilities import capabilities, registration_body
from controller.contract.schema import parse_specs
from controller.contract.services import Announcement, announce, at_host
from controller.core.errors import CoordinatorRejected, WorkerForgotten
from controller.core.machine import GIB, HardwareInfo
from controller.core.status import AgentStatus, ContainerStatus
from rma_testkit.served import ADMIN, Served

TIER2 = HardwareInfo(cpu_cores=4, ram_bytes=16 * GIB, storage_bytes=100 * GIB)
OWN_ID = "worker-0123456789abcdef"
NOTES = {
    "name": "rma-notes-coa",
    "image": "ghcr.io/rma/notes-coa:latest",
    "port": 8100,
    "labels": {"rma.service": "notes-coa", "rma.health": "/health"},
}
Serve = Callable[..., Served]


def announced(*specs: dict[str, Any]) -> Announcement:
    return announce(parse_specs(list(specs))[0], at_host("127.0.0.1"))


def body(*specs: dict[str, Any]) -> dict[str, Any]:
    return registration_body(OWN_ID, capabilities(TIER2), announced(*specs).containers())


def heartbeat(worker_id: str, urls: Announcement | None = None) -> dict[str, Any]:
    row = ContainerStatus("rma-notes-coa", "running", "img", service="notes-coa")
    fields = heartbeat_fields(AgentStatus((row,)), 0.1, 8 * GIB, announced=urls)
    return {"worker_id": worker_id, **fields}


def admin(served: Served, path: str) -> Any:
    resp = requests.get(served.url + path, headers={"Authorization": f"Bearer {ADMIN}"}, timeout=5)
    resp.raise_for_status()
    return resp.json()


def test_the_body_carries_what_every_dialect_reads() -> None:
    sent = body(NOTES)
    assert sent["worker_id"] == OWN_ID and sent["tunnel_url"] == ""
    assert (sent["has_gpu"], sent["worker_type"]) == (False, "cpu")
    assert sent["capabilities"]["ram"] == "16.0GB" and "ip_address" not in sent
    assert sent["containers"] == [
        {
            "name": "notes-coa",
            "service_url": "http://127.0.0.1:8100",
            "port": 8100,
            "health_endpoint": "/health",
            "version": "latest",
        }
    ]


def test_edge_keeps_the_id_answers_no_assignment_key_and_indexes_the_services(
    serve: Serve,
) -> None:
    edge = serve(dialect="edge")
    client = edge.client()
    answer = client.register(body(NOTES))
    assert answer.worker_id == OWN_ID and answer.tier == 2
    assert answer.assigned_containers is None and answer.assigned_services is None
    token = answer.token
    assert client.heartbeat("/api/worker/heartbeat", heartbeat(OWN_ID), token=token).status == "ok"
    index = admin(edge, "/api/admin/services")
    assert index["notes-coa"] == [
        {
            "worker_id": OWN_ID,
            "service_url": "http://127.0.0.1:8100",
            "port": 8100,
            "status": "healthy",
        }
    ]
    with pytest.raises(WorkerForgotten, match="Worker not found"):  # {"error": ...}
        client.heartbeat("/api/worker/heartbeat", heartbeat("worker-unknown"))


def test_edge_test_mode_stores_nothing_so_every_heartbeat_is_404(serve: Serve) -> None:
    client = serve(dialect="edge", test_mode=True).client()
    answer = client.register(body())
    assert answer.status == "test_mode" and answer.worker_id == OWN_ID
    with pytest.raises(WorkerForgotten):
        client.heartbeat("/api/worker/heartbeat", heartbeat(OWN_ID))


def test_local_refuses_a_body_without_id_or_tunnel_url_with_its_own_words(serve: Serve) -> None:
    client = serve(dialect="local").client()
    with pytest.raises(CoordinatorRejected) as refused:
        client.register({"capabilities": capabilities(TIER2)})
    assert refused.value.status == 422
    assert "body.worker_id: Field required" in str(refused.value)
    assert "body.tunnel_url: Field required" in str(refused.value)


def test_local_assigns_services_by_name_for_the_flags_tier(serve: Serve) -> None:
    local = serve(dialect="local")
    client = local.client()
    answer = client.register(body(NOTES))
    assert answer.worker_id == OWN_ID and answer.tier == 2
    assert answer.assigned_containers is None
    assert answer.assigned_services == ["ner-extraction", "document-processing", "notes-coa"]
    client.heartbeat("/api/worker/heartbeat", heartbeat(OWN_ID), token=answer.token)
    assert admin(local, "/api/admin/services")["notes-coa"][0]["worker_id"] == OWN_ID
    with pytest.raises(WorkerForgotten):  # {"detail": ...}
        client.heartbeat("/api/worker/heartbeat", heartbeat("worker-unknown"))


def test_the_service_coordinator_takes_the_same_body_and_assigns_its_own_id(
    serve: Serve,
) -> None:
    client = serve(dialect="part1").client()
    answer = client.register(body(NOTES))
    assert answer.worker_id != OWN_ID and answer.assigned_containers is not None
    assert answer.worker_id is not None
    client.heartbeat("/api/worker/heartbeat", heartbeat(answer.worker_id))


def test_a_part2_heartbeat_carries_the_urls_to_the_index(serve: Serve) -> None:
    full = serve()
    client = full.client()
    answer = client.register(body())
    assert answer.worker_id and answer.token
    assert admin(full, "/api/admin/services") == {}  # registered with no services
    beat = heartbeat(answer.worker_id, announced(NOTES))
    client.heartbeat("/api/worker/heartbeat", beat, token=answer.token)
    assert admin(full, "/api/admin/services")["notes-coa"] == [
        {
            "worker_id": answer.worker_id,
            "service_url": "http://127.0.0.1:8100",
            "port": 8100,
            "status": "healthy",
        }
    ]


@pytest.mark.parametrize("dialect", ["edge", "local"])
def test_another_workers_id_cannot_be_taken_over(serve: Serve, dialect: str) -> None:
    """Issue 21, item 9: in the edge and local dialects a re-registration of a victim's id took
    its URL, and heartbeats and unregistrations for its id passed without a token."""
    coord = serve(dialect=dialect)
    victim, thief = coord.client(), coord.client()
    token = victim.register(body(NOTES)).token
    assert token
    hijack = {**body(), "containers": [{"name": "notes-coa", "service_url": "http://evil:1"}]}
    with pytest.raises(CoordinatorRejected) as refused:
        thief.register(hijack)
    assert refused.value.status == 401
    with pytest.raises(CoordinatorRejected, match="401"):
        thief.register(hijack, token="not-the-token")
    with pytest.raises(CoordinatorRejected, match="401"):
        thief.heartbeat("/api/worker/heartbeat", heartbeat(OWN_ID))
    gone = requests.delete(f"{coord.url}/api/worker/unregister/{OWN_ID}", timeout=5)
    assert gone.status_code == 401
    index = admin(coord, "/api/admin/services")
    assert index["notes-coa"][0]["service_url"] == "http://127.0.0.1:8100"  # still the victim's
    again = victim.register(body(NOTES), token=token)  # the holder may register again
    assert again.worker_id == OWN_ID and again.token and again.token != token
