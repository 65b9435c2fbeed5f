"""Coordinator capacity: heartbeats per second the reference coordinator sustains on this machine,
and their latency percentiles, with 1 000 and 10 000 registered (simulated) workers. The workers
are written straight into the coordinator's database (each with its token, as registration would
leave it); `wrk` (C, one thread, keep-alive connections on loopback) then sends Part 2 heartbeats
that cycle through all of them, each reporting three containers, in repeated runs.
"""

from __future__ import annotations

import contextlib
import hashlib
import re
import resource
import secrets
import sqlite3
import statistics
import subprocess
import time
from pathlib import Path
from typing import Any

import psutil
import requests

from rma_coordinator.db import NewWorker, Registry
from rma_testkit.coordinator import Coordinator, requests_seen, write_catalog

LUA = r"""
local workers = {}
local body_tpl = '{"worker_id": "%s", "status": "healthy", "current_load": 0.42, ' ..
  '"available_memory": "12.5GB", "assignment_generation": 1, "containers": [' ..
  '{"name": "rag", "state": "running", "image": "rma/rag:1", "restarts": 0, "error": null},' ..
  '{"name": "ner", "state": "running", "image": "rma/ner:1", "restarts": 0, "error": null},' ..
  '{"name": "ocr", "state": "running", "image": "rma/ocr:1", "restarts": 1, "error": null}]}'
local i = 0
function init(args)
  for line in io.lines(args[1]) do
    local id, token = line:match("(%S+) (%S+)")
    workers[#workers + 1] = {id, token}
  end
  -- a second argument: where in the list to start (0..1), so two wrk cover it between them
  i = args[2] and math.floor(#workers * tonumber(args[2])) or math.random(#workers)
end
function request()
  i = i % #workers + 1
  local w = workers[i]
  return wrk.format("POST", "/api/worker/heartbeat",
    {["Content-Type"] = "application/json", ["Authorization"] = "Bearer " .. w[2]},
    string.format(body_tpl, w[1]))
end
"""

UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3}


def seed(db: Path | str, workers: int) -> list[tuple[str, str]]:
    """Register `workers` simulated workers directly in the coordinator's database."""
    registry = Registry(db)
    caps = {"cpu_cores": 8, "ram": "32.0GB", "storage": "500.0GB"}
    containers = [
        {"name": n, "image": f"rma/{n}:1", "port": 8000 + i}
        for i, n in enumerate(("rag", "ner", "ocr"))
    ]
    pairs, new = [], []
    for i in range(workers):
        worker_id, token = f"worker-{i:08x}", secrets.token_urlsafe(32)
        token_hash = hashlib.sha256(token.encode()).hexdigest()
        new.append(NewWorker(worker_id, 2, caps, containers, token_hash=token_hash))
        pairs.append((worker_id, token))
    registry.add_many(new, now=time.time())
    registry.close()
    return pairs


def parse_wrk(output: str) -> dict[str, Any]:
    def ms(label: str) -> float:
        match = re.search(rf"^\s*{label}\s+([0-9.]+)(us|ms|s)\s*$", output, re.M)
        if not match:
            raise ValueError(f"no {label} latency in wrk output:\n{output}")
        return round(float(match.group(1)) * UNITS[match.group(2)], 2)

    rate = re.search(r"Requests/sec:\s+([0-9.]+)", output)
    errors = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", output)
    socket_errors = re.search(r"Socket errors:.*", output)
    if not rate:
        raise ValueError(f"no rate in wrk output:\n{output}")
    return {
        "heartbeats_per_s": round(float(rate.group(1)), 1),
        "p50_ms": ms("50%"),
        "p90_ms": ms("90%"),
        "p99_ms": ms("99%"),
        "non_2xx": int(errors.group(1)) if errors else 0,
        "socket_errors": socket_errors.group(0) if socket_errors else None,
    }


def _wrk_argv(
    work: Path, url: str, seconds: float, connections: int, start: float | None = None
) -> list[str]:
    return [
        "wrk",
        "-t1",
        f"-c{connections}",
        f"-d{int(seconds)}s",
        "--latency",
        "--timeout",
        "5s",
        "-s",
        str(work / "heartbeat.lua"),
        url,
        "--",
        str(work / "workers.txt"),
        *([] if start is None else [str(start)]),
    ]


def _wrk(work: Path, url: str, seconds: float, connections: int) -> dict[str, Any]:
    out = subprocess.run(
        _wrk_argv(work, url, seconds, connections),
        check=True,
        capture_output=True,
        text=True,
        timeout=seconds + 60,
    ).stdout
    return parse_wrk(out)


def measure(
    work: Path, workers: int, seconds: float, connections: int, repeats: int
) -> dict[str, Any]:
    """`repeats` runs of `seconds` each against one coordinator; medians of rate and latency."""
    work.mkdir(parents=True, exist_ok=True)
    pairs = seed(work / "coordinator.db", workers)
    (work / "workers.txt").write_text("".join(f"{w} {t}\n" for w, t in pairs))
    (work / "heartbeat.lua").write_text(LUA)
    coordinator = Coordinator(work, write_catalog(work / "catalog.yaml", []))
    try:
        runs = [_wrk(work, coordinator.url, seconds, connections) for _ in range(repeats)]
    finally:
        coordinator.stop()  # its heartbeats kept in memory written as it stops
    with contextlib.closing(sqlite3.connect(work / "coordinator.db")) as db:
        beats = int(db.execute("SELECT SUM(heartbeats) FROM workers").fetchone()[0] or 0)
    medians = {
        key: statistics.median(r[key] for r in runs)
        for key in ("heartbeats_per_s", "p50_ms", "p90_ms", "p99_ms")
    }
    return {
        "workers": workers,
        "connections": connections,
        "seconds": seconds,
        "runs": len(runs),
        **medians,
        "non_2xx": sum(r["non_2xx"] for r in runs),
        "socket_errors": [r["socket_errors"] for r in runs if r["socket_errors"]],
        "heartbeats_recorded": beats,
        "each_run": runs,
    }


def run(
    work: Path,
    sizes: list[int],
    seconds: float,
    connections: int,
    repeats: int = 3,
    pool_size: int = 0,
) -> dict[str, Any]:
    found: dict[str, Any] = {
        str(n): measure(work / f"capacity-{n}", n, seconds, connections, repeats) for n in sizes
    }
    if pool_size:
        found["pool"] = pool(work, pool_size, seconds, connections)
    return found


def _children_cpu() -> float:
    """CPU seconds of this process's children that have been waited for (the wrk runs)."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _postgres_cpu() -> float:
    """CPU seconds of the PostgreSQL server's processes so far (those alive now)."""
    total = 0.0
    for proc in psutil.process_iter(["name", "cpu_times"]):
        times = proc.info.get("cpu_times")
        if proc.info.get("name") == "postgres" and times is not None:
            total += times.user + times.system
    return total


def _cpu(coordinators: list[Coordinator]) -> float:
    """CPU seconds the coordinator processes used so far."""
    total = 0.0
    for c in coordinators:
        if c.proc is not None:
            times = psutil.Process(c.proc.pid).cpu_times()
            total += times.user + times.system
    return total


def replicas(work: Path, workers: int, seconds: float, connections: int, db: str) -> dict[str, Any]:
    """Two coordinators on one PostgreSQL (`db`), each driven by its own `wrk` with half the
    connections, both cycling through every worker: the pool's heartbeats/s (summed), the worse
    of the two p99s, and the coordinators' CPU per 1 000 heartbeats."""
    work.mkdir(parents=True, exist_ok=True)
    pairs = seed(db, workers)
    (work / "workers.txt").write_text("".join(f"{w} {t}\n" for w, t in pairs))
    (work / "heartbeat.lua").write_text(LUA)
    catalog = write_catalog(work / "catalog.yaml", [])
    args = ("--offline-after", str(OFFLINE_AFTER))
    pool = [Coordinator(work, catalog, *args, db=db) for _ in range(2)]
    try:
        cpu, started, load, db_cpu = _cpu(pool), time.monotonic(), _children_cpu(), _postgres_cpu()
        procs = _load(work, pool, seconds, connections)
        runs = [parse_wrk(p.communicate(timeout=seconds + 60)[0]) for p in procs]
        used, db_used = _cpu(pool) - cpu, _postgres_cpu() - db_cpu
        wall = time.monotonic() - started
        load_used = _children_cpu() - load  # the two wrk, reaped by communicate
        silent = _until(pool[0].url, lambda w: w.get("offline") == w["total"], 90)
        for c in pool:
            c.restart()
        back, wall_back, procs = time.monotonic(), time.time(), _load(work, pool, 120, connections)
        confirmed = _heard_all(db, wall_back, workers, 120, back)
        registered = sum(requests_seen(c).get("register", 0) for c in pool)
        for p in procs:
            p.terminate()
            p.communicate(timeout=30)
    finally:
        for c in pool:
            c.stop()
    rate = sum(r["heartbeats_per_s"] for r in runs)
    return {
        "workers": workers,
        "replicas": len(pool),
        "connections": connections,
        "seconds": seconds,
        "heartbeats_per_s": round(rate, 1),
        "p50_ms": max(r["p50_ms"] for r in runs),
        "p99_ms": max(r["p99_ms"] for r in runs),
        "non_2xx": sum(r["non_2xx"] for r in runs),
        "cpu_s_per_1000": round(used / (rate * wall) * 1000, 3) if rate else None,
        "cores_used": {  # of the machine's, over the run: who took the CPU
            "coordinators": round(used / wall, 2),
            "load_generator": round(load_used / wall, 2),
            "postgres": round(db_used / wall, 2),
        },
        "offline_after": OFFLINE_AFTER,
        "silent_to_offline_s": silent,
        "restart_to_all_heard_again_s": confirmed,
        "registrations_after_restart": registered,
    }


OFFLINE_AFTER = 25.0  # the pool's setting in this run: a silent worker offline within ~30 s


def _heard_all(db: str, since: float, workers: int, limit: float, start: float) -> float | None:
    """Seconds from `start` until every worker was heard from again (a heartbeat written after
    `since`, wall time: no registration needed); None when not within `limit`."""
    import psycopg  # noqa: PLC0415 (PostgreSQL only)

    with psycopg.connect(db, autocommit=True) as conn:
        while time.monotonic() - start < limit:
            row = conn.execute(
                "SELECT COUNT(*) FROM workers WHERE last_heartbeat >= %s", (since,)
            ).fetchone()
            if row is not None and int(row[0]) >= workers:
                return round(time.monotonic() - start, 1)
            time.sleep(0.5)
    return None


def _load(work: Path, pool: list[Coordinator], seconds: float, connections: int) -> list[Any]:
    """One `wrk` per replica, half the connections each, every worker cycled through."""
    return [
        subprocess.Popen(
            _wrk_argv(work, c.url, seconds, connections // 2, start=n / len(pool)),
            stdout=subprocess.PIPE,
            text=True,
        )
        for n, c in enumerate(pool)
    ]


def _until(url: str, done: Any, limit: float, since: float | None = None) -> float | None:
    """Seconds (from `since`, else now) until the coordinator's worker counts satisfy `done`;
    None when not within `limit`."""
    start = since if since is not None else time.monotonic()
    while time.monotonic() - start < limit:
        with contextlib.suppress(requests.RequestException):
            if done(requests.get(url + "/health", timeout=5).json()["workers"]):
                return round(time.monotonic() - start, 1)
        time.sleep(0.5)
    return None


def pool(work: Path, workers: int, seconds: float, connections: int) -> dict[str, Any]:
    """`workers` simulated workers (100 000: a 10 s interval offers 10 000 heartbeats/s) on
    (a) one process on SQLite and (b) two replicas on PostgreSQL."""
    from rma_testkit.postgres import fresh_database  # noqa: PLC0415 (PostgreSQL only)

    one = measure(work / f"pool-sqlite-{workers}", workers, seconds, connections, repeats=1)
    with fresh_database() as db:
        two = replicas(work / f"pool-postgres-{workers}", workers, seconds, connections, db)
    ratio = two["heartbeats_per_s"] / one["heartbeats_per_s"] if one["heartbeats_per_s"] else None
    two["times_one_process"] = round(ratio, 2) if ratio is not None else None
    return {"sqlite_one_process": one, "postgres_two_replicas": two}
