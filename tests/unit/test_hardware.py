"""Hardware detection: NVML and rocm-smi from recorded outputs, and this machine's real path."""

from __future__ import annotations

import json
import os
import platform
import re
import subprocess
import sys
from types import SimpleNamespace
from typing import Any

import pytest

from controller.clients.hardware import detect, detect_nvidia, detect_rocm
from controller.contract.capabilities import capabilities, qualifying_tier
from controller.core.machine import GIB, GpuInfo, HardwareInfo


class FakeNVMLError(Exception):
    pass


def fake_nvml(gpus: list[tuple[bytes, int, bytes]], *, init_error: bool = False) -> Any:
    """A pynvml stand-in returning recorded values (names as bytes, like older bindings)."""
    calls: list[str] = []

    def init() -> None:
        calls.append("init")
        if init_error:
            raise FakeNVMLError("NVML Shared Library Not Found")

    return SimpleNamespace(
        calls=calls,
        nvmlInit=init,
        nvmlShutdown=lambda: calls.append("shutdown"),
        nvmlSystemGetDriverVersion=lambda: b"550.54.15",
        nvmlDeviceGetCount=lambda: len(gpus),
        nvmlDeviceGetHandleByIndex=lambda i: i,
        nvmlDeviceGetName=lambda h: gpus[h][0],
        nvmlDeviceGetMemoryInfo=lambda h: SimpleNamespace(total=gpus[h][1], used=0, free=0),
        nvmlDeviceGetUUID=lambda h: gpus[h][2],
    )


RTX_3060 = (b"NVIDIA GeForce RTX 3060", 12884901888, b"GPU-3d1c6f1e-0c0a-5b0e-9f55-0d2ad3d1a111")
RTX_4090 = (b"NVIDIA GeForce RTX 4090", 25757220864, b"GPU-8a4f2c77-5b8e-4e8c-a3b2-9a0c8e1f2222")
H200 = (b"NVIDIA H200", 150754820096, b"GPU-1b2c3d4e-0000-4000-8000-123456789abc")

ROCM_7900 = json.dumps(
    {
        "card0": {
            "Device Name": "Radeon RX 7900 XTX",
            "Device ID": "0x744c",
            "Card Series": "Radeon RX 7900 XTX",
            "Card Model": "0x744c",
            "Card Vendor": "Advanced Micro Devices, Inc. [AMD/ATI]",
            "Card SKU": "EXT94393",
            "Unique ID": "0x9246a2c1e1d5f0b0",
            "VRAM Total Memory (B)": "25753026560",
            "VRAM Total Used Memory (B)": "1072517120",
        },
        "system": {"Driver version": "6.7.0"},
    }
)
ROCM_OLD_TWO_CARDS = json.dumps(
    {
        "card1": {
            "Card series": "Instinct MI210",
            "Card model": "0x740f",
            "VRAM Total Memory (B)": "68702699520",
            "Unique ID": "0x2",
        },
        "card0": {
            "Card series": "Radeon Pro W6600",
            "Card model": "0x73e3",
            "VRAM Total Memory (B)": "8573157376",
            "Unique ID": "0x1",
        },
    }
)


def test_nvml_reads_every_gpu_and_the_largest_fills_the_seed_keys() -> None:
    nvml = fake_nvml([RTX_3060, RTX_4090])
    gpus = detect_nvidia(nvml)
    assert [g.name for g in gpus] == ["NVIDIA GeForce RTX 3060", "NVIDIA GeForce RTX 4090"]
    assert nvml.calls == ["init", "shutdown"]
    caps = capabilities(HardwareInfo(16, 64 * GIB, 1024 * GIB, tuple(gpus)))
    assert list(caps)[:6] == ["cpu_cores", "ram", "storage", "gpu_memory", "gpu_type", "gpu_driver"]
    assert caps["gpu_memory"] == "24564MB"
    assert caps["gpu_type"] == "NVIDIA GeForce RTX 4090"
    assert caps["gpu_driver"] == "nvidia"
    assert caps["ram"] == "64.0GB" and caps["storage"] == "1024.0GB"
    assert caps["gpus"][1]["uuid"] == RTX_4090[2].decode()
    assert caps["gpus"][0]["driver_version"] == "550.54.15"
    assert caps["tier"] == 1


def test_nvml_h200() -> None:
    caps = capabilities(
        HardwareInfo(16, 128 * GIB, 64 * GIB, tuple(detect_nvidia(fake_nvml([H200]))))
    )
    assert caps["gpu_memory"] == "143771MB" and caps["gpu_type"] == "NVIDIA H200"


def test_nvml_init_failure_is_no_gpu() -> None:
    assert detect_nvidia(fake_nvml([], init_error=True)) == []


def test_nvml_query_failure_is_no_gpu_and_shuts_down() -> None:
    nvml = fake_nvml([RTX_4090])

    def broken(_h: int) -> Any:
        raise FakeNVMLError("GPU is lost")

    nvml.nvmlDeviceGetMemoryInfo = broken
    assert detect_nvidia(nvml) == []
    assert nvml.calls == ["init", "shutdown"]


def test_rocm_smi_recorded_output() -> None:
    gpus = detect_rocm(lambda args: ROCM_7900)
    assert gpus == [
        GpuInfo(0, "Radeon RX 7900 XTX", 25753026560, "rocm", "0x9246a2c1e1d5f0b0", "6.7.0")
    ]
    caps = capabilities(HardwareInfo(8, 32 * GIB, 500 * GIB, tuple(gpus)))
    assert (caps["gpu_memory"], caps["gpu_driver"]) == ("24560MB", "rocm")


def test_rocm_smi_older_keys_and_several_cards() -> None:
    gpus = detect_rocm(lambda args: ROCM_OLD_TWO_CARDS)
    assert [(g.index, g.name) for g in gpus] == [(0, "Radeon Pro W6600"), (1, "Instinct MI210")]
    hw = HardwareInfo(8, 32 * GIB, 500 * GIB, tuple(gpus))
    assert hw.primary_gpu is not None and hw.primary_gpu.name == "Instinct MI210"


@pytest.mark.parametrize("out", [None, "", "not json", "[1, 2]", '{"card0": "x"}'])
def test_rocm_smi_absent_or_garbled_is_no_gpu(out: str | None) -> None:
    assert detect_rocm(lambda args: out) == []


def test_rocm_used_only_when_nvml_finds_nothing() -> None:
    hw = detect(nvml=fake_nvml([], init_error=True), rocm=lambda args: ROCM_7900)
    assert [g.driver for g in hw.gpus] == ["rocm"]
    hw = detect(nvml=fake_nvml([RTX_4090]), rocm=lambda args: ROCM_7900)
    assert [g.driver for g in hw.gpus] == ["nvidia"]


@pytest.mark.parametrize(
    ("gpus", "ram_gb", "cores", "tier"),
    [
        ((GpuInfo(0, "g", 8192 * 1024**2, "nvidia"),), 16, 8, 1),
        ((GpuInfo(0, "g", 6144 * 1024**2, "nvidia"),), 16, 8, 2),
        ((), 4, 2, 2),
        ((), 3.5, 8, 3),
        ((), 64, 1, 3),
    ],
)
def test_tier_thresholds(gpus: tuple[GpuInfo, ...], ram_gb: float, cores: int, tier: int) -> None:
    assert qualifying_tier(HardwareInfo(cores, int(ram_gb * GIB), GIB, gpus)) == tier


def test_no_gpu_keys_when_no_gpu() -> None:
    caps = capabilities(HardwareInfo(2, 2 * GIB, 10 * GIB))
    assert not {"gpu_memory", "gpu_type", "gpu_driver", "gpus"} & caps.keys()


def test_this_machines_real_nvml_path() -> None:
    """Here pynvml is installed but there is no driver: init raises, detection says no GPU."""
    import pynvml  # noqa: PLC0415

    try:
        pynvml.nvmlInit()
    except pynvml.NVMLError:
        assert detect_nvidia() == []
    else:  # a machine with an NVIDIA GPU
        pynvml.nvmlShutdown()
        assert detect_nvidia()


ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@pytest.mark.parametrize("entry", [["-m", "controller"], [os.path.join(ROOT, "worker_agent.py")]])
def test_test_capabilities_cli_prints_the_seed_keys_only_json(entry: list[str]) -> None:
    env = {**os.environ, "DOCKER_HOST": "unix:///nonexistent/docker.sock"}
    done = subprocess.run(
        [sys.executable, *entry, "--test-capabilities"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr
    caps = json.loads(done.stdout)
    assert list(caps)[:3] == ["cpu_cores", "ram", "storage"]
    assert isinstance(caps["cpu_cores"], int) and caps["cpu_cores"] == os.cpu_count()
    assert re.fullmatch(r"\d+\.\dGB", caps["ram"]) and re.fullmatch(r"\d+\.\dGB", caps["storage"])
    if "gpu_memory" in caps:
        assert re.fullmatch(r"\d+MB", caps["gpu_memory"])
    assert caps["tier"] in (1, 2, 3)
    assert caps["arch"] == platform.machine()  # issue 24, item 7: which images can run here


def test_the_architecture_is_offered_when_read_and_absent_otherwise() -> None:
    board = HardwareInfo(4, 4 * GIB, 32 * GIB, arch="aarch64")
    assert capabilities(board)["arch"] == "aarch64"
    assert "arch" not in capabilities(HardwareInfo(2, 2 * GIB, 10 * GIB))
