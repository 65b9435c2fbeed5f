"""Reachability (Part 4), with the stand-in tunnel (manifests/tunnel/, offline): how soon after
an HTTP service starts its tunnel's URL is listed at the reference coordinator (Part 2: the
heartbeat carries it), and how soon after its tunnel is killed requests through the
coordinator's proxy work again. The tunnel's own start-up (its container start to the URL in
its log) is measured apart: a real cloudflared takes seconds the agent cannot shorten.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import docker
import requests

from bench.common import IMAGE, Agent, StartWatcher, instance_label, remove_labelled, summary
from rma_testkit.coordinator import Coordinator, free_port, services_index, write_catalog
from rma_testkit.engine import TUNNEL_URL, wait_until

NAME = "bench-reach-web"
TUNNEL = f"rma-tunnel-{NAME}"
TUNNEL_IMAGE = "rma-test/tunnel:1"  # built by `make services` (manifests/services.sh)
WEB = ["sh", "-c", "trap 'exit 0' TERM; httpd -f -p 8080 -h /www & wait"]


def _spec() -> dict[str, Any]:
    ports = [{"container": 8080, "host": free_port()}]
    labels = {"rma.service": "web"}
    return {
        "name": NAME,
        "image": IMAGE,
        "command": WEB,
        "ports": ports,
        "http": True,
        "labels": labels,
    }


def _listed(coordinator: Coordinator, other_than: str = "") -> str:
    entries = services_index(coordinator).get("web") or []
    urls = [e["service_url"] for e in entries if e["service_url"] not in ("", None, other_than)]
    return str(urls[0]) if urls else ""


def _until(cond: Any, timeout: float = 60.0) -> Any:
    return wait_until(cond, timeout, "bench reach", step=0.02)  # 20 ms: the timing's resolution


def _works(coordinator: Coordinator) -> bool:
    try:
        resp = requests.get(f"{coordinator.url}/api/service/web/index.html", timeout=2)
    except requests.RequestException:
        return False
    return resp.status_code == 200


def _rounds(
    cli: docker.DockerClient, coordinator: Coordinator, watcher: StartWatcher, repeats: int
) -> dict[str, list[float]]:
    worker = coordinator.workers()[0]["id"]
    announce, tunnel_up, recover = [], [], []
    for _ in range(repeats):
        coordinator.set_assignment(worker, [])
        _until(lambda: not _listed(coordinator))
        t0 = time.time_ns()
        coordinator.set_assignment(worker, [_spec()])
        _until(lambda: _listed(coordinator))
        listed = time.time_ns()
        started = watcher.wait_start(NAME, t0)
        tunnel_started = watcher.wait_start(TUNNEL, t0)
        announce.append((listed - started) / 1e9)
        tunnel_up.append((listed - tunnel_started) / 1e9)
        old = _listed(coordinator)
        _until(lambda: _works(coordinator))
        k0 = time.monotonic()
        cli.api.remove_container(TUNNEL, force=True)
        _until(lambda old=old: _listed(coordinator, other_than=old) and _works(coordinator))
        recover.append(time.monotonic() - k0)
    return {"announce": announce, "tunnel": tunnel_up, "recover": recover}


def run(cli: docker.DockerClient, work: Path, repeats: int) -> dict[str, Any]:
    coordinator = Coordinator(work, write_catalog(work / "reach-catalog.yaml", []))
    agent = Agent(
        work,
        "bench-reach",
        *("--coordinator", coordinator.url, "--publish-address", "127.0.0.1"),
        *("--ingress", "tunnel", "--tunnel-image", TUNNEL_IMAGE),
        *("--tunnel-url-pattern", TUNNEL_URL, "--drain-seconds", "0"),
    )
    label = instance_label(agent.instance)
    watcher = StartWatcher(cli, label)
    try:
        agent.start()
        _until(coordinator.workers, timeout=60)
        found = _rounds(cli, coordinator, watcher, repeats)
    finally:
        watcher.close()
        agent.stop()
        remove_labelled(cli, label)
        coordinator.stop()
    return {
        "service_start_to_listed": summary(found["announce"]),
        "tunnel_start_to_listed": summary(found["tunnel"]),
        "tunnel_killed_to_working": summary(found["recover"]),
    }
