"""The owner's pause (issue 14): from `rma-worker pause` writing its file to every container of
the agent stopped (kept), and from `rma-worker resume` to all of them running again (the same
containers started, nothing pulled or created). A manifest agent with N containers whose PID 1
stops at once on SIGTERM, so what is measured is the agent's own reaction (its conditions are
checked every second) and the engine's stop and start.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import docker

from bench.common import COMMAND, IMAGE, Agent, instance_label, remove_labelled, summary
from controller.clients.pause_file import clear_pause, pause_path, write_pause
from rma_testkit.engine import wait_until

INSTANCE = "bench-pause"


def _states(cli: docker.DockerClient, label: str) -> dict[str, str]:
    rows = cli.api.containers(all=True, filters={"label": label})
    return {r["Id"]: r["State"] for r in rows}


def _until(cond: Any) -> Any:
    return wait_until(cond, 120.0, "bench pause", step=0.02)  # 20 ms: the timing's resolution


def run(cli: docker.DockerClient, work: Path, containers: int, repeats: int) -> dict[str, Any]:
    manifest = work / "pause-manifest.json"
    specs = [
        {"name": f"{INSTANCE}-{i}", "image": IMAGE, "command": COMMAND} for i in range(containers)
    ]
    manifest.write_text(json.dumps({"containers": specs}))
    agent = Agent(work, INSTANCE, "--manifest", str(manifest), "--stop-grace", "5")
    label, path = instance_label(INSTANCE), pause_path(work / "state", INSTANCE)
    stops, starts = [], []
    try:
        agent.start()
        ids = _until(
            lambda: (
                (s := _states(cli, label))
                and len(s) == containers
                and set(s.values()) == {"running"}
                and set(s)
            )
        )
        for _ in range(repeats):
            t0 = time.monotonic()
            write_pause(path, since=time.time(), until=None, gpu_only=False)
            _until(lambda: set(_states(cli, label).values()) == {"exited"})
            stops.append(time.monotonic() - t0)
            t1 = time.monotonic()
            clear_pause(path)
            _until(lambda: (s := _states(cli, label)) and set(s.values()) == {"running"})
            starts.append(time.monotonic() - t1)
            assert set(_states(cli, label)) == ids, "resume created new containers"
    finally:
        clear_pause(path)
        agent.stop()
        remove_labelled(cli, label)
    return {
        "containers": containers,
        "pause_to_stopped": summary(stops),
        "resume_to_running": summary(starts),
    }
