"""The `rma-worker` command line. Flags are generated from Settings, so every option has both an
environment variable and a flag; a flag given on the command line wins over the environment.
This is the only module that prints to stdout (user-facing output).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal, get_args, get_origin

import structlog
from pydantic import ValidationError

from controller import __version__
from controller.errors import ConfigError
from controller.logs import configure_logging
from controller.settings import Settings, env_for, flag_for

EXIT_CONFIG = 2


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="rma-worker",
        description="RMA worker agent: lend this machine to the RMA pool and keep its Docker "
        "containers converged to what it is assigned.",
    )
    parser.add_argument("--version", action="version", version=f"rma-worker {__version__}")
    parser.add_argument("--test-capabilities", action="store_true",
                        help="print the hardware capabilities that would be registered, as "
                        "JSON, and exit")
    for name, info in Settings.model_fields.items():
        kwargs: dict[str, Any] = {"dest": name, "default": None,
                                  "help": f"{info.description} [env {env_for(name)}]"}
        annotation = info.annotation
        if annotation is bool:
            kwargs["action"] = "store_true"
        else:
            kwargs["type"], choices = _arg_type(annotation)
            if choices:
                kwargs["choices"] = choices
        parser.add_argument(flag_for(name), **kwargs)
    return parser


def _arg_type(annotation: Any) -> tuple[Any, list[str] | None]:
    if get_origin(annotation) is Literal:
        return str, list(get_args(annotation))
    args = [a for a in get_args(annotation) if a is not type(None)] or [annotation]
    base = args[0]
    if base in (int, float):
        return base, None
    if base is Path:
        return Path, None
    return str, None


def load_settings(args: argparse.Namespace) -> Settings:
    overrides = {k: v for k, v in vars(args).items()
                 if k in Settings.model_fields and v is not None and v is not False}
    return Settings(**overrides)


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        settings = load_settings(args)
    except ValidationError as exc:
        print(f"rma-worker: invalid configuration: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    configure_logging(settings.log_format, settings.log_level)
    from controller import app  # noqa: PLC0415  (keeps `--help` free of docker imports)

    if args.test_capabilities:
        print(json.dumps(app.print_capabilities(settings), indent=2))
        return 0
    try:
        return app.run(settings)
    except ConfigError as exc:
        structlog.get_logger(__name__).error("config_error", error=str(exc))
        return EXIT_CONFIG
