"""`python -m bench` (`make bench`): run every benchmark once on this machine, in sequence, and
write bench.json, bench.md and bench.png to the output folder; with --readme, also put the
Markdown between docs/performance.md's bench markers. --quick runs tiny sizes (a smoke test of
the suite, not numbers to publish).
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import docker
import psutil

from bench import (
    capacity,
    contribution,
    converge,
    heal,
    idle,
    pause,
    propagation,
    reach,
    ready,
    receipts,
    report,
    scale,
    startup,
    through_proxy,
)
from bench.common import client

FULL: dict[str, Any] = {
    "startup": {"repeats": 10},
    "converge": {"sizes": [1, 10, 20, 50], "repeats": {1: 7, 10: 5, 20: 5, 50: 5}},
    "heal": {"repeats": 10},
    "propagation": {"repeats": 10, "repeats_no_poll": 5, "heartbeat_interval": 30.0},
    "reach": {"repeats": 10},
    "ready": {"repeats": 5},
    "pause": {"containers": 10, "repeats": 10},
    "idle": {"containers": 20, "seconds": 65.0},
    "scale": {"containers": 200, "resyncs": 10, "changes": 5},
    "capacity": {
        "sizes": [1000, 10000],
        "seconds": 10.0,
        "connections": 32,
        "repeats": 3,
        "pool_size": 100000,
    },
    "contribution": {"repeats": 5},
    "proxy": {"repeats": 200, "seconds": 3.0, "streams": 3},
    "receipts": {"count": 5000, "deliveries": 20},
}
QUICK: dict[str, Any] = {
    "startup": {"repeats": 2},
    "converge": {"sizes": [1, 3], "repeats": {1: 1, 3: 1}},
    "heal": {"repeats": 1},
    "propagation": {"repeats": 1, "repeats_no_poll": 1, "heartbeat_interval": 1.0},
    "reach": {"repeats": 1},
    "ready": {"repeats": 1},
    "pause": {"containers": 2, "repeats": 1},
    "idle": {"containers": 3, "seconds": 3.0},
    "scale": {"containers": 5, "resyncs": 2, "changes": 1},
    "capacity": {"sizes": [100], "seconds": 1.0, "connections": 4, "repeats": 2},
    "contribution": {"repeats": 1},
    "proxy": {"repeats": 5, "seconds": 0.5, "streams": 1},
    "receipts": {"count": 100, "deliveries": 2},
}


def machine(cli: docker.DockerClient) -> dict[str, Any]:
    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        platform.processor(),
    )
    os_name = next(
        (
            line.split("=", 1)[1].strip('"')
            for line in Path("/etc/os-release").read_text().splitlines()
            if line.startswith("PRETTY_NAME=")
        ),
        platform.system(),
    )
    info = cli.info()
    compose = subprocess.run(
        ["docker-compose", "version", "--short"], capture_output=True, text=True, check=False
    ).stdout.strip()
    data = {
        "os": os_name,
        "kernel": platform.release(),
        "cpu": cpu,
        "cores": psutil.cpu_count(),
        "ram_gib": round(psutil.virtual_memory().total / 2**30, 1),
        "docker": info.get("ServerVersion"),
        "storage_driver": info.get("Driver"),
        "docker_compose": compose,
        "python": platform.python_version(),
    }
    data["summary"] = (
        f"{os_name}, {data['cores']} x {cpu}, {data['ram_gib']} GiB RAM, Docker "
        f"{data['docker']} ({data['storage_driver']}), docker-compose {compose}, "
        f"Python {data['python']}"
    )
    return data


def _steps(
    cli: docker.DockerClient, work: Path, p: dict[str, Any]
) -> dict[str, Callable[[], dict[str, Any]]]:
    return {
        "startup": lambda: startup.run(**p["startup"]),
        "converge": lambda: converge.run(
            cli, work, p["converge"]["sizes"], p["converge"]["repeats"]
        ),
        "heal": lambda: heal.run(cli, work, p["heal"]["repeats"]),
        "propagation": lambda: propagation.run(cli, work, **p["propagation"]),
        "reach": lambda: reach.run(cli, work, **p["reach"]),
        "ready": lambda: ready.run(cli, work, **p["ready"]),
        "pause": lambda: pause.run(cli, work, **p["pause"]),
        "idle": lambda: idle.run(cli, work, **p["idle"]),
        "scale": lambda: scale.run(cli, work, **p["scale"]),
        "capacity": lambda: capacity.run(work, **p["capacity"]),
        "contribution": lambda: contribution.run(cli, work, **p["contribution"]),
        "proxy": lambda: through_proxy.run(**p["proxy"]),
        "receipts": lambda: receipts.run(**p["receipts"]),
    }


def main(argv: list[str] | None = None) -> int:
    """Parse the command line and run the benchmarks it names."""
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="tiny sizes: a smoke test")
    parser.add_argument(
        "--out",
        type=Path,
        help="output folder (default bench/results; with "
        "--quick, rma-bench-quick in the temp folder)",
    )
    parser.add_argument("--only", default="", help="comma-separated: " + ",".join(FULL))
    parser.add_argument(
        "--readme", type=Path, help="splice the Markdown into this page (docs/performance.md)"
    )
    parser.add_argument(
        "--merge",
        action="store_true",
        help="with --only: keep the other sections of the output folder's bench.json",
    )
    return _run(parser.parse_args(argv))


def _run(args: argparse.Namespace) -> int:
    cli = client()
    results: dict[str, Any] = {
        "date": datetime.date.today().isoformat(),
        "quick": args.quick,
        "machine": machine(cli),
        "profile": QUICK if args.quick else FULL,
    }
    wanted = [s for s in args.only.split(",") if s] or list(FULL)
    with tempfile.TemporaryDirectory(prefix="rma-bench-") as tmp:
        for name, step in _steps(cli, Path(tmp), results["profile"]).items():
            if name in wanted:
                started = time.monotonic()
                print(f"bench: {name} ...", file=sys.stderr, flush=True)
                results[name] = step()
                print(
                    f"bench: {name} done in {time.monotonic() - started:.0f} s: "
                    f"{json.dumps(results[name])}",
                    file=sys.stderr,
                    flush=True,
                )
    if args.merge:
        results = _merged(args, results, wanted)
    _write(args, results)
    return 0


def _merged(args: argparse.Namespace, fresh: dict[str, Any], wanted: list[str]) -> dict[str, Any]:
    """The previous results with the sections just run replaced (their dates kept apart)."""
    out = args.out or Path("bench/results")
    try:
        previous: dict[str, Any] = json.loads((out / "bench.json").read_text())
    except (OSError, ValueError):
        return fresh
    dates = previous.get("section_dates") or {}
    for name in wanted:
        previous[name] = fresh.get(name)
        dates[name] = fresh["date"]
    previous["section_dates"] = dates
    return previous


def _write(args: argparse.Namespace, results: dict[str, Any]) -> None:
    results["targets"] = report.targets(results)
    args.out = args.out or (
        Path(tempfile.gettempdir()) / "rma-bench-quick" if args.quick else Path("bench/results")
    )
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "bench.json").write_text(json.dumps(results, indent=2) + "\n")
    report.plot(results, args.out / "bench.png")
    md = report.markdown(results, plot_path=str(args.out / "bench.png"))
    (args.out / "bench.md").write_text(md)
    if args.readme:  # the plot's path as seen from the page it goes into
        seen = os.path.relpath((args.out / "bench.png").resolve(), args.readme.resolve().parent)
        page = report.markdown(results, plot_path=seen)
        args.readme.write_text(report.splice(args.readme.read_text(), page))
    print(md)


if __name__ == "__main__":
    raise SystemExit(main())
