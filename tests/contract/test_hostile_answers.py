"""The agent's real HTTP client against answers meant to wedge it, on a loopback port: an answer
trickled a byte at a time (headers or body) is cut off at its deadline, not read for minutes."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from controller.clients.coordinator import CoordinatorClient, Patience
from controller.core.errors import CoordinatorUnreachable
from rma_testkit.bad_coordinator import TRICKLE_BODY, TRICKLE_HEADERS, BadCoordinator
from rma_testkit.coordinator import free_port


@pytest.fixture(params=[TRICKLE_BODY, TRICKLE_HEADERS])
def trickler(request: pytest.FixtureRequest) -> Iterator[BadCoordinator]:
    bad = BadCoordinator(free_port(), request.param)
    yield bad
    bad.close()


def test_a_trickled_answer_is_cut_off_at_its_deadline(trickler: BadCoordinator) -> None:
    client = CoordinatorClient(
        f"http://127.0.0.1:{trickler.port}", patience=Patience(connect=0.5, read=1.0, attempts=1)
    )
    started = time.monotonic()
    with pytest.raises(CoordinatorUnreachable, match="too slowly"):
        client.register({"capabilities": {}})
    took = time.monotonic() - started
    assert took < 5, took  # 1.5 s allowed; the server would go on for a minute
    client.close()
