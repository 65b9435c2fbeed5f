"""Memory admission seen from the whole agent (in-process, manifest mode): what does not fit in
the memory the owner lends is not created, is `unavailable` with the reason, and does not make
the worker unhealthy (issue 24, item 6)."""

from __future__ import annotations

from pathlib import Path

from controller.clients.hardware import memory_total
from controller.core.memory import MIB
from rma_testkit.agent import write_manifest
from rma_testkit.component import in_process, settings_for

IMAGE = "img:1"


def test_what_does_not_fit_is_unavailable_and_the_rest_runs(tmp_path: Path) -> None:
    specs = [
        {"name": f"mem-{n}", "image": IMAGE, "command": ["sleep", "3600"], "memory_limit": "400m"}
        for n in ("a", "b", "c")
    ]
    manifest = write_manifest(tmp_path / "m.json", specs)
    keep = memory_total() // MIB - 1024  # what is left for the containers: 1 GiB
    settings = settings_for(
        tmp_path / "state", "mem", ("manifest", manifest), ("reserve_memory", f"{keep}m")
    )
    with in_process(settings, {IMAGE}) as agent:
        agent.until(lambda: agent.status().get("mem-b", ("",))[0] == "running")  # a pass done
        assert agent.runtime.running() == {"mem-a", "mem-b"}
        state, _restarts, error = agent.status()["mem-c"]
        assert state == "unavailable"
        assert error == "unavailable: not enough memory (needs 400 MiB, 224 MiB left)"
        assert agent.parts.agent.status().healthy
        assert agent.runtime.by_name("mem-c") is None  # never created
