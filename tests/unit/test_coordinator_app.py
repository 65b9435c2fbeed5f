"""The reference coordinator in-process: Part 1 exactly, Part 2, admin, persistence, sweeping."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from rma_coordinator.app import Config, create_app
from rma_coordinator.db import Beat, NewWorker, Registry
from rma_coordinator.tiers import Catalog, tier_for

CATALOG = Catalog(
    {
        1: [{"name": "vllm", "image": "vllm/vllm-openai:v0.6.3", "port": 8000}],
        2: [
            {
                "name": "rag",
                "image": "ghcr.io/rma/rag-service:latest",
                "port": 8102,
                "env": {"A": "1"},
            }
        ],
        3: [{"name": "redis", "image": "redis:7-alpine", "port": 6379}],
    }
)
TIER2 = {"cpu_cores": 4, "ram": "16.0GB", "storage": "100.0GB"}
ADMIN = {"Authorization": "Bearer adm"}


def make(tmp_path: Path, **kw: Any) -> TestClient:
    kw.setdefault("allow_private_workers", True)
    config = Config(
        db_path=tmp_path / "c.db",
        catalog=CATALOG,
        admin_token="adm",
        public_url="http://coord:8080",
        **kw,
    )
    return TestClient(create_app(config))


@pytest.fixture
def api(tmp_path: Path) -> Iterator[TestClient]:
    with make(tmp_path) as client:
        yield client


def register(
    api: TestClient,
    caps: dict[str, Any] | None = None,
    headers: dict[str, str] | None = None,
    **extra: Any,
) -> Any:
    resp = api.post(
        "/api/worker/register", json={"capabilities": caps or TIER2, **extra}, headers=headers
    )
    assert resp.status_code == 200, resp.text
    return resp.json()


@pytest.mark.parametrize(
    ("caps", "tier"),
    [
        ({"cpu_cores": 16, "ram": "64.0GB", "gpu_memory": "24564MB", "gpu_type": "RTX 4090"}, 1),
        ({"cpu_cores": 16, "ram": "64.0GB", "gpu_memory": "6144MB", "gpu_type": "GTX"}, 2),
        ({"cpu_cores": 2, "ram": "4.0GB"}, 2),
        ({"cpu_cores": 1, "ram": "64.0GB"}, 3),
        ({"cpu_cores": 8, "ram": "3.5GB"}, 3),
    ],
)
def test_tier_thresholds(caps: dict[str, Any], tier: int) -> None:
    assert tier_for(caps) == tier


def test_register_answers_the_part1_shape_plus_part2(api: TestClient) -> None:
    got = register(api)
    assert got["worker_id"].startswith("worker-") and got["tier"] == 2
    assert got["heartbeat_url"] == "/api/worker/heartbeat" and got["heartbeat_interval"] == 30
    [entry] = got["assigned_containers"]
    assert entry["name"] == "rag" and entry["port"] == 8102
    assert entry["env"] == {
        "A": "1",
        "WORKER_ID": got["worker_id"],
        "COORDINATOR_URL": "http://coord:8080",
    }
    assert got["token"] and got["assignment_url"] == f"/api/worker/{got['worker_id']}/assignment"


def test_each_registration_gets_a_new_id_unless_the_previous_one_is_free(api: TestClient) -> None:
    a, b = register(api), register(api)
    assert a["worker_id"] != b["worker_id"]
    c = register(api, previous_worker_id=a["worker_id"])  # a still registered: not reused
    assert c["worker_id"] not in (a["worker_id"], b["worker_id"])
    a_auth = {"Authorization": f"Bearer {a['token']}"}
    api.delete(f"/api/worker/unregister/{a['worker_id']}", headers=a_auth)
    # Only whoever shows a's old token gets a's id back: nobody can take over a worker's id.
    assert register(api, previous_worker_id=a["worker_id"])["worker_id"] != a["worker_id"]
    wrong = {"Authorization": f"Bearer {b['token']}"}
    assert (
        register(api, headers=wrong, previous_worker_id=a["worker_id"])["worker_id"]
        != (a["worker_id"])
    )
    back = register(api, headers=a_auth, previous_worker_id=a["worker_id"])
    assert back["worker_id"] == a["worker_id"] and back["token"] != a["token"]


def test_a_forgotten_worker_gets_its_id_back_with_its_old_token(tmp_path: Path) -> None:
    with make(tmp_path) as api:
        a = register(api)
        registry = api.app.state.registry  # type: ignore[attr-defined]
        assert registry.sweep(now=time.time() + 10**6, offline_after=1, forget_after=2)[1] == 1
        auth = {"Authorization": f"Bearer {a['token']}"}
        assert (
            register(api, headers=auth, previous_worker_id=a["worker_id"])["worker_id"]
            == (a["worker_id"])
        )


def test_bodies_over_64_kib_are_refused(api: TestClient) -> None:
    big = {"capabilities": {**TIER2, "pad": "x" * 70_000}}
    assert api.post("/api/worker/register", json=big).status_code == 413
    fits = {"capabilities": {**TIER2, "pad": "x" * 60_000}}
    assert api.post("/api/worker/register", json=fits).status_code == 200

    def chunks() -> Iterator[bytes]:  # no Content-Length: counted as it streams
        yield b'{"capabilities": {"cpu_cores": 2, "ram": "4GB", "pad": "'
        for _ in range(20):
            yield b"x" * 4096
        yield b'"}}'

    streamed = api.post(
        "/api/worker/register", content=chunks(), headers={"Content-Type": "application/json"}
    )
    assert streamed.status_code == 413


def test_registrations_are_rate_limited_per_address(api: TestClient) -> None:
    codes = [
        api.post("/api/worker/register", json={"capabilities": TIER2}).status_code
        for _ in range(25)
    ]
    assert codes[:20] == [200] * 20 and set(codes[20:]) == {429}
    limited = api.post("/api/worker/register", json={"capabilities": TIER2})
    assert int(limited.headers["Retry-After"]) >= 1


def test_register_requires_cpu_cores_and_ram(api: TestClient) -> None:
    assert (
        api.post("/api/worker/register", json={"capabilities": {"ram": "4GB"}}).status_code == 422
    )


def test_heartbeat_unknown_worker_is_404_worker_not_found(api: TestClient) -> None:
    resp = api.post(
        "/api/worker/heartbeat", json={"worker_id": "worker-00000000", "status": "healthy"}
    )
    assert resp.status_code == 404 and resp.json() == {"detail": "Worker not found"}


def test_heartbeat_is_recorded_and_needs_the_token(api: TestClient) -> None:
    w = register(api)
    body = {
        "worker_id": w["worker_id"],
        "status": "degraded",
        "current_load": 0.25,
        "available_memory": "12.3GB",
        "assignment_generation": 1,
        "containers": [{"name": "rag", "state": "running", "restarts": 0}],
    }
    assert api.post("/api/worker/heartbeat", json=body).status_code == 401
    auth = {"Authorization": f"Bearer {w['token']}"}
    resp = api.post("/api/worker/heartbeat", json=body, headers=auth)
    assert resp.json() == {"status": "ok", "assignment_generation": 1}
    [row] = api.get("/api/admin/workers", headers=ADMIN).json()
    assert (row["health"], row["current_load"], row["heartbeats"]) == ("degraded", 0.25, 1)
    assert row["reported"][0]["name"] == "rag" and not any("token" in k for k in row)


def test_unregister(api: TestClient) -> None:
    w = register(api)
    auth = {"Authorization": f"Bearer {w['token']}"}
    assert api.delete(f"/api/worker/unregister/{w['worker_id']}", headers=auth).status_code == 200
    assert api.delete(f"/api/worker/unregister/{w['worker_id']}", headers=auth).status_code == 404


def test_assignment_etag_304_and_admin_change(api: TestClient) -> None:
    w = register(api)
    auth = {"Authorization": f"Bearer {w['token']}"}
    url = w["assignment_url"]
    first = api.get(url, headers=auth)
    assert first.json()["generation"] == 1 and first.headers["etag"] == '"1"'
    assert api.get(url, headers={**auth, "If-None-Match": '"1"'}).status_code == 304
    new = [{"name": "x", "image": "redis:7-alpine"}]
    changed = api.put(
        f"/api/admin/workers/{w['worker_id']}/assignment", headers=ADMIN, json={"containers": new}
    )
    assert changed.json()["generation"] == 2
    got = api.get(url, headers={**auth, "If-None-Match": '"1"'})
    assert got.status_code == 200 and got.json()["containers"] == new


def test_long_poll_times_out_with_304_and_wakes_on_change(api: TestClient) -> None:
    w = register(api)
    auth = {"Authorization": f"Bearer {w['token']}", "If-None-Match": '"1"'}
    started = time.monotonic()
    assert api.get(w["assignment_url"] + "?wait=1", headers=auth).status_code == 304
    assert time.monotonic() - started >= 0.9
    notifier = api.app.state.coordinator.notifier  # type: ignore[attr-defined]
    assert len(notifier) == 0  # the timed-out poll left nothing behind
    answers: list[int] = []
    poll = threading.Thread(
        target=lambda: answers.append(
            api.get(w["assignment_url"] + "?wait=30", headers=auth).status_code
        )
    )
    poll.start()
    deadline = time.monotonic() + 10
    while not notifier.waiting(w["worker_id"]):  # the change must come while the poll waits
        assert time.monotonic() < deadline, "the long poll never waited"
        time.sleep(0.01)
    api.put(
        f"/api/admin/workers/{w['worker_id']}/assignment", headers=ADMIN, json={"containers": []}
    )
    poll.join(10)
    assert answers == [200] and len(notifier) == 0


def test_admin_needs_its_token(api: TestClient, tmp_path: Path) -> None:
    assert api.get("/api/admin/workers").status_code == 401
    assert api.get("/api/admin/workers", headers={"Authorization": "Bearer no"}).status_code == 401
    with TestClient(create_app(Config(db_path=tmp_path / "x.db", catalog=CATALOG))) as bare:
        assert bare.get("/api/admin/workers", headers=ADMIN).status_code == 403


def test_part1_only_mode_speaks_only_part1(tmp_path: Path) -> None:
    with make(tmp_path, dialect="part1") as api:
        w = register(api)
        assert "token" not in w and "assignment_url" not in w
        resp = api.post("/api/worker/heartbeat", json={"worker_id": w["worker_id"]})
        assert resp.json() == {"status": "ok"}
        assert api.get(f"/api/worker/{w['worker_id']}/assignment").status_code == 404


def test_the_pool_survives_a_restart(tmp_path: Path) -> None:
    with make(tmp_path) as api:
        w = register(api)
    with make(tmp_path) as api:
        resp = api.post(
            "/api/worker/heartbeat",
            json={"worker_id": w["worker_id"]},
            headers={"Authorization": f"Bearer {w['token']}"},
        )
        assert resp.status_code == 200


def test_health_and_openapi(api: TestClient) -> None:
    register(api)
    assert api.get("/health").json()["workers"] == {"total": 1, "online": 1}
    paths = api.get("/openapi.json").json()["paths"]
    assert {
        "/api/worker/register",
        "/api/worker/heartbeat",
        "/api/worker/unregister/{worker_id}",
    } <= paths.keys()


def test_sweep_marks_offline_then_forgets(tmp_path: Path) -> None:
    reg = Registry(tmp_path / "s.db")
    reg.add(NewWorker("worker-00000001", 3, {}, []), now=0)
    assert reg.sweep(now=100, offline_after=300, forget_after=1800) == (0, 0)
    assert reg.sweep(now=301, offline_after=300, forget_after=1800) == (1, 0)
    assert reg.counts() == {"offline": 1}
    reg.heartbeat("worker-00000001", Beat(health="healthy", load=0), now=400)
    assert reg.counts() == {"online": 1}
    assert reg.sweep(now=2201, offline_after=300, forget_after=1800) == (1, 1)
    assert reg.all() == []


def test_part1_only_ignores_the_previous_id_hint(tmp_path: Path) -> None:
    with make(tmp_path, dialect="part1") as api:
        assert register(api, previous_worker_id="worker-0000abcd")["worker_id"] != "worker-0000abcd"
