"""AMD GPUs (issue 24, item 4): rocm-smi's readings for the owner's conditions and the receipt
(tests/fixtures/rocm_smi_7900.json), the render node of each card from a fake sysfs tree, and
what the agent maps for a GPU spec on such a machine — its ROCm image, /dev/kfd, the placed GPU's
render node and the host's groups — or `unavailable: no AMD image`."""

from __future__ import annotations

import json
from pathlib import Path

from controller.clients.rocm import READ_ARGS, RocmSmi, render_nodes
from controller.core.gpu_prereq import NO_AMD_IMAGE, amd_refusal, on_amd
from controller.core.holds import GpuGuard
from controller.core.models import ContainerSpec, DesiredState
from tests.unit.test_conditions import Rig, proc_tree

RECORD = json.loads(
    (Path(__file__).parent.parent / "fixtures" / "rocm_smi_7900.json").read_text(encoding="utf-8")
)


def smi(mode: list[str]) -> RocmSmi:
    def run(args: list[str]) -> str | None:
        if args == ["--version"]:
            return "ROCM-SMI version: 2.3.1"
        assert args == READ_ARGS
        return json.dumps(RECORD[mode[0]])

    return RocmSmi(runner=run)


def test_rocm_smi_reads_temperature_power_energy_memory_and_compute_processes() -> None:
    mode = ["idle"]
    reader = smi(mode)
    assert reader.available and reader.name == "rocm-smi"
    (idle,) = reader.snapshots()
    assert (idle.index, idle.temperature, idle.power_w) == ("0", 46.0, 38.0)
    assert idle.energy_j is not None and round(idle.energy_j) == 155761
    assert (idle.memory_used, idle.memory_total, idle.processes) == (1215963136, 25753026560, ())
    mode[0] = "busy"
    (busy,) = reader.snapshots()
    assert busy.processes == ((41234, 4294967296),) and busy.compute == frozenset({41234})
    assert RocmSmi(runner=lambda args: None).error == "rocm-smi absent"


def test_a_foreign_rocm_job_takes_the_amd_gpu_back_and_graphics_are_said_unseen(
    tmp_path: Path,
) -> None:
    mode = ["idle"]
    rig = Rig(tmp_path, gpu=GpuGuard(83, 300))
    rig.sensors.nvml = smi(mode)
    proc_tree(rig.proc, 41234, "0::/user.slice/user-1000.slice/session-2.scope\n", "python3")
    found = rig.check()
    assert not found["gpu-busy:0"][0]
    assert found["gpu-graphics"][1] == (
        "rocm-smi lists compute programs only: a game on an AMD GPU is not seen"
    )
    mode[0] = "busy"
    active, reason = rig.check(1)["gpu-busy:0"]
    assert active and reason == "GPU 0 given back: used by python3 (41234)"


def test_each_cards_render_node_is_found_in_sysfs(tmp_path: Path) -> None:
    for card, node in ((0, "renderD128"), (1, "renderD129")):
        (tmp_path / f"card{card}" / "device" / "drm" / node).mkdir(parents=True)
        (tmp_path / f"card{card}" / "device" / "drm" / f"card{card}").mkdir()
    assert render_nodes(1, tmp_path) == ("/dev/dri/renderD129",)
    assert render_nodes(2, tmp_path) == ()


def test_a_gpu_spec_on_amd_gets_its_rocm_image_and_the_agents_own_mapping() -> None:
    ollama = ContainerSpec(
        "ollama", "ollama/ollama:0.3.14", gpu=-1, gpu_ids=("1",),
        image_rocm="ollama/ollama:0.3.14-rocm",
    )  # fmt: skip
    vllm = ContainerSpec("vllm", "vllm/vllm-openai:v0.6.3", gpu=-1)
    assert amd_refusal(vllm) == NO_AMD_IMAGE and amd_refusal(ollama) is None
    nodes = {"0": ("/dev/dri/renderD128",), "1": ("/dev/dri/renderD129",)}
    web = ContainerSpec("web", "w:1")
    (mapped, kept) = on_amd(DesiredState((ollama, web)), nodes, ("44", "993")).specs
    assert mapped.image == "ollama/ollama:0.3.14-rocm" and kept == web
    assert mapped.devices == ("/dev/kfd", "/dev/dri/renderD129")
    assert mapped.group_add == ("44", "993")
    anywhere = on_amd(
        DesiredState((ContainerSpec("x", "x:1", gpu=1, image_rocm="x:r"),)), nodes, ()
    )
    assert anywhere.specs[0].devices == ("/dev/kfd", "/dev/dri/renderD128", "/dev/dri/renderD129")
