"""A PostgreSQL database of its own for each test of the coordinator's second back-end (issue 25):
a schema made in the test database `make services` sets up (RMA_TEST_POSTGRES), reached through a
URL whose search_path is that schema, dropped afterwards. Without a reachable server the tests
that need it are skipped — unless RMA_REQUIRE_POSTGRES=1 (CI), where they fail.
"""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

import pytest

URL = os.environ.get("RMA_TEST_POSTGRES", "postgresql://rma:rma@127.0.0.1:5432/rma_test")


def _connect() -> Any:
    import psycopg  # noqa: PLC0415

    return psycopg.connect(URL, autocommit=True, connect_timeout=3)


@contextlib.contextmanager
def fresh_database() -> Iterator[str]:
    """A URL to an empty schema of the test database, for the block; skips without a server."""
    try:
        admin = _connect()
    except Exception as exc:  # psycopg's OperationalError: no server, no role
        if os.environ.get("RMA_REQUIRE_POSTGRES") == "1":
            raise
        pytest.skip(f"PostgreSQL not reachable at {URL} ({exc}): make services starts it")
    schema = f"t{uuid.uuid4().hex[:12]}"
    with contextlib.closing(admin) as conn:
        conn.execute(f"CREATE SCHEMA {schema}")
        try:
            yield f"{URL}?options={quote(f'-csearch_path={schema}')}"
        finally:
            conn.execute(f"DROP SCHEMA {schema} CASCADE")
