"""The executor against the in-memory engine: outcomes, isolation, ordering, pending pulls."""

from __future__ import annotations

import threading

from controller.core.errors import PermanentError, TransientError
from controller.core.models import DesiredState
from controller.core.planner import plan
from controller.engine.executor import Executor
from controller.engine.images import ImagePuller
from rma_testkit.fakes import FakeRuntime, spec


def make(rt: FakeRuntime, **kw: object) -> Executor:
    done = threading.Event()
    puller = ImagePuller(rt, on_done=done.set, refresh_interval=0)
    return Executor(rt, puller, concurrency=4, **kw)  # type: ignore[arg-type]


def converge(rt: FakeRuntime, desired: DesiredState, ex: Executor) -> None:
    for _ in range(5):
        actions = plan(desired, rt.list_managed())
        if not actions:
            return
        ex.execute(actions)
    raise AssertionError("did not converge")


def test_creates_everything_once_images_are_present() -> None:
    rt = FakeRuntime(images={"img:1"})
    desired = DesiredState((spec("a"), spec("b")))
    report = make(rt).execute(plan(desired, []))
    assert [(o.name, o.action, o.ok) for o in report.outcomes] == [
        ("a", "create", True),
        ("b", "create", True),
    ]
    assert {c.name: c.state for c in rt.containers.values()} == {"a": "running", "b": "running"}


def test_missing_image_is_pending_then_created(wait: None = None) -> None:
    rt = FakeRuntime()
    ex = make(rt)
    desired = DesiredState((spec("a"),))
    report = ex.execute(plan(desired, []))
    assert report.pending and not report.failures
    converge(rt, desired, ex)  # the fake pull finishes in its thread; later passes create
    assert rt.by_name("a") is not None


def test_one_failing_container_does_not_stop_the_others() -> None:
    rt = FakeRuntime(images={"img:1"}, fail_create={"b": PermanentError("bad spec")})
    report = make(rt).execute(plan(DesiredState((spec("a"), spec("b"), spec("c"))), []))
    assert [o.name for o in report.failures] == ["b"]
    assert report.failures[0].error == "bad spec" and not report.failures[0].transient
    assert {c.name for c in rt.containers.values()} == {"a", "c"}


def test_transient_failure_is_flagged() -> None:
    rt = FakeRuntime(images={"img:1"}, fail_create={"a": TransientError("busy")})
    report = make(rt).execute(plan(DesiredState((spec("a"),)), []))
    assert report.failures[0].transient


def test_name_conflict_at_create_is_reported_as_conflict() -> None:
    rt = FakeRuntime(images={"img:1"})
    foreign = rt.add("a", managed=False)
    report = make(rt).execute(plan(DesiredState((spec("a"),)), rt.list_managed()))
    assert [(o.name, o.action) for o in report.failures] == [("a", "conflict")]
    assert rt.containers[foreign.id] == foreign


def test_planned_conflict_touches_nothing() -> None:
    rt = FakeRuntime(images={"img:1"})
    foreign = rt.add("a", managed=False)
    report = make(rt).execute(plan(DesiredState((spec("a"),)), list(rt.containers.values())))
    assert report.failures[0].action == "conflict" and "left untouched" in str(
        report.failures[0].error
    )
    assert rt.calls == [] and rt.containers == {foreign.id: foreign}


def test_removals_finish_before_creates_start() -> None:
    rt = FakeRuntime(images={"img:1"})
    old = rt.add("old", spec=spec("old"))
    make(rt).execute(plan(DesiredState((spec("new"),)), rt.list_managed()))
    assert rt.calls.index(f"remove:{old.id}") < rt.calls.index("create:new")


def test_recreate_waits_for_the_new_image_and_keeps_the_old_container() -> None:
    rt = FakeRuntime(images={"img:1"}, broken_images={"img:2": "manifest unknown"})
    old = rt.add("a", spec=spec("a"))
    ex = make(rt)
    desired = DesiredState((spec("a", "img:2"),))
    first = ex.execute(plan(desired, rt.list_managed()))
    assert first.pending
    assert old.id in rt.containers  # old one untouched while the pull runs
    for _ in range(200):
        report = ex.execute(plan(desired, rt.list_managed()))
        if report.failures:
            break
        threading.Event().wait(0.01)
    assert "manifest unknown" in str(report.failures[0].error)
    assert rt.containers[old.id].state == "running"


def test_stop_skips_new_work_but_still_removes() -> None:
    rt = FakeRuntime(images={"img:1"})
    gone = rt.add("gone", spec=spec("gone"))
    ex = make(rt, should_stop=lambda: True)
    report = ex.execute(plan(DesiredState((spec("a"),)), rt.list_managed()))
    assert gone.id not in rt.containers
    assert rt.by_name("a") is None
    skipped = [o for o in report.outcomes if o.skipped]
    assert [o.name for o in skipped] == ["a"] and report.pending == [] and report.failures == []


def test_nothing_to_do_touches_nothing() -> None:
    rt = FakeRuntime()
    assert make(rt).execute([]).outcomes == ()
    assert rt.calls == []
