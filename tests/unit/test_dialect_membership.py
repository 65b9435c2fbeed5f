"""The membership against a scripted coordinator speaking each of Part 3's dialects, on virtual
time: the desired set from names or the catalog, registering again to announce what it runs,
a coordinator that forgets every registration, one that refuses it (4xx)."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from itertools import pairwise
from pathlib import Path
from typing import Any

import pytest
import structlog

from controller.clients.store import Identity, StoredAssignment
from controller.contract.catalog import Catalog
from rma_testkit.scripted import URL, WEB, FakeCoordinator
from tests.unit.test_lifecycle import Rig, digest, until

CATALOG = Catalog.from_data(
    {
        "services": {
            "notes-coa": {
                "tier": 2,
                "container": {"name": "rma-notes", "image": "i:1", "port": 8100},
            },
            "redis": {"tier": 3, "container": {"name": "rma-redis", "image": "r:1", "port": 6379}},
        }
    }
)
Make = Callable[..., Rig]


@pytest.fixture
def make(tmp_path: Path) -> Iterator[Make]:
    rigs: list[Rig] = []

    def build(catalog: Catalog | None = None, **kw: Any) -> Rig:
        rigs.append(Rig(tmp_path, FakeCoordinator(**kw), 1, catalog))
        return rigs[-1]

    yield build
    for rig in rigs:
        rig.stop.set()
        rig.life.close()


def edge(make: Make, **answer: object) -> Rig:
    """A coordinator that keeps the worker's id and answers `answer` (no assignment key: {})."""
    rig = make(catalog=CATALOG)
    rig.coord.assigns_ids = False
    rig.coord.answer = dict(answer)
    return rig


def names(rig: Rig) -> list[str]:
    return [s.name for s in rig.source.load().specs]


def test_no_assignment_key_runs_the_catalog_for_the_tier_and_announces_it(make: Make) -> None:
    rig = edge(make)
    rig.life.start()
    rig.until(lambda: rig.coord.count("register") == 2 and rig.coord.count("heartbeat") >= 1)
    assert names(rig) == ["rma-notes"]  # tier 2's, never "run nothing"
    first, second = (b for k, b in rig.coord.calls if k == "register")
    assert first["containers"] == [] and first["worker_id"] == rig.store.own_worker_id()
    assert [c["name"] for c in second["containers"]] == ["notes-coa"]
    assert second["worker_id"] == first["worker_id"]  # the same id again
    assert rig.coord.count("unregister") == 0  # nothing to unregister: the id is ours
    rig.time.advance(300)
    rig.until(lambda: rig.coord.count("heartbeat") >= 5)
    assert rig.coord.count("register") == 2  # announced once; heartbeats after that


def test_service_names_run_through_the_catalog_and_unknown_ones_are_reported(make: Make) -> None:
    rig = edge(make, assigned_services=["notes-coa", "document-processing"])
    rig.life.start()
    rig.until(lambda: rig.coord.count("register") == 2)
    desired = rig.source.load()
    assert [s.name for s in desired.specs] == ["rma-notes"]
    assert [(r.name, r.unknown_service) for r in desired.refused] == [("document-processing", True)]


def test_an_explicit_empty_list_runs_nothing_but_a_missing_key_never_does(make: Make) -> None:
    rig = edge(make, assigned_containers=[])
    rig.store.save_identity(Identity("worker-x", URL, announced=digest(WEB)))
    rig.store.save_assignment(StoredAssignment(2, [WEB]))
    rig.coord.forgotten = True
    rig.life.start()
    rig.until(lambda: rig.coord.count("register") >= 1 and names(rig) == [])
    rig.coord.answer = {}  # forgotten again, and this time it says nothing
    rig.coord.forgotten = True
    rig.until(lambda: names(rig) == ["rma-notes"])


def test_a_coordinator_that_forgets_every_registration_is_not_hammered(make: Make) -> None:
    rig = edge(make)
    rig.coord.test_mode = True
    with structlog.testing.capture_logs() as logs:
        rig.life.start()
        rig.until(lambda: rig.coord.count("register") >= 6)
    times = rig.coord.at("register")
    # The first registration, its announcement, then 30 s doubling between registrations
    # (each after the heartbeat interval that found the worker forgotten again).
    gaps = [b - a for a, b in pairwise(times[1:])]
    assert all(later > earlier for earlier, later in pairwise(gaps)), gaps
    assert gaps[0] >= 30 + 30 and gaps[-1] >= 30 + 240
    assert sum(1 for e in logs if e["event"] == "coordinator_forgets_worker") == 1
    assert "coordinator_forgets_worker" in (rig.life.notice or "")
    assert names(rig) == ["rma-notes"]  # the same desired set throughout: nothing touched


def test_the_backoff_ends_when_a_heartbeat_is_answered(make: Make) -> None:
    rig = edge(make)
    rig.coord.test_mode = True
    rig.life.start()
    rig.until(lambda: rig.life.notice is not None)
    rig.coord.test_mode = False
    rig.until(lambda: rig.coord.count("heartbeat") >= 2 and rig.life.notice is None)
    assert not rig.coord.forgotten


def test_a_refused_registration_is_retried_with_growing_waits(make: Make) -> None:
    rig = edge(make)
    rig.coord.refuse_register = 4
    with structlog.testing.capture_logs() as logs:
        rig.life.start()
        rig.until(lambda: rig.life.notice is not None)
        assert "Field required" in (rig.life.notice or "")
        rig.until(lambda: rig.coord.count("register") >= 5)
    times = rig.coord.at("register")
    assert times[4] - times[0] >= 15 + 30 + 60  # 30 s doubling, each drawn in [d/2, d]
    refused = [e for e in logs if e["event"] == "registration_refused"]
    assert len(refused) == 4 and refused[0]["status"] == 422
    assert "tunnel_url: Field required" in refused[0]["error"]
    rig.until(lambda: rig.life.notice is None)


def test_announcing_again_is_spaced_when_every_answer_changes_what_runs(make: Make) -> None:
    rig = make(catalog=CATALOG)  # assigns ids, like the service coordinator
    answers = iter(range(1000))

    def next_answer(body: object) -> None:
        rig.coord.answer = {"assigned_containers": [{**WEB, "port": 9000 + next(answers)}]}

    original = rig.coord.register

    def register(body: dict[str, object], *, token: str | None = None) -> object:
        next_answer(body)
        return original(body, token=token)

    rig.coord.register = register  # type: ignore[method-assign,assignment]
    rig.life.start()
    rig.until(lambda: rig.time.now >= 1800)
    # Without the spacing: one registration a tick (60 in 30 min); with it, a handful.
    assert rig.coord.count("register") <= 10
    assert rig.coord.count("unregister") == rig.coord.count("register") - 1  # no ghost left


def test_a_service_can_be_withdrawn_alone_where_the_coordinator_keeps_the_id(
    make: Make,
) -> None:
    rig = edge(make, assigned_containers=[WEB])
    rig.life.start()
    rig.until(lambda: rig.coord.count("register") == 2)
    assert rig.life.announced_containers() == {"web"}


def test_not_where_withdrawing_one_means_a_new_worker_id(make: Make) -> None:
    rig = make(catalog=CATALOG)  # the service coordinator: a new id per registration
    rig.life.start()
    rig.until(lambda: rig.coord.count("register") == 2)
    assert [s["name"] for s in rig.life.announced()] == ["web"]
    assert rig.life.announced_containers() == frozenset()


def test_a_state_change_is_told_at_once_only_when_the_announcement_changed(make: Make) -> None:
    rig = make(part2=True, catalog=CATALOG)  # Part 2: the heartbeat carries the URLs
    rig.life.start()
    rig.until(lambda: rig.coord.count("heartbeat") >= 1)
    rig.until(lambda: rig.time.waiting >= 1)
    beats = rig.coord.count("heartbeat")
    rig.life.states_changed()  # nothing announced changed: no heartbeat before the interval
    threading.Event().wait(0.2)
    assert rig.coord.count("heartbeat") == beats
    rig.source.set(2, [{**WEB, "port": 9090}], 2)  # now announced at another URL
    rig.life.states_changed()
    until(lambda: rig.coord.count("heartbeat") == beats + 1)  # real time only: no interval
    last = [b for k, b in rig.coord.calls if k == "heartbeat"][-1]
    assert last["worker_id"]


def test_state_changes_all_the_time_never_hold_back_the_heartbeat(make: Make) -> None:
    rig = make(part2=True, catalog=CATALOG)
    rig.life.start()
    rig.until(lambda: rig.coord.count("heartbeat") >= 1)
    beats = rig.coord.count("heartbeat")
    for _ in range(40):  # a crash-looping container: a new state every 2 s for 80 s
        rig.life.states_changed()
        threading.Event().wait(0.01)
        rig.time.advance(2.0)
    until(lambda: rig.coord.count("heartbeat") >= beats + 2)  # every 30 s all the same
