"""No coordinator answer can make the agent spin: heartbeats no faster than every 5 s, a long poll
answered early spaced a second or more (backing off), and no long poll at all without an ETag.
On virtual time: a test speaks in seconds and takes milliseconds."""

from __future__ import annotations

import threading
from pathlib import Path

from controller.clients.store import Identity, StateStore
from controller.contract.api import AssignmentResponse
from controller.core.backoff import Delays
from controller.membership.longpoll import AssignmentPoller
from controller.membership.source import AssignmentSource
from controller.membership.standing import Shared, heartbeat_interval
from rma_testkit.clock import ManualTime
from rma_testkit.scripted import URL, WEB, FakeCoordinator

IDENTITY = Identity("worker-1", URL, "t", "/api/worker/worker-1/assignment", None, 0.001)


def test_a_coordinators_heartbeat_interval_is_raised_to_5_s(tmp_path: Path) -> None:
    assert heartbeat_interval(0.001) == 5.0 and heartbeat_interval(None) == 30.0
    shared = Shared(
        StateStore(tmp_path, "w"),
        AssignmentSource(),
        on_change=lambda: None,
        heartbeat_override=None,
    )
    shared.adopt(IDENTITY)
    assert shared.standing.interval == 5.0
    owners = Shared(
        StateStore(tmp_path, "w"),
        AssignmentSource(),
        on_change=lambda: None,
        heartbeat_override=0.5,
    )
    owners.adopt(IDENTITY)
    assert owners.standing.interval == 0.5  # the owner's own setting is theirs to choose


class Rig:
    def __init__(self, tmp_path: Path, answers: list[AssignmentResponse | None]) -> None:
        self.coord = FakeCoordinator(part2=True)
        self.coord.poll_gate.set()  # every long poll answers at once
        self.coord.assignments = answers
        self.time = ManualTime()
        self.stop = threading.Event()
        self.shared = Shared(
            StateStore(tmp_path, "w"),
            AssignmentSource(),
            on_change=lambda: None,
            heartbeat_override=None,
            wait=self.time.wait,
        )
        self.shared.adopt(IDENTITY)
        poller = AssignmentPoller(
            self.coord,
            self.shared,
            stop=self.stop,
            wait=55,
            delays=Delays(base=1.0, cap=60.0),
            clock=lambda: self.time.now,
        )
        self.thread = threading.Thread(target=poller.run, daemon=True)
        self.thread.start()

    def run_for(self, seconds: float) -> None:
        """Virtual seconds, one at a time, each given 20 ms of real time to act on."""
        pause = threading.Event()
        for _ in range(int(seconds)):
            self.time.advance(1.0)
            pause.wait(0.02)
        self.stop.set()
        self.time.advance(3600)
        self.thread.join(5)


def test_a_long_poll_answered_at_once_is_spaced_and_backs_off(tmp_path: Path) -> None:
    first = AssignmentResponse(generation=1, tier=2, containers=[WEB], etag='"1"')
    rig = Rig(tmp_path, [first])
    rig.run_for(120)
    fetches = rig.coord.count("fetch")
    assert 3 <= fetches <= 20, fetches  # not 22 326 in 23 s: at most ~1/s, then backing off


def test_without_an_etag_the_long_poll_stops_and_the_hint_is_used(tmp_path: Path) -> None:
    no_etag = AssignmentResponse(generation=1, tier=2, containers=[WEB])
    rig = Rig(tmp_path, [no_etag, no_etag, no_etag])
    rig.run_for(30)
    assert rig.coord.count("fetch") == 1 and not rig.thread.is_alive()
    assert rig.shared.source.generation == 1  # the answer itself was taken


def test_changes_answered_at_once_are_spaced_but_not_backed_off(tmp_path: Path) -> None:
    changes = [
        AssignmentResponse(generation=g, tier=2, containers=[WEB], etag=f'"{g}"')
        for g in range(1, 200)
    ]
    rig = Rig(tmp_path, changes)  # type: ignore[arg-type]
    rig.run_for(30)
    fetches = rig.coord.count("fetch")
    assert 20 <= fetches <= 32, fetches  # about one a second: spaced, never slower
