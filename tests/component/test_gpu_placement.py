"""GPU placement seen from the whole agent (in-process, manifest mode, an 8 GB GPU as detected):
the model server that needs 18 GB is `unavailable` with the reason and never created, the one that
fits is pinned to GPU 0 with its share filled in, the status says where it runs, and the worker is
not unhealthy for what it cannot run (issue 24, items 1 and 2)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from controller.clients import hardware
from controller.core.gpu_prereq import NO_AMD_IMAGE, NO_TOOLKIT
from controller.core.machine import GpuInfo, HardwareInfo
from rma_testkit.agent import write_manifest
from rma_testkit.component import in_process, settings_for

IMAGE = "img:1"
EIGHT_GB = GpuInfo(0, "NVIDIA GeForce RTX 3070", 8192 << 20, "nvidia", "GPU-8", "535.54", "12.2")


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
    toolkit = frozenset({"runc", "nvidia"})
    with in_process(settings, {IMAGE}, engine_runtimes=toolkit) as agent:
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


def test_without_the_toolkit_a_gpu_service_is_unavailable_with_the_fix(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No `nvidia` runtime registered and no hook on PATH: said once, never created (no
    `could not select device driver` loop); then a driver too old for the image's CUDA."""
    monkeypatch.setattr(hardware, "detect", lambda: HardwareInfo(8, 32 << 30, 1 << 40, (EIGHT_GB,)))
    monkeypatch.setattr(shutil, "which", lambda name: None)
    specs = [{"name": "ollama", "image": IMAGE, "gpu": True, "gpu_memory_min": 6000}]
    manifest = write_manifest(tmp_path / "m.json", specs)
    settings = settings_for(tmp_path / "state", "gpu", ("manifest", manifest))
    with in_process(settings, {IMAGE}) as agent:
        state, _restarts, error = agent.until(lambda: agent.status().get("ollama"))
        assert state == "unavailable" and error == NO_TOOLKIT
        assert "sudo nvidia-ctk runtime configure --runtime=docker" in error
        assert agent.runtime.created == {} and agent.parts.agent.status().healthy

    envs = {IMAGE: ["PATH=/usr/bin", "NVIDIA_REQUIRE_CUDA=cuda>=12.4 brand=tesla,driver>=470"]}
    toolkit = frozenset({"runc", "nvidia"})
    with in_process(settings, {IMAGE}, engine_runtimes=toolkit, image_envs=envs) as agent:
        state, _restarts, error = agent.until(
            lambda: (row := agent.status().get("ollama")) and row[0] == "unavailable" and row
        )
        assert error == (
            "unavailable: needs CUDA 12.4; this driver (535.54) supports CUDA 12.2: "
            "update the NVIDIA driver (550.54 or newer)"
        )
        assert agent.runtime.created == {}


def test_on_an_amd_workstation_the_rocm_image_runs_with_the_agents_device_mapping(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A Radeon with 24 GB as rocm-smi detects it: the service with a ROCm image runs it, with
    /dev/kfd and GPU 0's render node; the one without is `unavailable: no AMD image`."""
    from controller.clients import rocm  # noqa: PLC0415

    radeon = GpuInfo(0, "Radeon RX 7900 XTX", 25753026560, "rocm", "0x9246", "6.7.0")
    monkeypatch.setattr(hardware, "detect", lambda: HardwareInfo(16, 64 << 30, 1 << 40, (radeon,)))
    monkeypatch.setattr(rocm, "render_nodes", lambda card: (f"/dev/dri/renderD{128 + card}",))
    monkeypatch.setattr(rocm, "host_groups", lambda: ("44", "993"))
    specs = [
        {"name": "vllm", "image": IMAGE, "gpu": True, "gpu_memory_min": 18000},
        {"name": "ollama", "image": IMAGE, "image_rocm": "img:rocm", "gpu": True,
         "gpu_memory_min": 6000},
    ]  # fmt: skip
    manifest = write_manifest(tmp_path / "m.json", specs)
    settings = settings_for(tmp_path / "state", "amd", ("manifest", manifest))
    with in_process(settings, {IMAGE, "img:rocm"}) as agent:
        agent.until(lambda: agent.status().get("ollama", ("",))[0] == "running")
        assert agent.status()["vllm"][::2] == ("unavailable", NO_AMD_IMAGE)
        ollama = agent.runtime.created["ollama"]
        assert ollama.image == "img:rocm" and ollama.gpu_ids == ("0",)
        assert ollama.devices == ("/dev/kfd", "/dev/dri/renderD128")
        assert ollama.group_add == ("44", "993") and "vllm" not in agent.runtime.created
