"""What a coordinator's container may ask of this machine, beyond the fields the spec policy never
accepts (policy.py): bounded, pure checks, each one a reason a person can act on.

- an assignment holds at most `max_containers` (32) containers; a bigger one is refused whole and
  the last good one keeps running (never "run the first 32");
- a container publishes at most 8 host ports, each inside the owner's range (1024-65535);
- a GPU only on tier 1, and only when this machine's own hardware qualifies for tier 1;
- the image passes the image policy (registries, repository prefixes, digests).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from controller.core.models import ContainerSpec
from controller.core.policy import ImagePolicy

GPU_TIER = 1
MAX_PORTS = 8
MAX_CONTAINERS = 32


class AssignmentTooLarge(ValueError):
    """The assignment as a whole is refused (the previous one keeps running)."""


@dataclass(frozen=True)
class Admission:
    images: ImagePolicy = field(default_factory=ImagePolicy)
    port_range: tuple[int, int] = (1024, 65535)
    max_ports: int = MAX_PORTS
    max_containers: int = MAX_CONTAINERS
    gpu_machine: bool = False  # this machine's own hardware qualifies for tier 1

    def check_size(self, count: int) -> None:
        if count > self.max_containers:
            raise AssignmentTooLarge(
                f"the assignment holds {count} containers, over this machine's limit of "
                f"{self.max_containers} (RMA_MAX_CONTAINERS): refused whole"
            )

    def check(self, spec: ContainerSpec, tier: int) -> str | None:
        """Why `spec` may not run here, or None."""
        return self._ports(spec) or self._gpu(spec, tier) or self.images.check(spec.image)

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
