"""What every benchmark shares: the test image and command, statistics, the agent as a subprocess,
a watcher of the engine's `start` events (so latencies are read from the engine's own clock
instead of by polling), and cleanup by label.
"""

from __future__ import annotations

import json
import os
import signal
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import docker
import yaml

IMAGE = "rma-demo/busybox:1"
# PID 1 traps SIGTERM so a stop is immediate (a shell ignores it otherwise).
COMMAND = ["sh", "-c", "trap 'exit 0' TERM; sleep 3600 & wait"]
BENCH_LABEL = "org.rma.bench"
INSTANCE_LABEL = "org.rma.worker.instance"


def summary(values: Sequence[float], digits: int = 3) -> dict[str, Any]:
    """Median, min, max and count of repeated measurements."""
    if not values:
        return {"n": 0, "median": None, "min": None, "max": None}
    return {"n": len(values), "median": round(statistics.median(values), digits),
            "min": round(min(values), digits), "max": round(max(values), digits)}


def client() -> docker.DockerClient:
    return docker.DockerClient(base_url=os.environ.get("DOCKER_HOST",
                                                       "unix:///var/run/docker.sock"),
                               version="auto", timeout=120, max_pool_size=32)


def remove_labelled(cli: docker.DockerClient, label: str) -> int:
    """Force-remove every container carrying `label` (key or key=value), concurrently."""
    rows = cli.api.containers(all=True, filters={"label": label})
    with ThreadPoolExecutor(16) as pool:
        list(pool.map(lambda r: cli.api.remove_container(r["Id"], force=True, v=True), rows))
    return len(rows)


def running_names(cli: docker.DockerClient, label: str) -> set[str]:
    rows = cli.api.containers(filters={"label": label, "status": "running"})
    return {r["Names"][0].lstrip("/") for r in rows}


def manifest_specs(prefix: str, n: int, **extra: Any) -> list[dict[str, Any]]:
    return [{"name": f"{prefix}-{i:03d}", "image": IMAGE, "command": COMMAND, **extra}
            for i in range(n)]


def write_manifest(path: Path, specs: list[dict[str, Any]]) -> Path:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(yaml.safe_dump({"containers": specs}))
    tmp.replace(path)
    return path


def agent_command() -> list[str]:
    return [sys.executable, "-m", "controller"]


class Agent:
    """One `rma-worker` process with its own instance, state dir and JSON log file."""

    def __init__(self, workdir: Path, instance: str, *args: str,
                 env: dict[str, str] | None = None) -> None:
        self.instance = instance
        self.log_path = workdir / f"{instance}.log"
        self.argv = [*agent_command(), "--instance", instance,
                     "--state-dir", str(workdir / "state"), "--log-format", "json",
                     "--health-addr", "off", "--image-refresh-interval", "0",
                     "--min-free-disk", "0", "--image-gc-high", "100", *args]
        self.env = {**os.environ, **(env or {})}
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> subprocess.Popen[bytes]:
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(self.argv, stdout=log, stderr=log, env=self.env)
        return self.proc

    def run(self, timeout: float = 600) -> int:
        """Start and wait for the process to exit (for --once)."""
        return self.start().wait(timeout)

    def events(self, name: str | None = None) -> list[dict[str, Any]]:
        out = []
        for line in self.log_path.read_text().splitlines():
            try:
                event = json.loads(line)
            except json.JSONDecodeError:
                continue
            if name is None or event.get("event") == name:
                out.append(event)
        return out

    def wait_for_log(self, name: str, timeout: float = 120, count: int = 1) -> None:
        deadline = time.monotonic() + timeout
        while len(self.events(name)) < count:
            if self.proc is not None and self.proc.poll() is not None:
                raise RuntimeError(f"agent exited: {self.log_path.read_text()[-2000:]}")
            if time.monotonic() > deadline:
                raise TimeoutError(f"no {name!r} in {self.log_path}")
            time.sleep(0.05)

    def stop(self, timeout: float = 120) -> int:
        if self.proc is None or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else 0
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return self.proc.wait()


class StartWatcher:
    """Collects the engine's `start` events for containers with a label, by name, with the
    engine's timestamp in nanoseconds."""

    def __init__(self, cli: docker.DockerClient, label: str) -> None:
        self._since = int(time.time()) - 1
        self._stream = cli.api.events(decode=True, since=self._since,
                                      filters={"event": "start", "label": label})
        self._starts: dict[str, list[int]] = {}
        self._cond = threading.Condition()
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        try:
            for event in self._stream:
                name = event.get("Actor", {}).get("Attributes", {}).get("name", "")
                with self._cond:
                    self._starts.setdefault(name, []).append(int(event["timeNano"]))
                    self._cond.notify_all()
        except Exception:
            return

    def wait_start(self, name: str, after_ns: int, timeout: float = 120) -> int:
        """The first start of `name` after `after_ns` (wall clock ns)."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                found = [t for t in self._starts.get(name, []) if t > after_ns]
                if found:
                    return min(found)
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise TimeoutError(f"{name} did not start within {timeout} s")
                self._cond.wait(remaining)

    def wait_all(self, names: Iterable[str], after_ns: int, timeout: float = 300) -> int:
        """When the last of `names` started (wall clock ns)."""
        return max(self.wait_start(n, after_ns, timeout) for n in names)

    def close(self) -> None:
        self._stream.close()
