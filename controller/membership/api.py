"""What membership needs of a coordinator client (controller.clients.coordinator implements it;
unit tests script it). The token travels with each call: a client holds no identity, so the
threads never share one through it, and each thread has a client (an HTTP session) of its own.
"""

from __future__ import annotations

from typing import Any, Protocol

from controller.contract.api import (
    AssignmentResponse,
    CreditsResponse,
    HeartbeatResponse,
    RegisterResponse,
)


class CoordinatorAPI(Protocol):
    base_url: str

    def register(self, body: dict[str, Any], *, token: str | None = None) -> RegisterResponse: ...

    def heartbeat(
        self, path: str, body: dict[str, Any], *, token: str | None = None
    ) -> HeartbeatResponse: ...

    def fetch_assignment(
        self, path: str, *, token: str | None = None, etag: str | None = None, wait: float = 0
    ) -> AssignmentResponse | None: ...

    def unregister(
        self, worker_id: str, *, token: str | None = None, timeout: float = 5.0
    ) -> None: ...

    def send_receipts(
        self, worker_id: str, receipts: list[dict[str, Any]], *, token: str | None = None
    ) -> int: ...

    def credits(self, worker_id: str) -> CreditsResponse: ...
