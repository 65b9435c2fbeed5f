"""A coordinator's bytes never drive the owner's terminal (issue 21, item 5): `rma-worker status`
and the console log escape control characters, and ids and names are checked whole where they
arrive (a trailing newline included)."""

from __future__ import annotations

import io
import json
import sys
from pathlib import Path
from typing import Any

import pytest
import structlog
from pydantic import ValidationError

from controller.cli import console
from controller.contract.api import RegisterResponse
from controller.contract.schema import parse_specs
from controller.core.models import NAME_RE
from controller.core.text import printable
from controller.ops.logs import configure_logging
from controller.settings import Settings
from tests.unit.test_observability import STATUS

TITLE, CLEAR, LINK = (
    "\x1b]0;owned\x07",
    "\x1b[2J",
    "\x1b]8;;https://evil.example\x1b\\click\x1b]8;;\x1b\\",
)
HOSTILE = TITLE + CLEAR + LINK + "\x9b31m"  # C1 CSI too


def test_printable_escapes_c0_c1_and_del_as_journalctl_does() -> None:
    assert printable("a\x1b[2Jb\x07\x7f\x9b\n") == "a\\x1b[2Jb\\x07\\x7f\\x9b\\x0a"
    assert printable("line\nnext\t", lines=True) == "line\nnext\t"


def test_status_draws_no_control_character(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    data: dict[str, Any] = json.loads(json.dumps(STATUS))
    data["worker_id"] = "w" + TITLE
    data["heartbeat_error"] = "403: " + HOSTILE  # a refusal's `detail`, as the coordinator sent it
    data["coordinator_notice"] = HOSTILE
    data["containers"][1]["name"] = "bad" + CLEAR
    data["containers"][1]["error"] = "unknown service " + LINK
    monkeypatch.setattr(console, "fetch_status", lambda settings: data)
    out = io.StringIO()
    assert console.status_command(Settings(state_dir=tmp_path), as_json=False, out=out) == 0
    text = out.getvalue()
    assert not any(c in text for c in "\x1b\x07\x9b"), text
    assert "\\x1b]0;owned\\x07" in text  # shown, escaped
    out = io.StringIO()
    console.status_command(Settings(state_dir=tmp_path), as_json=True, out=out)
    assert (
        "\x1b" not in out.getvalue()
        and json.loads(out.getvalue())["worker_id"] == data["worker_id"]
    )


def test_the_console_log_escapes_a_coordinators_words(monkeypatch: pytest.MonkeyPatch) -> None:
    err = io.StringIO()
    monkeypatch.setattr(sys, "stderr", err)
    configure_logging("console", "info")
    try:
        structlog.get_logger("t").error(
            "spec_refused", container="x" + TITLE, error=HOSTILE, rows=[{"n": CLEAR}]
        )
    finally:
        configure_logging("json", "info")
    text = err.getvalue()
    assert "spec_refused" in text and not any(c in text for c in "\x1b\x07\x9b"), repr(text)


@pytest.mark.parametrize("worker_id", ["w\n", "w" + TITLE, "a b", "-x", "x/../y"])
def test_a_worker_id_is_checked_whole(worker_id: str) -> None:
    with pytest.raises(ValidationError):
        RegisterResponse.model_validate({"worker_id": worker_id, "tier": 2})
    assert RegisterResponse.model_validate({"worker_id": "worker-1:a@b.c", "tier": 2}).worker_id


def test_names_and_labels_are_matched_whole() -> None:
    assert NAME_RE.match("web\n") is None
    entries = [
        {"name": "web\n", "image": "ghcr.io/rma/x:1"},
        {"name": "lab", "image": "ghcr.io/rma/x:1", "labels": {"rma.service": "x@evil.example/#"}},
        {"name": "esc", "image": "ghcr.io/rma/x:1", "labels": {"note": "a" + CLEAR}},
        {"name": "key", "image": "ghcr.io/rma/x:1", "labels": {"rma.x\n": "1"}},
        {"name": "ok", "image": "ghcr.io/rma/x:1", "labels": {"rma.service": "rag-api"}},
    ]
    specs, errors = parse_specs(entries)
    assert [s.name for s in specs] == ["ok"]
    assert {e.name for e in errors} == {"web\n", "lab", "esc", "key"}
