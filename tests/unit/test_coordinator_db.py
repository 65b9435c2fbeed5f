"""The reference coordinator's SQLite registry across versions: a database written before the
services/tunnel/IP columns existed is upgraded on open, so registrations keep working."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from rma_coordinator.db import Registry


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
    registry.add("w-1", token_hash=None, tier=2, capabilities={}, containers=[], now=1.0,
                 services=[{"name": "redis"}], tunnel_url="", ip_address="10.0.0.2")  # fmt: skip
    worker = registry.all()[0]
    assert worker.services == [{"name": "redis"}] and worker.ip_address == "10.0.0.2"
    registry.close()
