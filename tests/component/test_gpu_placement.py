"""GPU placement seen from the whole agent (in-process, manifest mode, an 8 GB GPU as detected):
the model server that needs 18 GB is `unavailable` with the reason and never created, the one that
fits is pinned to GPU 0 with its share filled in, the status says where it runs, and the worker is
not unhealthy for what it cannot run (issue 24, items 1 and 2)."""

from __future__ import annotations

from pathlib import Path

import pytest

from controller.clients import hardware
from controller.core.machine import GpuInfo, HardwareInfo
from rma_testkit.agent import write_manifest
from rma_testkit.component import in_process, settings_for

IMAGE = "img:1"
EIGHT_GB = GpuInfo(0, "NVIDIA GeForce RTX 3070", 8192 << 20, "nvidia", "GPU-8", "550.54")


def test_a_model_too_big_for_the_card_is_unavailable_and_the_other_is_pinned(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(hardware, "detect", lambda: HardwareInfo(8, 32 << 30, 1 << 40, (EIGHT_GB,)))
    fraction = "${gpu_memory_fraction}"
    specs = [
        {"name": "vllm", "image": IMAGE, "gpu": True, "gpu_memory_min": 18000,
         "command": ["--gpu-memory-utilization", fraction]},
        {"name": "ollama", "image": IMAGE, "gpu": True, "gpu_memory_min": 6000,
         "env": {"SHARE": fraction}},
    ]  # fmt: skip
    manifest = write_manifest(tmp_path / "m.json", specs)
    settings = settings_for(tmp_path / "state", "gpu", ("manifest", manifest))
    with in_process(settings, {IMAGE}) as agent:
        agent.until(lambda: agent.status().get("ollama", ("",))[0] == "running")
        state, _restarts, error = agent.status()["vllm"]
        assert state == "unavailable"
        assert error == "unavailable: needs 18 GB of GPU memory; GPU 0 has 8 GB"
        assert "vllm" not in agent.runtime.created
        ollama = agent.runtime.created["ollama"]
        assert ollama.gpu_ids == ("0",) and ollama.env_dict["SHARE"] == "0.74"
        assert agent.parts.agent.status().healthy
        rows = {c.name: c.as_json() for c in agent.parts.agent.status().containers}
        assert rows["ollama"]["gpus"] == ["0"] and "gpus" not in rows["vllm"]
