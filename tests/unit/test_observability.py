"""Health endpoint, metrics, status rendering and pull progress (no Docker, loopback HTTP only
to the in-process health server)."""

from __future__ import annotations

import io
import json
import threading
import urllib.error
import urllib.request
from typing import Any

import pytest

from controller.cli.console import ProgressBar, render_status
from controller.clients.docker_progress import LayerProgress
from controller.core.observe import PullProgress
from controller.core.runtime import ProgressCallback
from controller.engine.images import ImagePuller, PullReport
from controller.ops.health import HealthServer
from controller.ops.metrics import Metrics
from controller.settings import Settings
from rma_testkit.fakes import FakeRuntime


def get(url: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=5) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def test_parse_addr() -> None:
    def addr(text: str) -> tuple[str, int] | None:
        return Settings(health_addr=text).health_address

    assert addr("127.0.0.1:9321") == ("127.0.0.1", 9321)
    assert addr(":9000") == ("127.0.0.1", 9000)
    assert addr("[::1]:9000") == ("::1", 9000)
    assert addr("off") is None and addr("OFF") is None


def observed() -> Metrics:
    metrics = Metrics()
    metrics.pass_done(True, 0.01)
    metrics.action("create", "ok")
    metrics.containers({"running": 2, "failed": 1})
    metrics.heartbeat(False)
    metrics.pull_bytes(1234)
    metrics.energy("gpu", 3600.5)
    metrics.energy("cpu", 0.0)
    metrics.holds({"pause": True, "gpu-busy": False})
    return metrics


def test_health_server_routes() -> None:
    state = {"alive": True, "ready": False}
    metrics = observed()
    server = HealthServer(
        ("127.0.0.1", 0),
        alive=lambda: (state["alive"], {"age": 1}),
        ready=lambda: (state["ready"], {"converged": False}),
        status=lambda: {"instance": "x"},
        metrics=metrics.render,
    )
    server.start()
    try:
        assert get(server.url + "/healthz")[0] == 200
        code, body = get(server.url + "/readyz")
        assert code == 503 and json.loads(body) == {"ok": False, "converged": False}
        state["alive"] = False
        assert get(server.url + "/healthz")[0] == 503
        assert json.loads(get(server.url + "/status")[1]) == {"instance": "x"}
        text = get(server.url + "/metrics")[1].decode()
        for line in (
            'rma_worker_passes_total{result="ok"} 1.0',
            'rma_worker_actions_total{kind="create",outcome="ok"} 1.0',
            'rma_worker_energy_joules_total{source="gpu"} 3600.5',
            'rma_worker_hold{condition="pause"} 1.0',
            'rma_worker_hold{condition="gpu-busy"} 0.0',
            'rma_worker_containers{state="running"} 2.0',
            'rma_worker_containers{state="exited"} 0.0',
            'rma_worker_heartbeats_total{result="failed"} 1.0',
            "rma_worker_pull_bytes_total 1234.0",
            "rma_worker_pass_duration_seconds_count 1.0",
        ):
            assert line in text, line
        assert get(server.url + "/nope")[0] == 404
    finally:
        server.close()


STATUS: dict[str, Any] = {
    "version": "0.5.0",
    "instance": "default",
    "mode": "coordinator",
    "coordinator": "http://c:8080",
    "manifest": None,
    "worker_id": "worker-1a2b3c4d",
    "tier": 2,
    "last_heartbeat": "2026-01-01T00:00:00+00:00",
    "heartbeat_error": None,
    "converged": False,
    "healthy": False,
    "containers": [
        {"name": "rag", "state": "running", "image": "rag:1", "restarts": 2, "error": None},
        {
            "name": "bad",
            "state": "refused",
            "image": "",
            "restarts": 0,
            "error": "volume '/etc' is not a named volume",
        },
    ],
    "pulls": [
        {
            "image": "vllm:1",
            "downloaded": 5_000_000,
            "total": 20_000_000,
            "percent": 25.0,
            "rate": 2_500_000.0,
        }
    ],
}


def test_status_table() -> None:
    text = render_status(STATUS)
    assert "Worker:         worker-1a2b3c4d   Tier: 2" in text
    assert "State:          converging, degraded" in text
    assert "s ago (2026-01-01T00:00:00+00:00)" in text
    rows = [line.split() for line in text.splitlines() if line.startswith(("rag", "bad"))]
    assert rows[0] == ["rag", "running", "2", "rag:1"]
    assert rows[1][:3] == ["bad", "refused", "0"] and "named volume" in text
    assert "pulling vllm:1: 25.0% 5.0/20.0 MB at 2.5 MB/s" in text


def test_layer_progress_sums_layers() -> None:
    layers = LayerProgress()
    lines: list[dict[str, Any]] = [
        {"status": "Pulling fs layer", "id": "a"},
        {"status": "Downloading", "id": "a", "progressDetail": {"current": 10, "total": 100}},
        {"status": "Downloading", "id": "b", "progressDetail": {"current": 5, "total": 50}},
        {"status": "Download complete", "id": "a"},
        {"status": "Digest: sha256:x"},
    ]
    changed = [layers.feed(line) for line in lines]
    assert changed == [False, True, True, True, False]
    assert (layers.downloaded, layers.total) == (105, 150)


def test_puller_reports_progress_bytes_and_status() -> None:
    gate = threading.Event()
    seen: list[PullProgress] = []

    class Slow(FakeRuntime):
        def pull(self, image: str, progress: ProgressCallback | None = None) -> None:
            assert progress is not None
            progress(40, 100, 0)
            gate.wait(5)
            progress(100, 100, 100)
            super().pull(image)

    metrics = Metrics()
    done = threading.Event()
    puller = ImagePuller(
        Slow(),
        on_done=done.set,
        refresh_interval=0,
        report=PullReport(metrics, seen.append, every=0),
    )
    puller.ensure("big:1")
    for _ in range(500):
        if puller.progress():
            break
        threading.Event().wait(0.01)
    [p] = puller.progress()
    assert (p.image, p.downloaded, p.total, p.percent) == ("big:1", 40, 100, 20.0)  # +unpacking
    gate.set()
    assert done.wait(5)
    assert puller.progress() == [] and seen[-1].downloaded == 100
    assert "rma_worker_pull_bytes_total 100.0" in metrics.render().decode()


@pytest.mark.parametrize(("done", "ends_line"), [(40, False), (100, True)])
def test_progress_bar(done: int, ends_line: bool) -> None:
    out = io.StringIO()
    ProgressBar(out, width=10)(PullProgress("vllm:1", done, 100, 2.0))
    text = out.getvalue()
    assert text.startswith("\r") and text.endswith("\n") == ends_line
    assert f"{done:5.1f}%" in text and "#" * (done // 10) in text
