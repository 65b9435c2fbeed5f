"""The coordinator's worker registry in SQLite, so a restart does not forget the pool.

One connection in WAL mode behind a lock; every heartbeat is a single-row UPDATE (the deployed
coordinator rewrote its whole registry on each heartbeat, which capped it near 1 000 workers).
"""

from __future__ import annotations

import json
import sqlite3
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

SCHEMA = """
CREATE TABLE IF NOT EXISTS workers (
    id TEXT PRIMARY KEY,
    token_hash TEXT,
    tier INTEGER NOT NULL,
    capabilities TEXT NOT NULL,
    containers TEXT NOT NULL,
    generation INTEGER NOT NULL DEFAULT 1,
    status TEXT NOT NULL DEFAULT 'online',
    health TEXT,
    registered_at REAL NOT NULL,
    last_heartbeat REAL NOT NULL,
    current_load REAL,
    available_memory TEXT,
    reported TEXT,
    converged_generation INTEGER,
    heartbeats INTEGER NOT NULL DEFAULT 0,
    services TEXT,
    tunnel_url TEXT,
    ip_address TEXT,
    services_status TEXT,
    gpu_utilization REAL
);
CREATE TABLE IF NOT EXISTS retired (
    id TEXT PRIMARY KEY,
    token_hash TEXT NOT NULL
);
"""
# Columns added since the first schema: a database written by an older coordinator gets them on
# open (all nullable), so an upgrade never fails a registration.
ADDED = ("services TEXT", "tunnel_url TEXT", "ip_address TEXT", "services_status TEXT",
         "gpu_utilization REAL")  # fmt: skip
# Workers that left (unregistered or forgotten) keep their token hash here, so that the same
# machine can prove it held the id when it registers again (and nobody else can claim it).
_RETIRE = (
    "INSERT OR REPLACE INTO retired (id, token_hash) SELECT id, token_hash FROM workers"
    " WHERE token_hash IS NOT NULL AND "
)


@dataclass(frozen=True)
class NewWorker:
    """A worker as it registers: what is stored about it before its first heartbeat."""

    worker_id: str
    tier: int
    capabilities: dict[str, Any]
    containers: list[dict[str, Any]]
    token_hash: str | None = None
    services: list[dict[str, Any]] | None = None
    tunnel_url: str | None = None
    ip_address: str | None = None


@dataclass(frozen=True)
class Beat:
    """What one heartbeat reports (any dialect)."""

    health: str | None = None
    load: float | None = None
    memory: str | None = None
    reported: list[dict[str, Any]] | None = None
    converged: int | None = None
    services_status: dict[str, Any] | None = None
    gpu_utilization: float | None = None


@dataclass(frozen=True)
class Worker:
    id: str
    token_hash: str | None
    tier: int
    capabilities: dict[str, Any]
    containers: list[dict[str, Any]]
    generation: int
    status: str
    health: str | None
    registered_at: float
    last_heartbeat: float
    current_load: float | None
    available_memory: str | None
    reported: list[dict[str, Any]] | None
    converged_generation: int | None
    heartbeats: int
    services: list[dict[str, Any]] | None = None  # what the worker registered (Parts 3 and 4)
    tunnel_url: str | None = None
    ip_address: str | None = None
    services_status: dict[str, Any] | None = None
    gpu_utilization: float | None = None

    def public(self) -> dict[str, Any]:
        data = {k: v for k, v in self.__dict__.items() if k != "token_hash"}
        return data


def _worker(row: sqlite3.Row) -> Worker:
    data = dict(row)
    for key in ("capabilities", "containers", "reported", "services", "services_status"):
        data[key] = json.loads(data[key]) if data[key] is not None else None
    return Worker(**data)


class Registry:
    def __init__(self, path: Path | str) -> None:
        self._conn = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None)
        self._conn.row_factory = sqlite3.Row
        self._lock = threading.Lock()
        with self._lock:
            self._conn.execute("PRAGMA journal_mode=WAL")
            self._conn.execute("PRAGMA synchronous=NORMAL")
            self._conn.executescript(SCHEMA)
            have = {row["name"] for row in self._conn.execute("PRAGMA table_info(workers)")}
            for column in ADDED:
                if column.split()[0] not in have:
                    self._conn.execute(f"ALTER TABLE workers ADD COLUMN {column}")

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    def add(self, worker: NewWorker, *, now: float) -> None:
        with self._lock:
            self._conn.execute("DELETE FROM retired WHERE id = ?", (worker.worker_id,))
            self._conn.execute(
                "INSERT OR REPLACE INTO workers (id, token_hash, tier, capabilities, containers,"
                " registered_at, last_heartbeat, services, tunnel_url, ip_address)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    worker.worker_id,
                    worker.token_hash,
                    worker.tier,
                    json.dumps(worker.capabilities),
                    json.dumps(worker.containers),
                    now,
                    now,
                    json.dumps(worker.services) if worker.services is not None else None,
                    worker.tunnel_url,
                    worker.ip_address,
                ),
            )

    def get(self, worker_id: str) -> Worker | None:
        with self._lock:
            row = self._conn.execute("SELECT * FROM workers WHERE id = ?", (worker_id,)).fetchone()
        return _worker(row) if row else None

    def token_hash(self, worker_id: str) -> tuple[bool, str | None]:
        """(known, token hash) without reading the rest of the row (every request asks)."""
        with self._lock:
            row = self._conn.execute(
                "SELECT token_hash FROM workers WHERE id = ?", (worker_id,)
            ).fetchone()
        return (False, None) if row is None else (True, row[0])

    def exists(self, worker_id: str) -> bool:
        with self._lock:
            return (
                self._conn.execute("SELECT 1 FROM workers WHERE id = ?", (worker_id,)).fetchone()
                is not None
            )

    def heartbeat(self, worker_id: str, beat: Beat, *, now: float) -> int | None:
        """Record a heartbeat; the worker's assignment generation, or None if unknown."""
        with self._lock:
            row = self._conn.execute(
                "UPDATE workers SET last_heartbeat = ?, status = 'online', health = ?,"
                " current_load = ?, available_memory = ?, reported = ?,"
                " converged_generation = ?, heartbeats = heartbeats + 1,"
                " services_status = ?, gpu_utilization = ? WHERE id = ?"
                " RETURNING generation",
                (
                    now,
                    beat.health,
                    beat.load,
                    beat.memory,
                    json.dumps(beat.reported) if beat.reported is not None else None,
                    beat.converged,
                    json.dumps(beat.services_status) if beat.services_status is not None else None,
                    beat.gpu_utilization,
                    worker_id,
                ),
            ).fetchone()
        return int(row[0]) if row else None

    def remove(self, worker_id: str) -> bool:
        with self._lock:
            self._conn.execute(_RETIRE + "id = ?", (worker_id,))
            return self._conn.execute("DELETE FROM workers WHERE id = ?", (worker_id,)).rowcount > 0

    def retired_hash(self, worker_id: str) -> str | None:
        """The token hash a worker that left had, if it had one."""
        with self._lock:
            row = self._conn.execute(
                "SELECT token_hash FROM retired WHERE id = ?", (worker_id,)
            ).fetchone()
        return str(row[0]) if row else None

    def set_assignment(
        self, worker_id: str, containers: list[dict[str, Any]], tier: int | None = None
    ) -> int | None:
        with self._lock:
            row = self._conn.execute(
                "UPDATE workers SET containers = ?, tier = COALESCE(?, tier),"
                " generation = generation + 1 WHERE id = ? RETURNING generation",
                (json.dumps(containers), tier, worker_id),
            ).fetchone()
        return int(row[0]) if row else None

    def all(self) -> list[Worker]:
        with self._lock:
            rows = self._conn.execute("SELECT * FROM workers ORDER BY registered_at").fetchall()
        return [_worker(r) for r in rows]

    def counts(self) -> dict[str, int]:
        with self._lock:
            rows = self._conn.execute(
                "SELECT status, COUNT(*) FROM workers GROUP BY status"
            ).fetchall()
        return {str(r[0]): int(r[1]) for r in rows}

    def sweep(self, now: float, offline_after: float, forget_after: float) -> tuple[int, int]:
        """Mark silent workers offline and forget long-silent ones: (marked, forgotten)."""
        with self._lock:
            marked = self._conn.execute(
                "UPDATE workers SET status = 'offline' WHERE status = 'online'"
                " AND last_heartbeat < ?",
                (now - offline_after,),
            ).rowcount
            self._conn.execute(_RETIRE + "last_heartbeat < ?", (now - forget_after,))
            forgotten = self._conn.execute(
                "DELETE FROM workers WHERE last_heartbeat < ?", (now - forget_after,)
            ).rowcount
        return marked, forgotten
