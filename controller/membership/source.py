"""The coordinator's assignment as a desired-state source for the reconcile loop.

The membership threads set it (registration, long poll, fetch after a heartbeat hint); the loop
reads it. The conversion itself is the contract's (contract/assignment.py): a refused entry is
logged and reported here, the rest of the assignment runs; an assignment refused whole leaves the
last good one in place.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import replace
from typing import Any

import structlog

from controller.contract.assignment import assignment_to_desired, resolve
from controller.contract.catalog import Catalog
from controller.core.admission import Admission, AssignmentTooLarge
from controller.core.errors import TransientError
from controller.core.models import DesiredState, Refusal

log = structlog.get_logger(__name__)


class AssignmentSource:
    def __init__(
        self,
        publish_address: str = "",
        admission: Admission | None = None,
        catalog: Catalog | None = None,
    ) -> None:
        self._publish_address = publish_address
        self._admission = admission or Admission()
        self._catalog = catalog or Catalog()
        self._lock = threading.Lock()
        self._desired: DesiredState | None = None
        self._version = 0
        self._seen = -1
        self.tier: int | None = None
        self.generation: int | None = None
        self._ring: Callable[[], None] = lambda: None

    def watch(self, ring: Callable[[], None], stop: threading.Event) -> None:
        """Ring the loop's doorbell whenever the membership sets a new desired state."""
        self._ring = ring

    def describe(self) -> str:
        return "coordinator assignment"

    def set(
        self,
        tier: int,
        entries: Any,
        generation: int | None,
        services: Any = None,
        *,
        marks_http: bool = False,
    ) -> DesiredState:
        """`entries` None: not said (the catalog decides, by `services` or else by tier);
        `marks_http`: a Part 2 coordinator, whose specs say `http` themselves."""
        try:
            entries, unknown = resolve(
                self._catalog, tier, entries, services, marks_http=marks_http
            )
            desired = assignment_to_desired(tier, entries, self._publish_address, self._admission)
        except AssignmentTooLarge as exc:
            log.error("assignment_refused", error=str(exc), keeping="the last good assignment")
            return self._keep_previous(str(exc))
        desired = replace(desired, refused=(*desired.refused, *unknown))
        with self._lock:
            self._desired = desired
            self._version += 1
            self.tier, self.generation = tier, generation
        self._ring()
        for refusal in desired.refused:
            log.error(
                "spec_refused",
                container=refusal.name,
                error=refusal.message,
                effect="not run; the rest of the assignment runs",
            )
        return desired

    def _keep_previous(self, why: str) -> DesiredState:
        """The last good desired state, now also reporting the refusal (nothing when none)."""
        with self._lock:
            if self._desired is None:
                return DesiredState()
            kept = [r for r in self._desired.refused if r.name != "(assignment)"]
            self._desired = replace(self._desired, refused=(*kept, Refusal("(assignment)", why)))
            self._version += 1
            desired = self._desired
        self._ring()
        return desired

    def current(self) -> DesiredState | None:
        """The desired state as it stands, without marking it read (for the announcement)."""
        with self._lock:
            return self._desired

    def changed(self) -> bool:
        with self._lock:
            return self._version != self._seen

    def load(self) -> DesiredState:
        with self._lock:
            if self._desired is None:
                raise TransientError("waiting for the first assignment from the coordinator")
            self._seen = self._version
            return self._desired
