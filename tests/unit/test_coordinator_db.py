"""The reference coordinator's registry across versions, on SQLite and PostgreSQL: a database
written before the services/tunnel/IP columns existed is upgraded on open, so registrations keep
working; the schema's version is recorded and each migration applied once (issue 25)."""

from __future__ import annotations

import contextlib
import sqlite3
from pathlib import Path

import pytest

from rma_coordinator.db import MIGRATIONS, VERSION, Beat, NewWorker, Registry
from rma_testkit.postgres import fresh_database


def test_a_database_of_an_older_coordinator_gets_the_new_columns(tmp_path: Path) -> None:
    """`make run` keeps its coordinator's database between runs: one written before the
    services/tunnel/IP columns existed must still take registrations."""
    path = tmp_path / "old.db"
    old = sqlite3.connect(path)
    old.executescript(
        "CREATE TABLE workers (id TEXT PRIMARY KEY, token_hash TEXT, tier INTEGER NOT NULL,"
        " capabilities TEXT NOT NULL, containers TEXT NOT NULL, generation INTEGER NOT NULL"
        " DEFAULT 1, status TEXT NOT NULL DEFAULT 'online', health TEXT, registered_at REAL NOT"
        " NULL, last_heartbeat REAL NOT NULL, current_load REAL, available_memory TEXT,"
        " reported TEXT, converged_generation INTEGER, heartbeats INTEGER NOT NULL DEFAULT 0);"
    )
    old.close()
    registry = Registry(path)
    worker = NewWorker("w-1", 2, {}, [], services=[{"name": "redis"}], ip_address="10.0.0.2")
    registry.add(worker, now=1.0)
    stored = registry.all()[0]
    assert stored.services == [{"name": "redis"}] and stored.ip_address == "10.0.0.2"
    registry.close()


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_the_schema_is_versioned_and_migrated_once(backend: str, tmp_path: Path) -> None:
    """A new database is brought to VERSION and says so; opened again, nothing is applied; a
    float keeps its precision on both back-ends (PostgreSQL's REAL would not)."""
    with contextlib.ExitStack() as stack:
        db = stack.enter_context(fresh_database()) if backend == "postgres" else tmp_path / "v.db"
        first = Registry(db)
        assert first.migrated_from == 0
        first.add(NewWorker("w-1", 2, {}, []), now=1764720000.123456)
        first.close()
        again = Registry(db)
        assert again.migrated_from == VERSION
        assert again.all()[0].registered_at == 1764720000.123456
        again.close()


def test_an_unversioned_database_is_recognised_and_recorded(tmp_path: Path) -> None:
    path = tmp_path / "before.db"
    old = sqlite3.connect(path)  # as a coordinator before versions left it: version 2's tables
    for _version, _what, statements in MIGRATIONS[:2]:
        for sql in statements:
            old.execute(sql.format(real="REAL"))
    old.commit()
    old.close()
    assert Registry(path).migrated_from == 0
    assert Registry(path).migrated_from == VERSION


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_heartbeats_are_kept_in_memory_and_written_together(backend: str, tmp_path: Path) -> None:
    """Each process keeps the heartbeats it answered and writes them in one transaction per
    flush: another process sharing the database sees them after the flush, this one at once."""
    with contextlib.ExitStack() as stack:
        db = stack.enter_context(fresh_database()) if backend == "postgres" else tmp_path / "b.db"
        here, there = Registry(db), Registry(db)
        for n in range(3):
            here.add(NewWorker(f"w-{n}", 2, {}, []), now=1.0)
        for at in (5.0, 6.0):
            for n in range(3):
                assert here.heartbeat(f"w-{n}", Beat(health="healthy"), now=at) == 1
        assert here.heartbeat("w-unknown", Beat(), now=6.0) is None
        assert {w.last_heartbeat for w in there.all()} == {1.0}  # not written yet
        assert here.flush() == 3 and here.flush() == 0
        seen = there.all()
        assert {(w.last_heartbeat, w.heartbeats, w.health) for w in seen} == {(6.0, 2, "healthy")}
        here.heartbeat("w-0", Beat(), now=7.0)
        assert here.get("w-0").last_heartbeat == 7.0  # type: ignore[union-attr]
        here.close()
        there.close()


def test_what_every_heartbeat_asks_is_kept_and_other_replicas_changes_drop_it() -> None:
    """A heartbeat's token and generation come from memory (read at start or once), not from
    two queries each; a change made by another process sharing the database — an assignment, a
    registration again with a new token, a worker removed or forgotten — reaches it by NOTIFY."""
    import threading  # noqa: PLC0415

    from rma_testkit.engine import wait_until  # noqa: PLC0415

    with fresh_database() as db:
        there = Registry(db)
        there.add(NewWorker("w-1", 2, {}, [], token_hash="h1"), now=1.0)
        here, stop, heard = Registry(db), threading.Event(), list[str]()
        assert here.listen(heard.append, stop)
        try:
            assert here.heartbeat("w-1", Beat(), now=2.0) == 1
            # behind its back (no NOTIFY): still what it kept — no query asked
            there._conn.execute("UPDATE workers SET generation = 7 WHERE id = ?", ("w-1",))
            assert here.heartbeat("w-1", Beat(), now=2.0) == 1
            assert here.token_hash("w-1", fresh=True) == (True, "h1")  # read again when asked
            assert here.heartbeat("w-1", Beat(), now=2.0) == 7
            there.set_assignment("w-1", [{"name": "redis"}])
            wait_until(lambda: here.heartbeat("w-1", Beat(), now=3.0) == 8, 5, "the new generation")
            wait_until(lambda: "w-1" in heard, 5, "its long polls woken too")
            there.add(NewWorker("w-1", 2, {}, [], token_hash="h2"), now=4.0)
            wait_until(lambda: here.token_hash("w-1") == (True, "h2"), 5, "the new token")
            there.remove("w-1")
            wait_until(lambda: here.heartbeat("w-1", Beat(), now=5.0) is None, 5, "it gone")
            there.add(NewWorker("w-2", 2, {}, [], token_hash="h3"), now=1.0)
            assert here.token_hash("w-2") == (True, "h3")
            here.flush()
            assert there.sweep(now=10_000.0, offline_after=10, forget_after=100) == (1, 1)
            wait_until(lambda: here.token_hash("w-2") == (False, None), 5, "it forgotten")
        finally:
            stop.set()
            here.close()
            there.close()


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_the_proxy_asks_only_for_the_workers_that_mention_a_service(
    backend: str, tmp_path: Path
) -> None:
    """`serving(name)` filters in the database (every worker decoded per proxied request took
    2.3 s at 100 000 workers); a name's `_` and `%` are literal."""
    with contextlib.ExitStack() as stack:
        db = stack.enter_context(fresh_database()) if backend == "postgres" else tmp_path / "s.db"
        registry = Registry(db)
        stack.callback(registry.close)
        for n, name in enumerate(("notes_coa", "notesXcoa", "rag", "ü-ocr")):
            services = [{"name": name, "service_url": f"http://10.0.0.{n}:80"}]
            registry.add(NewWorker(f"w-{n}", 2, {}, [], services=services), now=1.0)
        registry.heartbeat(
            "w-2", Beat(reported=[{"service": "ner", "service_url": "http://x"}]), now=2.0
        )
        assert [w.id for w in registry.serving("notes_coa")] == ["w-0"]
        assert [w.id for w in registry.serving("rag")] == ["w-2"]
        assert [w.id for w in registry.serving("ner")] == ["w-2"]
        assert [w.id for w in registry.serving("ü-ocr")] == ["w-3"]
        assert registry.serving("%") == [] and registry.serving("notes%") == []
        registry.sweep(now=1000.0, offline_after=10, forget_after=10_000)
        assert registry.serving("rag") == []  # offline: not a candidate


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_a_heartbeat_kept_from_before_a_registration_again_is_not_written_over_it(
    backend: str, tmp_path: Path
) -> None:
    """A worker withdrawing its services registers again without them; a heartbeat it sent just
    before, still kept in memory (here or on another replica), must not bring the URL back
    when it is written (CI: a withdrawn URL listed again)."""
    with contextlib.ExitStack() as stack:
        db = stack.enter_context(fresh_database()) if backend == "postgres" else tmp_path / "r.db"
        here, there = Registry(db), Registry(db)
        stack.callback(here.close)
        stack.callback(there.close)
        url = [{"service": "notes", "service_url": "http://10.0.0.1:80", "state": "running"}]
        for registry in (here, there):
            registry.add(NewWorker("w-1", 2, {}, []), now=1.0)
            registry.heartbeat("w-1", Beat(reported=url), now=5.0)
            there.add(NewWorker("w-1", 2, {}, [], services=[]), now=6.0)  # withdrawn
            here.flush()
            there.flush()
            row = here.get("w-1")
            assert row is not None and row.reported is None and row.registered_at == 6.0
