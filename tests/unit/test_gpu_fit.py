"""GPU placement (core/gpu_fit.py): largest first, first fit, pinned, shared only when both fit,
kept where it runs; what does not fit is unavailable with the reason a volunteer reads."""

from __future__ import annotations

from dataclasses import replace

from hypothesis import given
from hypothesis import strategies as st

from controller.core.gpu_fit import FRACTION, GpuPlacer, GpuRoom, Placement, gb, share_of
from controller.core.models import GPU_ALL, ContainerSpec, DesiredState
from controller.core.tunnels import TUNNEL_FOR

MIB, GB8, GB24 = 1024**2, 8192 * 1024**2, 24564 * 1024**2


def gpu(name: str, need: int = 0, count: int = GPU_ALL, **extra: object) -> ContainerSpec:
    return ContainerSpec(name, "img:1", gpu=count, gpu_memory_min=need, **extra)  # type: ignore[arg-type]


VLLM = gpu("vllm", 18000, command=("--gpu-memory-utilization", FRACTION))
OLLAMA = gpu("ollama", 6000, env=(("FRACTION", FRACTION),))
EMBED = gpu("embed", 2000)


def place(
    rooms: tuple[GpuRoom, ...], *specs: ContainerSpec, kept: dict[str, Placement] | None = None
) -> tuple[DesiredState, dict[str, Placement]]:
    return GpuPlacer(rooms, kept or {}).apply(DesiredState(specs))


def why(desired: DesiredState) -> dict[str, str]:
    return {r.name: r.message for r in desired.refused}


def test_an_8_gb_card_runs_ollama_and_says_why_not_vllm() -> None:
    shaped, placed = place((GpuRoom("0", GB8, 400 * MIB),), VLLM, OLLAMA)
    assert why(shaped) == {"vllm": "unavailable: needs 18 GB of GPU memory; GPU 0 has 8 GB"}
    assert shaped.refused[0].unavailable
    (ollama,) = shaped.specs
    assert ollama.gpu_ids == ("0",) and ollama.env == (("FRACTION", "0.74"),)
    assert placed == {"ollama": Placement(("0",), 0.74, 6000)}


def test_a_24_gb_desktop_shares_only_what_fits_beside_its_browser() -> None:
    room = GpuRoom("0", GB24, 1200 * MIB)
    shaped, placed = place((room,), VLLM, OLLAMA, EMBED)
    assert [s.name for s in shaped.specs] == ["vllm", "embed"]
    assert shaped.specs[0].command == ("--gpu-memory-utilization", "0.74")
    assert why(shaped)["ollama"] == (
        "unavailable: needs 5.9 GB of GPU memory; GPU 0 has 5.2 GB free "
        "(other programs use 1.2 GB, vllm holds 18 GB)"
    )
    assert placed["embed"].devices == ("0",)


def test_largest_first_and_each_pinned_to_its_own() -> None:
    rooms = (GpuRoom("0", GB8, 0), GpuRoom("1", GB24, 0))
    shaped, _ = place(rooms, VLLM, OLLAMA, EMBED)
    ids = {s.name: s.gpu_ids for s in shaped.specs}
    assert ids == {"vllm": ("1",), "ollama": ("1",), "embed": ("0",)}  # 24 000 of 24 564 MiB


def test_a_service_without_a_need_takes_its_gpus_whole_and_alone() -> None:
    rooms = (GpuRoom("0", GB24, 0), GpuRoom("1", GB24, 0))
    whole = gpu("whole", env=(("F", FRACTION),))
    shaped, placed = place(rooms, whole, OLLAMA)
    assert placed["whole"] == Placement(("0", "1"), 0.9, 0)
    assert why(shaped) == {
        "ollama": "unavailable: needs 5.9 GB of GPU memory; GPU 0 is given whole to whole; "
        "GPU 1 is given whole to whole"
    }
    one = gpu("one", count=1)
    shaped, placed = place(rooms, OLLAMA, one)
    assert placed["one"].devices == ("1",) and placed["ollama"].devices == ("0",)
    shaped, _ = place(rooms[:1], OLLAMA, one)
    assert why(shaped) == {"one": "unavailable: needs a GPU to itself; GPU 0 runs ollama"}


def test_a_count_beyond_the_lent_gpus_is_said() -> None:
    shaped, _ = place((GpuRoom("0", GB24, 0),), gpu("two", 1000, count=2))
    assert why(shaped) == {"two": "unavailable: needs 2 GPUs; this machine lends 1 GPU"}


def test_a_placement_is_kept_while_it_runs_whatever_others_do_now() -> None:
    room = GpuRoom("0", GB24, 0)
    _, placed = place((room,), VLLM)
    busy = replace(room, others=20000 * MIB)  # its own use, or a game's, since it started
    shaped, again = place((busy,), VLLM, kept=placed)
    assert again == placed and not shaped.refused
    smaller = (GpuRoom("0", GB8, 0),)  # no longer lent as it was: placed anew, and refused
    shaped, again = place(smaller, VLLM, kept=placed)
    assert again == {} and why(shaped)["vllm"].startswith("unavailable: needs 18 GB")


def test_an_unplaced_service_leaves_with_its_tunnel() -> None:
    tunnel = ContainerSpec("vllm-tunnel", "tunnel:1", labels=((TUNNEL_FOR, "vllm"),))
    shaped, _ = place((GpuRoom("0", GB8, 0),), VLLM, tunnel, ContainerSpec("web", "img:1"))
    assert [s.name for s in shaped.specs] == ["web"]


def test_no_gpu_read_leaves_the_engine_its_choice_with_the_default_share() -> None:
    shaped, placed = place((), VLLM)
    assert placed == {} and shaped.specs[0].command == ("--gpu-memory-utilization", "0.90")
    assert shaped.specs[0].gpu_ids == ()


def test_sizes_read_as_a_person_says_them() -> None:
    assert [gb(18000), gb(6000), gb(8192), gb(143771)] == ["18 GB", "5.9 GB", "8 GB", "140 GB"]
    assert share_of(18000, GB24) == 0.74 and share_of(0, GB24) == 0.9
    assert share_of(30000, GB24) == 1.0


@given(
    sizes=st.lists(st.sampled_from([4096, 8192, 12288, 24564, 81920]), min_size=1, max_size=4),
    needs=st.lists(st.integers(0, 30000), min_size=1, max_size=6),
    others=st.integers(0, 4096),
)
def test_no_gpu_is_ever_promised_more_than_it_has(
    sizes: list[int], needs: list[int], others: int
) -> None:
    rooms = tuple(GpuRoom(str(i), s * MIB, others * MIB) for i, s in enumerate(sizes))
    specs = [gpu(f"s{i}", n, count=1 if i % 2 else GPU_ALL) for i, n in enumerate(needs)]
    shaped, placed = place(rooms, *specs)
    assert len(shaped.specs) + len(shaped.refused) == len(specs)
    for room in rooms:
        on = [p for p in placed.values() if room.index in p.devices]
        if any(not p.need for p in on):
            assert len(on) == 1  # whole and alone
        assert sum(p.need for p in on) * MIB <= room.total - (room.others or 0)
    again, kept = place(rooms, *specs, kept=placed)
    assert kept == placed and again.specs == shaped.specs  # stable from one pass to the next
    assert set(why(again)) == set(why(shaped))


def test_status_says_which_gpu_each_service_runs_on() -> None:
    from controller.cli.console import render_status  # noqa: PLC0415
    from tests.unit.test_observability import STATUS  # noqa: PLC0415

    row = {**STATUS["containers"][0], "starting_for": 42, "gpus": ["0", "1"]}
    text = render_status({**STATUS, "containers": [row]})
    assert "running (starting 42 s) on GPU 0,1" in text


def test_a_gpu_machine_on_which_nothing_fits_says_so_once() -> None:
    from controller.cli.console import render_status  # noqa: PLC0415
    from tests.unit.test_observability import STATUS  # noqa: PLC0415

    why = "unavailable: needs 18 GB of GPU memory; GPU 0 has 4 GB"
    row = {**STATUS["containers"][0], "state": "unavailable", "error": why}
    text = render_status({**STATUS, "containers": [row]})
    assert text.count("no GPU service fits this machine's GPUs") == 1
    placed = {**row, "state": "running", "error": None, "gpus": ["0"]}
    assert "no GPU service fits" not in render_status({**STATUS, "containers": [row, placed]})
