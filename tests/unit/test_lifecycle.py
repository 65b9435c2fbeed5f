"""The worker lifecycle against a scripted coordinator, on virtual time: register, resume,
forgotten, outage, long poll, unregister."""

from __future__ import annotations

import stat
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from controller.clients.store import Identity, StateStore, StoredAssignment
from controller.contract.api import AssignmentResponse
from controller.contract.catalog import Catalog
from controller.contract.schema import parse_specs
from controller.contract.services import Announcement, announce, at_host
from controller.core.errors import (
    TransientError,
)
from controller.membership.lifecycle import Lifecycle, Telling, Timing
from controller.membership.source import AssignmentSource
from rma_testkit.clock import ManualTime, VirtualClock
from rma_testkit.scripted import URL, WEB, FakeCoordinator

HOST = "127.0.0.1"


def digest(*entries: dict[str, Any]) -> str:
    """What a registration that announced these specs recorded."""
    return announce(parse_specs(list(entries))[0], at_host(HOST)).digest()


class Rig:
    def __init__(
        self,
        tmp_path: Path,
        coord: FakeCoordinator,
        long_poll_wait: float = 1,
        catalog: Catalog | None = None,
    ) -> None:
        self.coord = coord
        self.store = StateStore(tmp_path, "default")
        self.source = AssignmentSource(catalog=catalog)
        self.stop = threading.Event()
        self.changes = threading.Event()
        self.time = ManualTime()
        coord.clock = lambda: self.time.now
        self.life = Lifecycle(
            coord,
            self.store,
            self.source,
            Telling(
                capabilities=lambda: {"cpu_cores": 2, "ram": "4.0GB"},
                report=lambda: {"status": "healthy", "current_load": 0.1},
                announcement=self.announcement,
            ),
            stop=self.stop,
            on_change=self.changes.set,
            timing=Timing(long_poll_wait=long_poll_wait, clock=VirtualClock(self.time)),
        )

    def announcement(self) -> Announcement:
        desired = self.source.current()
        return announce(desired.specs if desired else (), at_host(HOST))

    def until(self, cond: Callable[[], Any]) -> None:
        """Let virtual time pass, 5 s a step (the heartbeat interval is the coordinator's
        30 s, registration retries 1 s doubling), until `cond` holds."""
        until(cond, self.time)


@pytest.fixture
def make(tmp_path: Path) -> Iterator[Callable[..., Rig]]:
    rigs: list[Rig] = []

    def build(long_poll_wait: float = 1, catalog: Catalog | None = None, **kw: Any) -> Rig:
        rig = Rig(tmp_path, FakeCoordinator(**kw), long_poll_wait, catalog)
        rigs.append(rig)
        return rig

    yield build
    for rig in rigs:
        rig.stop.set()
        rig.life.close()


def until(cond: Callable[[], Any], time: ManualTime | None = None) -> None:
    """Until `cond` holds: at most 500 steps of 10 ms real time, each also 5 s of virtual time,
    moved only once every thread waiting on the clock waits again (ManualTime.step: a thread at
    work is not overtaken by its own deadlines on a loaded machine)."""
    done = threading.Event()
    for _ in range(500):
        if cond():
            return
        if time is not None:
            time.step(5.0)
        done.wait(0.01)
    raise AssertionError("condition not met")


def test_fresh_start_registers_persists_and_heartbeats(make: Callable[..., Rig]) -> None:
    rig = make()
    rig.life.start()
    rig.until(lambda: rig.coord.count("heartbeat") >= 2)
    first = rig.coord.calls[0][1]
    assert first["capabilities"] == {"cpu_cores": 2, "ram": "4.0GB"}
    assert first["worker_id"] == rig.store.own_worker_id() and first["containers"] == []
    # What it runs now (the answer's `web`) is announced at once; this coordinator assigns ids,
    # so the first one is unregistered before the second registration: no ghost is left.
    assert [k for k, _ in rig.coord.calls[:3]] == ["register", "unregister", "register"]
    assert rig.coord.calls[1][1] == "worker-00000001" and rig.coord.count("register") == 2
    assert [c["name"] for c in rig.coord.calls[2][1]["containers"]] == ["web"]
    identity = rig.store.load_identity()
    assert identity == Identity(
        "worker-00000002", URL, None, None, "/api/worker/heartbeat", 30.0, digest(WEB)
    )
    assert stat.S_IMODE(rig.store.identity_path.stat().st_mode) == 0o600
    assert [s.name for s in rig.source.load().specs] == ["web"]
    hb = next(body for kind, body in rig.coord.calls if kind == "heartbeat")
    assert hb == {"worker_id": "worker-00000002", "status": "healthy", "current_load": 0.1}


def test_heartbeats_come_every_interval_of_virtual_time(make: Callable[..., Rig]) -> None:
    rig = make(long_poll_wait=0)  # only the lifecycle thread waits on the clock

    def settled(heartbeats: int) -> bool:
        return rig.coord.count("heartbeat") == heartbeats and rig.time.waiting == 1

    rig.life.start()
    # Registered twice at once: the second announces what the first answer made it run.
    until(lambda: rig.coord.count("register") == 2 and settled(0))
    rig.time.advance(29.9)
    threading.Event().wait(0.05)  # room for a wrong early heartbeat to happen
    assert settled(0)  # not before the coordinator's 30 s
    rig.time.advance(0.1)
    until(lambda: settled(1))
    rig.time.advance(30.0)
    until(lambda: settled(2))


def test_restart_reuses_the_identity_and_runs_the_stored_assignment(
    make: Callable[..., Rig],
) -> None:
    rig = make()
    rig.store.save_identity(Identity("worker-0000000a", URL, announced=digest(WEB)))
    rig.store.save_assignment(StoredAssignment(2, [WEB]))
    rig.life.start()
    rig.until(lambda: rig.coord.count("heartbeat") >= 2)
    assert rig.coord.count("register") == 0
    assert {b["worker_id"] for k, b in rig.coord.calls if k == "heartbeat"} == {"worker-0000000a"}
    assert [s.name for s in rig.source.load().specs] == ["web"]


def test_a_forgotten_worker_registers_again_at_once(make: Callable[..., Rig]) -> None:
    rig = make()
    rig.store.save_identity(Identity("worker-0000000a", URL, token="old-token"))
    rig.store.save_assignment(StoredAssignment(2, [WEB]))
    rig.coord.forgotten = True
    rig.life.start()
    rig.until(lambda: rig.coord.count("register") == 1)
    assert rig.coord.calls[1][1]["previous_worker_id"] == "worker-0000000a"
    assert rig.coord.register_tokens == ["old-token"]  # proves the old id is ours
    rig.until(lambda: getattr(rig.store.load_identity(), "worker_id", None) == "worker-00000001")


def test_coordinator_down_at_start_with_stored_state_keeps_running_it(
    make: Callable[..., Rig],
) -> None:
    rig = make()
    rig.store.save_identity(Identity("worker-0000000a", URL, announced=digest(WEB)))
    rig.store.save_assignment(StoredAssignment(2, [WEB]))
    rig.coord.down = 10**6
    rig.life.start()
    rig.until(lambda: rig.coord.count("heartbeat") >= 3)
    assert [s.name for s in rig.source.load().specs] == ["web"]  # runs meanwhile
    assert rig.coord.count("register") == 0
    rig.coord.down = 0
    rig.until(lambda: rig.coord.count("heartbeat") >= 6)
    assert rig.store.load_identity() == Identity("worker-0000000a", URL, announced=digest(WEB))


def test_coordinator_down_at_start_without_state_retries_registration(
    make: Callable[..., Rig],
) -> None:
    rig = make()
    rig.coord.down = 3
    rig.life.start()
    with pytest.raises(TransientError, match="waiting for the first assignment"):
        rig.source.load()
    rig.until(lambda: rig.store.load_identity() is not None)
    assert rig.coord.count("register") >= 4  # three refused, then answered


def test_part2_token_and_long_poll_bring_changes(make: Callable[..., Rig]) -> None:
    rig = make(part2=True)
    rig.coord.assignments = [
        AssignmentResponse(generation=1, tier=2, containers=[WEB], etag='"1"'),
        None,
        AssignmentResponse(
            generation=2, tier=2, containers=[WEB, {"name": "db", "image": "pg:16"}], etag='"2"'
        ),
    ]
    rig.life.start()
    rig.until(lambda: rig.source.generation == 2)
    assert rig.coord.token == "t-worker-00000001"
    assert {s.name for s in rig.source.load().specs} == {"db", "web"}
    stored = rig.store.load_assignment()
    assert stored is not None and (stored.generation, stored.etag) == (2, '"2"')
    fetches = [args for kind, args in rig.coord.calls if kind == "fetch"]
    assert fetches[0][1] is None and ('"1"' in [f[1] for f in fetches])
    rig.until(
        lambda: any(
            b.get("assignment_generation") == 2 for k, b in rig.coord.calls if k == "heartbeat"
        )
    )


def test_without_long_poll_the_heartbeat_hint_brings_changes(make: Callable[..., Rig]) -> None:
    rig = make(part2=True, long_poll_wait=0)
    rig.coord.assignments = [
        AssignmentResponse(generation=1, tier=2, containers=[WEB], etag='"1"'),
        AssignmentResponse(
            generation=2, tier=2, containers=[{"name": "db", "image": "pg:16"}], etag='"2"'
        ),
    ]
    rig.coord.hint = 1
    rig.life.start()
    rig.until(lambda: rig.source.generation == 1)
    rig.coord.hint = 2
    rig.until(lambda: rig.source.generation == 2)
    assert {s.name for s in rig.source.load().specs} == {"db"}
    assert all(args[2] == 0 for kind, args in rig.coord.calls if kind == "fetch")


def test_unregister_forgets_the_identity_and_keeps_it_on_failure(make: Callable[..., Rig]) -> None:
    rig = make()
    rig.store.save_identity(Identity("worker-0000000a", URL))
    rig.coord.down = 1
    assert rig.life.unregister() is False
    assert rig.store.load_identity() is not None
    assert rig.life.unregister() is True
    assert rig.store.load_identity() is None and rig.store.load_assignment() is None


def test_another_coordinator_means_a_new_registration(make: Callable[..., Rig]) -> None:
    rig = make()
    rig.store.save_identity(Identity("worker-0000000a", "http://old.test"))
    rig.life.start()
    rig.until(lambda: rig.coord.count("register") >= 1)
    assert rig.coord.calls[0][0] == "register"  # nothing was sent to the new one for the old id


def test_a_token_refused_three_times_registers_anew(make: Callable[..., Rig]) -> None:
    rig = make()
    rig.store.save_identity(Identity("worker-0000000a", URL, "stolen-away", announced=digest(WEB)))
    rig.store.save_assignment(StoredAssignment(2, [WEB]))
    rig.coord.refuse = 3
    rig.life.start()
    rig.until(lambda: rig.coord.count("register") == 1)
    assert rig.coord.count("heartbeat") == 3  # two refusals are borne, the third is not
    register = next(body for kind, body in rig.coord.calls if kind == "register")
    assert "previous_worker_id" not in register  # a fresh identity, not the refused one
    rig.until(lambda: getattr(rig.store.load_identity(), "worker_id", "") == "worker-00000001")


def test_an_unchanged_assignment_is_not_rewritten(make: Callable[..., Rig]) -> None:
    rig = make(part2=True)
    same = AssignmentResponse(generation=1, tier=2, containers=[WEB], etag='"1"')
    rig.coord.assignments = [same, same, same]
    writes: list[StoredAssignment] = []
    save = rig.store.save_assignment

    def counting(assignment: StoredAssignment) -> None:
        writes.append(assignment)
        save(assignment)

    rig.store.save_assignment = counting  # type: ignore[method-assign]
    rig.life.start()
    rig.until(lambda: not rig.coord.assignments)
    rig.until(lambda: rig.source.generation == 1)
    assert [w.generation for w in writes] == [None, 1]  # registration's, then the first fetch
