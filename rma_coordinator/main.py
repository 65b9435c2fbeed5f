"""`rma-coordinator`: run the reference coordinator with uvicorn. Every option is a flag and an
environment variable (RMA_COORDINATOR_ prefix)."""

from __future__ import annotations

import argparse
import os
from collections.abc import Sequence
from pathlib import Path

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
    ("--forget-after", "FORGET_AFTER", "1800"),
)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="rma-coordinator", description="Reference RMA coordinator (worker API Parts 1+2)."
    )
    for flag, env, default, text in OPTIONS:
        p.add_argument(flag, default=_env(env, default), help=text)
    p.add_argument("--port", type=int, default=int(_env("PORT", "8080") or 8080))
    db = _env("DB", "rma-coordinator.db") or ""
    p.add_argument("--db", type=Path, default=Path(db), help="SQLite file of the worker pool")
    catalog = _env("CATALOG")
    p.add_argument(
        "--catalog",
        type=Path,
        default=Path(catalog) if catalog else None,
        help="tier catalog YAML (default: the RMA catalog shipped with the package)",
    )
    for flag, env, seconds in SECONDS:
        p.add_argument(flag, type=float, default=float(_env(env, seconds) or seconds))
    p.add_argument(
        "--part1-only",
        action="store_true",
        default=_env("PART1_ONLY", "") in ("1", "true"),
        help="behave like the deployed coordinator: no token, no assignment resource",
    )
    return p


def main(argv: Sequence[str] | None = None) -> int:
    import uvicorn  # noqa: PLC0415 (optional extra)

    args = build_parser().parse_args(argv)
    config = Config(
        db_path=args.db,
        catalog=Catalog.load(args.catalog),
        public_url=args.public_url or f"http://{args.host}:{args.port}",
        admin_token=args.admin_token,
        heartbeat_interval=args.heartbeat_interval,
        offline_after=args.offline_after,
        forget_after=args.forget_after,
        part2=not args.part1_only,
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
