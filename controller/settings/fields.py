"""The one helper every setting is declared with, and the small parsers the groups share.

A setting's group (who sets it: contributor, operator, tuning) is the module it is declared in
(`controller/settings/<group>.py`), not a tag beside it: `group_of` reads where it lives.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from pydantic import Field
from pydantic.config import JsonDict

OFF = ("off", "", "none", "0")


def setting(default: Any, doc: str, shown: str | None = None, **kw: Any) -> Any:
    """A setting: its default, what it means, and the default as documented (`shown`)."""
    extra: JsonDict = {"shown": shown} if shown is not None else {}
    if callable(default):
        return Field(default_factory=default, description=doc, json_schema_extra=extra, **kw)
    return Field(default=default, description=doc, json_schema_extra=extra, **kw)


def default_state_dir() -> Path:
    if os.geteuid() == 0:
        return Path("/var/lib/rma-worker")
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "rma-worker"


def port_bounds(text: str) -> tuple[int, int]:
    """'1024-65535' -> (1024, 65535)."""
    low, sep, high = text.strip().partition("-")
    if not (sep and low.isdigit() and high.isdigit() and 1 <= int(low) <= int(high) <= 65535):
        raise ValueError(f"{text!r} is not a port range low-high within 1-65535")
    return int(low), int(high)


def parse_host_port(addr: str) -> tuple[str, int]:
    """'host:port' (host may be empty: 127.0.0.1; IPv6 in brackets) -> (host, port)."""
    host, sep, port = addr.strip().rpartition(":")
    if not sep or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ValueError(f"{addr!r} is not host:port (e.g. 127.0.0.1:9321), nor 'off'")
    return host.strip("[]") or "127.0.0.1", int(port)
