"""The owner's holds, pure: the schedule and durations, which containers a hold covers, how the
planner stops (never removes) what is held, the status a held container shows, and the guards'
timing (busy CPU, the GPU given back, its temperature) on an injected clock."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from controller.core.holds import (
    BUSY_WINDOW,
    BusyGuard,
    GpuGuard,
    GpuProcess,
    GpuReading,
    PauseRequest,
    apply_holds,
    battery_condition,
    covers,
)
from controller.core.models import ActualContainer, DesiredState, Hold, PortMapping
from controller.core.planner import Create, Recreate, Remove, Start, Stop, plan
from controller.core.results import ActionOutcome, ExecutionReport
from controller.core.schedule import Schedule, parse_duration
from controller.core.status import build_status
from controller.core.tunnels import tunnel_spec
from rma_testkit.fakes import spec

WEB = spec("web", "img:1")
LLM = spec("llm", "vllm:1", gpu=-1)
LLM1 = spec("llm1", "vllm:1", gpu=1, gpu_ids=("1",))
ALL = Hold("pause", "all", "paused by the owner", 100.0)
GPU = Hold("gpu-busy", "gpu", "GPU 0 given back", 100.0, urgent=True, devices=("0", "GPU-a"))


def at(day: int, hh: int, mm: int = 0) -> datetime:
    """A local time in the week of Monday 2026-11-30 (day 0 = Monday)."""
    return datetime(2026, 11, 30, hh, mm) + timedelta(days=day)


# -- the schedule -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("when", "lent"),
    [
        (at(0, 17, 59), False),  # Monday before the evening
        (at(0, 18, 0), True),
        (at(1, 7, 59), True),  # Monday night runs into Tuesday morning
        (at(1, 8, 0), False),
        (at(4, 23, 0), True),  # Friday night
        (at(5, 7, 0), True),  # … into Saturday, which is lent anyway
        (at(5, 12, 0), True),
        (at(6, 23, 59), True),  # Sunday all day
        (at(0, 3, 0), False),  # Monday 03:00: Sunday is lent whole, its night ends at midnight
    ],
)
def test_schedule_weeknights_and_weekends(when: datetime, lent: bool) -> None:
    assert Schedule.parse("mon-fri 18:00-08:00; sat,sun").allows(when) is lent


def test_schedule_next_change_and_wrapping_ranges() -> None:
    schedule = Schedule.parse("mon-fri 18:00-08:00; sat,sun")
    assert schedule.next_change(at(0, 12, 0)) == at(0, 18, 0)
    assert schedule.next_change(at(0, 20, 30)) == at(1, 8, 0)
    assert Schedule.parse("daily").next_change(at(0, 1)) is None
    weekend = Schedule.parse("fri-mon 09:00-17:00")
    assert weekend.allows(at(0, 10)) and weekend.allows(at(6, 10)) and not weekend.allows(at(2, 10))
    assert Schedule.parse("tue 00:00-24:00").allows(at(1, 23, 59))


@pytest.mark.parametrize(
    "text",
    ["", ";", "funday", "mon 25:00-01:00", "mon 18-08", "mon 10:00-11:00 extra", "x" * 501],
)
def test_bad_schedules_are_refused_with_a_reason(text: str) -> None:
    with pytest.raises(ValueError, match=r"."):
        Schedule.parse(text)


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("2h", 7200), ("90m", 5400), ("1h30m", 5400), ("45s", 45), ("1d", 86400), ("30", 30)],
)
def test_durations(text: str, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "2x", "h", "0", "2h and", "400d"])
def test_bad_durations(text: str) -> None:
    with pytest.raises(ValueError):
        parse_duration(text)


# -- what a hold covers, and the plan ----------------------------------------------------------


def test_covers_by_scope_and_device() -> None:
    assert covers(ALL, WEB) and covers(ALL, LLM)
    assert not covers(GPU, WEB)  # CPU and data tiers keep running
    assert covers(GPU, LLM)  # may use any GPU
    assert not covers(GPU, LLM1)  # only GPU 1: GPU 0's hold leaves it
    assert covers(Hold("gpu-temp", "gpu", "", 0, devices=("1",)), LLM1)
    assert covers(Hold("busy", "gpu", "", 0), LLM1)  # every GPU


def test_a_services_tunnel_is_held_with_it() -> None:
    served = spec("llm", "vllm:1", gpu=-1, ports=(PortMapping(8105, 8105),))
    desired = DesiredState((served, tunnel_spec(served, "cf:1"), WEB))
    held = apply_holds(desired, (GPU,)).held_by_name()
    assert set(held) == {"llm", "rma-tunnel-llm"}


def actual(name: str, state: str = "running", s: object = None) -> ActualContainer:
    target = s if s is not None else {"web": WEB, "llm": LLM}[name]
    return ActualContainer(f"id-{name}", name, state, target.spec_hash())  # type: ignore[attr-defined]


def test_held_running_containers_are_stopped_never_removed() -> None:
    desired = apply_holds(DesiredState((WEB, LLM)), (ALL,))
    actions = plan(desired, [actual("web"), actual("llm", "restarting")])
    assert actions == [Stop("llm", "id-llm", urgent=False), Stop("web", "id-web", urgent=False)]


def test_held_containers_that_are_stopped_or_missing_need_nothing() -> None:
    desired = apply_holds(DesiredState((WEB, LLM)), (ALL,))
    assert plan(desired, [actual("web", "exited")]) == []  # llm missing: not created
    outdated = ActualContainer("id-web", "web", "exited", "old-hash")
    assert plan(desired, [outdated]) == []  # recreated when the hold ends, not now


def test_a_gpu_yield_is_urgent_and_leaves_the_cpu_tier() -> None:
    desired = apply_holds(DesiredState((WEB, LLM)), (GPU, ALL))
    assert desired.held_by_name()["llm"] is GPU  # the urgent hold wins: no draining
    actions = plan(apply_holds(DesiredState((WEB, LLM)), (GPU,)), [actual("web"), actual("llm")])
    assert actions == [Stop("llm", "id-llm", urgent=True)]


def test_resume_is_a_start_of_the_same_container() -> None:
    assert plan(DesiredState((WEB,)), [actual("web", "exited")]) == [Start(WEB, "id-web")]


names = st.sampled_from(["web", "llm"])


@given(
    st.sets(names),
    st.lists(st.tuples(names, st.sampled_from(["running", "exited", "created", "paused"]))),
    st.booleans(),
)
def test_nothing_held_is_ever_created_started_recreated_or_removed(
    wanted: set[str], present: list[tuple[str, str]], gpu_only: bool
) -> None:
    specs = tuple(s for s in (WEB, LLM) if s.name in wanted)
    desired = apply_holds(DesiredState(specs), (GPU if gpu_only else ALL,))
    seen = {n: actual(n, state) for n, state in present}
    actions = plan(desired, list(seen.values()))
    held = desired.held_by_name()
    for a in actions:
        if a.target in held:
            assert isinstance(a, Stop)
            assert seen[a.target].state in ("running", "paused")
        assert not (isinstance(a, Create | Start | Recreate) and a.target in held)
        assert not (isinstance(a, Remove) and a.target in wanted)


def test_status_of_held_containers() -> None:
    desired = apply_holds(DesiredState((WEB, LLM)), (GPU,))
    report = ExecutionReport((ActionOutcome("llm", "stop", ok=True),))
    status = build_status(desired, [actual("web"), actual("llm")], report, {}, converged=False)
    rows = {c.name: c for c in status.containers}
    assert rows["llm"].state == "yielded" and rows["llm"].reason == GPU.reason
    assert rows["web"].state == "running" and not rows["web"].reason
    assert status.state == "yielded" and not status.paused and status.healthy
    paused = build_status(
        apply_holds(DesiredState((WEB,)), (ALL,)), [actual("web", "exited")], ExecutionReport(), {},
        converged=True,
    )  # fmt: skip
    assert paused.state == "paused" and paused.containers[0].as_json()["reason"] == ALL.reason
    draining = ExecutionReport((ActionOutcome("web", "draining", ok=False, pending=True),))
    shown = build_status(apply_holds(DesiredState((WEB,)), (ALL,)), [actual("web")], draining, {},
                         converged=False)  # fmt: skip
    assert shown.containers[0].state == "draining"


# -- the guards, on an injected clock ----------------------------------------------------------


def test_pause_request_with_and_without_an_end() -> None:
    assert PauseRequest(since=10).condition(1e9).active
    timed = PauseRequest(since=10, until=70, gpu_only=True)
    on = timed.condition(69)
    assert on.active and on.holds[0].scope == "gpu" and on.next_check == 70
    assert not timed.condition(70).active


def test_battery_condition() -> None:
    assert not battery_condition(False, 80, 5).active
    on = battery_condition(True, 47.0, 5, 10)
    assert on.active and on.holds[0].since == 5 and "47 %" in on.reason


def test_busy_pauses_the_gpu_then_everything_then_resumes_after_the_cooldown() -> None:
    guard = BusyGuard(limit=80, cooldown=120)
    assert not guard.observe(0, 95).active
    assert not guard.observe(BUSY_WINDOW - 1, 95).active
    first = guard.observe(BUSY_WINDOW, 95)
    assert first.active and first.holds[0].scope == "gpu"
    second = guard.observe(2 * BUSY_WINDOW, 95)
    assert second.holds[0].scope == "all" and second.holds[0].since == 2 * BUSY_WINDOW
    quiet = guard.observe(100, 10)
    assert quiet.active and quiet.next_check == 100 + 120  # the cool-down's end
    guard.observe(150, 90)  # busy again: the cool-down starts over
    assert guard.observe(160, 10).active
    assert guard.observe(279, 10).active
    assert not guard.observe(280, 10).active


def test_a_short_burst_pauses_nothing() -> None:
    guard = BusyGuard(limit=50, cooldown=60)
    for t in range(0, 29):
        guard.observe(t, 99)
    assert not guard.observe(29.5, 10).active and guard.stage == 0


def gpu(foreign: tuple[GpuProcess, ...] = (), temp: float | None = 50.0) -> tuple[GpuReading, ...]:
    return (GpuReading("0", "GPU-a", temp, foreign),)


def test_the_gpu_is_given_back_while_another_program_uses_it_and_for_the_cooldown() -> None:
    guard = GpuGuard(max_temp=83, cooldown=300)
    cuda = (GpuProcess(450, "python3", compute=True),)
    busy = {c.name: c for c in guard.observe(10, gpu(cuda))}["gpu-busy:0"]
    assert busy.active and busy.holds[0].urgent and busy.holds[0].devices == ("0", "GPU-a")
    assert "python3 (450)" in busy.reason
    still = {c.name: c for c in guard.observe(20, gpu())}["gpu-busy:0"]
    assert still.active and still.next_check == 310 and still.holds[0].since == 10
    assert {c.name: c for c in guard.observe(309, gpu())}["gpu-busy:0"].active
    assert not {c.name: c for c in guard.observe(310, gpu())}["gpu-busy:0"].active


def test_a_hot_gpu_is_given_back_until_5_degrees_cooler_for_the_cooldown() -> None:
    guard = GpuGuard(max_temp=83, cooldown=60)
    hot = {c.name: c for c in guard.observe(0, gpu(temp=84))}["gpu-temp:0"]
    assert hot.active and hot.next_check is None and "84 °C" in hot.reason
    assert {c.name: c for c in guard.observe(10, gpu(temp=80))}["gpu-temp:0"].active  # not 78
    cooling = {c.name: c for c in guard.observe(20, gpu(temp=78))}["gpu-temp:0"]
    assert cooling.active and cooling.next_check == 80
    assert {c.name: c for c in guard.observe(50, gpu(temp=79))}["gpu-temp:0"].active
    assert {c.name: c for c in guard.observe(60, gpu(temp=77))}["gpu-temp:0"].active  # restarted
    assert not {c.name: c for c in guard.observe(120, gpu(temp=70))}["gpu-temp:0"].active
    assert not {c.name: c for c in guard.observe(130, gpu(temp=None))}["gpu-temp:0"].active


def test_a_desktops_small_graphics_programs_never_count_a_game_and_a_render_do() -> None:
    """Per process, with the defaults (1 024 MiB, 15 % for 5 s): the display server, a browser's
    GPU process and a video call keep the GPU lent; a game's memory, a CUDA job at once, and a
    graphics program busy for 5 s (not 4) take it back. Each verdict is kept for the status."""
    guard = GpuGuard(max_temp=83, cooldown=300)
    desk = (
        GpuProcess(1201, "Xorg", memory=312 << 20, sm=1, display=True),
        GpuProcess(2210, "firefox", memory=230 << 20, sm=9),
        GpuProcess(3310, "chrome", memory=410 << 20, sm=6),
    )
    assert not {c.name: c for c in guard.observe(0, gpu(desk))}["gpu-busy:0"].active
    assert [j.why for j in guard.seen["0"]] == [
        "the display server or compositor: never counts",
        "small: 230 MiB, 9 % of the GPU",
        "small: 410 MiB, 6 % of the GPU",
    ]
    game = (*desk, GpuProcess(4400, "witcher3.exe", memory=6100 << 20, sm=87))
    busy = {c.name: c for c in guard.observe(1, gpu(game))}["gpu-busy:0"]
    assert busy.active and busy.reason == "GPU 0 given back: used by witcher3.exe (4400)"
    assert guard.seen["0"][-1].why == "holds 6.0 GiB of GPU memory (more than 1.0 GiB)"

    render = GpuGuard(max_temp=83, cooldown=300)
    blender = (*desk, GpuProcess(5300, "blender", memory=700 << 20, sm=60))
    for t in range(5):
        assert not {c.name: c for c in render.observe(t, gpu(blender))}["gpu-busy:0"].active
    assert render.seen["0"][-1].why == "uses 60 % of the GPU (more than 15 %) for 4 s of 5"
    assert {c.name: c for c in render.observe(5, gpu(blender))}["gpu-busy:0"].active
    calm = (*desk, GpuProcess(5300, "blender", memory=700 << 20, sm=3))
    render.observe(6, gpu(calm))
    assert render.over == {}  # a pause resets the 5 s
