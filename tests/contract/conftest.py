"""The contract tests' coordinator: the reference one served in this process
(rma_testkit/served.py), so that the agent's real HTTP client talks to it exactly as it talks to a
deployed coordinator."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from rma_testkit.served import Served


@pytest.fixture
def serve(tmp_path: Path) -> Iterator[Callable[..., Served]]:
    started: list[Served] = []

    def start(**kw: Any) -> Served:
        served = Served(tmp_path, **kw)
        started.append(served)
        return served

    yield start
    for served in started:
        served.close()
