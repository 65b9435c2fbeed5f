"""`rma-coordinator`: run the reference coordinator with uvicorn. Every option is a flag and an
environment variable (RMA_COORDINATOR_ prefix)."""

from __future__ import annotations

import argparse
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from rma_coordinator.app import Config, create_app
from rma_coordinator.tiers import Catalog


def _env(name: str, default: str | None = None) -> str | None:
    return os.environ.get(f"RMA_COORDINATOR_{name}", default)


# Plain options: flag, environment variable (after RMA_COORDINATOR_), default, help.
OPTIONS = (
    ("--host", "HOST", "127.0.0.1", "address to listen on"),
    ("--public-url", "PUBLIC_URL", None, "URL workers' containers use to reach this coordinator"),
    ("--admin-token", "ADMIN_TOKEN", None, "bearer token for /api/admin (off when unset)"),
)
SECONDS = (
    ("--heartbeat-interval", "HEARTBEAT_INTERVAL", "30"),
    ("--offline-after", "OFFLINE_AFTER", "300"),
    ("--queue-wait", "QUEUE_WAIT", "30"),
)
# Counts: flag, environment variable, default, help (the proxy's bounds, issue 26).
COUNTS = (
    ("--max-in-flight", "MAX_IN_FLIGHT", 8, "requests the proxy has on their way to one worker"),
    ("--queue-max", "QUEUE_MAX", 100, "requests waiting for a busy service (then 429)"),
)
DIALECTS = ("full", "part1", "edge", "local")
# Options without a fixed default: flag, environment variable, type, help.
UNSET: tuple[tuple[str, str, type[Any], str], ...] = (
    ("--catalog", "CATALOG", Path, "tier catalog YAML (default: the RMA catalog in the package)"),
    (
        "--forget-after",
        "FORGET_AFTER",
        float,
        "seconds of silence before a worker is forgotten (default 1800; local: 600)",
    ),
)
SWITCHES = (
    ("--part1-only", "PART1_ONLY", "the same as --dialect part1"),
    (
        "--allow-private-workers",
        "ALLOW_PRIVATE_WORKERS",
        "proxy to workers on loopback, private and link-local addresses (a LAN pool, tests)",
    ),
    ("--test-mode", "TEST_MODE", "with --dialect edge: its debugging build (stores nothing)"),
)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="rma-coordinator", description="Reference RMA coordinator (worker API Parts 1-3)."
    )
    for flag, env, default, text in OPTIONS:
        p.add_argument(flag, default=_env(env, default), help=text)
    p.add_argument("--port", type=int, default=int(_env("PORT", "8080") or 8080))
    db = _env("DB", "rma-coordinator.db") or ""
    p.add_argument(
        "--db",
        default=db,
        help="the worker pool's database: a SQLite file, or postgresql://user:pass@host/db "
        "(several coordinator processes may share one)",
    )
    for flag, env, kind, text in UNSET:
        raw = _env(env)
        p.add_argument(flag, type=kind, default=kind(raw) if raw else None, help=text)
    for flag, env, seconds in SECONDS:
        p.add_argument(flag, type=float, default=float(_env(env, seconds) or seconds))
    for flag, env, count, text in COUNTS:
        p.add_argument(flag, type=int, default=int(_env(env, str(count)) or count), help=text)
    p.add_argument(
        "--dialect",
        choices=DIALECTS,
        default=_env("DIALECT", "full"),
        help="full: Parts 1 + 2; part1: the service coordinator; edge, local: Part 3's others",
    )
    for flag, env, text in SWITCHES:
        p.add_argument(flag, action="store_true", default=_env(env, "") in ("1", "true"), help=text)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    import uvicorn  # noqa: PLC0415 (optional extra)

    args = build_parser().parse_args(argv)
    dialect = "part1" if args.part1_only else args.dialect
    config = Config(
        db_path=args.db,
        catalog=Catalog.load(args.catalog),
        public_url=args.public_url or f"http://{args.host}:{args.port}",
        admin_token=args.admin_token,
        heartbeat_interval=args.heartbeat_interval,
        offline_after=args.offline_after,
        forget_after=args.forget_after or (600.0 if dialect == "local" else 1800.0),
        dialect=dialect,
        test_mode=args.test_mode,
        allow_private_workers=args.allow_private_workers,
        listen=(args.host, args.port),
        max_in_flight=max(1, args.max_in_flight),
        queue_max=max(0, args.queue_max),
        queue_wait=args.queue_wait,
    )
    uvicorn.run(
        create_app(config),
        host=args.host,
        port=args.port,
        log_level="warning",
        timeout_graceful_shutdown=2,
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
