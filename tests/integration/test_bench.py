"""The benchmark suite works end to end: the counting proxy counts what goes through it, and a
quick run of `python -m bench` produces every section, the report and the plot, and leaves no
container behind. (Its numbers are not asserted: timings belong to `make bench`.)"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import docker
import pytest

from bench.proxy import CountingProxy

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]


def test_the_proxy_counts_docker_api_calls_by_kind(tmp_path: Path) -> None:
    proxy = CountingProxy(tmp_path / "docker.sock", Path("/var/run/docker.sock"))
    api = docker.APIClient(base_url=f"unix://{tmp_path / 'docker.sock'}", version="1.41")
    try:
        for _ in range(3):
            api.containers(all=True)
        assert api.version()["ApiVersion"]
        assert proxy.snapshot() == {"GET /containers/json": 3, "GET /version": 1}
        assert proxy.total() == 4
    finally:
        api.close()
        proxy.close()


@pytest.mark.timeout(420)
def test_a_quick_run_writes_every_section_and_cleans_up(
    tmp_path: Path, client: docker.DockerClient
) -> None:
    out = tmp_path / "out"
    run = subprocess.run(
        [sys.executable, "-m", "bench", "--quick", "--out", str(out)],
        cwd=ROOT,
        check=False,
        capture_output=True,
        text=True,
        timeout=400,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    results = json.loads((out / "bench.json").read_text())
    for section in ("converge", "heal", "propagation", "idle", "scale", "capacity"):
        assert section in results, section
    assert results["converge"]["sizes"]["3"]["agent"]["n"] == 1
    assert results["heal"]["kill"]["median"] > 0
    assert results["propagation"]["without_long_poll"]["median"] > 0
    assert results["idle"]["rss_mb_max"] > 0
    assert results["scale"]["converged_pass_s"]["n"] == 2
    assert results["capacity"]["100"]["heartbeats_per_s"] > 0
    assert results["capacity"]["100"]["non_2xx"] == 0
    assert (out / "bench.png").read_bytes()[:4] == b"\x89PNG"
    assert "quick mode" in (out / "bench.md").read_text()
    leftovers = client.api.containers(all=True, filters={"label": "org.rma.bench"})
    leftovers += [
        c
        for c in client.api.containers(all=True)
        if c["Labels"].get("org.rma.worker.instance", "").startswith("bench-")
    ]
    assert leftovers == []
