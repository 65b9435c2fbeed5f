"""The `rma-worker` command line. Flags are generated from Settings, so every option has both an
environment variable and a flag; a flag given on the command line wins over the environment.

    rma-worker [options]                 run the agent (coordinator, or --manifest)
    rma-worker --test-capabilities       print what this machine would register with
    rma-worker status [--json]           ask the running agent how it is doing
    rma-worker cleanup [--dry-run]       remove every container carrying the agent's labels
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
from controller.core.errors import ConfigError
from controller.ops.logs import configure_logging
from controller.settings import Settings, env_for, flag_for

EXIT_CONFIG = 2


def _add_setting_flags(parser: argparse.ArgumentParser, *, sub: bool) -> None:
    # On subcommands an absent flag must not overwrite one given before the subcommand.
    default = argparse.SUPPRESS if sub else None
    for name, info in Settings.model_fields.items():
        help_text = f"{info.description} [env {env_for(name)}]".replace("%", "%%")
        kwargs: dict[str, Any] = {"dest": name, "default": default, "help": help_text}
        if info.annotation is bool:
            kwargs["action"] = "store_true"
        else:
            kwargs["type"], choices = _arg_type(info.annotation)
            if choices:
                kwargs["choices"] = choices
        parser.add_argument(flag_for(name), **kwargs)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="rma-worker",
        description="RMA worker agent: lend this machine to the RMA pool and keep its Docker "
        "containers converged to what it is assigned.",
    )
    parser.add_argument("--version", action="version", version=f"rma-worker {__version__}")
    parser.add_argument(
        "--test-capabilities",
        action="store_true",
        help="print the hardware capabilities that would be registered, as JSON, and exit",
    )
    _add_setting_flags(parser, sub=False)
    commands = parser.add_subparsers(dest="command", metavar="{status,cleanup}")
    status = commands.add_parser("status", help="show the running agent's state")
    status.add_argument("--json", action="store_true", help="machine-readable output")
    _add_setting_flags(status, sub=True)
    cleanup = commands.add_parser(
        "cleanup", help="remove every container carrying the agent's labels (any instance)"
    )
    cleanup.add_argument("--dry-run", action="store_true", help="only list what would go")
    cleanup.add_argument(
        "--instance-only", action="store_true", help="only the containers of --instance"
    )
    _add_setting_flags(cleanup, sub=True)
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
    overrides = {
        k: v
        for k, v in vars(args).items()
        if k in Settings.model_fields and v is not None and v is not False
    }
    return Settings(**overrides)


def _subcommand(args: argparse.Namespace, settings: Settings) -> int:
    from controller.cli import console  # noqa: PLC0415

    if args.command == "cleanup":
        return console.cleanup_command(settings, args.dry_run, instance_only=args.instance_only)
    try:
        return console.status_command(settings, args.json)
    except BrokenPipeError:  # `rma-worker status | head`
        return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        settings = load_settings(args)
    except ValidationError as exc:
        print(f"rma-worker: invalid configuration: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    configure_logging(settings.log_format, settings.log_level)
    if args.command is not None:
        return _subcommand(args, settings)
    # Imported here so that `--help` stays fast and free of docker imports.
    from controller import app  # noqa: PLC0415
    from controller.cli import console  # noqa: PLC0415

    if args.test_capabilities:
        try:
            print(json.dumps(app.probe_capabilities(settings), indent=2))
        except ConfigError as exc:
            print(f"rma-worker: {exc}", file=sys.stderr)
            return EXIT_CONFIG
        return 0
    fancy = (
        sys.stderr.isatty()
        and settings.log_format != "json"
        and (settings.log_format == "console" or sys.stdout.isatty())
    )
    try:
        return app.run(settings, progress_sink=console.ProgressBar() if fancy else None)
    except ConfigError as exc:
        structlog.get_logger(__name__).error("config_error", error=str(exc))
        return EXIT_CONFIG
