"""The coordinator client at the HTTP level (requests mocked by `responses`; nothing waits)."""

from __future__ import annotations

import email.utils
import json

import pytest
import requests
import responses

from controller.clients.coordinator import CoordinatorClient, Patience
from controller.clients.http_bounds import parse_retry_after
from controller.core.backoff import Delays
from controller.core.errors import (
    CoordinatorProtocolError,
    CoordinatorRejected,
    CoordinatorUnreachable,
    WorkerForgotten,
)

BASE = "https://coord.test"
REGISTER = f"{BASE}/api/worker/register"
OK_REGISTER = {
    "worker_id": "worker-e9886285",
    "tier": 2,
    "assigned_containers": [
        {
            "name": "rma-upload-worker",
            "image": "ghcr.io/rma/upload-worker:latest",
            "port": 8103,
            "env": {"WORKER_ID": "worker-e9886285"},
        }
    ],
    "heartbeat_url": "/api/worker/heartbeat",
    "heartbeat_interval": 30,
    "coordinator_url": "http://127.0.0.1:8080",
}


def client(sleeps: list[float], **kw: object) -> CoordinatorClient:
    return CoordinatorClient(BASE, sleep=sleeps.append, **kw)  # type: ignore[arg-type]


@responses.activate
def test_register_part1() -> None:
    responses.post(REGISTER, json=OK_REGISTER)
    got = client([]).register({"capabilities": {"cpu_cores": 2, "ram": "4.0GB"}})
    assert got.worker_id == "worker-e9886285" and got.tier == 2
    assert got.token is None and got.assignment_url is None
    sent = json.loads(responses.calls[0].request.body or b"{}")
    assert sent == {"capabilities": {"cpu_cores": 2, "ram": "4.0GB"}}
    assert "Authorization" not in responses.calls[0].request.headers


@responses.activate
def test_retries_5xx_and_connection_errors_with_bounded_jitter() -> None:
    responses.post(REGISTER, status=502)
    responses.post(REGISTER, body=requests.exceptions.ConnectionError("Connection refused"))
    responses.post(REGISTER, status=503)
    responses.post(REGISTER, json=OK_REGISTER)
    sleeps: list[float] = []
    assert (
        client(sleeps, patience=Patience(delays=Delays(0.5, 10, jitter="full"))).register({}).tier
        == 2
    )
    assert len(sleeps) == 3
    for attempt, slept in enumerate(sleeps, start=1):
        assert 0 <= slept <= min(10, 0.5 * 2**attempt)


@responses.activate
def test_gives_up_after_the_attempts_as_unreachable() -> None:
    responses.post(REGISTER, status=500)
    sleeps: list[float] = []
    with pytest.raises(CoordinatorUnreachable, match="HTTP 500"):
        client(sleeps, patience=Patience(attempts=3)).register({})
    assert len(responses.calls) == 3 and len(sleeps) == 2


@responses.activate
def test_retry_after_is_honoured_in_seconds_and_as_a_date() -> None:
    future = email.utils.formatdate(usegmt=True)  # "now": waits ~0
    responses.post(REGISTER, status=429, headers={"Retry-After": "7"})
    responses.post(REGISTER, status=503, headers={"Retry-After": future})
    responses.post(REGISTER, json=OK_REGISTER)
    sleeps: list[float] = []
    client(sleeps).register({})
    assert sleeps[0] == 7.0 and 0 <= sleeps[1] <= 1.0


def test_parse_retry_after() -> None:
    assert parse_retry_after("120") == 120.0
    assert parse_retry_after("99999") == 300.0
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", now=1445412480.0 - 60) == 60.0
    assert parse_retry_after("garbage") is None and parse_retry_after(None) is None


@responses.activate
@pytest.mark.parametrize("status", [400, 401, 403, 422])
def test_4xx_is_rejected_without_retry(status: int) -> None:
    responses.post(REGISTER, status=status, json={"detail": "nope"})
    sleeps: list[float] = []
    with pytest.raises(CoordinatorRejected, match="nope") as info:
        client(sleeps).register({})
    assert info.value.status == status and sleeps == [] and len(responses.calls) == 1


@responses.activate
def test_heartbeat_404_means_forgotten() -> None:
    responses.post(f"{BASE}/api/worker/heartbeat", status=404, json={"detail": "Worker not found"})
    with pytest.raises(WorkerForgotten, match="Worker not found"):
        client([]).heartbeat("/api/worker/heartbeat", {"worker_id": "w"})


@responses.activate
def test_register_404_is_a_rejection_not_forgotten() -> None:
    responses.post(REGISTER, status=404)
    with pytest.raises(CoordinatorRejected):
        client([]).register({})


@responses.activate
@pytest.mark.parametrize(
    ("body", "why"),
    [
        ("not json", "invalid JSON"),
        ('{"worker_id": ""}', "worker_id"),
        ('{"worker_id": "w"}', "tier"),
        ('{"worker_id": "w", "tier": "two"}', "tier"),
        ('{"worker_id": "w", "tier": 9}', "tier"),
        ('{"worker_id": "w", "tier": 2, "heartbeat_interval": -1}', "heartbeat_interval"),
        ("[1, 2]", "malformed register"),
    ],
)
def test_malformed_responses_are_protocol_errors(body: str, why: str) -> None:
    responses.post(REGISTER, body=body, status=200)
    with pytest.raises(CoordinatorProtocolError, match=why):
        client([]).register({})


@responses.activate
def test_unregister_treats_404_as_done_and_does_not_retry() -> None:
    url = f"{BASE}/api/worker/unregister/w1"
    responses.delete(url, status=404)
    client([]).unregister("w1")
    responses.replace(responses.DELETE, url, status=503)
    sleeps: list[float] = []
    with pytest.raises(CoordinatorUnreachable):
        client(sleeps).unregister("w1")
    assert sleeps == []


@responses.activate
def test_token_and_assignment_etag_long_poll() -> None:
    url = f"{BASE}/api/worker/w1/assignment"
    responses.get(url, json={"generation": 3, "tier": 2, "containers": []}, headers={"ETag": '"3"'})
    responses.get(url, status=304)
    c = client([])
    got = c.fetch_assignment("/api/worker/w1/assignment", token="s3cret")
    assert got is not None and got.generation == 3 and got.etag == '"3"'
    assert (
        c.fetch_assignment("/api/worker/w1/assignment", token="s3cret", etag='"3"', wait=50) is None
    )
    second = responses.calls[1].request
    assert second.headers["Authorization"] == "Bearer s3cret"
    assert second.headers["If-None-Match"] == '"3"'
    assert second.url is not None and second.url.endswith("?wait=50")


@responses.activate
def test_same_origin_absolute_urls_are_used_and_other_hosts_refused() -> None:
    responses.post(f"{BASE}/hb", json={"status": "ok", "assignment_generation": 4})
    assert client([]).heartbeat(f"{BASE}/hb", {}).assignment_generation == 4
    with pytest.raises(CoordinatorProtocolError, match="another host"):
        client([]).heartbeat("http://evil.test/hb", {}, token="t")
    assert len(responses.calls) == 1


@responses.activate
def test_a_huge_answer_is_refused_without_reading_it_all() -> None:
    responses.post(REGISTER, body=b"[" + b"1," * (3 * 1024 * 1024) + b"1]")
    with pytest.raises(CoordinatorProtocolError, match="more than"):
        client([]).register({})


@responses.activate
def test_an_answer_nested_too_deep_is_a_protocol_error_not_a_crash() -> None:
    responses.post(REGISTER, body="[" * 100_000 + "]" * 100_000)
    with pytest.raises(CoordinatorProtocolError, match="invalid JSON"):
        client([]).register({})


@responses.activate
def test_redirects_are_refused_not_followed() -> None:
    url = f"{BASE}/api/worker/w1/assignment"
    responses.get(url, status=302, headers={"Location": f"{BASE}/elsewhere"})
    responses.get(f"{BASE}/elsewhere", json={"generation": 9, "tier": 2, "containers": []})
    with pytest.raises(CoordinatorProtocolError, match="redirect"):
        client([]).fetch_assignment("/api/worker/w1/assignment", token="t")
    assert [c.request.url for c in responses.calls] == [url]


@responses.activate
@pytest.mark.parametrize(
    ("base", "allowed", "sent"),
    [
        ("http://coord.test", False, False),
        ("http://coord.test", True, True),
        ("https://coord.test", False, True),
        ("http://127.0.0.1:8080", False, True),
        ("http://localhost:8080", False, True),
        ("http://[::1]:8080", False, True),
    ],
)
def test_the_token_never_travels_in_clear_to_another_machine(
    base: str, allowed: bool, sent: bool
) -> None:
    responses.post(f"{base}/hb", json={"status": "ok"})
    c = CoordinatorClient(base, sleep=lambda s: None, allow_insecure=allowed)
    if sent:
        assert c.heartbeat("/hb", {}, token="t").status == "ok"
        assert responses.calls[0].request.headers["Authorization"] == "Bearer t"
    else:
        with pytest.raises(CoordinatorProtocolError, match="allow-insecure-coordinator"):
            c.heartbeat("/hb", {}, token="t")
        assert len(responses.calls) == 0
    assert c.heartbeat("/hb", {}).status == "ok"  # without a token: Part 1, allowed
