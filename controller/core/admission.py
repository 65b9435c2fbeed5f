"""What a coordinator's container may ask of this machine, beyond the fields the spec policy never
accepts (policy.py): bounded, pure checks, each one a reason a person can act on.

- an assignment holds at most `max_containers` (32) containers, counting the tunnel the agent runs
  for each HTTP service; a bigger one is refused whole and the last good one keeps running (never
  "run the first 32");
- a container publishes at most 8 host ports, each inside the owner's range (1024-65535), and an
  assignment at most 64 in all; a container mounts at most 8 volumes, an assignment 32 in all;
- a container's name is a plain name: never an IP address (dotted, decimal or hex) nor a dotted
  host name, which a tunnel or another container could resolve to somewhere else;
- GPU devices are only ever granted by the agent: `NVIDIA_*`, `HIP_VISIBLE_DEVICES` and
  `ROCR_VISIBLE_DEVICES` in a spec's environment are refused, `CUDA_VISIBLE_DEVICES` passes only
  with a GPU grant;
- a GPU only on tier 1, and only when this machine's own hardware qualifies for tier 1;
- the image passes the image policy (registries, repository prefixes, digests).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field

from controller.core.models import ContainerSpec
from controller.core.policy import ImagePolicy
from controller.core.tunnels import may_tunnel

GPU_TIER = 1
MAX_PORTS = 8
MAX_PORTS_TOTAL = 64
MAX_VOLUMES = 8
MAX_VOLUMES_TOTAL = 32
MAX_CONTAINERS = 32
# Names getaddrinfo takes for an address: digits only (2130706433 is 127.0.0.1) or hex (0x7f…).
_NUMERIC = re.compile(r"[0-9]+|0[xX][0-9a-fA-F]+")
_GPU_ENV = re.compile(r"NVIDIA_.*|HIP_VISIBLE_DEVICES|ROCR_VISIBLE_DEVICES|GPU_DEVICE_ORDINAL")
_GRANTED_ENV = "CUDA_VISIBLE_DEVICES"


class AssignmentTooLarge(ValueError):
    """The assignment as a whole is refused (the previous one keeps running)."""


@dataclass(frozen=True)
class Admission:
    images: ImagePolicy = field(default_factory=ImagePolicy)
    port_range: tuple[int, int] = (1024, 65535)
    max_ports: int = MAX_PORTS
    max_containers: int = MAX_CONTAINERS
    gpu_machine: bool = False  # this machine's own hardware qualifies for tier 1
    tunnels: bool = False  # each HTTP service gets a tunnel container (ingress `tunnel`)

    def check_size(self, count: int) -> None:
        if count > self.max_containers:
            raise AssignmentTooLarge(
                f"the assignment holds {count} containers, over this machine's limit of "
                f"{self.max_containers} (RMA_MAX_CONTAINERS): refused whole"
            )

    def check_totals(self, specs: Sequence[ContainerSpec]) -> None:
        """The admitted specs together: containers with their tunnels, ports and volumes."""
        tunnels = sum(1 for s in specs if may_tunnel(s)) if self.tunnels else 0
        if tunnels:
            count = len(specs) + tunnels
            if count > self.max_containers:
                raise AssignmentTooLarge(
                    f"the assignment needs {count} containers with their {tunnels} tunnels, "
                    f"over this machine's limit of {self.max_containers} "
                    "(RMA_MAX_CONTAINERS): refused whole"
                )
        for what, count, most in (
            ("published ports", sum(len(s.ports) for s in specs), MAX_PORTS_TOTAL),
            ("volumes", sum(len(s.volumes) for s in specs), MAX_VOLUMES_TOTAL),
        ):
            if count > most:
                raise AssignmentTooLarge(
                    f"the assignment asks for {count} {what}, more than {most}: refused whole"
                )

    def check(self, spec: ContainerSpec, tier: int) -> str | None:
        """Why `spec` may not run here, or None."""
        return (
            _name(spec.name)
            or self._ports(spec)
            or _volumes(spec)
            or self._gpu(spec, tier)
            or _gpu_env(spec)
            or self.images.check(spec.image)
            or (self.images.check(spec.image_rocm) if spec.image_rocm else None)
        )

    def _ports(self, spec: ContainerSpec) -> str | None:
        if len(spec.ports) > self.max_ports:
            return f"publishes {len(spec.ports)} ports, more than {self.max_ports}"
        low, high = self.port_range
        outside = sorted(p.host for p in spec.ports if not low <= p.host <= high)
        if outside:
            return f"host ports {outside} are outside the allowed range {low}-{high}"
        return None

    def _gpu(self, spec: ContainerSpec, tier: int) -> str | None:
        if not spec.gpu:
            return None
        if tier != GPU_TIER:
            return f"asks for a GPU on tier {tier}; GPUs are only for tier {GPU_TIER}"
        if not self.gpu_machine:
            return "asks for a GPU and this machine's own hardware does not qualify for tier 1"
        return None


def _name(name: str) -> str | None:
    if "." in name or _NUMERIC.fullmatch(name):
        return (
            f"container name {name!r} reads as an address or a host name; plain names only "
            "(letters, digits, '-' and '_', not only digits)"
        )
    return None


def _volumes(spec: ContainerSpec) -> str | None:
    if len(spec.volumes) > MAX_VOLUMES:
        return f"mounts {len(spec.volumes)} volumes, more than {MAX_VOLUMES}"
    return None


def _gpu_env(spec: ContainerSpec) -> str | None:
    keys = sorted(
        k for k, _ in spec.env if _GPU_ENV.fullmatch(k) or (k == _GRANTED_ENV and not spec.gpu)
    )
    if keys:
        return f"sets {', '.join(keys)}: GPU devices are granted by the agent only"
    return None
