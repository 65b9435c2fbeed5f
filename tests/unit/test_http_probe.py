"""A coordinator's container that says nothing of HTTP (issue 22, item 7): the agent asks its port
itself once it accepts, and tunnels it when it answers HTTP — without changing the service's own
spec (it joins its pair network from the start), so the service is not recreated; one that
answers something else, or nothing three times, is left TCP only."""

from __future__ import annotations

import socket
import socketserver
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from controller.clients.catalog import load_catalog
from controller.clients.probes import speaks_http
from controller.contract.assignment import resolve
from controller.contract.schema import parse_specs
from controller.core.containment import Containment, pair_network
from controller.core.models import ActualContainer, DesiredState
from controller.core.status import AgentStatus, ContainerStatus
from controller.core.tunnels import (
    ORIGIN,
    TUNNEL_FOR,
    asked_by_probe,
    defer_unstarted,
    with_tunnels,
)
from controller.engine.readiness import ReadinessProber

SHIPPED = load_catalog(None)
IMAGE = "cloudflare/cloudflared:2024.10.1"
UNKNOWN = {"name": "w-x", "image": "ghcr.io/rma/other:1", "port": 9000}


def held(answered: frozenset[str]) -> DesiredState:
    """The pipeline's order: tunnels, containment, then each pass the tunnels' wait."""
    entries, _ = resolve(SHIPPED, 2, [UNKNOWN], None)
    desired = DesiredState(tuple(parse_specs(entries)[0]))
    contained = Containment("i").apply_all(with_tunnels(desired, IMAGE))
    return defer_unstarted(contained, frozenset({"w-x"}), answered)


def test_only_entries_without_any_http_word_and_with_a_port_are_asked() -> None:
    said_no = {**UNKNOWN, "name": "w-no", "http": False}
    no_port = {"name": "w-np", "image": "ghcr.io/rma/other:1"}
    kept, _ = resolve(SHIPPED, 2, [UNKNOWN, said_no, no_port], None)
    specs = parse_specs(kept)[0]
    assert [asked_by_probe(s) for s in specs] == [True, False, False]
    part2, _ = resolve(SHIPPED, 2, [UNKNOWN], None, marks_http=True)
    assert part2 == [UNKNOWN]  # Part 2 says `http` itself: absent is false, nothing asked


def test_a_tunnel_is_made_once_it_answered_http_and_the_service_is_not_recreated() -> None:
    before, after = held(frozenset()), held(frozenset({"w-x"}))
    assert before.deferred == {"rma-tunnel-w-x"} and after.deferred == frozenset()
    assert before.specs == after.specs  # the service's spec (and hash) the same
    assert before.specs[0].joins == ((pair_network("i", "w-x"), ORIGIN),)
    tunnel = after.specs[1]
    assert tunnel.labels_dict == {TUNNEL_FOR: "w-x"}
    assert tunnel.joins == ((pair_network("i", "w-x"), ""),)


class Rig:
    def __init__(self, verdicts: list[str]) -> None:
        self.verdicts, self.asked = verdicts, 0
        self.changes = 0
        self.prober = ReadinessProber(
            threading.Event(),
            restart=lambda cid: None,
            on_change=self.changed,
            clock=lambda: self.now,
            probe_fn=lambda address, port, check, timeout: "",
            http_fn=self.ask,
        )
        self.now = 0.0
        spec = held(frozenset()).specs[0]
        actual = ActualContainer("c1", "w-x", "running", addresses=((spec.network, "10.9.0.2"),))
        self.prober.track([spec], [actual])

    def changed(self) -> None:
        self.changes += 1

    def ask(self, address: str, port: int, timeout: float) -> str:
        assert (address, port) == ("10.9.0.2", 9000)
        self.asked += 1
        return self.verdicts.pop(0)

    def probes(self, n: int) -> None:
        for _ in range(n):
            self.prober.check_now()
            self.now += 10.0


def test_an_answer_in_http_marks_it_once_and_says_so_in_status() -> None:
    rig = Rig(["", "http"])
    rig.probes(4)
    assert rig.asked == 2 and rig.prober.answered_http() == frozenset({"w-x"})
    assert rig.changes >= 2  # ready, then HTTP: each rings the loop
    row = ContainerStatus("w-x", "running", "ghcr.io/rma/other:1")
    shown = rig.prober.overlay(AgentStatus((row,))).containers[0]
    assert shown.http and shown.http_from == "probe" and shown.as_json()["http_from"] == "probe"


@pytest.mark.parametrize(("verdicts", "asked"), [(["other"], 1), (["", "", ""], 3)])
def test_another_protocol_or_silence_leaves_it_tcp_only(verdicts: list[str], asked: int) -> None:
    rig = Rig(list(verdicts))
    rig.probes(6)
    assert rig.asked == asked and rig.prober.answered_http() == frozenset()


class _Hello(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_response(404)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


class _Redisish(socketserver.BaseRequestHandler):
    def handle(self) -> None:
        self.request.recv(1024)
        self.request.sendall(b"-ERR unknown command 'GET'\r\n")


@pytest.fixture
def servers() -> Iterator[tuple[int, int, int]]:
    web = ThreadingHTTPServer(("127.0.0.1", 0), _Hello)
    other = socketserver.ThreadingTCPServer(("127.0.0.1", 0), _Redisish)
    silent = socket.create_server(("127.0.0.1", 0))  # accepts (backlog), never answers
    for s in (web, other):
        threading.Thread(target=s.serve_forever, daemon=True).start()
    try:
        yield web.server_address[1], other.server_address[1], silent.getsockname()[1]
    finally:
        for s in (web, other):
            s.shutdown()
            s.server_close()
        silent.close()


def test_the_real_ask_on_loopback(servers: tuple[int, int, int]) -> None:
    web, other, silent = servers
    assert speaks_http("127.0.0.1", web, 2.0) == "http"  # a 404 is HTTP all the same
    assert speaks_http("127.0.0.1", other, 2.0) == "other"
    assert speaks_http("127.0.0.1", silent, 0.2) == ""


def test_its_tunnel_found_running_counts_as_an_answer_and_a_waiting_one_is_not_shown() -> None:
    rig = Rig([])
    spec = held(frozenset()).specs[0]
    waiting = ContainerStatus("rma-tunnel-w-x", "waiting", IMAGE)
    row = ContainerStatus("w-x", "running", "ghcr.io/rma/other:1")
    shown = rig.prober.overlay(AgentStatus((row, waiting))).containers
    assert [c.name for c in shown] == ["w-x"]  # a tunnel that may never come: not listed
    tunnel = ActualContainer("t1", "rma-tunnel-w-x", "running")
    rig.prober.track([spec], [ActualContainer("c1", "w-x", "running"), tunnel])
    assert rig.prober.answered_http() == frozenset({"w-x"})  # the agent restarted: kept
