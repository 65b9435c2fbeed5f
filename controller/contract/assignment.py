"""An assignment as the coordinator sends it, turned into the desired state.

Entries are checked one by one: a refused entry is reported, the rest of the assignment runs. A
Part 1 coordinator sends no GPU flag, so on tier 1 an entry without `gpu` requests the GPUs (tier 1
is the GPU tier; container names are never used to guess). Every entry must pass the admission
rules (core/admission.py: ports, GPU, image); an assignment over the container limit is refused
whole (AssignmentTooLarge), before any entry is read.
"""

from __future__ import annotations

from typing import Any

from controller.contract.schema import parse_specs
from controller.core.admission import GPU_TIER, Admission
from controller.core.models import DesiredState, Refusal


def assignment_to_desired(
    tier: int, entries: Any, publish_address: str = "", admission: Admission | None = None
) -> DesiredState:
    admission = admission or Admission()
    if isinstance(entries, list):
        admission.check_size(len(entries))
    if tier == GPU_TIER and isinstance(entries, list):
        entries = [
            {**e, "gpu": True} if isinstance(e, dict) and "gpu" not in e else e for e in entries
        ]
    specs, refused = parse_specs(entries, publish_address)
    allowed = []
    for spec in specs:
        problem = admission.check(spec, tier)
        if problem is None:
            allowed.append(spec)
        else:
            refused.append(Refusal(spec.name, problem))
    return DesiredState(tuple(allowed), tuple(refused))
