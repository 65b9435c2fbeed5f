"""structlog configuration: key/value events, JSON when stdout is not a terminal (or when asked),
a readable console rendering otherwise. Logs go to stderr so stdout stays free for the CLI's
user-facing output (`--test-capabilities` prints one JSON object there).
"""

from __future__ import annotations

import logging
import sys
from collections.abc import MutableMapping
from typing import Any

import structlog

from controller.core.text import printable, printable_all
from controller.ops.events import RECENT

_LEVELS = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warning": logging.WARNING,
    "error": logging.ERROR,
}


def escape_controls(_: Any, __: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    """Every control character in an event (a coordinator's words included) escaped, so that
    no log line can drive the owner's terminal (core/text.py); a traceback keeps its lines."""
    for key, value in event.items():
        if key == "exception" and isinstance(value, str):
            event[key] = printable(value, lines=True)
        elif not isinstance(value, int | float | bool | type(None)):
            event[key] = printable_all(
                value if isinstance(value, str | dict | list | tuple) else str(value)
            )
    return event


def configure_logging(fmt: str = "auto", level: str = "info") -> None:
    if fmt == "auto":
        fmt = "console" if sys.stdout.isatty() else "json"
    renderer: Any
    if fmt == "json":
        renderer = structlog.processors.JSONRenderer()
    else:
        renderer = structlog.dev.ConsoleRenderer(colors=sys.stderr.isatty())
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            escape_controls,
            RECENT,  # the owner's page lists the last notable events
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(_LEVELS[level]),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=False,
    )
