"""An assignment as the coordinator sends it, turned into the desired state.

Entries are checked one by one: a refused entry is reported, the rest of the assignment runs. A
Part 1 coordinator sends no GPU flag, so on tier 1 an entry without `gpu` requests the GPUs (tier 1
is the GPU tier; container names are never used to guess). Images must pass the image policy.
"""

from __future__ import annotations

from typing import Any

from controller.contract.schema import parse_specs
from controller.core.models import DesiredState, Refusal
from controller.core.policy import ImagePolicy

GPU_TIER = 1


def assignment_to_desired(
    tier: int, entries: Any, publish_address: str = "", policy: ImagePolicy | None = None
) -> DesiredState:
    if tier == GPU_TIER and isinstance(entries, list):
        entries = [
            {**e, "gpu": True} if isinstance(e, dict) and "gpu" not in e else e for e in entries
        ]
    specs, refused = parse_specs(entries, publish_address)
    policy = policy or ImagePolicy()
    allowed = []
    for spec in specs:
        problem = policy.check(spec.image)
        if problem is None:
            allowed.append(spec)
        else:
            refused.append(Refusal(spec.name, problem))
    return DesiredState(tuple(allowed), tuple(refused))
