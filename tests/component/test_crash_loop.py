"""The crash-loop back-off, seen from the whole agent (manifest mode, in-process): a container
that keeps exiting is held back 10 s, then 20 s…, and never restarted hot; the others run. It was
a process-level test that slept 3 real seconds inside the first back-off."""

from __future__ import annotations

from pathlib import Path

from rma_testkit.agent import write_manifest
from rma_testkit.component import in_process, settings_for

IMAGE = "img:1"
SLEEP = ["sh", "-c", "sleep 3600"]


def test_a_container_that_keeps_exiting_backs_off_and_the_rest_runs(tmp_path: Path) -> None:
    specs = [
        {"name": "cl-crash", "image": IMAGE, "command": ["sh", "-c", "exit 3"], "restart": "no"},
        {"name": "cl-ok", "image": IMAGE, "command": SLEEP},
    ]
    manifest = write_manifest(tmp_path / "m.json", specs)
    settings = settings_for(tmp_path / "state", "cl", ("manifest", manifest))
    with in_process(settings, images={IMAGE}, crashing={"cl-crash"}) as agent:
        _state, restarts, error = agent.until(lambda: _backoff(agent.status()))
        assert restarts == 1 and "back-off" in str(error)
        assert agent.runtime.running() == {"cl-ok"}
        starts = agent.runtime.calls.count("start:" + _id(agent, "cl-crash"))
        agent.advance(8)  # well inside the first 10 s back-off
        assert agent.status()["cl-crash"][:2] == ("backoff", 1)  # no hot loop
        assert agent.runtime.calls.count("start:" + _id(agent, "cl-crash")) == starts
        agent.until(lambda: agent.status()["cl-crash"][1] == 2, within=5)  # then once more
        assert agent.runtime.running() == {"cl-ok"}
        agent.until(lambda: _backoff(agent.status()))
        agent.advance(15)  # the second back-off is 20 s
        assert agent.status()["cl-crash"][1] == 2
    assert agent.code == 0 and agent.runtime.running() == set()  # torn down on stop


def _backoff(status: dict[str, tuple[str, int, str | None]]) -> tuple[str, int, str | None] | None:
    row = status.get("cl-crash")
    return row if row is not None and row[0] == "backoff" else None


def _id(agent: object, name: str) -> str:
    found = agent.runtime.by_name(name)  # type: ignore[attr-defined]
    assert found is not None
    return str(found.id)
