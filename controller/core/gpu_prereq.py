"""What a GPU container needs besides a GPU (issue 24, item 3), decided before it is created, so
a volunteer reads the fix once instead of watching `could not select device driver` loops:

- the engine can give a container an NVIDIA GPU — the NVIDIA Container Toolkit is installed (its
  `nvidia` runtime registered with Docker, or the `nvidia-container-runtime-hook` Docker's own
  GPU requests call, found beside a local engine); else every NVIDIA GPU service is unavailable
  with the toolkit's install commands;
- the driver's CUDA version (NVML) is at least what the image needs: its `NVIDIA_REQUIRE_CUDA`
  (`cuda>=12.1 brand=tesla,driver>=470…`: only the CUDA part is read) or the spec's `cuda_min`;
  else unavailable with the driver version that supports it;
- on AMD GPUs (item 4), a ROCm image of its own (`image_rocm`, else `unavailable: no AMD
  image`), and the agent's own device mapping: /dev/kfd, the placed GPUs' render nodes, the
  host's video and render groups.

Pure: the caller reads NVML, Docker and the image's environment.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import replace

from controller.core.models import ContainerSpec, DesiredState, Refusal
from controller.core.tunnels import TUNNEL_FOR

TOOLKIT_FIX = (
    "install the NVIDIA Container Toolkit: sudo apt-get install -y nvidia-container-toolkit && "
    "sudo nvidia-ctk runtime configure --runtime=docker && sudo systemctl restart docker"
)
NO_TOOLKIT = f"unavailable: Docker cannot give containers an NVIDIA GPU here: {TOOLKIT_FIX}"
# The oldest Linux driver of each CUDA release (NVIDIA's CUDA Toolkit release notes, table 3).
DRIVER_FOR_CUDA = {
    (11, 0): "450.36", (11, 1): "455.23", (11, 2): "460.27", (11, 3): "465.19",
    (11, 4): "470.42", (11, 5): "495.29", (11, 6): "510.39", (11, 7): "515.43",
    (11, 8): "520.61", (12, 0): "525.60", (12, 1): "530.30", (12, 2): "535.54",
    (12, 3): "545.23", (12, 4): "550.54", (12, 5): "555.42", (12, 6): "560.28",
    (12, 8): "570.26", (12, 9): "575.51", (13, 0): "580.65",
}  # fmt: skip
_REQUIRE = re.compile(r"(?:^|\s)cuda>=(\d+)\.(\d+)")
VERSION = re.compile(r"^\d{1,2}\.\d{1,2}$")


def cuda_of(nvml_value: int) -> str:
    """NVML's `nvmlSystemGetCudaDriverVersion` (12040) as a person reads it: `12.4`."""
    return f"{nvml_value // 1000}.{nvml_value % 1000 // 10}"


def _parse(version: str) -> tuple[int, int] | None:
    major, _, minor = version.partition(".")
    return (int(major), int(minor or 0)) if major.isdigit() and (minor or "0").isdigit() else None


def required_cuda(env: list[str] | tuple[str, ...]) -> str:
    """The CUDA version an image's environment says it needs (`NVIDIA_REQUIRE_CUDA`), or ""."""
    for item in env:
        name, _, value = item.partition("=")
        if name == "NVIDIA_REQUIRE_CUDA" and (m := _REQUIRE.search(value)):
            return f"{int(m.group(1))}.{int(m.group(2))}"
    return ""


def cuda_refusal(needed: str, driver_cuda: str, driver_version: str = "") -> str | None:
    """Why a container that needs CUDA `needed` cannot run on a driver that supports
    `driver_cuda`, or None (it can, or either is unknown: the engine is left to say)."""
    want, have = _parse(needed), _parse(driver_cuda)
    if want is None or have is None or have >= want:
        return None
    oldest = DRIVER_FOR_CUDA.get(want)
    update = (
        f"update the NVIDIA driver ({oldest} or newer)" if oldest else "update the NVIDIA driver"
    )
    this = f"this driver ({driver_version})" if driver_version else "this driver"
    return f"unavailable: needs CUDA {needed}; {this} supports CUDA {driver_cuda}: {update}"


def spec_refusal(
    spec: ContainerSpec, *, toolkit: bool, driver_cuda: str, driver_version: str = ""
) -> str | None:
    """Why an NVIDIA GPU spec cannot run here before its image is even pulled: no toolkit, or a
    `cuda_min` the driver does not reach; None: it may."""
    if not toolkit:
        return NO_TOOLKIT
    return cuda_refusal(spec.cuda_min, driver_cuda, driver_version) if spec.cuda_min else None


def refuse_unrunnable(
    desired: DesiredState, why: Callable[[ContainerSpec], str | None]
) -> DesiredState:
    """The GPU specs `why` names a reason for, unavailable (with their tunnels); the rest kept."""
    refused = [
        Refusal(s.name, reason, unavailable=True)
        for s in desired.specs
        if s.gpu and (reason := why(s)) is not None
    ]
    if not refused:
        return desired
    out = {r.name for r in refused}
    specs = tuple(
        s for s in desired.specs if s.name not in out and s.labels_dict.get(TUNNEL_FOR) not in out
    )
    return replace(desired, specs=specs, refused=desired.refused + tuple(refused))


NO_AMD_IMAGE = "unavailable: no AMD image (this service has no ROCm build: image_rocm)"
KFD = "/dev/kfd"


def amd_refusal(spec: ContainerSpec) -> str | None:
    """On a machine whose GPUs are AMD: a GPU spec runs only with a ROCm image of its own."""
    return None if spec.image_rocm else NO_AMD_IMAGE


def on_amd(
    desired: DesiredState, nodes: Mapping[str, tuple[str, ...]], groups: tuple[str, ...]
) -> DesiredState:
    """Each placed GPU spec as it runs on AMD GPUs: its ROCm image, `/dev/kfd` and the render
    nodes of the GPUs it was placed on (`nodes`: GPU index -> /dev/dri paths; every lent one
    when it was not pinned), and the host's `video` and `render` groups — the agent's own
    mapping, never a spec's (`devices` on the wire stays refused)."""

    def mapped(spec: ContainerSpec) -> ContainerSpec:
        if not spec.gpu:
            return spec
        lent = spec.gpu_ids or tuple(nodes)
        devices = (KFD, *(n for i in lent for n in nodes.get(i, ())))
        return replace(spec, image=spec.image_rocm, devices=devices, group_add=groups)

    return replace(desired, specs=tuple(mapped(s) for s in desired.specs))
