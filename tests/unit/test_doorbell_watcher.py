"""The loop's wake-ups (issue 22, found on the way): a ring between a timed-out wait and its
clear is kept, and the engine-event watcher survives an error that is not the agent's own."""

from __future__ import annotations

import threading

from controller.core.backoff import Delays
from controller.core.runtime import ContainerEvent
from controller.engine.doorbell import Doorbell
from controller.engine.watcher import EventWatcher
from rma_testkit.fakes import FakeEvents, FakeRuntime


def test_a_ring_after_a_timed_out_wait_is_not_lost() -> None:
    bell = Doorbell()
    event = bell._event  # the race is inside one call: made to happen here
    timed_out = event.wait

    def wait_then_ring(timeout: float | None = None) -> bool:
        rung = timed_out(timeout)
        bell.ring()  # the watcher rings just as the wait timed out, before any clear
        return rung

    event.wait = wait_then_ring  # type: ignore[method-assign]
    assert bell.wait(0) is False
    event.wait = timed_out  # type: ignore[method-assign]
    assert bell.wait(0) is True  # kept for the next wait
    assert bell.wait(0) is False  # and cleared once seen


class Surprising(FakeRuntime):
    """An event stream that fails with a library's error twice, then works."""

    def __init__(self) -> None:
        super().__init__()
        self.opened = 0
        self.working = threading.Event()

    def events(self) -> FakeEvents:
        self.opened += 1
        if self.opened <= 2:
            raise RuntimeError("a library's surprise")
        self.working.set()
        return FakeEvents()


def test_the_watcher_reopens_after_any_error() -> None:
    runtime, stop = Surprising(), threading.Event()
    seen: list[ContainerEvent | None] = []
    watcher = EventWatcher(runtime, seen.append, stop, delays=Delays(base=0.01, cap=0.01))
    watcher.start()
    try:
        assert runtime.working.wait(5) and runtime.opened == 3
    finally:
        stop.set()
        watcher.close()
    assert None in seen  # the (re)connect rang the loop
