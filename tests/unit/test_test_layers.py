"""The test layers themselves: without a Docker engine, a plain `pytest` skips the engine tests
with one reason (and fails them when RMA_REQUIRE_DOCKER=1); destructive tests need
RMA_DESTRUCTIVE=1."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _pytest(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    environ = {k: v for k, v in os.environ.items() if not k.startswith("RMA_")}
    environ |= {"DOCKER_HOST": "unix:///nonexistent/docker.sock", **env}
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-rs", *args],
        cwd=ROOT,
        env=environ,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_without_an_engine_integration_tests_are_skipped_with_one_reason() -> None:
    done = _pytest("tests/integration/test_docker_runtime.py")
    assert done.returncode == 0, done.stdout[-2000:]
    assert "passed" not in done.stdout and "failed" not in done.stdout
    reasons = {
        line.split(": ", 1)[1] for line in done.stdout.splitlines() if line.startswith("SKIPPED")
    }
    assert len(reasons) == 1 and next(iter(reasons)).startswith("no Docker engine")


def test_required_engine_missing_fails_instead() -> None:
    done = _pytest("tests/integration/test_docker_runtime.py", "-x", RMA_REQUIRE_DOCKER="1")
    assert done.returncode == 1 and "skipped" not in done.stdout.splitlines()[-1]


def test_destructive_tests_need_their_switch() -> None:
    done = _pytest("tests/destructive")
    assert done.returncode == 0 and "destructive: set RMA_DESTRUCTIVE=1" in done.stdout
