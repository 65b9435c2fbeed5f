"""The reference coordinator's SQLite registry across versions: a database written before the
services/tunnel/IP columns existed is upgraded on open, so registrations keep working."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from rma_coordinator.db import NewWorker, Registry


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
