"""A scripted coordinator for the membership's unit tests: it answers each call as the test set
it up (registrations with new ids, heartbeats that fail, forget or refuse, queued assignments)
and records every call with the token it carried."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from controller.contract.api import (
    AssignmentResponse,
    CreditsResponse,
    HeartbeatResponse,
    RegisterResponse,
)
from controller.core.errors import CoordinatorRejected, CoordinatorUnreachable, WorkerForgotten

URL = "http://coord.test"
WEB = {"name": "web", "image": "img:1", "port": 8080}


class FakeCoordinator:
    """Answers scripted per call; records every call."""

    def __init__(self, *, part2: bool = False) -> None:
        self.base_url = URL
        self.token: str | None = None
        self.part2 = part2
        self.calls: list[tuple[str, Any]] = []
        self.register_tokens: list[str | None] = []
        self.ids = iter(f"worker-0000000{i}" for i in range(1, 10))
        self.down = 0  # how many next calls fail as unreachable
        self.forgotten = False
        self.refuse = 0  # how many next heartbeats answer 401
        self.assignments: list[AssignmentResponse | None] = []
        self.poll_gate = threading.Event()
        self.hint: int | None = None  # the generation heartbeats answer with
        # The registration answer's assignment keys (Part 3: may hold none, or service names).
        self.answer: dict[str, Any] = {"assigned_containers": [WEB]}
        self.assigns_ids = True  # False: keeps the worker's own id (the edge/local dialects)
        self.test_mode = False  # stores nothing: every heartbeat is 404
        self.refuse_register = 0  # how many next registrations answer 422
        self.clock: Callable[[], float] = lambda: 0.0  # stamps each call (virtual time)
        self.times: list[float] = []
        self.receipts: list[dict[str, Any]] = []  # every receipt delivered (Part 5)

    def _maybe_down(self) -> None:
        if self.down:
            self.down -= 1
            raise CoordinatorUnreachable("connection refused")

    def register(self, body: dict[str, Any], *, token: str | None = None) -> RegisterResponse:
        self.calls.append(("register", body))
        self.times.append(self.clock())
        self.register_tokens.append(token)
        self._maybe_down()
        if self.refuse_register:
            self.refuse_register -= 1
            raise CoordinatorRejected("refused with HTTP 422: body.tunnel_url: Field required", 422)
        self.forgotten = self.test_mode
        wid = next(self.ids) if self.assigns_ids else str(body["worker_id"])
        data: dict[str, Any] = {"worker_id": wid, "tier": 2, "heartbeat_interval": 30}
        if self.part2:
            data |= {"token": "t-" + wid, "assignment_url": f"/api/worker/{wid}/assignment"}
        return RegisterResponse.model_validate(data | self.answer)

    def heartbeat(
        self, path: str, body: dict[str, Any], *, token: str | None = None
    ) -> HeartbeatResponse:
        self.calls.append(("heartbeat", body))
        self.times.append(self.clock())
        self.token = token or self.token
        self._maybe_down()
        if self.forgotten:
            raise WorkerForgotten("Worker not found")
        if self.refuse:
            self.refuse -= 1
            raise CoordinatorRejected("invalid or missing worker token", 401)
        return HeartbeatResponse(assignment_generation=self.hint)

    def fetch_assignment(
        self, path: str, *, token: str | None = None, etag: str | None = None, wait: float = 0
    ) -> AssignmentResponse | None:
        self.calls.append(("fetch", (path, etag, wait)))
        self.times.append(self.clock())
        self.token = token or self.token
        if wait:
            self.poll_gate.wait(0.05)
        if self.forgotten:
            raise WorkerForgotten("Worker not found")
        return self.assignments.pop(0) if self.assignments else None

    def unregister(self, worker_id: str, *, token: str | None = None, timeout: float = 5.0) -> None:
        self.calls.append(("unregister", worker_id))
        self.times.append(self.clock())
        self._maybe_down()

    def send_receipts(
        self, worker_id: str, receipts: list[dict[str, Any]], *, token: str | None = None
    ) -> int:
        """Part 5: every receipt accepted (the highest sequence number sent)."""
        self.calls.append(("receipts", (worker_id, receipts)))
        self.times.append(self.clock())
        self._maybe_down()
        self.receipts.extend(receipts)
        return max(int(r["seq"]) for r in receipts)

    def credits(self, worker_id: str) -> CreditsResponse:
        """Part 5: a credit per receipt delivered."""
        self.calls.append(("credits", worker_id))
        self.times.append(self.clock())
        n = float(len(self.receipts))
        return CreditsResponse.model_validate(
            {"name": worker_id, "rank": 1, "credits": {"today": n, "week": n, "all_time": n}}
        )

    def at(self, kind: str) -> list[float]:
        """When each call of `kind` came (the clock's time)."""
        return [t for (k, _), t in zip(self.calls, self.times, strict=True) if k == kind]

    def count(self, kind: str) -> int:
        return sum(1 for k, _ in self.calls if k == kind)
