"""The owner's page, route by route, and every refusal: a foreign Host (DNS rebinding) is
refused on every route, a write needs the page's secret cookie, this very endpoint as Origin and
a JSON body; no CORS header is ever sent; the page carries its CSP and X-Frame-Options; the
pause it asks for is the one `rma-worker pause` writes. Served on loopback by the real server."""

from __future__ import annotations

import http.client
import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from controller.ops.dashboard import COOKIE, CSP, Dashboard
from controller.ops.events import RECENT
from controller.ops.health import HealthServer, Request, answer, known_host

SECRET = "s3cret-s3cret-s3cret"
NOW = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)


class Owner:
    def __init__(self) -> None:
        self.pauses: list[tuple[float | None, bool]] = []
        self.resumes = 0

    def pause(self, seconds: float | None, gpu_only: bool) -> None:
        self.pauses.append((seconds, gpu_only))

    def resume(self) -> bool:
        self.resumes += 1
        return True


def data() -> dict[str, Any]:
    return {
        "state": "converged",
        "containers": [{"name": "web", "state": "running"}, {"name": "db", "state": "running"}],
    }


OWNER = Owner()


@pytest.fixture
def owner() -> Owner:
    OWNER.pauses.clear()
    OWNER.resumes = 0
    return OWNER


@pytest.fixture(scope="module")
def server() -> Iterator[tuple[str, int]]:
    """One server for the module (closing one waits for its poll): the owner is reset per test."""
    board = Dashboard(secret=SECRET, data=data, pause=OWNER.pause, resume=OWNER.resume,
                      clock=lambda: NOW)  # fmt: skip
    srv = HealthServer(
        ("127.0.0.1", 0),
        alive=lambda: (True, {}),
        ready=lambda: (True, {}),
        status=lambda: {"instance": "x"},
        metrics=lambda: b"",
        routes=board.routes(),
    )
    srv.start()
    host, port = srv.url.removeprefix("http://").split(":")
    yield host, int(port)
    srv.close()


def call(
    where: tuple[str, int], method: str, path: str, body: bytes = b"", **headers: str
) -> tuple[int, dict[str, str], bytes]:
    conn = http.client.HTTPConnection(*where, timeout=5)
    sent = {"Host": f"127.0.0.1:{where[1]}", **{k.replace("_", "-"): v for k, v in headers.items()}}
    conn.request(method, path, body=body, headers=sent)
    resp = conn.getresponse()
    out = resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read()
    conn.close()
    return out


def write(where: tuple[str, int], path: str, body: Any, **headers: str) -> tuple[int, Any]:
    good = {"Content_Type": "application/json", "Origin": f"http://127.0.0.1:{where[1]}",
            "Cookie": f"{COOKIE}={SECRET}"}  # fmt: skip
    code, _, raw = call(where, "POST", path, json.dumps(body).encode(), **(good | headers))
    return code, json.loads(raw)


def test_the_page_its_assets_and_its_headers(server: tuple[str, int]) -> None:
    code, headers, body = call(server, "GET", "/")
    assert code == 200 and b'<script src="/assets/app.js"' in body
    assert headers["content-security-policy"] == CSP and "script-src 'self'" in CSP
    assert headers["x-frame-options"] == "DENY" and headers["x-content-type-options"] == "nosniff"
    cookie = headers["set-cookie"]
    assert cookie == f"{COOKIE}={SECRET}; Path=/; SameSite=Strict; HttpOnly"
    for path, ctype in (("/assets/app.js", "text/javascript"), ("/assets/app.css", "text/css")):
        code, headers, body = call(server, "GET", path)
        assert code == 200 and headers["content-type"].startswith(ctype) and body
        assert "set-cookie" not in headers
    assert call(server, "GET", "/favicon.ico")[0] == 204


def test_no_route_ever_sends_a_cors_header(server: tuple[str, int]) -> None:
    for method, path in (("GET", "/"), ("GET", "/api/dashboard"), ("OPTIONS", "/api/pause"),
                         ("POST", "/api/pause"), ("GET", "/status"), ("GET", "/nope")):  # fmt: skip
        _, headers, _ = call(server, method, path, Origin="http://evil.example")
        assert not [h for h in headers if h.startswith("access-control-")], (method, path)
        assert headers["x-frame-options"] == "DENY"


def test_the_data_marks_a_container_healed_in_the_last_seconds(server: tuple[str, int]) -> None:
    stamp = (NOW - timedelta(seconds=3)).isoformat()
    RECENT(None, "warning", {"event": "container_healed", "container": "web",
                             "how": "removed: created again", "timestamp": stamp})  # fmt: skip
    code, _, body = call(server, "GET", "/api/dashboard")
    page = json.loads(body)
    assert code == 200 and page["state"] == "converged"
    assert {c["name"]: c["healing"] for c in page["containers"]} == {"web": True, "db": False}
    assert page["events"][0]["text"] == "web: healed (removed: created again)"


@pytest.mark.parametrize(
    "host",
    ["evil.example:9321", "evil.example", "127.0.0.1.nip.io:9321", "", "localhost.evil:9321"],
)
def test_a_foreign_host_is_refused_on_every_route(server: tuple[str, int], host: str) -> None:
    for path in ("/", "/api/dashboard", "/status", "/metrics", "/healthz"):
        code, headers, _ = call(server, "GET", path, Host=host)
        assert code == 421, path
        assert "set-cookie" not in headers


@pytest.mark.parametrize("host", ["127.0.0.1:9321", "localhost:8080", "[::1]:9321", "10.0.0.5"])
def test_addresses_that_name_this_machine(host: str) -> None:
    assert known_host(host)


def test_pause_and_resume_from_the_page(server: tuple[str, int], owner: Owner) -> None:
    assert write(server, "/api/pause", {"for": "1h", "gpu_only": False}) == (
        200,
        {"ok": True, "paused": {"for": "1h", "gpu_only": False}},
    )
    assert write(server, "/api/pause", {"for": "8h", "gpu_only": True})[0] == 200
    assert write(server, "/api/pause", {"for": "", "gpu_only": False})[0] == 200
    assert owner.pauses == [(3600.0, False), (28800.0, True), (None, False)]
    assert write(server, "/api/resume", {}) == (200, {"ok": True, "was_paused": True})


@pytest.mark.parametrize(
    ("headers", "why"),
    [
        ({"Cookie": ""}, "cookie"),
        ({"Cookie": f"{COOKIE}=guess"}, "cookie"),
        ({"Cookie": "garbage;;=="}, "cookie"),
        ({"Origin": "http://evil.example"}, "http://evil.example"),
        ({"Origin": "http://127.0.0.1:1"}, "may not change"),
        ({"Origin": "null"}, "may not change"),
        ({"Origin": ""}, "unknown origin"),
        ({"Content_Type": "text/plain"}, "application/json"),
    ],
)
def test_writes_refused(
    server: tuple[str, int], owner: Owner, headers: dict[str, str], why: str
) -> None:
    for path in ("/api/pause", "/api/resume"):
        code, answer_ = write(server, path, {"for": "1h", "gpu_only": False}, **headers)
        assert code == 403 and why in answer_["refused"], (path, answer_)
    assert owner.pauses == [] and owner.resumes == 0


@pytest.mark.parametrize("body", [{"for": "2d"}, {"for": "1h", "gpu_only": "yes"}, [1, 2], "pause"])
def test_a_pause_asks_only_what_the_page_offers(
    server: tuple[str, int], owner: Owner, body: Any
) -> None:
    assert write(server, "/api/pause", body)[0] == 400
    assert owner.pauses == []


def test_methods_sizes_and_unknown_paths(server: tuple[str, int]) -> None:
    code, headers, _ = call(server, "GET", "/api/pause")
    assert code == 405 and headers["allow"] == "POST"
    assert call(server, "DELETE", "/")[0] == 405
    assert call(server, "GET", "/../../etc/passwd")[0] == 404
    assert call(server, "GET", "/assets/other.js")[0] == 404
    big = b"x" * 5000
    assert call(server, "POST", "/api/pause", big, Content_Type="application/json")[0] == 413


def test_answer_without_a_server() -> None:
    request = Request("GET", "/x", {"Host": "127.0.0.1"})
    assert answer({}, request).code == 404
    assert answer({}, Request("GET", "/x", {})).code == 421


def test_a_read_only_page_never_pauses(owner: Owner) -> None:
    board = Dashboard(secret=SECRET, data=data, pause=owner.pause, resume=owner.resume,
                      writable=False)  # fmt: skip
    request = Request(
        "POST",
        "/api/pause",
        {
            "Host": "127.0.0.1:9321",
            "Origin": "http://127.0.0.1:9321",
            "Cookie": f"{COOKIE}={SECRET}",
            "Content-Type": "application/json",
        },
        b'{"for": "1h", "gpu_only": false}',
    )
    refused = answer(board.routes(), request)
    assert refused.code == 403 and b"read-only" in refused.body and owner.pauses == []
    assert board.snapshot()["writable"] is False
