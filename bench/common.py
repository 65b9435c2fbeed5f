"""What every benchmark shares: the test image and command, statistics, the agent as a subprocess,
a watcher of the engine's `start` events (so latencies are read from the engine's own clock
instead of by polling), and cleanup by label.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import docker

from controller.core.models import LABEL_INSTANCE
from rma_testkit.agent import AgentProcess
from rma_testkit.engine import running, wait_until

IMAGE = "rma-demo/busybox:1"
# PID 1 traps SIGTERM so a stop is immediate (a shell ignores it otherwise).
COMMAND = ["sh", "-c", "trap 'exit 0' TERM; sleep 3600 & wait"]
BENCH_LABEL = "org.rma.bench"


def summary(values: Sequence[float], digits: int = 3) -> dict[str, Any]:
    """Median, min, max and count of repeated measurements."""
    if not values:
        return {"n": 0, "median": None, "min": None, "max": None}
    return {
        "n": len(values),
        "median": round(statistics.median(values), digits),
        "min": round(min(values), digits),
        "max": round(max(values), digits),
    }


def client() -> docker.DockerClient:
    return docker.DockerClient(
        base_url=os.environ.get("DOCKER_HOST", "unix:///var/run/docker.sock"),
        version="auto",
        timeout=120,
        max_pool_size=32,
    )


def remove_labelled(cli: docker.DockerClient, label: str) -> int:
    """Force-remove every container carrying `label` (key or key=value), one at a time: many
    containers of one user-defined network removed together can deadlock Docker 20.10 before
    20.10.27 (moby/moby#46661; it hung a bench run)."""
    rows = cli.api.containers(all=True, filters={"label": label})
    for row in rows:
        cli.api.remove_container(row["Id"], force=True, v=True)
    return len(rows)


def instance_label(instance: str) -> str:
    return f"{LABEL_INSTANCE}={instance}"


# Each bench container says its memory (a shell that sleeps holds well under 1 MiB): without one
# the agent counts 512 MiB against the machine's memory (core/memory.py), and 200 would not fit.
MEMORY = "64m"


def manifest_specs(prefix: str, n: int, **extra: Any) -> list[dict[str, Any]]:
    return [
        {"name": f"{prefix}-{i:03d}", "image": IMAGE, "command": COMMAND, "memory_limit": MEMORY}
        | extra
        for i in range(n)
    ]


class Agent:
    """One `rma-worker` process with its own instance, state dir and JSON log file, started
    when asked (so that a clock can start just before)."""

    def __init__(self, workdir: Path, instance: str, *args: str) -> None:
        self.instance = instance
        self.log_path = workdir / f"{instance}.log"
        self.argv = [
            sys.executable,
            "-m",
            "controller",
            "--instance",
            instance,
            "--state-dir",
            str(workdir / "state"),
            "--log-format",
            "json",
            "--health-addr",
            "off",
            "--image-refresh-interval",
            "0",
            "--min-free-disk",
            "0",
            "--image-gc-high",
            "100",
            # The bench imports its image (`docker import`): no registry holds it.
            "--allow-local-images",
            *args,
        ]
        self.process: AgentProcess | None = None

    def start(self) -> subprocess.Popen[bytes]:
        self.process = AgentProcess(self.argv, self.log_path)
        return self.process.proc

    def run(self, timeout: float = 600) -> int:
        """Start and wait for the process to exit (for --once)."""
        self.start().wait(timeout)
        return self.stop()

    def exited(self) -> bool:
        return self.process is not None and self.process.proc.poll() is not None

    def events(self, name: str) -> list[dict[str, Any]]:
        if self.process is None:
            return []
        return [e for e in self.process.events() if e.get("event") == name]

    def stop(self, timeout: float = 120) -> int:
        if self.process is None:
            return 0
        try:
            return self.process.stop(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.process.proc.kill()
            return self.process.proc.wait()


def wait_running(
    cli: docker.DockerClient, agent: Agent, names: set[str], timeout: float = 300
) -> None:
    """Until every one of `names` runs; fails at once if the agent exits."""
    wait_until(
        lambda: agent.exited() or set(running(cli, agent.instance)) >= names,
        timeout,
        what=f"{agent.instance} to converge",
    )
    if agent.exited():
        raise RuntimeError(f"agent exited: {agent.log_path.read_text()[-2000:]}")


class StartWatcher:
    """Collects the engine's `start` events for containers with a label, by name, with the
    engine's timestamp in nanoseconds."""

    def __init__(self, cli: docker.DockerClient, label: str) -> None:
        self._since = int(time.time()) - 1
        self._stream = cli.api.events(
            decode=True, since=self._since, filters={"event": "start", "label": label}
        )
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
