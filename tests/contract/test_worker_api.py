"""The agent's coordinator client against the reference coordinator, route by route and error by
error. Both follow the written RMA contract and share no code: these tests are what ties them.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

import pytest
import requests
from hypothesis import given
from hypothesis import strategies as st

from controller.contract.api import heartbeat_fields
from controller.contract.capabilities import capabilities, qualifying_tier
from controller.core.errors import CoordinatorRejected, WorkerForgotten
from controller.core.machine import GIB, MIB, GpuInfo, HardwareInfo
from controller.core.status import AgentStatus, ContainerStatus
from rma_coordinator.tiers import tier_for
from rma_testkit.served import ADMIN, Served

TIER2 = HardwareInfo(cpu_cores=4, ram_bytes=16 * GIB, storage_bytes=100 * GIB)
Serve = Callable[..., Served]


def test_part2_register_heartbeat_with_token_and_unregister(serve: Serve) -> None:
    coord = serve()
    client = coord.client()
    reg = client.register({"capabilities": capabilities(TIER2, version="t")})
    assert reg.tier == 2 and reg.token and reg.assignment_url and reg.worker_id
    assert [c["name"] for c in reg.assigned_containers or ()] == ["rag"]
    status = AgentStatus((ContainerStatus("rag", "running", "img"),), converged=True)
    body = {"worker_id": reg.worker_id, **heartbeat_fields(status, 0.25, 8 * GIB)}
    got = client.heartbeat(reg.heartbeat_url, body, token=reg.token)
    assert got.status == "ok" and got.assignment_generation == 1
    client.unregister(reg.worker_id, token=reg.token)
    client.unregister(reg.worker_id, token=reg.token)  # already gone: 404 is success
    with pytest.raises(WorkerForgotten):
        client.heartbeat(reg.heartbeat_url, body, token=reg.token)


def test_a_previous_id_comes_back_only_with_its_token(serve: Serve) -> None:
    client = serve().client()
    caps = {"capabilities": capabilities(TIER2)}
    first = client.register(caps)
    assert first.worker_id
    client.unregister(first.worker_id, token=first.token)
    hint = {**caps, "previous_worker_id": first.worker_id}
    assert client.register(hint).worker_id != first.worker_id  # no proof: a new id
    assert client.register(hint, token=first.token).worker_id == first.worker_id


def test_a_worker_still_registered_gets_its_id_back_with_its_token(serve: Serve) -> None:
    """An agent killed after registering but before saving the answer registers again with
    the id it had: it gets it back (no ghost left registered) with its current token or the one
    before (that answer is the one it lost); an older token or a stranger does not."""
    client = serve().client()
    caps = {"capabilities": capabilities(TIER2)}
    first = client.register(caps)
    hint = {**caps, "previous_worker_id": first.worker_id}
    again = client.register(hint, token=first.token)
    assert again.worker_id == first.worker_id and again.token != first.token
    lost = client.register(hint, token=first.token)  # `again` never saved: the token before
    assert lost.worker_id == first.worker_id
    assert client.register(hint, token=first.token).worker_id != first.worker_id  # two back
    assert client.register(hint).worker_id != first.worker_id


def test_part1_only_answers_parse_and_need_no_token(serve: Serve) -> None:
    client = serve(dialect="part1").client()
    reg = client.register({"capabilities": capabilities(TIER2)})
    assert reg.token is None and reg.assignment_url is None
    got = client.heartbeat(reg.heartbeat_url, {"worker_id": reg.worker_id})
    assert got.assignment_generation is None


def test_a_wrong_token_is_rejected_not_forgotten(serve: Serve) -> None:
    client = serve().client()
    reg = client.register({"capabilities": capabilities(TIER2)})
    with pytest.raises(CoordinatorRejected) as err:
        client.heartbeat(reg.heartbeat_url, {"worker_id": reg.worker_id}, token="wrong")
    assert err.value.status == 401
    with pytest.raises(CoordinatorRejected):
        client.fetch_assignment(str(reg.assignment_url), token="wrong")


def test_an_unknown_worker_is_forgotten_on_every_worker_route(serve: Serve) -> None:
    client = serve().client()
    with pytest.raises(WorkerForgotten):
        client.heartbeat("/api/worker/heartbeat", {"worker_id": "worker-00000000"})
    with pytest.raises(WorkerForgotten):
        client.fetch_assignment("/api/worker/worker-00000000/assignment")


def test_a_malformed_registration_is_rejected(serve: Serve) -> None:
    with pytest.raises(CoordinatorRejected) as err:
        serve().client().register({"capabilities": {"gpu": "none"}})
    assert err.value.status == 422


def _set_assignment(coord: Served, worker_id: str, containers: list[dict[str, Any]]) -> None:
    resp = requests.put(
        f"{coord.url}/api/admin/workers/{worker_id}/assignment",
        timeout=5,
        json={"containers": containers},
        headers={"Authorization": f"Bearer {ADMIN}"},
    )
    assert resp.status_code == 200, resp.text


def test_assignment_etag_and_long_poll_woken_by_a_change(serve: Serve) -> None:
    coord = serve()
    client = coord.client()
    reg = client.register({"capabilities": capabilities(TIER2)})
    path, token = str(reg.assignment_url), reg.token
    first = client.fetch_assignment(path, token=token)
    assert first is not None and first.generation == 1 and first.etag == '"1"'
    assert client.fetch_assignment(path, token=token, etag=first.etag) is None  # 304
    got: list[Any] = []
    poll = threading.Thread(
        target=lambda: got.append(
            coord.client().fetch_assignment(path, token=token, etag=first.etag, wait=30)
        )
    )
    poll.start()
    new = [{"name": "db", "image": "postgres:16", "port": 5432}]
    notifier = coord.app.state.coordinator.notifier
    deadline = time.monotonic() + 10
    while not notifier.waiting(reg.worker_id):  # the change must come while the poll waits
        assert time.monotonic() < deadline, "the long poll never waited"
        time.sleep(0.01)
    _set_assignment(coord, str(reg.worker_id), new)
    poll.join(10)
    assert not poll.is_alive() and got[0] is not None
    assert got[0].generation == 2 and got[0].containers == new and got[0].etag == '"2"'


def _gpu_hw(cores: int, ram_gib: float, vram_mib: int | None) -> HardwareInfo:
    gpus = () if vram_mib is None else (GpuInfo(0, "GPU", vram_mib * MIB, "nvidia"),)
    return HardwareInfo(cpu_cores=cores, ram_bytes=int(ram_gib * GIB), storage_bytes=GIB, gpus=gpus)


@given(st.integers(1, 64), st.floats(0.5, 512), st.one_of(st.none(), st.integers(256, 81920)))
def test_agent_and_coordinator_agree_on_the_tier(
    cores: int, ram_gib: float, vram_mib: int | None
) -> None:
    hw = _gpu_hw(cores, ram_gib, vram_mib)
    assert tier_for(capabilities(hw)) == qualifying_tier(hw)
