"""The agent as a volunteer runs it, for tests and benchmarks: a separate process with its own
state dir, stopped by a signal; manifests written as an editor would."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from rma_testkit.engine import REGISTRY


def write_manifest(path: Path, containers: list[dict[str, Any]]) -> Path:
    """Write atomically, as an editor or config tool would."""
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps({"containers": containers}))
    os.replace(tmp, path)
    return path


def agent_argv(source: Path | str, instance: str, state: Path, *extra: str) -> list[str]:
    """A manifest path, or a coordinator URL."""
    where = ["--manifest", str(source)] if isinstance(source, Path) else ["--coordinator", source]
    return [
        sys.executable,
        "-m",
        "controller",
        *where,
        "--instance",
        instance,
        "--state-dir",
        str(state),
        "--publish-address",
        "127.0.0.1",
        "--log-format",
        "json",
        "--stop-grace",
        "2",
        "--image-refresh-interval",
        "0",
        "--health-addr",
        "127.0.0.1:0",
        "--allowed-registries",
        f"{REGISTRY},docker.io",
        # Independent of how full this machine's disk is; the disk tests set their own.
        "--min-free-disk",
        "0.2",
        "--image-gc-high",
        "100",
        *extra,
    ]


class AgentProcess:
    """The agent as a volunteer runs it: a separate process, stopped by a signal."""

    def __init__(self, argv: list[str], log_path: Path) -> None:
        self.log_path = log_path
        self._log = log_path.open("w")
        self.proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=self._log)

    def log(self) -> str:
        return self.log_path.read_text()

    def events(self) -> list[dict[str, Any]]:
        out = []
        for line in self.log().splitlines():
            try:
                out.append(json.loads(line))
            except ValueError:
                continue
        return out

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 60) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)
            tail = "\n".join(self.log().splitlines()[-25:])
            raise AssertionError(
                f"the agent did not stop in {timeout} s; its log ends:\n{tail}"
            ) from None
        finally:
            self._log.close()


StartAgent = Callable[..., AgentProcess]


def run_once(
    manifest: Path, instance: str, state: Path, *extra: str
) -> subprocess.CompletedProcess[str]:
    argv = agent_argv(manifest, instance, state, "--once", "--once-timeout", "60", *extra)
    return subprocess.run(argv, capture_output=True, text=True, timeout=120, check=False)


def rma_worker(
    state: Path, instance: str, *args: str, timeout: float = 30, check: bool = True
) -> subprocess.CompletedProcess[str]:
    """One `rma-worker` command (status, cleanup …) for the agent with this state and instance."""
    argv = [sys.executable, "-m", "controller", "--state-dir", str(state), "--instance", instance]
    return subprocess.run(
        [*argv, *args], capture_output=True, text=True, timeout=timeout, check=check
    )


def agent_status(state: Path, instance: str) -> dict[str, Any]:
    """What `rma-worker status --json` says."""
    data: dict[str, Any] = json.loads(rma_worker(state, instance, "status", "--json").stdout)
    return data
