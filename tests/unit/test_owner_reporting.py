"""How the owner's holds reach the coordinator, the status and the command line: the heartbeat
says `paused` (Part 2) or `degraded` (a coordinator without Part 2), names each GPU given back
and today's energy; SIGHUP stops like SIGTERM; `--no-pause-on-battery`; `rma-worker pause` and
`resume` write and remove the pause in the state dir, and `status` shows every condition."""

from __future__ import annotations

import os
import signal
import threading
from pathlib import Path
from typing import Any

import pytest

from controller.cli.commands import build_parser, load_settings
from controller.cli.console import render_status
from controller.cli.owner import pause_command, resume_command
from controller.clients.pause_file import PauseFile, pause_path
from controller.clients.store import Identity
from controller.contract.api import heartbeat_fields
from controller.core.models import Hold
from controller.core.status import AgentStatus, ContainerStatus
from controller.membership.heartbeat import Heartbeater
from controller.ops.signals import Signals

PAUSE = Hold("pause", "all", "paused by the owner (everything)", 1_795_000_000.0)
YIELD = Hold("gpu-busy", "gpu", "GPU 0 given back: used by python3 (450)", 1_795_000_000.0,
             urgent=True, devices=("0", "GPU-bbe3"))  # fmt: skip


def body(*holds: Hold) -> dict[str, Any]:
    status = AgentStatus((ContainerStatus("web", "paused", "img:1", reason="x"),), True, holds)
    return heartbeat_fields(status, 0.1, 1 << 30)


def test_heartbeat_paused_and_yielded() -> None:
    paused = body(PAUSE)
    assert paused["status"] == "paused"
    assert paused["paused"] == {"reason": PAUSE.reason, "since": "2026-11-18T11:06:40+00:00"}
    assert paused["containers"][0]["reason"] == "x"
    yielded = body(YIELD)
    assert yielded["status"] == "healthy" and "paused" not in yielded
    assert yielded["yielded"] == [
        {"gpu": "0", "since": "2026-11-18T11:06:40+00:00", "reason": YIELD.reason}
    ]
    assert "paused" not in body() and "yielded" not in body()


def test_a_coordinator_without_part_2_hears_degraded() -> None:
    def beater(report: dict[str, Any]) -> Heartbeater:
        return Heartbeater(
            None, None, report=lambda: report, observer=None, stop=threading.Event(),  # type: ignore[arg-type]
            fetch_now=lambda: None,
        )  # fmt: skip

    part1 = Identity("w-1", "http://c")
    part2 = Identity("w-1", "http://c", token="t", assignment_url="/api/worker/w-1/assignment")
    assert beater({"status": "paused"})._body(part1)["status"] == "degraded"
    assert beater({"status": "paused"})._body(part2)["status"] == "paused"
    assert beater({"status": "healthy"})._body(part1)["status"] == "healthy"


def test_sighup_is_a_graceful_stop() -> None:
    stop, woken = threading.Event(), []
    signals = Signals(stop, lambda: woken.append(1))
    try:
        os.kill(os.getpid(), signal.SIGHUP)
        assert stop.wait(2) and woken and not signals.leave_running.is_set()
    finally:
        signals.close()


def test_pause_on_battery_is_on_unless_turned_off(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("RMA_PAUSE_ON_BATTERY", raising=False)
    parser = build_parser()
    assert load_settings(parser.parse_args([])).pause_on_battery is True
    assert load_settings(parser.parse_args(["--no-pause-on-battery"])).pause_on_battery is False
    assert load_settings(parser.parse_args(["--pause-on-battery"])).pause_on_battery is True
    monkeypatch.setenv("RMA_PAUSE_ON_BATTERY", "false")
    assert load_settings(parser.parse_args([])).pause_on_battery is False


@pytest.mark.parametrize(
    ("flags", "error"),
    [
        (["--schedule", "weekdays"], "days are"),
        (["--energy-price", "0.30"], "currency"),
        (["--pause-when-busy", "120"], "less than or equal to 100"),
    ],
)
def test_owner_settings_are_validated(flags: list[str], error: str) -> None:
    with pytest.raises(Exception, match=error):
        load_settings(build_parser().parse_args(flags))


def test_pause_and_resume_commands(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    settings = load_settings(
        build_parser().parse_args(
            ["--state-dir", str(tmp_path / "state"), "--health-addr", "127.0.0.1:9"]
        )
    )
    assert pause_command(settings, "2h", gpu_only=True) == 0
    request = PauseFile(pause_path(settings.state_dir, "default")).read()
    assert request is not None and request.gpu_only
    assert request.until == pytest.approx(request.since + 7200)
    out = capsys.readouterr().out
    assert "Paused the GPU containers until" in out and "applies when the agent starts" in out
    assert oct((tmp_path / "state").stat().st_mode & 0o777) == "0o700"
    assert pause_command(settings, "soon", gpu_only=False) == 2
    assert resume_command(settings) == 0 and "Resumed." in capsys.readouterr().out
    assert resume_command(settings) == 0 and "It was not paused." in capsys.readouterr().out


def test_status_shows_each_condition_the_gpus_and_the_receipt() -> None:
    data = {
        "version": "0.6.0", "instance": "default", "mode": "manifest", "manifest": "m.yaml",
        "state": "paused", "converged": True, "healthy": True, "pulls": [],
        "containers": [{"name": "web", "state": "paused", "restarts": 0, "image": "img:1",
                        "error": None, "reason": "outside the schedule 'mon-fri 18:00-08:00'"}],
        "conditions": [
            {"name": "schedule", "active": True, "reason": "outside the schedule 'mon-fri'",
             "next_check": "2026-11-30T18:00:00+00:00"},
            {"name": "gpu-temp:0", "active": False, "reason": "GPU 0: 36 °C (limit 83 °C)",
             "next_check": None},
        ],
        "gpus": [{"index": "0", "temperature": 36.0, "power_w": 121.7}],
        "energy": {
            "today": {"wh": 12.5, "cost": 0.0038, "currency": "EUR", "co2_g": 5.0},
            "week": {"wh": 1500.0}, "all_time": {"wh": 2500.0},
            "sources": {"gpu": "NVML board energy", "cpu": "not measured: no RAPL"},
        },
    }  # fmt: skip
    text = render_status(data)
    assert "State:          paused (converged, healthy)" in text
    assert "Condition:      schedule: HOLDS: outside the schedule" in text and "re-checked" in text
    assert "Condition:      gpu-temp:0: ok: GPU 0: 36 °C" in text
    assert "GPU 0:          36 °C, 122 W" in text
    assert "today 12.5 Wh, 0.00 EUR, 5 g CO2; week 1.50 kWh; all time 2.50 kWh" in text
    assert "cpu: not measured: no RAPL" in text
