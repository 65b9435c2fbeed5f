"""Start-up cost of the command line: `rma-worker --version` and `--help`, each timed from process
start to exit, as a person or a script running them pays it (the agent's own start-up before
its first pass is part of the cold-converge numbers)."""

from __future__ import annotations

import subprocess
import sys
import time
from typing import Any

from bench.common import summary


def run(repeats: int) -> dict[str, Any]:
    argv = [sys.executable, "-m", "controller"]
    subprocess.run([*argv, "--version"], capture_output=True, check=True)  # warm the caches
    result: dict[str, Any] = {}
    for flag in ("--version", "--help"):
        times = []
        for _ in range(repeats):
            started = time.perf_counter()
            subprocess.run([*argv, flag], capture_output=True, check=True)
            times.append(time.perf_counter() - started)
        result[flag.strip("-")] = summary(times, 4)
    return result
