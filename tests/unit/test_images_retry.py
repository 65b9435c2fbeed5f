"""Background pulls (dedup, failure reported once, throttled refresh) and the retry policy."""

from __future__ import annotations

import threading

import pytest

from controller.clients.retry import call_with_retry
from controller.core.backoff import Delays
from controller.core.errors import PermanentError, TransientError
from controller.core.runtime import ProgressCallback
from controller.engine.images import ImagePuller, is_mutable
from rma_testkit.fakes import FakeRuntime


class GatedRuntime(FakeRuntime):
    """Pulls block until the test opens the gate."""

    def __init__(self) -> None:
        super().__init__()
        self.gate = threading.Event()

    def pull(self, image: str, progress: ProgressCallback | None = None) -> None:
        self.gate.wait(5)
        super().pull(image)


def wait_for(cond: threading.Event) -> None:
    assert cond.wait(5)


def test_absent_image_pulls_once_in_background_and_rings() -> None:
    rt = GatedRuntime()
    done = threading.Event()
    puller = ImagePuller(rt, on_done=done.set, refresh_interval=0)
    assert puller.ensure("i:1").pulling
    assert puller.ensure("i:1").pulling
    assert puller.pulling() == ["i:1"]
    rt.gate.set()
    wait_for(done)
    assert puller.ensure("i:1").ready
    assert rt.calls.count("pull:i:1") == 1


def test_failed_pull_backs_off_per_image_then_retries() -> None:
    rt = FakeRuntime(broken_images={"i:1": "a layer's checksum did not match"})
    now = [100.0]
    done = threading.Event()
    puller = ImagePuller(rt, on_done=done.set, refresh_interval=0, clock=lambda: now[0])
    for expected_delay in (10.0, 20.0, 40.0):
        done.clear()
        assert puller.ensure("i:1").pulling
        wait_for(done)
        assert puller.next_due() == expected_delay  # the loop looks again when it ends
        for _ in range(3):  # reported on every pass meanwhile, without pulling again
            state = puller.ensure("i:1")
            assert not state.ready and not state.pulling and not state.transient
            assert str(state.error).startswith("a layer's checksum did not match (next pull in")
        now[0] += expected_delay
    assert rt.calls.count("pull:i:1") == 3
    rt.broken_images.clear()
    done.clear()
    assert puller.ensure("i:1").pulling
    wait_for(done)
    assert puller.ensure("i:1").ready  # success resets the backoff


def test_a_transient_pull_failure_stays_transient() -> None:
    rt = FakeRuntime()

    def down(image: str, progress: ProgressCallback | None = None) -> None:
        raise TransientError("registry unreachable")

    rt.pull = down  # type: ignore[method-assign]
    done = threading.Event()
    puller = ImagePuller(rt, on_done=done.set, refresh_interval=0)
    puller.ensure("i:1")
    wait_for(done)
    state = puller.ensure("i:1")
    assert str(state.error).startswith("registry unreachable") and state.transient


def test_present_mutable_tag_is_refreshed_at_most_once_per_interval() -> None:
    now = [1000.0]
    rt = FakeRuntime(images={"i:latest", "i@sha256:" + "0" * 64})
    puller = ImagePuller(rt, refresh_interval=60, clock=lambda: now[0])
    assert puller.ensure("i:latest").ready
    assert puller.ensure("i@sha256:" + "0" * 64).ready
    for _ in range(50):
        if "pull:i:latest" in rt.calls and not puller.pulling():
            break
        threading.Event().wait(0.01)
    puller.ensure("i:latest")
    now[0] += 61
    puller.ensure("i:latest")
    for _ in range(50):
        if rt.calls.count("pull:i:latest") == 2:
            break
        threading.Event().wait(0.01)
    assert rt.calls.count("pull:i:latest") == 2
    assert not any("sha256" in c for c in rt.calls)


def test_failed_refresh_keeps_the_image_usable() -> None:
    rt = FakeRuntime(images={"i:1"}, broken_images={"i:1": "registry down"})
    puller = ImagePuller(rt, refresh_interval=1)
    assert puller.ensure("i:1").ready
    for _ in range(50):
        if not puller.pulling():
            break
        threading.Event().wait(0.01)
    assert puller.ensure("i:1").ready


def test_mutability() -> None:
    assert is_mutable("redis:7") and is_mutable("redis")
    assert not is_mutable("redis@sha256:" + "a" * 64)


def test_retry_retries_transient_errors_with_bounded_jitter_without_waiting() -> None:
    sleeps: list[float] = []
    attempts = iter([TransientError("a"), TransientError("b"), None])

    def flaky() -> str:
        err = next(attempts)
        if err:
            raise err
        return "ok"

    blips = Delays(0.2, 2.0, jitter="full")
    assert call_with_retry(flaky, sleep=sleeps.append, delays=blips) == "ok"
    assert len(sleeps) == 2 and all(0 <= s <= 2.0 for s in sleeps)


def test_retry_gives_up_and_reraises() -> None:
    sleeps: list[float] = []

    def always() -> None:
        raise TransientError("down")

    with pytest.raises(TransientError):
        call_with_retry(always, attempts=3, sleep=sleeps.append)
    assert len(sleeps) == 2


def test_permanent_errors_are_not_retried() -> None:
    calls = []

    def bad() -> None:
        calls.append(1)
        raise PermanentError("no")

    with pytest.raises(PermanentError):
        call_with_retry(bad, sleep=lambda s: None)
    assert calls == [1]


@pytest.mark.parametrize(
    ("error", "delays"),
    [
        ("manifest unknown: manifest unknown", (600.0, 1200.0, 2400.0)),
        ("pull access denied for x, repository does not exist", (600.0, 1200.0, 2400.0)),
        ("unauthorized: authentication required", (600.0, 1200.0, 2400.0)),
        ("a layer's checksum did not match", (10.0, 20.0, 40.0)),
    ],
)
def test_an_image_the_registry_says_is_missing_backs_off_for_hours(
    error: str, delays: tuple[float, ...]
) -> None:
    """Issue 22, item 3: a missing image was asked for every 5 minutes for ever; now 10 min
    doubling to 6 h (other errors keep kubelet's 10 s doubling to 5 min)."""
    rt = FakeRuntime(broken_images={"gone:1": error})
    now, done = [0.0], threading.Event()
    puller = ImagePuller(rt, on_done=done.set, refresh_interval=0, clock=lambda: now[0])
    for delay in delays:
        done.clear()
        assert puller.ensure("gone:1").pulling
        wait_for(done)
        assert puller.next_due() == delay
        now[0] += delay
