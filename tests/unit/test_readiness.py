"""Readiness, probed by the agent (issue 22, item 1), on a virtual clock and a scripted probe:
announced only after the first success, withdrawn after `failure_threshold` failures, restarted
once when not ready within `start_period`, starting again when seen anew; the real probe against
a loopback server (status, `contains`, no redirect followed, 64 KiB read)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from controller.clients.probes import probe
from controller.contract.services import services_status, serving
from controller.core.models import ActualContainer, ContainerSpec, PortMapping, Readiness
from controller.core.status import AgentStatus, ContainerStatus
from controller.engine.readiness import ReadinessProber

NET = "rma-i"
READY = Readiness("/v1/models", contains="qwen", start_period=60, failure_threshold=2)
SPEC = ContainerSpec(
    "llm", "vllm:1", ports=(PortMapping(8105, 8105),), network=NET, readiness=READY
)


class Rig:
    def __init__(self) -> None:
        self.now = 0.0
        self.answers: list[str] = []  # what the next probes say ("" = ready)
        self.restarted: list[str] = []
        self.prober = ReadinessProber(
            threading.Event(),
            restart=self.restarted.append,
            clock=lambda: self.now,
            probe_fn=lambda address, port, check, timeout: self.answers.pop(0),
        )

    def see(self, cid: str = "c1", state: str = "running") -> None:
        actual = ActualContainer(cid, "llm", state, addresses=((NET, "10.9.0.2"),))
        self.prober.track([SPEC], [actual])

    def step(self, seconds: float, answer: str) -> AgentStatus:
        self.now += seconds
        self.answers.append(answer)
        self.prober.check_now()
        assert self.answers == [], "the probe was not due"
        row = ContainerStatus("llm", "running", "vllm:1", service="llm-inference")
        return self.prober.overlay(AgentStatus((row,)))


@pytest.fixture
def rig() -> Rig:
    return Rig()


def test_announced_only_after_the_first_success(rig: Rig) -> None:
    rig.see()
    status = rig.step(0, "GET /v1/models: HTTP 503")
    row = status.containers[0]
    assert (row.health, row.error, row.starting_for) == ("starting", "GET /v1/models: HTTP 503", 0)
    assert serving(status, frozenset()) == frozenset()
    assert services_status(status) == {"llm-inference": "starting"}
    status = rig.step(1, "")  # probed every second while starting
    assert status.containers[0].health == "healthy" and status.containers[0].error is None
    assert serving(status, frozenset()) == {"llm"}


def test_withdrawn_after_failures_in_a_row_and_back_after_a_success(rig: Rig) -> None:
    rig.see()
    rig.step(0, "")
    assert rig.step(10, "refused").containers[0].health == "healthy"  # one failure: kept
    status = rig.step(10, "refused")
    assert status.containers[0].health == "unhealthy" and serving(status, frozenset()) == set()
    assert rig.step(10, "").containers[0].health == "healthy"


def test_not_ready_within_its_start_period_is_restarted_once(rig: Rig) -> None:
    rig.see()
    for _ in range(60):
        rig.step(1, "GET /v1/models: HTTP 503")
    assert rig.restarted == ["c1"]
    rig.step(1, "GET /v1/models: HTTP 503")
    assert rig.restarted == ["c1"]  # once: the loop's crash-loop back-off takes it from there
    rig.see(state="exited")  # stopped, then started again: starting over
    rig.see()
    assert rig.step(0, "").containers[0].health == "healthy"


def test_a_failing_docker_healthcheck_keeps_the_last_word(rig: Rig) -> None:
    rig.see()
    rig.step(0, "")
    row = ContainerStatus("llm", "running", "vllm:1", health="unhealthy")
    assert rig.prober.overlay(AgentStatus((row,))).containers[0].health == "unhealthy"


class Origin(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        if self.path == "/moved":
            self.send_response(302)
            self.send_header("Location", "http://10.0.0.1/")
            self.end_headers()
            return
        body = (b"x" * 100_000 + b"qwen") if self.path == "/big" else b'{"data": ["qwen"]}'
        self.send_response(503 if self.path == "/loading" else 200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length)
        self.send_response(200 if self.path == "/api/pull" and b"llava" in body else 500)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        return


@pytest.fixture
def origin() -> Iterator[int]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), Origin)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield int(server.server_address[1])
    server.shutdown()
    server.server_close()


def test_the_real_probe(origin: int) -> None:
    assert probe("127.0.0.1", origin, Readiness("/v1/models", contains="qwen"), 2) == ""
    assert "HTTP 503" in probe("127.0.0.1", origin, Readiness("/loading"), 2)
    assert "does not hold" in probe("127.0.0.1", origin, Readiness("/", contains="llama"), 2)
    assert "does not hold" in probe("127.0.0.1", origin, Readiness("/big", contains="qwen"), 2)
    assert probe("127.0.0.1", origin, Readiness("/moved", expect_status=(200,)), 2).endswith("302")
    assert probe("127.0.0.1", origin, None, 2) == ""  # TCP connect without readiness
    assert probe("127.0.0.1", 1, None, 2).startswith("TCP 1:")


def test_a_running_container_not_probed_yet_is_not_ready(rig: Rig) -> None:
    """Between its start and the first probe it must not be announced (a 502 was measured)."""
    rig.prober.track([SPEC], [])  # desired, not listed running yet
    row = ContainerStatus("llm", "running", "vllm:1", service="llm-inference")
    status = rig.prober.overlay(AgentStatus((row,)))
    assert status.containers[0].health == "starting" and serving(status, frozenset()) == set()


def test_status_says_starting_and_for_how_long() -> None:
    from controller.cli.console import render_status  # noqa: PLC0415
    from tests.unit.test_observability import STATUS  # noqa: PLC0415

    row = {**STATUS["containers"][0], "starting_for": 42, "error": "GET /v1/models: HTTP 503"}
    text = render_status({**STATUS, "containers": [row]})
    assert "running (starting 42 s)" in text and "HTTP 503" in text


def test_a_warmup_runs_once_after_the_first_answer_before_ready() -> None:
    """Ollama pulls its model through its own API before it counts as ready (issue 22)."""
    from controller.core.models import Warmup  # noqa: PLC0415

    warm = Readiness("/api/tags", warmup=Warmup("/api/pull", '{"name": "llava:7b"}'))
    spec = ContainerSpec(
        "ocr", "ollama:1", ports=(PortMapping(8104, 8104),), network=NET, readiness=warm
    )
    pulls: list[str] = []
    outcomes = ["warm-up POST /api/pull: HTTP 500", ""]

    def warm_fn(address: str, port: int, w: Warmup) -> str:
        pulls.append(w.body)
        return outcomes.pop(0)

    now = [0.0]
    prober = ReadinessProber(
        threading.Event(), restart=lambda cid: None, clock=lambda: now[0],
        probe_fn=lambda *a: "", warm_fn=warm_fn,
    )  # fmt: skip
    prober.track([spec], [ActualContainer("o1", "ocr", "running", addresses=((NET, "10.9.0.3"),))])
    row = ContainerStatus("ocr", "running", "ollama:1")
    states = []
    for _ in range(3):
        prober.check_now()
        states.append(prober.overlay(AgentStatus((row,))).containers[0].health)
        now[0] += 10
    assert states == ["starting", "healthy", "healthy"] and len(pulls) == 2  # once it worked


def test_the_real_warmup(origin: int) -> None:
    from controller.clients.probes import warm_up  # noqa: PLC0415
    from controller.core.models import Warmup  # noqa: PLC0415

    assert warm_up("127.0.0.1", origin, Warmup("/api/pull", '{"name": "llava:7b"}', 5)) == ""
    assert warm_up("127.0.0.1", origin, Warmup("/api/pull", "{}", 5)).endswith("HTTP 500")
