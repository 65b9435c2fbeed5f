"""Several reference coordinators on one PostgreSQL serve one pool (issue 25, item 2): any replica
answers any worker, and a long poll waiting on one replica wakes when the worker's assignment is
changed on another (LISTEN/NOTIFY) — in well under its wait, not at its end."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from controller.contract.capabilities import capabilities
from rma_testkit.engine import wait_until
from rma_testkit.postgres import fresh_database
from rma_testkit.served import ADMIN, Served
from tests.contract.test_worker_api import TIER2


@pytest.fixture
def replicas(tmp_path: Path) -> Iterator[tuple[Served, Served]]:
    with fresh_database() as db:
        pair = (Served(tmp_path, db=db), Served(tmp_path, db=db))
        try:
            yield pair
        finally:
            for served in pair:
                served.close()


def test_any_replica_answers_and_a_change_on_one_wakes_a_poll_on_another(
    replicas: tuple[Served, Served],
) -> None:
    a, b = replicas
    reg = a.client().register({"capabilities": capabilities(TIER2)})
    path, token = str(reg.assignment_url), reg.token
    beat = b.client().heartbeat(reg.heartbeat_url, {"worker_id": reg.worker_id}, token=token)
    assert beat.assignment_generation == 1  # B knows the worker A registered
    first = a.client().fetch_assignment(path, token=token)
    assert first is not None
    got: list[Any] = []
    poll = threading.Thread(
        target=lambda: got.append(
            a.client().fetch_assignment(path, token=token, etag=first.etag, wait=30)
        )
    )
    started = time.monotonic()
    poll.start()
    notifier = a.app.state.coordinator.notifier  # the change comes while A's poll waits:
    wait_until(lambda: notifier.waiting(reg.worker_id), 10, "the long poll to wait", step=0.01)
    new = [{"name": "db", "image": "postgres:16", "port": 5432}]
    put = requests.put(
        f"{b.url}/api/admin/workers/{reg.worker_id}/assignment",
        json={"containers": new},
        headers={"Authorization": f"Bearer {ADMIN}"},
        timeout=5,
    )
    assert put.status_code == 200, put.text
    poll.join(10)
    assert not poll.is_alive() and got[0] is not None and got[0].generation == 2
    assert got[0].containers == new and time.monotonic() - started < 10  # not the 30 s wait
    listed = requests.get(
        f"{a.url}/api/admin/workers", headers={"Authorization": f"Bearer {ADMIN}"}, timeout=5
    ).json()
    assert [w["status"] for w in listed] == ["online"]


def test_a_new_token_from_one_replica_holds_at_once_on_another(
    replicas: tuple[Served, Served],
) -> None:
    """Each replica keeps what every heartbeat asks (token, generation); an agent that registers
    again on A is not refused on B while A's NOTIFY is on its way — B reads again on a mismatch
    — and the old token stops holding; a worker forgotten on A is unknown on B."""
    a, b = replicas
    caps = {"capabilities": capabilities(TIER2)}
    first = a.client().register(caps)
    url = first.heartbeat_url
    b.client().heartbeat(url, {"worker_id": first.worker_id}, token=first.token)  # B keeps it
    again = a.client().register({**caps, "previous_worker_id": first.worker_id}, token=first.token)
    assert again.worker_id == first.worker_id and again.token != first.token
    answer = b.client().heartbeat(url, {"worker_id": first.worker_id}, token=again.token)
    assert answer.assignment_generation == 1

    def refused(token: str | None) -> int:
        resp = requests.post(
            f"{b.url}{url}",
            json={"worker_id": first.worker_id},
            headers={"Authorization": f"Bearer {token}"},
            timeout=5,
        )
        return resp.status_code

    wait_until(lambda: refused(first.token) == 401, 5, "the old token refused on B")
    gone = requests.delete(
        f"{a.url}/api/admin/workers/{first.worker_id}",
        headers={"Authorization": f"Bearer {ADMIN}"},
        timeout=5,
    )
    assert gone.status_code == 200, gone.text
    wait_until(lambda: refused(again.token) == 404, 5, "the forgotten worker unknown on B")
