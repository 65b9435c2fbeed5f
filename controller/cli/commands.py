"""The `rma-worker` command line. Flags come from Settings (through flags.json, which
`make settings-table` generates, so that `--help` and `--version` import neither pydantic nor
docker), so every option has both an environment variable and a flag; a flag given on the command
line wins over the environment.

    rma-worker [options]                 run the agent (coordinator, or --manifest)
    rma-worker --test-capabilities       print what this machine would register with
    rma-worker status [--json]           ask the running agent how it is doing
    rma-worker cleanup [--dry-run] [--volumes] [--all-instances]  remove what carries the
                                         labels of --instance (or of every instance)
    rma-worker cleanup --caches [--yes]  empty the model caches (asks first on a terminal)
    rma-worker adopt-volume NAME...      use an earlier agent's unprefixed volumes as they are
    rma-worker pause [--for 2h] [--gpu-only]  hold the containers stopped (kept) until resumed
    rma-worker resume                    end the pause
    rma-worker credits [--json]          what this machine earned, its receipts, its key
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

from controller import __version__

if TYPE_CHECKING:
    from controller.settings import Settings

EXIT_CONFIG = 2
# The settings each subcommand reads (only these are its flags; the environment still sets any).
_WHERE = ("state_dir", "instance", "log_format", "log_level")
SUB_SETTINGS: dict[str, tuple[str, ...]] = {
    "status": (*_WHERE, "health_addr"),
    "cleanup": (*_WHERE, "docker_host"),
    "adopt-volume": (*_WHERE, "docker_host"),
    "pause": (*_WHERE, "drain_seconds", "stop_grace"),
    "resume": _WHERE,
    "credits": (*_WHERE, "display_name", "ca_bundle", "allow_insecure_coordinator"),
}
TYPES: dict[str, Any] = {"str": str, "int": int, "float": float, "path": Path}


def flag_specs() -> list[dict[str, Any]]:
    """The settings' flags as generated from Settings (name, flag, env, kind, choices, help)."""
    # A plain file read next to this module: importlib.resources would cost ~30 ms of --help.
    with open(os.path.join(os.path.dirname(__file__), "flags.json"), encoding="utf-8") as f:
        specs: list[dict[str, Any]] = json.load(f)
    return specs


def _add_setting_flags(
    parser: argparse.ArgumentParser, specs: list[dict[str, Any]], *, sub: str = ""
) -> None:
    # On subcommands an absent flag must not overwrite one given before the subcommand.
    default = argparse.SUPPRESS if sub else None
    for spec in specs:
        if sub and spec["name"] not in SUB_SETTINGS[sub]:
            continue
        help_text = f"{spec['help']} [env {spec['env']}]".replace("%", "%%")
        kwargs: dict[str, Any] = {"dest": spec["name"], "default": default, "help": help_text}
        if spec["kind"] == "bool":
            kwargs["action"] = "store_true"
            if spec.get("negatable"):  # on by default: --no-<flag> turns it off
                off = "--no-" + spec["flag"].removeprefix("--")
                parser.add_argument(
                    off,
                    dest=spec["name"],
                    action="store_const",
                    const=False,
                    default=default,
                    help=f"turn {spec['flag']} off",
                )
        else:
            kwargs["type"] = TYPES[spec["kind"]]
            if spec["choices"]:
                kwargs["choices"] = spec["choices"]
        parser.add_argument(spec["flag"], **kwargs)


class _Parser(argparse.ArgumentParser):
    """A bad flag is one line (which flag, what is wrong) and exit 2, not the whole usage."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_CONFIG, f"{self.prog}: {message} (--help lists every flag)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
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
    specs = flag_specs()  # read once for the parser and both subcommands
    _add_setting_flags(parser, specs)
    commands = parser.add_subparsers(
        dest="command", metavar="{status,pause,resume,credits,cleanup,adopt-volume}"
    )
    status = commands.add_parser("status", help="show the running agent's state")
    status.add_argument("--json", action="store_true", help="machine-readable output")
    _add_setting_flags(status, specs, sub="status")
    _cleanup_command(commands, specs)
    _owner_commands(commands, specs)
    earned = commands.add_parser(
        "credits", help="what this machine earned: credits, rank, receipts, contributor key"
    )
    earned.add_argument("--json", action="store_true", help="machine-readable output")
    _add_setting_flags(earned, specs, sub="credits")
    adopt = commands.add_parser(
        "adopt-volume",
        help="use existing (unprefixed) volumes of an earlier agent as they are",
    )
    adopt.add_argument("volumes", nargs="+", metavar="NAME")
    _add_setting_flags(adopt, specs, sub="adopt-volume")
    return parser


def _cleanup_command(commands: Any, specs: list[dict[str, Any]]) -> None:
    cleanup = commands.add_parser(
        "cleanup", help="remove the containers and networks of --instance (the agent's labels)"
    )
    cleanup.add_argument("--dry-run", action="store_true", help="only list what would go")
    cleanup.add_argument(
        "--all-instances",
        action="store_true",
        help="every agent instance's containers and networks, not only --instance's",
    )
    cleanup.add_argument(  # before 0.8 cleanup took every instance unless told this
        "--instance-only", action="store_true", help=argparse.SUPPRESS
    )
    cleanup.add_argument(
        "--caches",
        action="store_true",
        help="empty the model caches (their volumes: models are downloaded again; asks first "
        "on a terminal, --yes does not)",
    )
    cleanup.add_argument("--yes", action="store_true", help="do not ask before --caches")
    cleanup.add_argument(
        "--volumes", action="store_true", help="the agent's volumes too (their data is lost)"
    )
    _add_setting_flags(cleanup, specs, sub="cleanup")


def _owner_commands(commands: Any, specs: list[dict[str, Any]]) -> None:
    pause = commands.add_parser(
        "pause",
        help="pause the running agent: its containers are stopped (kept), the coordinator told",
    )
    pause.add_argument(
        "--for", dest="duration", metavar="DURATION", help="end by itself after 2h, 90m, 1d…"
    )
    pause.add_argument(
        "--gpu-only", action="store_true", help="only the GPU containers (the rest keeps running)"
    )
    _add_setting_flags(pause, specs, sub="pause")
    resume = commands.add_parser("resume", help="end a pause (started again, not pulled again)")
    _add_setting_flags(resume, specs, sub="resume")


def load_settings(args: argparse.Namespace) -> Settings:
    from controller.settings import Settings  # noqa: PLC0415 (not needed for --help)

    overrides = {
        k: v for k, v in vars(args).items() if k in Settings.model_fields and v is not None
    }
    return Settings(**overrides)


def _subcommand(args: argparse.Namespace, settings: Settings) -> int:
    from controller.cli import console  # noqa: PLC0415

    if args.command in ("pause", "resume"):
        from controller.cli import owner  # noqa: PLC0415

        if args.command == "resume":
            return owner.resume_command(settings)
        return owner.pause_command(settings, args.duration, gpu_only=args.gpu_only)
    if args.command == "adopt-volume":
        return console.adopt_command(settings, args.volumes)
    if args.command == "cleanup":
        return _cleanup(args, settings)
    return _report(args, settings)


def _report(args: argparse.Namespace, settings: Settings) -> int:
    """`status` or `credits`: what is printed, not done."""
    if args.command == "credits":
        from controller.cli.credits import credits_command as command  # noqa: PLC0415
    else:
        from controller.cli.console import status_command as command  # noqa: PLC0415
    try:
        return command(settings, args.json)
    except BrokenPipeError:  # `rma-worker status | head`
        return 0


def _cleanup(args: argparse.Namespace, settings: Settings) -> int:
    from controller.cli import console  # noqa: PLC0415

    if args.caches:
        return console.caches_command(settings, args.dry_run, confirmed=args.yes)
    return console.cleanup_command(
        settings, args.dry_run, instance_only=not args.all_instances, volumes=args.volumes
    )


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    # Imported only now, so that `--help` and `--version` stay fast.
    from pydantic import ValidationError  # noqa: PLC0415

    from controller.ops.logs import configure_logging  # noqa: PLC0415

    try:
        settings = load_settings(args)
    except ValidationError as exc:
        from controller.settings import problems  # noqa: PLC0415

        for line in problems(exc):
            print(f"rma-worker: {line}", file=sys.stderr)
        return EXIT_CONFIG
    configure_logging(settings.log_format, settings.log_level)
    if args.command is not None:
        return _subcommand(args, settings)
    return _agent(args, settings)


def _agent(args: argparse.Namespace, settings: Settings) -> int:
    import structlog  # noqa: PLC0415

    from controller import app  # noqa: PLC0415
    from controller.cli import console  # noqa: PLC0415
    from controller.core.errors import ConfigError  # noqa: PLC0415

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
