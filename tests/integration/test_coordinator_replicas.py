"""Two reference coordinators on one PostgreSQL behind a round-robin relay (a load balancer),
and the agent as a volunteer runs it (issue 25, item 2): its registration, heartbeats and long
poll land on different replicas, an assignment changed on the replica its poll is not waiting on
reaches it at once (LISTEN/NOTIFY; its heartbeat is 120 s away), and either replica lists it."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import docker
import pytest
import requests

from rma_testkit.agent import StartAgent
from rma_testkit.engine import LOOP, running, wait_until
from rma_testkit.postgres import fresh_database
from rma_testkit.relay import RoundRobinRelay
from rma_testkit.served import ADMIN, Served

pytestmark = pytest.mark.integration
AUTH = {"Authorization": f"Bearer {ADMIN}"}


def workers(served: Served) -> list[dict[str, Any]]:
    answer: list[dict[str, Any]] = requests.get(
        f"{served.url}/api/admin/workers", headers=AUTH, timeout=5
    ).json()
    return answer


def test_an_agent_behind_two_replicas_is_woken_through_the_other(
    client: docker.DockerClient,
    registry_image: str,
    instance: str,
    tmp_path: Path,
    start_agent: StartAgent,
) -> None:
    with fresh_database() as db:
        relay = RoundRobinRelay()  # the pool's one address, in front of both
        replicas = [Served(tmp_path, db=db, public_url=relay.url) for _ in range(2)]
        relay.aim([("127.0.0.1", r.port) for r in replicas])
        try:
            agent = start_agent(relay.url, instance, "--heartbeat-interval", "120")
            worker = wait_until(lambda: (w := workers(replicas[1])) and w[0], what="registration")
            wid = str(worker["id"])
            waiting = wait_until(
                lambda: [r for r in replicas if r.app.state.coordinator.notifier.waiting(wid)],
                what="the agent's long poll waiting on one replica",
            )
            other = next(r for r in replicas if r is not waiting[0])
            spec = {"name": f"{instance}-web", "image": registry_image,
                    "command": ["sh", "-c", LOOP]}  # fmt: skip
            changed = time.monotonic()
            put = requests.put(
                f"{other.url}/api/admin/workers/{wid}/assignment",
                json={"containers": [spec]},
                headers=AUTH,
                timeout=5,
            )
            assert put.status_code == 200, put.text
            wait_until(lambda: f"{instance}-web" in running(client, instance), what="the change")
            assert time.monotonic() - changed < 10  # the poll (55 s) woke; no heartbeat (120 s)
            assert all(relay.connections[r.port] for r in replicas)  # both were spoken to
            assert [w["id"] for w in workers(replicas[0])] == [wid]
            assert agent.stop() == 0
        finally:
            relay.close()
            for served in replicas:
                served.close()
