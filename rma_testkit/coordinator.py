"""The reference coordinator as a separate process on a loopback port, for end-to-end tests."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import requests
import yaml

ADMIN = {"Authorization": "Bearer adm"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


WEB = "trap 'exit 0' TERM; httpd -f -p 8080 -h /www & wait"  # busybox httpd: the demo page


def web_spec(instance: str, image: str) -> dict[str, Any]:
    """An HTTP service (`notes-coa`) on a free host port: what the pool reaches."""
    return {
        "name": f"{instance}-notes",
        "image": image,
        "command": ["sh", "-c", WEB],
        "ports": [{"container": 8080, "host": free_port()}],
        "http": True,
        "labels": {"rma.service": "notes-coa"},
    }


def write_agent_catalog(path: Path, services: dict[str, tuple[int, dict[str, Any]]]) -> Path:
    """The agent's service catalog (--catalog): {service name: (tier, container spec)}."""
    data = {"services": {n: {"tier": t, "container": c} for n, (t, c) in services.items()}}
    path.write_text(yaml.safe_dump(data))
    return path


def services_index(coordinator: Coordinator) -> dict[str, list[dict[str, Any]]]:
    """Which worker serves each service, at which URL (the reference's admin API)."""
    resp = requests.get(coordinator.url + "/api/admin/services", headers=ADMIN, timeout=5)
    resp.raise_for_status()
    return dict(resp.json())


def requests_seen(coordinator: Coordinator) -> dict[str, int]:
    """How many registrations and heartbeats it answered since it started."""
    return dict(requests.get(coordinator.url + "/health", timeout=5).json()["requests"])


def write_catalog(path: Path, containers: list[dict[str, Any]]) -> Path:
    """The same containers for tiers 2 and 3 (machines here have no GPU, so never tier 1)."""
    tiers = {2: {"containers": containers}, 3: {"containers": containers}}
    path.write_text(yaml.safe_dump({"tiers": tiers}))
    return path


class Coordinator:
    def __init__(self, workdir: Path, catalog: Path, *args: str, db: str = "") -> None:
        """`db`: a postgresql:// URL (replicas share it), else a SQLite file in `workdir`."""
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.db: Path | str = db or workdir / "coordinator.db"
        self.log_path = workdir / f"coordinator-{self.port}.log"
        self._argv = [
            sys.executable,
            "-m",
            "rma_coordinator",
            "--port",
            str(self.port),
            "--db",
            str(self.db),
            "--catalog",
            str(catalog),
            "--admin-token",
            "adm",
            "--allow-private-workers",  # its workers are on this machine
            *args,
        ]
        self.proc: subprocess.Popen[bytes] | None = None
        self.start()

    def start(self) -> None:
        with self.log_path.open("a") as log:
            self.proc = subprocess.Popen(self._argv, stdout=log, stderr=log)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                if requests.get(self.url + "/health", timeout=1).ok:
                    return
            except requests.RequestException:
                time.sleep(0.1)
        raise AssertionError(f"coordinator did not start: {self.log_path.read_text()}")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)

    def restart(self, *, wipe: bool = False, dialect: str | None = None) -> None:
        """Again on the same port; `dialect`: come back speaking another one (Part 3)."""
        self.stop()
        if dialect is not None:
            self._argv = [a for a in self._argv if not a.startswith("--dialect=")]
            self._argv.append(f"--dialect={dialect}")
        if wipe:
            for suffix in ("", "-wal", "-shm"):
                Path(str(self.db) + suffix).unlink(missing_ok=True)
        self.start()

    def forget(self, worker_id: str) -> None:
        """Forget a worker as the sweep does after a long silence (the admin API's DELETE)."""
        resp = requests.delete(
            f"{self.url}/api/admin/workers/{worker_id}", headers=ADMIN, timeout=5
        )
        resp.raise_for_status()

    def workers(self) -> list[dict[str, Any]]:
        resp = requests.get(self.url + "/api/admin/workers", headers=ADMIN, timeout=5)
        resp.raise_for_status()
        return list(resp.json())

    def worker(self, worker_id: str) -> dict[str, Any] | None:
        return next((w for w in self.workers() if w["id"] == worker_id), None)

    def set_assignment(
        self, worker_id: str, containers: list[dict[str, Any]], tier: int | None = None
    ) -> int:
        resp = requests.put(
            f"{self.url}/api/admin/workers/{worker_id}/assignment",
            headers=ADMIN,
            json={"containers": containers, "tier": tier},
            timeout=5,
        )
        resp.raise_for_status()
        return int(resp.json()["generation"])
