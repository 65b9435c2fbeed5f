"""Contributor caps: applied to every container and to what is offered."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from controller.clients.docker_specs import create_kwargs
from controller.contract.capabilities import capabilities
from controller.core.limits import Limits, memory_bytes
from controller.core.machine import GIB, GpuInfo, HardwareInfo
from controller.core.models import GPU_ALL, DesiredState
from rma_testkit.fakes import spec

HW = HardwareInfo(
    16,
    64 * GIB,
    500 * GIB,
    (
        GpuInfo(0, "A", 24 * GIB, "nvidia", "GPU-aaa"),
        GpuInfo(1, "B", 48 * GIB, "nvidia", "GPU-bbb"),
    ),
)


def test_memory_bytes() -> None:
    assert memory_bytes("512m") == 512 * 1024**2 and memory_bytes("1.5g") == int(1.5 * GIB)
    with pytest.raises(ValueError, match="not a memory size"):
        memory_bytes("lots")


def test_no_caps_change_nothing() -> None:
    s = spec("a", cpus=2.0, memory_limit="1g", gpu=GPU_ALL)
    assert Limits().apply(s) == s and Limits().offered(HW) == HW


def test_cpu_and_memory_caps_bound_every_container() -> None:
    caps = Limits.from_settings(1.5, "2g", None)
    assert (caps.apply(spec("a")).cpus, caps.apply(spec("a")).memory_limit) == (1.5, "2g")
    small = caps.apply(spec("b", cpus=0.5, memory_limit="512m"))
    assert (small.cpus, small.memory_limit) == (0.5, "512m")
    big = caps.apply(spec("c", cpus=8.0, memory_limit="16g"))
    assert (big.cpus, big.memory_limit) == (1.5, "2g")
    assert caps.apply(spec("a")).spec_hash() != spec("a").spec_hash()  # changing caps recreates


def test_gpu_caps_pin_the_devices() -> None:
    caps = Limits.from_settings(None, None, "1, GPU-aaa")
    every = caps.apply(spec("v", gpu=GPU_ALL))
    assert every.gpu_ids == ("1", "GPU-aaa")
    assert caps.apply(spec("v", gpu=1)).gpu_ids == ("1",)
    request = create_kwargs(every, "i")["host_config"]["DeviceRequests"][0]
    assert request["DeviceIDs"] == ["1", "GPU-aaa"] and request["Count"] == 0
    offered = caps.offered(HW)
    assert [g.name for g in offered.gpus] == ["A", "B"]
    assert [g.name for g in Limits.from_settings(None, None, "0").offered(HW).gpus] == ["A"]


def test_lending_no_gpu_refuses_gpu_specs_and_offers_none() -> None:
    caps = Limits.from_settings(None, None, "")
    shaped = caps.apply_all(DesiredState((spec("v", gpu=GPU_ALL), spec("web"))))
    assert [s.name for s in shaped.specs] == ["web"]
    assert [r.name for r in shaped.refused] == ["v"]
    assert "gpu_memory" not in capabilities(caps.offered(HW))


def test_offered_capabilities_follow_the_caps() -> None:
    caps = capabilities(Limits.from_settings(2.5, "8g", "0").offered(HW))
    assert (caps["cpu_cores"], caps["ram"], caps["gpu_memory"]) == (2, "8.0GB", "24576MB")


def test_test_capabilities_shows_what_is_offered() -> None:
    env = {**os.environ, "DOCKER_HOST": "unix:///nonexistent/docker.sock"}
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "controller",
            "--test-capabilities",
            "--max-cpus",
            "1",
            "--max-memory",
            "2g",
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=True,
    )
    caps = json.loads(done.stdout)
    assert (caps["cpu_cores"], caps["ram"]) == (1, "2.0GB")
