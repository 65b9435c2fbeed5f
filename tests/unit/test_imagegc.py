"""The disk floor and image garbage collection, with scripted disk numbers."""

from __future__ import annotations

import threading
from pathlib import Path

from controller.clients.store import StateStore
from controller.engine.imagegc import GIB, PulledImages, collect, floor_error
from controller.engine.images import ImagePuller, PullGuards
from rma_testkit.fakes import FakeRuntime


class Disk:
    """A disk whose use drops by `per_image` for each image removed."""

    def __init__(self, used_percent: float, per_image: float = 5.0) -> None:
        self.used = used_percent
        self.per_image = per_image

    def __call__(self) -> tuple[int, int]:
        total = 100 * GIB
        return int(total * (100 - self.used) / 100), total

    def remove(self, image: str) -> bool:
        self.used -= self.per_image
        return True


def pulled_images(tmp_path: Path, *images: str) -> PulledImages:
    store = StateStore(tmp_path, "i")
    store.save_pulled({image: float(n) for n, image in enumerate(images)})
    return PulledImages(store)


def test_floor() -> None:
    assert floor_error(Disk(50), 5) is None
    assert "under the 60 GiB floor" in str(floor_error(Disk(50), 60))
    assert floor_error(Disk(50), 49) is None
    assert "kept for 40 containers' logs" in str(floor_error(Disk(50), 49, containers=40))


def test_nothing_is_collected_under_the_high_water_mark(tmp_path: Path) -> None:
    disk = Disk(85)
    assert collect(pulled_images(tmp_path, "a"), disk.remove, disk, set()) == []


def test_oldest_unused_pulled_images_go_until_under_the_low_water_mark(tmp_path: Path) -> None:
    pulled = pulled_images(tmp_path, "old:1", "used:1", "mid:1", "new:1")
    disk = Disk(90)
    removed = collect(pulled, disk.remove, disk, {"used:1"}, high=85, low=80)
    assert removed == ["old:1", "mid:1", "new:1"]  # 90 → 85 → 80 → 75: stops under 80
    assert disk.used == 75
    assert pulled.oldest_first() == ["used:1"]


def test_images_docker_refuses_to_remove_stay_recorded(tmp_path: Path) -> None:
    pulled = pulled_images(tmp_path, "a:1")
    assert collect(pulled, lambda image: False, Disk(99), set()) == []
    assert pulled.oldest_first() == ["a:1"]


def test_a_pull_under_the_floor_is_refused_and_backs_off() -> None:
    rt = FakeRuntime()
    now = [50.0]
    puller = ImagePuller(
        rt,
        refresh_interval=0,
        guards=PullGuards(floor=lambda needed: "disk full"),
        clock=lambda: now[0],
    )
    state = puller.ensure("big:1")
    assert state.error == "disk full" and not state.pulling
    assert str(puller.ensure("big:1").error).startswith("disk full (next pull in")
    assert "pull:big:1" not in rt.calls and puller.next_due() == 10.0


def test_pulled_images_are_recorded(tmp_path: Path) -> None:
    store = StateStore(tmp_path, "i")
    done = threading.Event()
    puller = ImagePuller(
        FakeRuntime(),
        on_done=done.set,
        refresh_interval=0,
        guards=PullGuards(on_pulled=PulledImages(store).add),
    )
    puller.ensure("x:1")
    assert done.wait(5)
    assert list(store.load_pulled()) == ["x:1"]


def test_pulls_in_flight_count_against_the_floor_with_their_sizes() -> None:
    """Issue 21, item 4: three 20 GiB pulls were each admitted alone at 40 GiB free (5 GiB
    floor); with their sizes from the registry, one runs and two are refused."""
    gate, ended = threading.Event(), threading.Semaphore(0)

    class SlowRuntime(FakeRuntime):
        def pull(self, image: str, progress: object = None) -> None:
            gate.wait(10)
            super().pull(image)

    def disk() -> tuple[int, int]:
        return 40 * GIB, 100 * GIB

    rt = SlowRuntime()
    puller = ImagePuller(
        rt,
        refresh_interval=0,
        on_done=ended.release,
        guards=PullGuards(
            floor=lambda needed: floor_error(disk, 5, 0, needed), size=lambda image: 20 * GIB
        ),
    )
    images = [f"big{i}:1" for i in range(3)]
    assert all(puller.ensure(image).pulling for image in images)  # checked alone: each fits
    assert ended.acquire(timeout=5) and ended.acquire(timeout=5)  # two refused, not pulled
    gate.set()
    assert ended.acquire(timeout=5)
    assert len([c for c in rt.calls if c.startswith("pull:")]) == 1
    errors = [str(puller.ensure(image).error) for image in images]
    refused = [e for e in errors if "needs ~42.9 GB with the pulls in flight" in e]
    assert len(refused) == 2, errors
