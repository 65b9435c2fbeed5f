"""Text from elsewhere made safe for a terminal (pure).

A coordinator's words reach the owner's terminal: a refusal's `detail`, a worker id, a refused
spec's name, a label. Escape and OSC sequences in them could retitle the window, clear the
screen or plant a link (`\\x1b]8;;…`). Like journalctl, every C0 and C1 control character and
DEL is shown escaped (`\\x1b`), at the output boundary: the status table (cli/console.py) and
the console log (ops/logs.py). JSON output escapes them by itself.
"""

from __future__ import annotations

import re
from typing import Any

# C0 (but tab), DEL and C1; a newline too: a value must never start a line of its own.
_CONTROLS = re.compile(r"[\x00-\x08\x0a-\x1f\x7f-\x9f]")
_CONTROLS_BUT_NEWLINE = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def has_controls(text: str) -> bool:
    return _CONTROLS.search(text) is not None


def printable(text: str, *, lines: bool = False) -> str:
    """`text` with each control character written as `\\xNN` (with `lines`, newlines kept: a
    traceback of the agent's own)."""
    pattern = _CONTROLS_BUT_NEWLINE if lines else _CONTROLS
    return pattern.sub(lambda m: f"\\x{ord(m.group(0)):02x}", text)


def printable_all(value: Any) -> Any:
    """Every string in a JSON-like value (keys included) made printable."""
    if isinstance(value, str):
        return printable(value)
    if isinstance(value, dict):
        return {printable_all(k): printable_all(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [printable_all(v) for v in value]
    return value
