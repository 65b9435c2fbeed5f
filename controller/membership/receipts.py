"""Delivering the worker's signed receipts (Part 5, issue 26): after a heartbeat the coordinator
answered, the oldest receipts not yet acknowledged (at most 50) are sent, in order; the answer —
the highest sequence number accepted — drops those from the ledger. Nothing is lost to an
outage or a restart: the ledger keeps them (30 days) and they are sent again at the next tick.

Only to a coordinator that gave the worker a token (Part 2): without one, nobody could tell the
worker's receipts from anyone's. A coordinator that does not know the call (404, 405, 501) is
asked again after an hour, said once in the log.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

import structlog

from controller.core.errors import AgentError, CoordinatorRejected
from controller.membership.api import CoordinatorAPI
from controller.membership.standing import Shared

log = structlog.get_logger(__name__)
BATCH = 50
UNSUPPORTED = 3600.0  # seconds before asking again a coordinator that does not take receipts


class Ledger(Protocol):
    def pending(self, limit: int) -> tuple[str | None, list[dict[str, Any]]]: ...

    def acknowledge(self, worker_id: str, seq: int) -> int: ...


class ReceiptSender:
    def __init__(
        self, client: CoordinatorAPI, shared: Shared, ledger: Ledger, clock: Callable[[], float]
    ) -> None:
        self._client, self._shared, self._ledger, self._clock = client, shared, ledger, clock
        self._unsupported_until = 0.0
        self.last_error: str | None = None
        self.highest_accepted: int | None = None
        self.credits: dict[str, Any] | None = None  # the coordinator's last word on them

    def send(self) -> int:
        """One delivery, if any is due; how many receipts were acknowledged."""
        identity = self._shared.standing.identity
        if identity is None or not identity.token or self._clock() < self._unsupported_until:
            return 0
        worker_id, pending = self._ledger.pending(BATCH)
        if worker_id != identity.worker_id or not pending:
            return 0
        try:
            accepted = self._client.send_receipts(worker_id, pending, token=identity.token)
        except CoordinatorRejected as exc:
            self.last_error = str(exc)
            if exc.status in (404, 405, 501):
                if not self._unsupported_until:
                    log.info("receipts_not_taken", error=str(exc), again_in=UNSUPPORTED)
                self._unsupported_until = self._clock() + UNSUPPORTED
            else:
                log.warning("receipts_refused", error=str(exc), kept=len(pending))
            return 0
        except AgentError as exc:  # unreachable, malformed: the next tick tries again
            self.last_error = str(exc)
            return 0
        self.last_error, self.highest_accepted = None, accepted
        dropped = self._ledger.acknowledge(worker_id, accepted)
        if accepted < int(pending[0]["seq"]):
            log.warning("receipts_not_accepted", first=pending[0]["seq"], highest=accepted)
        try:  # what they came to, for the owner's page (once per delivery: once a window)
            self.credits = self._client.credits(worker_id).model_dump()
        except AgentError as exc:
            log.debug("credits_not_read", error=str(exc))
        return dropped
