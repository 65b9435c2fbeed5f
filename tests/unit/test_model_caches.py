"""Model caches (issue 24, item 8): the pure admission (core/caches.py), the measuring and its
bounds (engine/caches.py, clients/disk.py's walk) and the disk floor that keeps room for the
caches to grow, on injected sizes and a fake clock."""

from __future__ import annotations

from pathlib import Path

from controller.clients.disk import tree_size
from controller.core.caches import admit, default_cap, growth, over_cap
from controller.core.machine import GIB
from controller.core.models import ContainerSpec, DesiredState, VolumeMount
from controller.core.tunnels import TUNNEL_FOR
from controller.engine.caches import CacheReaders, ModelCaches
from controller.engine.imagegc import floor_error

VLLM = ContainerSpec("vllm", "v:1", gpu=1, volumes=(VolumeMount("rma-i-hf-cache", "/cache", True),))
OLLAMA = ContainerSpec(
    "ollama", "o:1", volumes=(VolumeMount("rma-i-ollama", "/root/.ollama", True),)
)
REDIS = ContainerSpec("redis", "r:1", volumes=(VolumeMount("rma-i-redis", "/data"),))
TUNNEL = ContainerSpec("ollama-tunnel", "t:1", labels=((TUNNEL_FOR, "ollama"),))
DESIRED = DesiredState((VLLM, OLLAMA, TUNNEL, REDIS))


def test_the_default_cap_is_a_fifth_of_dockers_disk_within_bounds() -> None:
    assert default_cap(256 * GIB) == 256 * GIB // 5
    assert default_cap(20 * GIB) == 10 * GIB and default_cap(4096 * GIB) == 100 * GIB


def test_over_the_cap_only_what_already_exists_keeps_its_cache() -> None:
    cap = 50 * 10**9
    assert admit(DESIRED, 49 * 10**9, cap, ()) is DESIRED
    assert admit(DESIRED, None, cap, ()) is DESIRED  # not measured yet: nothing held back
    held = admit(DESIRED, 52 * 10**9, cap, {"vllm"})
    assert [s.name for s in held.specs] == ["vllm", "redis"]  # ollama and its tunnel wait
    (refusal,) = held.refused
    assert refusal.name == "ollama" and refusal.unavailable
    assert (
        refusal.message
        == over_cap(52 * 10**9, cap)
        == (
            "unavailable: model caches hold 52 GB, over RMA_MODEL_CACHE_MAX 50 GB: "
            "rma-worker cleanup --caches empties them"
        )
    )
    assert growth(30 * 10**9, cap) == 20 * 10**9 and growth(60 * 10**9, cap) == 0


def test_the_caches_are_measured_when_due_and_the_crossing_rings() -> None:
    now, rings, sizes = [0.0], [], {"rma-i-hf-cache": (30 * 10**9, True)}
    caches = ModelCaches(
        CacheReaders(
            measure=lambda name: sizes.get(name, (0, True)),
            cap=lambda: 50 * 10**9,
            existing=lambda: frozenset({"vllm"}),
            on_change=lambda: rings.append(now[0]),
        ),
        clock=lambda: now[0],
        every=600,
        background=False,
    )
    assert caches.stage(DESIRED) is DESIRED and caches.held is None
    assert caches.growth() == 50 * 10**9  # nothing measured: all of the cap may still come
    caches.after_pass(DESIRED, ())
    assert caches.held == 30 * 10**9 and rings == []
    sizes["rma-i-ollama"] = (25 * 10**9, False)  # counted in part: the walk ran out of time
    now[0] = 599.0
    caches.after_pass(DESIRED, ())
    assert caches.held == 30 * 10**9  # not due yet
    now[0] = 600.0
    caches.after_pass(DESIRED, ())
    assert caches.held == 55 * 10**9 and rings == [600.0]
    assert [r.name for r in caches.stage(DESIRED).refused] == ["ollama"]
    view = caches.view()
    assert view["partial"] == ["rma-i-ollama"] and view["max"] == 50 * 10**9


def test_a_cache_that_cannot_be_read_is_said_not_guessed() -> None:
    caches = ModelCaches(
        CacheReaders(lambda name: None, lambda: GIB, frozenset),
        clock=lambda: 0.0,
        background=False,
    )
    caches.stage(DESIRED)
    caches.after_pass(DESIRED, ())
    assert caches.held is None and caches.stage(DESIRED) is DESIRED
    assert caches.view()["unread"] == ["rma-i-hf-cache", "rma-i-ollama"]


def test_the_walk_counts_blocks_and_stops_at_its_deadline(tmp_path: Path) -> None:
    for i in range(3):
        (tmp_path / f"d{i}").mkdir()
        (tmp_path / f"d{i}" / "weights.bin").write_bytes(b"x" * 100_000)
    total, finished = tree_size(str(tmp_path), 10.0)
    assert finished and 300_000 <= total < 400_000
    ticks = iter(range(100))
    part, finished = tree_size(str(tmp_path), 1.5, clock=lambda: float(next(ticks)))
    assert not finished and part < total


def test_the_disk_floor_keeps_room_for_the_caches_to_grow() -> None:
    disk = lambda: (30 * GIB, 100 * GIB)  # noqa: E731
    assert floor_error(disk, 5.0, 0, 0, 0) is None
    why = floor_error(disk, 5.0, 2, 0, 26 * GIB)
    assert why is not None and "the model caches to grow (RMA_MODEL_CACHE_MAX)" in why
