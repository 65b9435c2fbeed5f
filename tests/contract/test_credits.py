"""Credits that cannot be faked (issue 26, item 2), the agent's own signing against the reference
coordinator on both back-ends: a receipt is credited with no more than the coordinator witnessed
(its proxy's requests, the time it saw the service running), and a tampered, replayed, forked or
gapped chain is refused or flagged, never credited; suspicion holds a worker's credits until an
operator clears it."""

from __future__ import annotations

import copy
import functools
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

import pytest
import requests

from controller.clients.receipts import Signer
from controller.contract.capabilities import capabilities
from controller.core.receipts import GENESIS, Tally, digest
from rma_testkit.engine import wait_until
from rma_testkit.served import ADMIN, Served
from tests.contract.test_proxy import Origin
from tests.contract.test_worker_api import TIER2

Serve = Callable[..., Served]
T0 = 1_800_000_000.0  # the coordinator's clock (virtual), a Thursday
HEADERS = {"Authorization": f"Bearer {ADMIN}"}


class Pool:
    """One worker of a coordinator on a virtual clock, with its key, serving `web` at `origin`."""

    def __init__(
        self,
        serve: Serve,
        tmp_path: Path,
        origin: Origin,
        name: str = "Ada's desktop",
        **kw: Any,
    ) -> None:
        self.now = T0
        self.coord = serve(clock=lambda: self.now, **kw)
        self.signer = Signer(tmp_path / f"{name.encode().hex()[:16]}.key.json")
        self.origin = origin
        body = {"capabilities": capabilities(TIER2), "public_key": self.signer.public_key}
        reg = self.coord.client().register(body | {"display_name": name})
        assert reg.worker_id and reg.token and reg.contributor_key
        self.worker_id, self.token, self.key = reg.worker_id, reg.token, reg.contributor_key
        self.seq, self.prev = 0, GENESIS

    def beat(self) -> None:
        row = {"name": "web", "service": "web", "state": "running", "service_url": self.origin.url}
        answer = requests.post(
            f"{self.coord.url}/api/worker/heartbeat",
            json={"worker_id": self.worker_id, "containers": [row]},
            headers={"Authorization": f"Bearer {self.token}"},
            timeout=5,
        )
        assert answer.status_code == 200, answer.text
        self.coord.app.state.registry.flush()  # as twice a second: each beat its own row

    def beat_until(self, until: float) -> None:
        """A heartbeat every 30 s up to `until` (the clock moved on)."""
        while self.now + 30 <= until:
            self.now += 30
            self.beat()

    def use(self, n: int) -> None:
        for _ in range(n):
            assert requests.get(f"{self.coord.url}/service/web/x", timeout=5).status_code == 200

    def receipt(self, start: float, end: float, ready: float, requests_: int) -> dict[str, Any]:
        tally = Tally(start=start).add(
            ready, frozenset({"web"}), {"web": requests_}, {"cpu": 3600.0}
        )
        self.seq += 1
        sealed = tally.seal(
            worker_id=self.worker_id, seq=self.seq, prev=self.prev, end=end, version="t"
        )
        signed = self.signer.sign(sealed)
        self.prev = digest(signed)
        return signed

    def deliver(self, *receipts: dict[str, Any]) -> dict[str, Any]:
        resp = requests.post(
            f"{self.coord.url}/api/worker/{self.worker_id}/receipts",
            json=list(receipts),
            headers={"Authorization": f"Bearer {self.token}"},
            timeout=5,
        )
        assert resp.status_code == 200, resp.text
        return dict(resp.json())

    def credits(self) -> dict[str, Any]:
        return dict(
            requests.get(f"{self.coord.url}/api/credits/{self.worker_id}", timeout=5).json()
        )


@pytest.fixture
def pool(serve: Serve, tmp_path: Path) -> Any:
    origin = Origin("w")
    try:
        yield Pool(serve, tmp_path, origin)
    finally:
        origin.close()


def test_a_worker_is_credited_what_the_coordinator_witnessed_never_more(pool: Pool) -> None:
    pool.beat()  # seen running `web` from T0
    pool.use(4)  # the proxy routed 4 requests
    pool.beat_until(T0 + 570)
    pool.now = T0 + 600
    honest = pool.receipt(T0, T0 + 600, ready=600, requests_=4)
    assert pool.deliver(honest) == {
        "highest_accepted": 1,
        "results": [{"seq": 1, "outcome": "credited"}],
    }
    mine = pool.credits()
    # 600 s seen (the last heartbeat vouches for the 30 s after it) at tier 2's 3/hour, 4 x 0.01
    assert mine["credits"]["all_time"] == pytest.approx(600 / 3600 * 3 + 0.04, abs=0.01)
    assert mine["credited"] == {"requests": 4, "ready_hours": pytest.approx(0.17, abs=0.01)}
    assert mine["name"] == "Ada's desktop" and mine["rank"] == 1 and not mine["held"]
    assert mine["energy_wh"] == 1.0  # shown as the receipt said it: never credited
    pool.use(5)
    pool.now = T0 + 1200
    greedy = pool.receipt(T0 + 600, T0 + 1200, ready=600, requests_=10)  # twice the 5 seen
    result = pool.deliver(greedy)
    assert result["results"] == [{"seq": 2, "outcome": "flagged: over-claim"}]
    # the proxy saw 5; the worker is silent since T0 + 570: seen until T0 + 600 only
    after = pool.credits()
    gained = after["credits"]["all_time"] - mine["credits"]["all_time"]
    assert gained == pytest.approx(5 * 0.01, abs=0.005)
    assert after["credited"]["requests"] == 9
    board = requests.get(f"{pool.coord.url}/api/credits", timeout=5).json()["leaderboard"]
    assert [(r["rank"], r["name"]) for r in board] == [(1, "Ada's desktop")]
    assert board[0]["credits"]["all_time"] == after["credits"]["all_time"]


def test_tampered_replayed_forked_and_gapped_receipts_are_never_credited(pool: Pool) -> None:
    pool.beat()
    pool.use(3)
    pool.now = T0 + 600
    first = pool.receipt(T0, T0 + 600, ready=600, requests_=3)
    tampered = copy.deepcopy(first)
    tampered["services"]["web"]["requests"] = 300
    assert pool.deliver(tampered)["results"] == [{"seq": 1, "outcome": "refused: bad signature"}]
    assert pool.deliver(first)["highest_accepted"] == 1
    credited = pool.credits()["credits"]["all_time"]
    again = pool.deliver(first)  # sent again (an acknowledgement lost): not credited twice
    assert again == {"highest_accepted": 1, "results": [{"seq": 1, "outcome": "duplicate"}]}
    assert pool.credits()["credits"]["all_time"] == credited
    pool.prev, pool.seq = GENESIS, 0  # a second chain from the same key: a fork at seq 1
    fork = pool.receipt(T0, T0 + 600, ready=600, requests_=2)  # other contents, same seq
    assert pool.deliver(fork)["results"] == [{"seq": 1, "outcome": "refused: fork"}]
    pool.prev, pool.seq = digest(first), 2  # seq 2 never sent: the next is a gap
    pool.now = T0 + 1800
    gapped = pool.receipt(T0 + 1200, T0 + 1800, ready=600, requests_=0)
    result = pool.deliver(gapped)
    assert result == {"highest_accepted": 3, "results": [{"seq": 3, "outcome": "flagged: gap"}]}
    mine = pool.credits()
    assert mine["credits"]["all_time"] == credited and mine["held"] and mine["rank"] is None
    assert "chain broken 3x" in mine["flags"]
    board = requests.get(f"{pool.coord.url}/api/credits", timeout=5).json()["leaderboard"]
    assert board == []  # held: off the leaderboard
    listed = requests.get(
        f"{pool.coord.url}/api/admin/credits/suspicious", headers=HEADERS, timeout=5
    ).json()
    assert [(s["worker_id"], s["held"], s["chain_breaks"]) for s in listed] == [
        (pool.worker_id, True, 3)
    ]
    cleared = requests.post(
        f"{pool.coord.url}/api/admin/credits/{pool.worker_id}/clear", headers=HEADERS, timeout=5
    )
    assert cleared.status_code == 200
    assert pool.credits()["rank"] == 1 and not pool.credits()["held"]


def test_requests_over_claimed_in_three_windows_hold_the_credits(pool: Pool) -> None:
    pool.beat()
    for n in range(1, 4):
        assert not pool.credits()["held"]
        pool.now = T0 + 600 * n
        result = pool.deliver(pool.receipt(T0 + 600 * (n - 1), pool.now, ready=0, requests_=10))
        assert result["results"] == [{"seq": n, "outcome": "flagged: over-claim"}]
    mine = pool.credits()
    assert mine["held"] and "requests over-claimed in 3 windows" in mine["flags"]


def test_impossible_energy_holds_the_credits(pool: Pool) -> None:
    pool.beat()
    pool.now = T0 + 600
    hungry = pool.receipt(T0, T0 + 600, ready=600, requests_=0)
    unsigned = {k: v for k, v in hungry.items() if k != "signature"}
    unsigned["energy_wh"] = {"gpu": 5000.0}  # 30 kW for ten minutes on a 4-core machine
    pool.prev = GENESIS
    hungry = pool.signer.sign(unsigned)
    pool.prev = digest(hungry)
    assert pool.deliver(hungry)["results"] == [{"seq": 1, "outcome": "flagged: impossible energy"}]
    assert pool.credits()["held"]


def test_receipts_need_the_workers_token_and_a_bounded_delivery(pool: Pool) -> None:
    url = f"{pool.coord.url}/api/worker/{pool.worker_id}/receipts"
    assert requests.post(url, json=[], timeout=5).status_code == 401
    too_many = requests.post(
        url, json=[{}] * 101, headers={"Authorization": f"Bearer {pool.token}"}, timeout=5
    )
    assert too_many.status_code == 413
    odd = pool.deliver({"v": 1, "worker_id": "worker-other", "seq": 1})
    assert odd == {
        "highest_accepted": 0,
        "results": [{"seq": 1, "outcome": "refused: another worker's receipt"}],
    }


class Slow(Origin):
    """A service that holds each request until the test lets one go: the pool is at capacity."""

    def __init__(self) -> None:
        owner, self.arrived, self.go = self, list[str](), threading.Semaphore(0)
        self.headers: list[dict[str, str]] = []

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                owner.arrived.append(self.path)
                owner.headers.append({k.lower(): v for k, v in self.headers.items()})
                owner.go.acquire(timeout=30)
                self.send_response(200)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, format: str, *args: Any) -> None:
                return

        self._serve(Handler)


def test_at_capacity_a_contributors_request_goes_before_others_queued_earlier(
    serve: Serve, tmp_path: Path
) -> None:
    slow = Slow()
    try:
        pool = Pool(serve, tmp_path, slow, max_in_flight=1)
        pool.beat()
        pool.beat_until(T0 + 600)
        earned = pool.deliver(pool.receipt(T0, T0 + 600, ready=600, requests_=0))
        assert earned["results"] == [{"seq": 1, "outcome": "credited"}]
        gate = pool.coord.app.state.coordinator.gate
        answers: dict[str, int] = {}

        def ask(tag: str, key: str | None = None) -> None:
            headers = {"X-RMA-Contributor-Key": key} if key else {}
            url = f"{pool.coord.url}/service/web/{tag}"
            answers[tag] = requests.get(url, headers=headers, timeout=30).status_code

        threads = []
        for n, (tag, key) in enumerate(
            [("a", None), ("b", None), ("c", None), ("keyed", pool.key), ("stranger", "nope")]
        ):
            threads.append(threading.Thread(target=ask, args=(tag, key)))
            threads[-1].start()
            if n == 0:
                wait_until(lambda: slow.arrived == ["/a"], 10, "the first request at the worker")
            else:
                queued = functools.partial(lambda k: gate.waiting("web") == k, n)
                wait_until(queued, 10, "the request queued")
        for _ in threads:
            slow.go.release()
        for t in threads:
            t.join(30)
        assert slow.arrived == ["/a", "/keyed", "/b", "/c", "/stranger"]
        assert set(answers.values()) == {200}
        assert not any("x-rma-contributor-key" in h for h in slow.headers)  # the pool's own
    finally:
        slow.close()


def test_a_full_queue_is_429_with_retry_after(serve: Serve, tmp_path: Path) -> None:
    slow = Slow()
    try:
        pool = Pool(serve, tmp_path, slow, max_in_flight=1, queue_max=0)
        pool.beat()
        first = threading.Thread(
            target=lambda: requests.get(f"{pool.coord.url}/service/web/a", timeout=30)
        )
        first.start()
        wait_until(lambda: slow.arrived == ["/a"], 10, "the first request at the worker")
        busy = requests.get(f"{pool.coord.url}/service/web/b", timeout=5)
        assert busy.status_code == 429 and busy.headers["Retry-After"] == "1"
        slow.go.release()
        first.join(30)
    finally:
        slow.close()
