"""The coordinator's worker registry, so a restart does not forget the pool: SQLite (a file, the
default: `make run` needs no database server) or PostgreSQL (`--db postgresql://…`: several
coordinator processes can share one pool, issue 25).

One connection behind a lock per process; every heartbeat is a single-row UPDATE (the deployed
coordinator rewrote its whole registry on each heartbeat, which capped it near 1 000 workers).
The schema is versioned: MIGRATIONS are applied in order and the version reached is recorded in
`schema_version` (under an advisory lock on PostgreSQL, so replicas starting together migrate
once). A SQLite file written before versions existed is recognised and brought up to date.
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

# Each migration: (version, what it adds, its statements; {real} is the float column type).
MIGRATIONS: tuple[tuple[int, str, tuple[str, ...]], ...] = (
    (1, "workers and the retired ids", (
        "CREATE TABLE IF NOT EXISTS workers (id TEXT PRIMARY KEY, token_hash TEXT,"
        " tier INTEGER NOT NULL, capabilities TEXT NOT NULL, containers TEXT NOT NULL,"
        " generation INTEGER NOT NULL DEFAULT 1, status TEXT NOT NULL DEFAULT 'online',"
        " health TEXT, registered_at {real} NOT NULL, last_heartbeat {real} NOT NULL,"
        " current_load {real}, available_memory TEXT, reported TEXT,"
        " converged_generation INTEGER, heartbeats INTEGER NOT NULL DEFAULT 0)",
        "CREATE TABLE IF NOT EXISTS retired (id TEXT PRIMARY KEY, token_hash TEXT NOT NULL)",
    )),
    (2, "what a worker registered, its tunnel and address, its services' states, its GPU use", (
        "ALTER TABLE workers ADD COLUMN services TEXT",
        "ALTER TABLE workers ADD COLUMN tunnel_url TEXT",
        "ALTER TABLE workers ADD COLUMN ip_address TEXT",
        "ALTER TABLE workers ADD COLUMN services_status TEXT",
        "ALTER TABLE workers ADD COLUMN gpu_utilization {real}",
    )),
    (3, "credits: what each worker was seen running since when, the requests the proxy routed,"
        " the receipts and each contributor's chain (issue 26)", (
        "ALTER TABLE workers ADD COLUMN seen_since {real}",
        "ALTER TABLE workers ADD COLUMN seen_services TEXT",
        "CREATE TABLE presence (worker_id TEXT NOT NULL, services TEXT NOT NULL,"
        " since {real} NOT NULL, until {real} NOT NULL)",
        "CREATE INDEX presence_worker ON presence (worker_id, until)",
        "CREATE TABLE witnessed (worker_id TEXT NOT NULL, service TEXT NOT NULL,"
        " minute INTEGER NOT NULL, requests INTEGER NOT NULL,"
        " PRIMARY KEY (worker_id, service, minute))",
        "CREATE TABLE contributors (worker_id TEXT PRIMARY KEY, public_key TEXT,"
        " display_name TEXT, contributor_hash TEXT, tier INTEGER NOT NULL DEFAULT 4,"
        " ceiling_w {real} NOT NULL DEFAULT 0, seq INTEGER NOT NULL DEFAULT 0,"
        " hash TEXT NOT NULL DEFAULT '" + "0" * 64 + "', end_at {real} NOT NULL DEFAULT 0,"
        " over_claims INTEGER NOT NULL DEFAULT 0, chain_breaks INTEGER NOT NULL DEFAULT 0,"
        " impossible_energy INTEGER NOT NULL DEFAULT 0, held INTEGER NOT NULL DEFAULT 0)",
        "CREATE TABLE receipts (worker_id TEXT NOT NULL, seq INTEGER NOT NULL,"
        " hash TEXT NOT NULL, start_at {real} NOT NULL, end_at {real} NOT NULL,"
        " body TEXT NOT NULL, ready_claimed {real} NOT NULL, ready_credited {real} NOT NULL,"
        " requests_claimed INTEGER NOT NULL, requests_witnessed INTEGER NOT NULL,"
        " requests_credited INTEGER NOT NULL, energy_wh {real} NOT NULL,"
        " credits {real} NOT NULL, flags TEXT NOT NULL, received_at {real} NOT NULL,"
        " PRIMARY KEY (worker_id, seq))",
        "CREATE INDEX receipts_end ON receipts (end_at)",
    )),
    (4, "a worker's token before its last registration (an answer lost to a crash)", (
        "ALTER TABLE workers ADD COLUMN previous_token_hash TEXT",
    )),
)  # fmt: skip
VERSION = MIGRATIONS[-1][0]
# Workers that left (unregistered or forgotten) keep their token hash here, so that the same
# machine can prove it held the id when it registers again (and nobody else can claim it).
_RETIRE = (
    "INSERT INTO retired (id, token_hash) SELECT id, token_hash FROM workers"
    " WHERE token_hash IS NOT NULL AND {where}"
    " ON CONFLICT (id) DO UPDATE SET token_hash = excluded.token_hash"
)


class Rows(Protocol):
    @property
    def rowcount(self) -> int: ...

    def fetchone(self) -> Any: ...
    def fetchall(self) -> list[Any]: ...


class Backend(Protocol):
    """One database connection; statements are written with `?` placeholders."""

    real: str  # the float column type

    def execute(self, sql: str, params: Sequence[Any] = ()) -> Rows: ...
    def batch(self, sql: str, rows: Sequence[Sequence[Any]]) -> None: ...  # one transaction
    def batches(self, steps: Sequence[tuple[str, Sequence[Sequence[Any]]]]) -> None: ...
    def columns(self, table: str) -> set[str]: ...
    def migrating(self) -> contextlib.AbstractContextManager[None]: ...
    def transaction(self) -> contextlib.AbstractContextManager[None]: ...
    def close(self) -> None: ...


class Sqlite:
    real = "REAL"

    def __init__(self, path: str) -> None:
        self._conn = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._conn.row_factory = sqlite3.Row
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute("PRAGMA synchronous=NORMAL")

    def execute(self, sql: str, params: Sequence[Any] = ()) -> Rows:
        return self._conn.execute(sql, tuple(params))

    def batch(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        self.batches([(sql, rows)])

    def batches(self, steps: Sequence[tuple[str, Sequence[Sequence[Any]]]]) -> None:
        """Each statement over its rows, all in one transaction."""
        with self.transaction():
            for sql, rows in steps:
                if rows:
                    self._conn.executemany(sql, rows)

    def columns(self, table: str) -> set[str]:
        return {str(row["name"]) for row in self._conn.execute(f"PRAGMA table_info({table})")}

    def migrating(self) -> contextlib.AbstractContextManager[None]:
        return contextlib.nullcontext()  # one process owns the file

    @contextlib.contextmanager
    def transaction(self) -> Iterator[None]:
        self._conn.execute("BEGIN")
        try:
            yield
        except BaseException:
            self._conn.execute("ROLLBACK")
            raise
        self._conn.execute("COMMIT")

    def close(self) -> None:
        self._conn.close()


class Postgres:
    real = "DOUBLE PRECISION"  # REAL is 4 bytes there: a timestamp would lose its seconds

    def __init__(self, url: str) -> None:
        import psycopg  # noqa: PLC0415 (PostgreSQL only)
        from psycopg.rows import dict_row  # noqa: PLC0415

        self.url = url
        self._conn: Any = psycopg.connect(url, autocommit=True, row_factory=dict_row)

    def execute(self, sql: str, params: Sequence[Any] = ()) -> Rows:
        rows: Rows = self._conn.execute(sql.replace("?", "%s"), tuple(params))
        return rows

    def batch(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        self.batches([(sql, rows)])

    def batches(self, steps: Sequence[tuple[str, Sequence[Sequence[Any]]]]) -> None:
        with self._conn.transaction(), self._conn.cursor() as cursor:
            for sql, rows in steps:
                if rows:
                    cursor.executemany(sql.replace("?", "%s"), rows)

    def columns(self, table: str) -> set[str]:
        found = self.execute(
            "SELECT column_name FROM information_schema.columns"
            " WHERE table_name = ? AND table_schema = current_schema()",
            (table,),
        ).fetchall()
        return {str(r["column_name"]) for r in found}

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        self.execute("SELECT pg_advisory_lock(7107)")  # replicas that start together
        try:
            yield
        finally:
            self.execute("SELECT pg_advisory_unlock(7107)")

    def migrating(self) -> contextlib.AbstractContextManager[None]:
        return self._locked()

    def transaction(self) -> contextlib.AbstractContextManager[None]:
        return self._conn.transaction()  # type: ignore[no-any-return]

    def close(self) -> None:
        self._conn.close()


def is_postgres(db: Path | str) -> bool:
    return str(db).startswith(("postgresql://", "postgres://"))


def migrate(db: Backend) -> int:
    """Bring the schema to VERSION; the version it had recorded (0: new, or older than versions:
    such a SQLite file keeps its tables and gets the columns it lacks)."""
    with db.migrating():
        db.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
        row = db.execute("SELECT MAX(version) AS v FROM schema_version").fetchone()
        found = int(row["v"]) if row is not None and row["v"] is not None else 0
        start, have = found, db.columns("workers")
        if not found and have:
            for sql in MIGRATIONS[0][2]:  # CREATE TABLE IF NOT EXISTS: what it lacks
                db.execute(sql.format(real=db.real))
            for sql in MIGRATIONS[1][2]:  # ALTER TABLE workers ADD COLUMN <name> <type>
                if sql.split()[5] not in have:
                    db.execute(sql.format(real=db.real))
            start = 2
        for version, _what, statements in MIGRATIONS:
            if version > start:
                for sql in statements:
                    db.execute(sql.format(real=db.real))
        if found < VERSION:
            db.execute("DELETE FROM schema_version")
            db.execute("INSERT INTO schema_version (version) VALUES (?)", (VERSION,))
    return found


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
    seen_since: float | None = None  # running what it runs now, as heartbeats said, since
    seen_services: str | None = None
    previous_token_hash: str | None = None

    def public(self) -> dict[str, Any]:
        data = {k: v for k, v in self.__dict__.items() if "token" not in k}
        return data


def _worker(row: Any) -> Worker:
    data = dict(row)
    for key in ("capabilities", "containers", "reported", "services", "services_status"):
        data[key] = json.loads(data[key]) if data[key] is not None else None
    return Worker(**data)


def _like(text: str) -> str:
    """`text` matched literally by LIKE ... ESCAPE '\\'."""
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def running(
    reported: list[dict[str, Any]] | None, states: dict[str, Any] | None = None
) -> str | None:
    """The names (container and service) a heartbeat reports running and serving (not said to
    be starting or unhealthy in its `services_status`), as the JSON kept in `seen_services`;
    None: it reports no containers (a Part 1 heartbeat)."""
    if reported is None:
        return None
    names: set[str] = set()
    for row in reported:
        if not isinstance(row, dict) or row.get("state") != "running":
            continue
        said = (states or {}).get(str(row.get("service") or row.get("name")), "healthy")
        if said == "healthy":
            names.update(str(row[k])[:100] for k in ("name", "service") if row.get(k))
    return json.dumps(sorted(names))


CHANNEL = "rma_assignment"  # PostgreSQL: a worker changed (its id): assignment, token, gone
EVERYONE = "*"  # on CHANNEL: workers were forgotten (or notices may have been missed)


def _listen(
    url: str, on_change: Callable[[str], None], stop: threading.Event, ready: threading.Event
) -> None:
    """Each NOTIFY on CHANNEL, to `on_change`, until `stop`; `ready` set once listening; a lost
    connection is opened again (after 1 s: a restarting server is not hammered)."""
    import psycopg  # noqa: PLC0415

    while not stop.is_set():
        try:
            with psycopg.connect(url, autocommit=True) as conn:
                conn.execute(f"LISTEN {CHANNEL}")
                on_change(EVERYONE)  # what was said while not listening is not known
                ready.set()
                while not stop.is_set():
                    for note in conn.notifies(timeout=0.5):
                        on_change(note.payload)
        except psycopg.Error:
            stop.wait(1.0)


class Registry:
    def __init__(self, db: Path | str) -> None:
        self._conn: Backend = Postgres(str(db)) if is_postgres(db) else Sqlite(str(db))
        self._lock = threading.Lock()
        self._pending: dict[str, tuple[Any, ...]] = {}  # heartbeats not written yet: rows
        # What every heartbeat asks (token hash, generation), per worker id, read once and kept
        # until a change in this process or a NOTIFY from another replica drops it: without it
        # each heartbeat cost two round trips to PostgreSQL, most of a replica's time.
        self._known: dict[str, tuple[str | None, int]] = {}
        # `_known` and `_pending` have a lock of their own: a heartbeat never waits for a
        # statement on the connection (a sweep of 100 000 rows held it for a quarter second).
        self._mem = threading.Lock()
        self._drops = 0  # how many times something kept was dropped (a read racing one is not kept)
        self._seen: dict[str, tuple[str, float]] = {}  # what each worker ran, when (the writer's)
        self.presence_gap = 90.0  # silent longer: what it ran ended (the app sets offline_after)
        with self._lock:
            self.migrated_from = migrate(self._conn)
            self._load_known()
        # The heartbeats are written on a connection of their own, outside the lock every
        # request takes: a flush of thousands of rows never holds a heartbeat's answer back.
        self._writer: Backend = Postgres(str(db)) if is_postgres(db) else Sqlite(str(db))
        self._write_lock = threading.Lock()

    def listen(self, on_change: Callable[[str], None], stop: threading.Event) -> bool:
        """Hear, on a thread of its own, that another process sharing this database changed a
        worker's assignment (PostgreSQL's LISTEN/NOTIFY); False: nothing to hear (SQLite: one
        process owns the file). Returns once listening (at most 5 s: PostgreSQL slow to answer
        is heard later), so no change made after it is missed."""
        if not isinstance(self._conn, Postgres):
            return False
        ready = threading.Event()

        def heard(worker_id: str) -> None:
            self._drop(worker_id)
            if worker_id != EVERYONE:
                on_change(worker_id)

        threading.Thread(
            target=_listen, args=(self._conn.url, heard, stop, ready), name="listen", daemon=True
        ).start()
        ready.wait(5.0)
        return True

    def _drop(self, worker_id: str) -> None:
        """Forget what is kept of a worker (EVERYONE: of all of them); read again when asked."""
        if worker_id == EVERYONE:
            with self._lock:
                self._load_known()
        else:
            self._forget_kept(worker_id)

    def _forget_kept(self, *worker_ids: str) -> None:
        with self._mem:
            self._drops += 1
            for worker_id in worker_ids:
                self._known.pop(worker_id, None)

    def _load_known(self) -> None:
        """Under the lock: every worker's (token hash, generation), read in one query — at start
        (a restarted replica answers the pool's first heartbeats without a query each: ~0.2 s
        for 100 000) and when workers were forgotten."""
        with self._mem:
            drops = self._drops
        rows = self._conn.execute("SELECT id, token_hash, generation FROM workers").fetchall()
        known = {r["id"]: (r["token_hash"], int(r["generation"])) for r in rows}
        with self._mem:
            self._drops += 1  # a read racing this one is not kept either
            if drops == self._drops - 1:
                self._known = known
            else:  # dropped while reading: keep nothing, read each again when asked
                self._known = {}

    def _lookup(self, worker_id: str) -> tuple[str | None, int] | None:
        """(token hash, generation) of a registered worker, or None: as kept, else read (under
        the connection's lock) and kept — unless something was dropped meanwhile."""
        with self._mem:
            hit, drops = self._known.get(worker_id), self._drops
        if hit is not None:
            return hit
        with self._lock:
            row = self._conn.execute(
                "SELECT token_hash, generation FROM workers WHERE id = ?", (worker_id,)
            ).fetchone()
        if row is None:
            return None
        hit = (row["token_hash"], int(row["generation"]))
        with self._mem:
            if drops == self._drops:
                self._known[worker_id] = hit
        return hit

    def _announce(self, worker_id: str) -> None:
        """Tell every process sharing the database (itself included) that it changed."""
        if isinstance(self._conn, Postgres):
            self._conn.execute("SELECT pg_notify(?, ?)", (CHANNEL, worker_id))

    def close(self) -> None:
        with self._lock:
            self._flush()
            self._conn.close()
            self._writer.close()

    def add(self, worker: NewWorker, *, now: float) -> None:
        """Register `worker` (again: its row replaced; the token it had is kept as its previous
        one, which proves the id once more — an agent killed before saving the answer holds it)."""
        with self._lock:
            self._conn.execute("DELETE FROM retired WHERE id = ?", (worker.worker_id,))
            had = self._conn.execute(
                "SELECT token_hash FROM workers WHERE id = ?", (worker.worker_id,)
            ).fetchone()
            self._conn.execute("DELETE FROM workers WHERE id = ?", (worker.worker_id,))
            self._conn.execute(
                "INSERT INTO workers (id, token_hash, tier, capabilities, containers,"
                " registered_at, last_heartbeat, services, tunnel_url, ip_address,"
                " previous_token_hash) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
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
                    had["token_hash"] if had is not None else None,
                ),
            )
            self._announce(worker.worker_id)  # its token may be new: other replicas forget it
        self._forget_kept(worker.worker_id)
        with self._mem:  # what it said before registering again is older than the registration
            self._pending.pop(worker.worker_id, None)

    def add_many(self, workers: list[NewWorker], *, now: float) -> None:
        """New workers in one transaction (an import, a benchmark's simulated pool)."""
        caps = [json.dumps(w.capabilities) for w in workers]
        held = [json.dumps(w.containers) for w in workers]
        rows = [
            (w.worker_id, w.token_hash, w.tier, c, h, now, now)
            for w, c, h in zip(workers, caps, held, strict=True)
        ]
        with self._lock, self._write_lock:
            self._writer.batch(
                "INSERT INTO workers (id, token_hash, tier, capabilities, containers,"
                " registered_at, last_heartbeat) VALUES (?, ?, ?, ?, ?, ?, ?)",
                rows,
            )
        self._forget_kept(*(w.worker_id for w in workers))

    @contextlib.contextmanager
    def connection(self) -> Iterator[Backend]:
        """The connection, to itself (the heartbeats kept written first), for one transaction:
        the credits ledger's (ledger.py)."""
        with self._lock:
            self._flush()
            with self._conn.transaction():
                yield self._conn

    def write(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        """Rows written on the heartbeats' connection, in one transaction (the ledger's
        witnessed counts, with the flush)."""
        with self._write_lock:
            self._writer.batch(sql, rows)

    def get(self, worker_id: str) -> Worker | None:
        with self._lock:
            self._flush()
            row = self._conn.execute("SELECT * FROM workers WHERE id = ?", (worker_id,)).fetchone()
        return _worker(row) if row else None

    def token_hash(self, worker_id: str, *, fresh: bool = False) -> tuple[bool, str | None]:
        """(known, token hash), as kept (every request asks), or `fresh` from the database (a
        token that does not match may be one another replica has just issued)."""
        if fresh:
            self._drop(worker_id)
        hit = self._lookup(worker_id)
        return (False, None) if hit is None else (True, hit[0])

    def heartbeat(self, worker_id: str, beat: Beat, *, now: float) -> int | None:
        """Record a heartbeat; the worker's assignment generation, or None if unknown. The beat
        is kept in this process's memory, as the row it will write (serialised here, spread
        over the requests), and written with the others by `flush` (several times a second: one
        transaction for all of them, not one per heartbeat); this process's own reads flush
        first, so they always see it."""
        row = (
            now,
            beat.health,
            beat.load,
            beat.memory,
            json.dumps(beat.reported) if beat.reported is not None else None,
            beat.converged,
            json.dumps(beat.services_status) if beat.services_status is not None else None,
            beat.gpu_utilization,
            running(beat.reported, beat.services_status),
        )
        found = self._lookup(worker_id)
        if found is None:
            return None
        with self._mem:
            count = self._pending[worker_id][-1] if worker_id in self._pending else 0
            self._pending[worker_id] = (*row, count + 1)
        return found[1]

    def flush(self) -> int:
        """Write the heartbeats kept since the last flush; how many workers they were."""
        with self._mem:
            pending, self._pending = self._pending, {}
        with self._write_lock:
            return self._write(pending)

    def _flush(self) -> int:
        """Under the lock, before this process reads or sweeps: what it kept, written (after any
        flush still writing)."""
        with self._mem:
            pending, self._pending = self._pending, {}
        with self._write_lock:
            return self._write(pending)

    def _write(self, pending: dict[str, tuple[Any, ...]]) -> int:
        """The kept heartbeats in one transaction: first each interval of what a worker ran that
        ended (it runs something else now, or it was silent longer than `presence_gap`) is
        closed into `presence` — only for workers this process did not see running the same
        shortly before: most heartbeats change nothing there —, then every worker's row: unless
        it registered again after that heartbeat (on any replica), whose row then says older
        things than the registration (a withdrawn URL came back)."""
        if not pending:
            return 0
        gap, closing, rows = self.presence_gap, [], []
        for worker_id, row in pending.items():
            now, services = row[0], row[8]
            if services is not None:
                before = self._seen.get(worker_id)
                if before is None or before[0] != services or now - before[1] > gap:
                    closing.append((worker_id, services, now - gap))
                self._seen[worker_id] = (services, now)
            rows.append(
                (*row[:8], services, services, now - gap, now, services, row[9], worker_id, now)
            )
        self._writer.batches(
            [
                (
                    "INSERT INTO presence (worker_id, services, since, until)"
                    " SELECT id, seen_services, seen_since, last_heartbeat FROM workers"
                    " WHERE id = ? AND seen_services IS NOT NULL AND seen_since IS NOT NULL"
                    " AND (seen_services <> ? OR last_heartbeat < ?)",
                    closing,
                ),
                (
                    "UPDATE workers SET last_heartbeat = ?, status = 'online', health = ?,"
                    " current_load = ?, available_memory = ?, reported = ?,"
                    " converged_generation = ?, services_status = ?, gpu_utilization = ?,"
                    " seen_since = CASE WHEN CAST(? AS TEXT) IS NULL THEN seen_since"
                    " WHEN seen_services IS NULL OR seen_services <> ? OR last_heartbeat < ?"
                    " THEN ? ELSE seen_since END,"
                    " seen_services = COALESCE(?, seen_services),"
                    " heartbeats = heartbeats + ? WHERE id = ? AND registered_at <= ?",
                    rows,
                ),
            ]
        )
        return len(pending)

    def remove(self, worker_id: str) -> bool:
        with self._lock:
            self._conn.execute(_RETIRE.format(where="id = ?"), (worker_id,))
            gone = self._conn.execute("DELETE FROM workers WHERE id = ?", (worker_id,)).rowcount
            self._announce(worker_id)
        self._forget_kept(worker_id)
        return gone > 0

    def previous_hash(self, worker_id: str) -> str | None:
        """The token a registered worker had before its last registration."""
        with self._lock:
            row = self._conn.execute(
                "SELECT previous_token_hash FROM workers WHERE id = ?", (worker_id,)
            ).fetchone()
        return str(row["previous_token_hash"]) if row and row["previous_token_hash"] else None

    def retired_hash(self, worker_id: str) -> str | None:
        """The token hash a worker that left had, if it had one."""
        with self._lock:
            row = self._conn.execute(
                "SELECT token_hash FROM retired WHERE id = ?", (worker_id,)
            ).fetchone()
        return str(row["token_hash"]) if row else None

    def set_assignment(
        self, worker_id: str, containers: list[dict[str, Any]], tier: int | None = None
    ) -> int | None:
        with self._lock:
            row = self._conn.execute(
                "UPDATE workers SET containers = ?, tier = COALESCE(?, tier),"
                " generation = generation + 1 WHERE id = ? RETURNING generation",
                (json.dumps(containers), tier, worker_id),
            ).fetchone()
            self._announce(worker_id)
        self._forget_kept(worker_id)
        return int(row["generation"]) if row else None

    def all(self) -> list[Worker]:
        with self._lock:
            self._flush()
            rows = self._conn.execute("SELECT * FROM workers ORDER BY registered_at").fetchall()
        return [_worker(r) for r in rows]

    def serving(self, name: str) -> list[Worker]:
        """The online workers whose registration or last heartbeat mentions service `name` (the
        proxy's candidates: a filter in the database, not every worker decoded per request —
        2.3 s at 100 000 workers; ~0.05 s so)."""
        pattern = "%" + _like(json.dumps(name)) + "%"
        with self._lock:
            self._flush()
            rows = self._conn.execute(
                "SELECT * FROM workers WHERE status = 'online'"
                " AND (services LIKE ? ESCAPE '\\' OR reported LIKE ? ESCAPE '\\')",
                (pattern, pattern),
            ).fetchall()
        return [_worker(r) for r in rows]

    def counts(self) -> dict[str, int]:
        with self._lock:
            self._flush()
            rows = self._conn.execute(
                "SELECT status, COUNT(*) AS n FROM workers GROUP BY status"
            ).fetchall()
        return {str(r["status"]): int(r["n"]) for r in rows}

    def sweep(self, now: float, offline_after: float, forget_after: float) -> tuple[int, int]:
        """Mark silent workers offline and forget long-silent ones: (marked, forgotten)."""
        with self._lock:
            self._flush()
            marked = self._conn.execute(
                "UPDATE workers SET status = 'offline' WHERE status = 'online'"
                " AND last_heartbeat < ?",
                (now - offline_after,),
            ).rowcount
            self._conn.execute(_RETIRE.format(where="last_heartbeat < ?"), (now - forget_after,))
            forgotten = self._conn.execute(
                "DELETE FROM workers WHERE last_heartbeat < ?", (now - forget_after,)
            ).rowcount
            if forgotten:
                self._load_known()
                self._announce(EVERYONE)
        return marked, forgotten
