"""The contract tests' coordinator: the reference one served in this process
(rma_testkit/served.py), so that the agent's real HTTP client talks to it exactly as it talks to a
deployed coordinator — on SQLite and on PostgreSQL (issue 25)."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from rma_testkit.postgres import fresh_database
from rma_testkit.served import Served


@pytest.fixture(params=["sqlite", "postgres"])
def serve(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Callable[..., Served]]:
    """The reference coordinator on each back-end: its SQLite file, or a PostgreSQL schema of
    its own (rma_testkit/postgres.py; skipped without a server, unless CI requires one)."""
    started: list[Served] = []
    with contextlib.ExitStack() as stack:
        db = stack.enter_context(fresh_database()) if request.param == "postgres" else None

        def start(**kw: Any) -> Served:
            served = Served(tmp_path, db=db, **kw)
            started.append(served)
            return served

        yield start
        for served in started:
            served.close()
