"""The last notable events for the owner's page: kept from the log's own events (the structlog
chain), in plain sentences, newest first, at most 50; a container the agent had to create or
start again behind its back is logged as healed."""

from __future__ import annotations

import structlog

from controller.core.models import DesiredState
from controller.engine.doorbell import Doorbell
from controller.engine.executor import Executor
from controller.engine.images import ImagePuller
from controller.engine.loop import Reconciler
from controller.ops.events import KEEP, Recent
from rma_testkit.fakes import FakeRuntime, FakeSource, spec


def test_notable_events_become_sentences_newest_first() -> None:
    recent = Recent()
    for event in (
        {"event": "pass_done", "timestamp": "t0"},  # not notable
        {"event": "action_done", "container": "web", "action": "create", "timestamp": "t1"},
        {"event": "hold_started", "reason": "paused by the owner (everything)", "timestamp": "t2"},
        {"event": "crash_loop_backoff", "container": "db", "seconds": 20, "timestamp": "t3"},
    ):
        assert recent(None, "info", dict(event)) == event  # passed on unchanged
    rows = recent.newest_first()
    assert [r["text"] for r in rows] == [
        "db: backed off 20 s (keeps stopping)",
        "paused by the owner (everything)",
        "web: created",
    ]
    assert rows[0]["level"] == "warning" and rows[2]["container"] == "web"


def test_the_ring_keeps_the_last_fifty() -> None:
    recent = Recent()
    for i in range(KEEP + 10):
        recent(None, "info", {"event": "action_done", "container": f"c{i}", "action": "start"})
    rows = recent.newest_first()
    assert len(rows) == KEEP and rows[0]["text"] == f"c{KEEP + 9}: started"


def test_a_container_removed_behind_the_agents_back_is_healed_and_said() -> None:
    rt = FakeRuntime(images={"img:1"})
    agent = Reconciler(
        FakeSource(DesiredState((spec("web"),))),
        rt,
        Executor(rt, ImagePuller(rt, refresh_interval=0)),
        doorbell=Doorbell(),
    )
    with structlog.testing.capture_logs() as seen:
        agent.reconcile()
        agent.reconcile()
        rt.containers.clear()  # docker rm -f
        agent.reconcile()
    healed = [e for e in seen if e["event"] == "container_healed"]
    assert healed == [
        {"event": "container_healed", "container": "web", "how": "removed: created again",
         "log_level": "warning"}
    ]  # fmt: skip
