"""The command line: argument parsing and what is printed for people (status, cleanup, pull
progress, the settings table)."""

from __future__ import annotations

from collections.abc import Sequence


def main(argv: Sequence[str] | None = None) -> int:
    """The `rma-worker` console script (kept at this path for installed entry points)."""
    from controller.cli.commands import main as run  # noqa: PLC0415

    return run(argv)
