"""Test layers, decided here once:

- tests/unit: no Docker, no network; always run.
- tests/contract: the agent's client against the reference coordinator in this process.
- tests/integration: the real engine and local registry (`make services`). Without a reachable
  engine they are skipped with one reason, unless RMA_REQUIRE_DOCKER=1 (`make test`, CI), where a
  missing engine fails them instead.
- tests/destructive: stop the host's engine or wait minutes; run only with RMA_DESTRUCTIVE=1.

`make test` runs them in two phases: first everything but the `serial` tests side by side
(pytest-xdist: each test has its own agent instance, networks, ports and state dir), then the
`serial` ones alone — those that hold something of the whole host: the engine itself (the
destructive test that restarts it, marked where it is written), fixed ports (`make run`'s
coordinator, demo page and owner's page), and the real browser, which reads a state that lasts
seconds and needs the host to itself to see it.
"""

from __future__ import annotations

import os
from functools import cache

import pytest

pytest_plugins = ["rma_testkit.fixtures"]
NEEDS_ENGINE = ("integration", "destructive")
# make run's fixed ports; a real browser whose page polls miss a short state on a loaded host.
SERIAL_FILES = frozenset({"test_make_run.py", "test_dashboard_browser.py"})


@cache
def _engine_problem() -> str | None:
    import docker  # noqa: PLC0415 (only when engine tests were collected)

    try:
        client = docker.from_env(timeout=3)
        client.ping()
        client.close()
    except docker.errors.DockerException as exc:
        return str(exc).splitlines()[0][:200]
    return None


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    destructive = os.environ.get("RMA_DESTRUCTIVE") == "1"
    require = os.environ.get("RMA_REQUIRE_DOCKER") == "1"
    for item in items:
        layer = next((part for part in item.path.parts if part in NEEDS_ENGINE), None)
        if layer is None:
            continue
        item.add_marker(getattr(pytest.mark, layer))
        if item.path.name in SERIAL_FILES:
            item.add_marker(pytest.mark.serial)
        if layer == "destructive" and not destructive:
            item.add_marker(pytest.mark.skip(reason="destructive: set RMA_DESTRUCTIVE=1"))
        elif not require and _engine_problem() is not None:
            item.add_marker(
                pytest.mark.skip(
                    reason=f"no Docker engine ({_engine_problem()}): `make services`, or "
                    "RMA_REQUIRE_DOCKER=1 to fail instead"
                )
            )
