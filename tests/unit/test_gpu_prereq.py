"""What a GPU container needs besides a GPU (issue 24, item 3): the NVIDIA Container Toolkit as the
engine shows it, the driver's CUDA version against the image's NVIDIA_REQUIRE_CUDA or a spec's
cuda_min, and the two keys --test-capabilities adds (gpu_runtime, cuda_version)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from controller.clients import hardware
from controller.contract.capabilities import capabilities
from controller.core.gpu_prereq import (
    NO_TOOLKIT,
    cuda_of,
    cuda_refusal,
    refuse_unrunnable,
    required_cuda,
    spec_refusal,
)
from controller.core.machine import GpuInfo, HardwareInfo
from controller.core.models import ContainerSpec, DesiredState
from controller.core.tunnels import TUNNEL_FOR
from rma_testkit.nvml_fake import DESKTOP, FakeNvml

RTX = GpuInfo(0, "NVIDIA GeForce RTX 3090", 24 << 30, "nvidia", "GPU-a", "535.54", "12.2")
RADEON = GpuInfo(0, "AMD Radeon RX 7900 XTX", 24 << 30, "rocm", "0x1", "6.7.0")


def test_the_images_cuda_is_read_from_its_environment() -> None:
    env = ["PATH=/usr/bin", "NVIDIA_REQUIRE_CUDA=cuda>=12.4 brand=tesla,driver>=470,driver<471"]
    assert required_cuda(env) == "12.4"
    assert required_cuda(["NVIDIA_REQUIRE_CUDA=brand=tesla,driver>=470"]) == ""
    assert required_cuda(["CUDA_VERSION=12.4.1"]) == ""
    assert cuda_of(12040) == "12.4" and cuda_of(13000) == "13.0" and cuda_of(11080) == "11.8"


def test_a_driver_too_old_says_which_driver_would_do() -> None:
    assert cuda_refusal("12.4", "12.2", "535.54") == (
        "unavailable: needs CUDA 12.4; this driver (535.54) supports CUDA 12.2: "
        "update the NVIDIA driver (550.54 or newer)"
    )
    assert cuda_refusal("12.2", "12.4") is None and cuda_refusal("12.4", "12.4") is None
    assert cuda_refusal("12.4", "") is None  # unread: the engine says, as before
    assert cuda_refusal("12.10", "12.9") == (
        "unavailable: needs CUDA 12.10; this driver supports CUDA 12.9: update the NVIDIA driver"
    )


def test_before_a_pull_the_toolkit_then_cuda_min() -> None:
    spec = ContainerSpec("vllm", "vllm:1", gpu=1, cuda_min="12.4")
    assert spec_refusal(spec, toolkit=False, driver_cuda="13.0") == NO_TOOLKIT
    assert "sudo apt-get install -y nvidia-container-toolkit" in NO_TOOLKIT
    assert spec_refusal(spec, toolkit=True, driver_cuda="13.0") is None
    assert str(spec_refusal(spec, toolkit=True, driver_cuda="12.2")).startswith(
        "unavailable: needs CUDA 12.4"
    )
    tunnel = ContainerSpec("vllm-tunnel", "t:1", labels=((TUNNEL_FOR, "vllm"),))
    web = ContainerSpec("web", "w:1")
    kept = refuse_unrunnable(DesiredState((spec, tunnel, web)), lambda s: NO_TOOLKIT)
    assert [s.name for s in kept.specs] == ["web"]
    assert [(r.name, r.unavailable) for r in kept.refused] == [("vllm", True)]


def test_the_gpu_runtime_is_what_the_engine_can_give(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(shutil, "which", lambda name: None)
    assert hardware.gpu_runtime((RTX,), frozenset({"runc", "nvidia"})) == "nvidia"
    assert hardware.gpu_runtime((RTX,), frozenset({"runc"})) == "none"
    assert hardware.gpu_runtime((), frozenset({"runc", "nvidia"})) == "none"
    monkeypatch.setattr(shutil, "which", lambda name: "/usr/bin/" + name)
    assert hardware.gpu_runtime((RTX,), frozenset({"runc"})) == "nvidia"  # the hook, local
    assert hardware.gpu_runtime((RTX,), None, local=False) == "none"  # a remote engine: unknown
    assert hardware.gpu_runtime((RADEON,), None, dev=str(tmp_path)) == "none"
    (tmp_path / "kfd").touch()
    assert hardware.gpu_runtime((RADEON,), None, dev=str(tmp_path)) == "rocm"


def test_test_capabilities_adds_gpu_runtime_and_cuda_version_after_the_seeds_keys() -> None:
    gpus = hardware.detect_nvidia(FakeNvml(fixture=DESKTOP))  # type: ignore[arg-type]
    assert [(g.name, g.driver_version, g.cuda_version) for g in gpus] == [
        ("NVIDIA GeForce RTX 3090", "550.54.14", "12.4")
    ]
    hw = HardwareInfo(16, 64 << 30, 1 << 40, tuple(gpus), "x86_64", "nvidia")
    caps = capabilities(hw, version="0.9.0")
    assert list(caps)[:8] == [
        "cpu_cores", "ram", "storage", "gpu_memory", "gpu_type", "gpu_driver", "gpus", "tier",
    ]  # fmt: skip
    assert (caps["gpu_runtime"], caps["cuda_version"]) == ("nvidia", "12.4")
    bare = capabilities(HardwareInfo(4, 8 << 30, 1 << 40, (), "aarch64", "none"))
    assert (bare["gpu_runtime"], bare["cuda_version"], bare["arch"]) == ("none", None, "aarch64")
    h200 = hardware.detect_nvidia(FakeNvml())  # type: ignore[arg-type]
    assert h200[0].cuda_version == ""  # the recording did not keep it: unread, not guessed
