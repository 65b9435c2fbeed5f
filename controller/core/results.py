"""The outcome of work, one name for each level: an `ActionOutcome` says how one action on one
container ended; the executor's `ExecutionReport` holds the outcomes of one batch of actions; a
`PassResult` is one whole reconcile pass (its id, how many actions were planned, the report, or
the error that ended it early).
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class ActionOutcome:
    """How one action on one container ended. `pending` means waiting for its image; `skipped`,
    not tried because the agent is shutting down (neither a failure nor a wait)."""

    name: str
    action: str
    ok: bool
    error: str | None = None
    transient: bool = False
    pending: bool = False
    skipped: bool = False
    unavailable: bool = False  # it cannot run here (an image with no build for this CPU)


@dataclass(frozen=True)
class ExecutionReport:
    """The outcomes of the actions one pass executed (or held back)."""

    outcomes: tuple[ActionOutcome, ...] = ()

    @property
    def failures(self) -> list[ActionOutcome]:
        return [o for o in self.outcomes if not o.ok and not o.pending and not o.skipped]

    @property
    def pending(self) -> list[ActionOutcome]:
        return [o for o in self.outcomes if o.pending]


@dataclass(frozen=True)
class PassResult:
    """One reconcile pass: how many actions it planned, what they did, or the error that ended
    it early (`retryable`: whether the next pass may fix it by itself), and when to look again."""

    pass_id: int
    planned: int = 0
    report: ExecutionReport = field(default_factory=ExecutionReport)
    error: str | None = None
    retryable: bool = True
    look_again: float = 0.0  # seconds until the next pass runs anyway (core/pacing.py)

    @property
    def converged(self) -> bool:
        return self.error is None and self.planned == 0

    @property
    def stuck(self) -> bool:
        """Something failed in a way the next pass will not fix by itself."""
        if not self.retryable:
            return True
        failures = self.report.failures
        return bool(failures) and all(not o.transient for o in failures)
