"""The coordinator's assignment as a desired-state source for the reconcile loop.

The lifecycle threads set it (registration, long poll, fetch after a heartbeat hint); the loop
reads it. Entries are checked one by one: a refused entry is logged and reported, the rest of the
assignment runs. A Part 1 coordinator sends no GPU flag, so on tier 1 an entry without `gpu`
requests the GPUs (tier 1 is the GPU tier; container names are never used to guess).
"""

from __future__ import annotations

import threading
from typing import Any

import structlog

from controller.errors import TransientError
from controller.models import DesiredState, Refusal
from controller.policy import ImagePolicy
from controller.schema import parse_specs

log = structlog.get_logger(__name__)
GPU_TIER = 1


def assignment_to_desired(tier: int, entries: Any, publish_address: str = "",
                          policy: ImagePolicy | None = None) -> DesiredState:
    if tier == GPU_TIER and isinstance(entries, list):
        entries = [{**e, "gpu": True} if isinstance(e, dict) and "gpu" not in e else e
                   for e in entries]
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


class AssignmentSource:
    def __init__(self, publish_address: str = "", policy: ImagePolicy | None = None) -> None:
        self._publish_address = publish_address
        self._policy = policy or ImagePolicy()
        self._lock = threading.Lock()
        self._desired: DesiredState | None = None
        self._version = 0
        self._seen = -1
        self.tier: int | None = None
        self.generation: int | None = None

    def describe(self) -> str:
        return "coordinator assignment"

    def set(self, tier: int, entries: Any, generation: int | None) -> DesiredState:
        desired = assignment_to_desired(tier, entries, self._publish_address, self._policy)
        with self._lock:
            self._desired = desired
            self._version += 1
            self.tier, self.generation = tier, generation
        for refusal in desired.refused:
            log.error("spec_refused", container=refusal.name, error=refusal.message,
                      effect="not run; the rest of the assignment runs")
        return desired

    def changed(self) -> bool:
        with self._lock:
            return self._version != self._seen

    def load(self) -> DesiredState:
        with self._lock:
            if self._desired is None:
                raise TransientError("waiting for the first assignment from the coordinator")
            self._seen = self._version
            return self._desired
