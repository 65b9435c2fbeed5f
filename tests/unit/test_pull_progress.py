"""Pulls that finish (issue 22, item 4): extraction counted beside the download, and a watchdog
that fires when nothing moves (the engine's stream is read without any timeout)."""

from __future__ import annotations

import threading
from typing import Any

from controller.clients.docker_progress import LayerProgress
from controller.clients.docker_pull import Stall
from controller.core.observe import PullProgress


def test_extraction_counts_as_well_as_the_download() -> None:
    layers = LayerProgress()
    lines: list[dict[str, Any]] = [
        {"status": "Downloading", "id": "a", "progressDetail": {"current": 50, "total": 100}},
        {"status": "Download complete", "id": "a"},
        {"status": "Extracting", "id": "a", "progressDetail": {"current": 40, "total": 100}},
    ]
    assert all(layers.feed(line) for line in lines)
    assert (layers.downloaded, layers.total, layers.extracted) == (100, 100, 40)
    assert PullProgress("x", 100, 100, 1.0, 40).percent == 70.0  # not 100 % while unpacking
    assert layers.feed({"status": "Pull complete", "id": "a"}) and layers.extracted == 100


def test_the_watchdog_fires_only_when_nothing_moves() -> None:
    fired = threading.Event()
    moving = Stall(0.2, fired.set)
    for _ in range(5):  # progress more often than the stall: never fires
        moving.moved()
        assert not fired.wait(0.05)
    moving.close()
    assert not moving.fired
    stuck = Stall(0.05, fired.set)
    assert fired.wait(5) and stuck.fired
    stuck.close()
