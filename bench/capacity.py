"""Coordinator capacity: heartbeats per second the reference coordinator sustains on this machine,
and their latency percentiles, with 1 000 and 10 000 registered (simulated) workers. The workers
are written straight into the coordinator's database (each with its token, as registration would
leave it); `wrk` (C, one thread, keep-alive connections on loopback) then sends Part 2 heartbeats
that cycle through all of them, each reporting three containers, in repeated runs.
"""

from __future__ import annotations

import hashlib
import re
import secrets
import statistics
import subprocess
import time
from pathlib import Path
from typing import Any

from rma_coordinator.db import NewWorker, Registry
from rma_testkit.coordinator import Coordinator, write_catalog

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
  i = math.random(#workers)
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


def seed(db: Path, workers: int) -> list[tuple[str, str]]:
    """Register `workers` simulated workers directly in the coordinator's database."""
    registry = Registry(db)
    caps = {"cpu_cores": 8, "ram": "32.0GB", "storage": "500.0GB"}
    containers = [
        {"name": n, "image": f"rma/{n}:1", "port": 8000 + i}
        for i, n in enumerate(("rag", "ner", "ocr"))
    ]
    pairs = []
    now = time.time()
    for i in range(workers):
        worker_id, token = f"worker-{i:08x}", secrets.token_urlsafe(32)
        token_hash = hashlib.sha256(token.encode()).hexdigest()
        registry.add(NewWorker(worker_id, 2, caps, containers, token_hash=token_hash), now=now)
        pairs.append((worker_id, token))
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


def _wrk(work: Path, url: str, seconds: float, connections: int) -> dict[str, Any]:
    out = subprocess.run(
        [
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
        ],
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
        beats = sum(w["heartbeats"] for w in coordinator.workers())
    finally:
        coordinator.stop()
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
    work: Path, sizes: list[int], seconds: float, connections: int, repeats: int = 3
) -> dict[str, Any]:
    return {
        str(n): measure(work / f"capacity-{n}", n, seconds, connections, repeats) for n in sizes
    }
