"""The membership's shared standing: an answer to a call made with an identity that has since
been replaced (a long poll that outlived a re-registration) changes nothing."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

from controller.clients.store import Identity, StateStore
from controller.contract.api import AssignmentResponse
from controller.core.backoff import Delays
from controller.core.errors import WorkerForgotten
from controller.membership.heartbeat import mark_forgotten
from controller.membership.longpoll import AssignmentPoller
from controller.membership.source import AssignmentSource
from controller.membership.standing import Shared

OLD = Identity("worker-0000000a", "http://c", "t-a", "/api/worker/worker-0000000a/assignment")
NEW = Identity("worker-0000000b", "http://c", "t-b", "/api/worker/worker-0000000b/assignment")


def shared(tmp_path: Path) -> Shared:
    return Shared(
        StateStore(tmp_path, "i"),
        AssignmentSource(),
        on_change=lambda: None,
        heartbeat_override=None,
    )


def test_a_404_for_a_replaced_identity_does_not_register_again(tmp_path: Path) -> None:
    s, stop = shared(tmp_path), threading.Event()
    s.adopt(OLD)
    s.adopt(NEW, fresh=True)  # registered again meanwhile
    mark_forgotten(s, stop, WorkerForgotten("Worker not found"), OLD)
    assert not s.forgotten.is_set()
    mark_forgotten(s, stop, WorkerForgotten("Worker not found"), NEW)
    assert s.forgotten.is_set()


class ReRegisteringDuringThePoll:
    """Answers the old identity's long poll only after the worker registered anew."""

    base_url = "http://c"

    def __init__(self, s: Shared) -> None:
        self.shared = s

    def fetch_assignment(self, path: str, **_: Any) -> AssignmentResponse:
        self.shared.adopt(NEW, fresh=True)
        return AssignmentResponse(generation=7, tier=2, containers=[])


def test_an_assignment_answered_to_a_replaced_identity_is_not_applied(tmp_path: Path) -> None:
    s = shared(tmp_path)
    s.adopt(OLD)
    client = ReRegisteringDuringThePoll(s)  # answers the one call a fetch makes
    poller = AssignmentPoller(
        client,  # type: ignore[arg-type]
        s,
        stop=threading.Event(),
        wait=0,
        delays=Delays(1, 1),
    )
    poller.fetch_now()
    assert s.source.generation is None and s.store.load_assignment() is None
