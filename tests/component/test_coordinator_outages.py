"""A coordinator that refuses or is away, seen from the whole agent in-process on virtual time:
registration is retried with growing waits and nothing else is touched. These were process-level
tests that slept 6 real seconds each; here a minute of the agent's time takes milliseconds."""

from __future__ import annotations

from pathlib import Path

import pytest
import structlog

from rma_testkit.bad_coordinator import EARLY_304, NO_COORDINATORS, REFUSE_422, BadCoordinator
from rma_testkit.component import in_process, settings_for


@pytest.mark.parametrize("mode", [REFUSE_422, NO_COORDINATORS])
def test_refusals_and_outages_are_retried_with_growing_waits(tmp_path: Path, mode: str) -> None:
    bad = BadCoordinator(0, mode)
    url = f"http://127.0.0.1:{bad.port}"
    settings = settings_for(
        tmp_path / "state", "outage", ("coordinator_url", url), ("publish_address", "127.0.0.1")
    )
    try:
        with structlog.testing.capture_logs() as logs, in_process(settings, ()) as agent:
            agent.settle(lambda: agent.time.knows("lifecycle"))  # its first call answered
            started = agent.time.now
            agent.advance(6)
            first = bad.requests
            events = [e for e in logs if e["event"].startswith(("registration", "coordinator"))]
            if mode == REFUSE_422:
                assert first == 1  # the next try waits 15-30 s
                assert events[0]["event"] == "registration_refused" and events[0]["status"] == 422
                assert "body.tunnel_url: Field required" in events[0]["error"]
                assert "Field required" in str(agent.parts.lifecycle.notice)  # type: ignore[union-attr]
                agent.until(lambda: bad.requests == 2, within=30)  # 15-30 s after the first
                assert agent.time.now - started >= 15
                agent.advance(14)  # the third waits 30-60 s more
                assert bad.requests == 2
            else:  # an outage: 1 s doubling, each call retried a few times (4 x 4 at most in 6 s)
                assert 2 <= first <= 16
                assert {e["event"] for e in events} == {"coordinator_unreachable"}
                agent.advance(60)
                minute = bad.requests - first
                agent.advance(60)
                later = bad.requests - first - minute
                assert later < minute and later <= 12, (minute, later)  # the waits grow
            assert agent.runtime.calls == [] or set(agent.runtime.calls) <= {"list"}
    finally:
        bad.close()


def test_a_coordinator_answering_at_once_cannot_make_the_agent_spin(tmp_path: Path) -> None:
    """Heartbeats asked every millisecond and a long poll answered 304 at once: the agent keeps
    to 5 s heartbeats and spaced polls (it once made 22 326 requests in 23 s at 80 % of a core).
    A spin would not wait on the clock: the requests would pile up while it stands still."""
    bad = BadCoordinator(0, EARLY_304)
    url = f"http://127.0.0.1:{bad.port}"
    settings = settings_for(
        tmp_path / "state",
        "spin",
        ("coordinator_url", url),
        ("publish_address", "127.0.0.1"),
        ("long_poll_wait", 55.0),  # answered at once here: nothing is held open
    )
    try:
        with in_process(settings, ()) as agent:
            agent.settle(lambda: agent.time.knows("long-poll"))
            agent.until(lambda: bad.count("wait=") >= 1)
            polls, beats = bad.count("wait="), bad.count("/heartbeat")
            agent.advance(10)
            assert bad.count("/heartbeat") - beats <= 3  # every 5 s, not 1 000 a second
            assert bad.count("wait=") - polls <= 12  # at most one a second, backing off
    finally:
        bad.close()
