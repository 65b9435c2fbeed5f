"""The proxy streams, pools and retries (issue 25, item 1), in process against workers' services
on loopback: server-sent events reach the client as each is sent (the next one waits for the
client to have read the first: no timing), requests to one worker share a connection, and a GET
that cannot connect to the chosen worker is answered by the next — a POST is not replayed."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler
from typing import Any

import pytest
import requests

from rma_coordinator.api import proxy
from rma_coordinator.api.guard import Target
from rma_coordinator.api.pools import TLS_HOSTS, Pools
from rma_testkit.served import Served
from tests.contract.test_proxy import Origin, join

Serve = Callable[..., Served]


class Events(Origin):
    """A model server streaming its tokens: `data: 1`, then (once the test says) `data: 2`."""

    def __init__(self) -> None:
        self.go = threading.Event()
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                self.send_response(200)
                self.send_header("Content-Type", "text/event-stream")
                self.end_headers()
                self.wfile.write(b"data: 1\n\n")
                self.wfile.flush()
                owner.go.wait(10)  # sent only once the first reached the client
                self.wfile.write(b"data: 2\n\n")
                self.wfile.flush()

            def log_message(self, format: str, *args: Any) -> None:
                return

        self._serve(Handler)

    def close(self) -> None:
        self.go.set()
        super().close()


def test_server_sent_events_pass_through_as_they_are_sent(serve: Serve) -> None:
    events = Events()
    try:
        coord = serve(dialect="edge")
        join(coord, "worker-a", events.url)
        with requests.get(
            f"{coord.url}/api/service/notes-coa/v1/chat", stream=True, timeout=10
        ) as got:
            assert got.status_code == 200
            assert got.headers["content-type"].startswith("text/event-stream")
            lines = got.iter_lines()
            assert next(lines) == b"data: 1"  # before the worker sent the second
            events.go.set()
            assert [line for line in lines if line] == [b"data: 2"]
    finally:
        events.close()


class KeepAlive(Origin):
    """An origin that keeps its connections open (HTTP/1.1) and notes each caller's port."""

    def __init__(self) -> None:
        super().__init__("k")
        self.ports: list[int] = []
        handler = self._server.RequestHandlerClass
        handler.protocol_version = "HTTP/1.1"  # type: ignore[attr-defined]
        answer = handler.do_GET  # type: ignore[attr-defined]
        owner = self

        def noted(this: BaseHTTPRequestHandler) -> None:
            owner.ports.append(this.client_address[1])
            answer(this)

        handler.do_GET = noted  # type: ignore[attr-defined]


def test_one_pool_one_date_and_a_get_goes_to_the_next_worker(serve: Serve) -> None:
    origin = KeepAlive()
    try:
        coord = serve(dialect="edge")
        join(coord, "worker-a", origin.url)
        for _ in range(3):
            resp = requests.get(f"{coord.url}/api/service/notes-coa/x", timeout=10)
            assert resp.status_code == 200
            assert len(resp.raw.headers.getlist("date")) == 1
            assert len(resp.raw.headers.getlist("server")) == 1
        assert len(origin.ports) == 3 and len(set(origin.ports)) == 1  # one connection
        join(coord, "worker-dead", "http://127.0.0.1:9")  # announced, healthy, not listening
        for _ in range(4):  # whichever the round robin picks first
            assert (
                requests.get(f"{coord.url}/api/service/notes-coa/x", timeout=10).status_code == 200
            )
        posts = [
            requests.post(
                f"{coord.url}/api/service/notes-coa/x", data="once", timeout=10
            ).status_code
            for _ in range(2)
        ]
        assert sorted(posts) == [200, 502]  # a POST is never sent twice
    finally:
        origin.close()


def test_an_answer_over_the_bound_is_cut_there(
    serve: Serve, monkeypatch: pytest.MonkeyPatch
) -> None:
    """MAX_ANSWER still holds with the answer streamed: the stream ends at the bound."""
    monkeypatch.setattr(proxy, "MAX_ANSWER", 20)
    origin = Origin("a")
    try:
        coord = serve(dialect="edge")
        join(coord, "worker-a", origin.url)
        got = requests.get(f"{coord.url}/api/service/notes-coa/long-enough-to-be-cut", timeout=10)
        assert got.status_code == 200 and len(got.content) < 20  # the chunk over it not sent
    finally:
        origin.close()


def test_each_https_host_has_a_pool_of_its_own_and_plain_http_shares_one() -> None:
    """A connection opened with one name's SNI must never carry another name's request."""

    def target(scheme: str, host: str) -> Target:
        return Target(f"{scheme}://{host}/", scheme, host, 443, "192.0.2.1")

    async def check() -> None:
        pools = Pools()
        plain = await pools.client(target("http", "a.example"))
        assert plain is await pools.client(target("http", "b.example"))
        a = await pools.client(target("https", "a.example"))
        assert a is await pools.client(target("https", "a.example"))
        assert a is not await pools.client(target("https", "b.example")) and a is not plain
        for n in range(TLS_HOSTS):
            await pools.client(target("https", f"h{n}.example"))
        assert a.is_closed  # the least recently used, closed when over TLS_HOSTS
        await pools.close()
        assert plain.is_closed

    asyncio.run(check())
