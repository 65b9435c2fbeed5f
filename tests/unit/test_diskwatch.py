"""Writable layers held to the owner's limit (issue 21, item 4), on a fake engine: a container
over `--max-container-disk` is removed (the next pass creates it anew), at most one measure at a
time and once per interval, an engine error costs only that measure."""

from __future__ import annotations

import threading

from controller.core.errors import TransientError
from controller.engine.diskwatch import WritableLayers

MB = 1_000_000


class Engine:
    def __init__(self, sizes: dict[str, tuple[str, int]]) -> None:
        self.sizes = sizes
        self.removed: list[str] = []
        self.calls = 0
        self.fail = False

    def writable_sizes(self) -> dict[str, tuple[str, int]]:
        self.calls += 1
        if self.fail:
            raise TransientError("engine busy")
        return dict(self.sizes)

    def remove(self, container_id: str) -> None:
        self.removed.append(container_id)


def test_a_container_over_the_limit_is_removed_and_the_loop_woken() -> None:
    engine = Engine({"a1": ("writer", 104 * MB), "b1": ("quiet", 3 * MB)})
    woken = threading.Event()
    watch = WritableLayers(engine, 50 * MB, on_evicted=woken.set)
    assert watch.check() == ["writer"]
    assert engine.removed == ["a1"] and woken.is_set() and watch.evicted == {"writer": 104 * MB}


def test_measured_once_per_interval_on_a_thread_of_its_own() -> None:
    engine = Engine({"a1": ("w", 1)})
    now = [0.0]
    watch = WritableLayers(engine, 50 * MB, interval=60, clock=lambda: now[0])
    first = watch.after_pass()
    assert first is not None and watch.after_pass() is None  # not due: no second measure
    first.join(5)
    now[0] = 61.0
    second = watch.after_pass()
    assert second is not None
    second.join(5)
    assert engine.calls == 2


def test_an_engine_error_costs_only_that_measure() -> None:
    engine = Engine({"a1": ("w", 100 * MB)})
    engine.fail = True
    watch = WritableLayers(engine, 50 * MB)
    assert watch.check() == [] and engine.removed == []
    engine.fail = False
    assert watch.check() == ["w"]
