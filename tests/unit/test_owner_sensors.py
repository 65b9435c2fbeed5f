"""The owner's sensors (clients): NVML replayed from a real H200's recording, a PID's container
from /proc fixtures of each cgroup layout, the containers' CPU counters from a fake cgroup tree,
RAPL counters from powercap fixtures, the battery, and the pause file's ownership rules."""

from __future__ import annotations

import json
import os
from pathlib import Path
from types import SimpleNamespace

import pytest

from controller.clients import power, procs
from controller.clients.cpu_use import CpuUse
from controller.clients.gpu_watch import Nvml
from controller.clients.pause_file import PauseFile, clear_pause, pause_path, write_pause
from controller.core.errors import PermanentError
from rma_testkit.nvml_fake import FakeNvml

CID = "a" * 64


# -- NVML, as the H200 answered ---------------------------------------------------------------


def test_snapshots_replay_the_recorded_card() -> None:
    fake = FakeNvml()
    nvml = Nvml(nvml=fake)  # type: ignore[arg-type]
    idle = nvml.snapshots()[0]
    assert (idle.index, idle.uuid) == ("0", fake.record["uuid"])
    assert idle.temperature == 36 and idle.power_w == pytest.approx(121.734)
    assert idle.energy_j == pytest.approx(14255.547) and idle.processes == ()
    fake.mode = "busy"
    busy = nvml.snapshots()[0]
    assert busy.processes == ((450, 9600761856),) and busy.power_w == pytest.approx(622.104)
    assert busy.utilization == 100 and busy.memory_used == 9600761856
    assert busy.memory_total == 143771 << 20


def test_a_field_the_card_does_not_give_reads_as_none() -> None:
    fake = FakeNvml()
    fake.override[0] = {"energy_mj": None}
    assert Nvml(nvml=fake).snapshots()[0].energy_j is None  # type: ignore[arg-type]


def test_only_the_lent_gpus_are_read() -> None:
    fake = FakeNvml(count=2)
    assert [s.index for s in Nvml(frozenset({"1"}), nvml=fake).snapshots()] == ["1"]  # type: ignore[arg-type]
    uuid = fake.nvmlDeviceGetUUID(0)
    assert [s.index for s in Nvml(frozenset({uuid}), nvml=fake).snapshots()] == ["0"]  # type: ignore[arg-type]


def test_no_driver_is_no_gpu_not_an_error() -> None:
    nvml = Nvml(nvml=FakeNvml(init_error=True))  # type: ignore[arg-type]
    assert not nvml.available and nvml.snapshots() == () and "NVML" in (nvml.error or "")
    with pytest.raises(PermanentError, match="no NVIDIA GPU"):
        nvml.limit_power(300)


def test_power_limit_is_set_and_restored_on_close() -> None:
    fake = FakeNvml(count=2)
    nvml = Nvml(nvml=fake)  # type: ignore[arg-type]
    assert nvml.limit_power(650) == ["GPU 0: 700 W -> 650 W", "GPU 1: 700 W -> 650 W"]
    assert fake.limit_mw == [650_000, 650_000]
    nvml.close()
    assert fake.limit_mw == [700_000, 700_000] and fake.calls[-1] == "shutdown"


def test_power_limit_refused_clearly() -> None:
    with pytest.raises(PermanentError, match="allows 200-700 W"):
        Nvml(nvml=FakeNvml()).limit_power(100)  # type: ignore[arg-type]
    fake = FakeNvml(privileged=False)
    with pytest.raises(PermanentError, match="needs root"):
        Nvml(nvml=fake).limit_power(650)  # type: ignore[arg-type]
    assert fake.limit_mw == [700_000]


# -- whose process ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("cgroup", "owner"),
    [
        (f"12:cpu,cpuacct:/docker/{CID}\n0::/\n", CID),  # cgroupfs v1
        (f"0::/system.slice/docker-{CID}.scope\n", CID),  # systemd v2
        (f"0::/rma-default/{CID}\n", CID),  # the agent's parent group
        (f"0::/rma-default.slice/docker-{CID}.scope/init\n", CID),
        ("0::/process_api/3b1116e3afa7c5d7d7aab2422e232fcf\n", None),  # recorded on the H200
        ("0::/user.slice/user-1000.slice/session-2.scope\n", None),  # a desktop program
    ],
)
def test_container_of_each_cgroup_layout(tmp_path: Path, cgroup: str, owner: str | None) -> None:
    (tmp_path / "450").mkdir()
    (tmp_path / "450" / "cgroup").write_text(cgroup)
    (tmp_path / "450" / "comm").write_text("python3\n")
    assert procs.container_of(450, tmp_path) == owner
    assert procs.name_of(450, tmp_path) == "python3" and procs.visible(450, tmp_path)
    assert procs.container_of(451, tmp_path) is None and not procs.visible(451, tmp_path)


# -- CPU counters ---------------------------------------------------------------------------------


def test_container_cpu_from_cgroup_v2_and_v1(tmp_path: Path) -> None:
    v2 = tmp_path / "v2"
    (v2 / "system.slice" / f"docker-{CID}.scope").mkdir(parents=True)
    (v2 / "cgroup.controllers").write_text("cpu memory\n")
    (v2 / "system.slice" / f"docker-{CID}.scope" / "cpu.stat").write_text("usage_usec 2500000\n")
    sample = CpuUse(v2).sample(frozenset({CID}))
    assert sample.ours is not None and sample.ours[CID] == 2.5 and "agent" in sample.ours
    assert sample.total >= sample.busy > 0
    v1 = tmp_path / "v1"
    (v1 / "cpuacct" / "docker" / CID).mkdir(parents=True)
    (v1 / "cpuacct" / "docker" / CID / "cpuacct.usage").write_text("1500000000\n")
    assert (CpuUse(v1).sample(frozenset({CID})).ours or {})[CID] == 1.5


def test_an_unreadable_container_makes_the_share_unknown(tmp_path: Path) -> None:
    assert CpuUse(tmp_path).sample(frozenset({CID})).ours is None
    assert CpuUse(tmp_path).sample(frozenset()).ours is not None  # nothing of ours running


# -- RAPL and the battery -----------------------------------------------------------------------


def _zone(root: Path, name: str, label: str, energy: str, mode: int = 0o644) -> None:
    zone = root / name
    zone.mkdir(parents=True)
    (zone / "name").write_text(label + "\n")
    (zone / "energy_uj").write_text(energy + "\n")
    (zone / "max_energy_range_uj").write_text("262143328850\n")
    (zone / "energy_uj").chmod(mode)


def test_rapl_package_zones(tmp_path: Path) -> None:
    _zone(tmp_path, "intel-rapl:0", "package-0", "1000")
    _zone(tmp_path, "intel-rapl:0:0", "core", "500")
    _zone(tmp_path, "intel-rapl:1", "psys", "9")
    zones, problem = power.rapl_zones(tmp_path)
    assert [z.name for z in zones] == ["package-0@intel-rapl:0"] and problem is None
    assert power.read_uj(zones[0]) == 1000 and zones[0].max_uj == 262143328850


def test_rapl_absent_or_unreadable_is_said(tmp_path: Path) -> None:
    assert (
        power.rapl_zones(tmp_path / "none")[1]
        == f"{tmp_path / 'none'} does not exist (no RAPL on this machine or kernel)"
    )
    (tmp_path / "intel-rapl:0").mkdir()
    (tmp_path / "intel-rapl:0" / "name").write_text("package-0")
    zones, problem = power.rapl_zones(tmp_path)
    assert zones == () and "not readable" in (problem or "")


def test_battery(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("controller.clients.power.psutil.sensors_battery", lambda: None)
    assert power.battery() is None
    found = SimpleNamespace(percent=47.0, power_plugged=False, secsleft=3600)
    monkeypatch.setattr("controller.clients.power.psutil.sensors_battery", lambda: found)
    assert power.battery() == power.Battery(True, 47.0)
    found.power_plugged = True
    assert power.battery() == power.Battery(False, 47.0)


# -- the pause file --------------------------------------------------------------------------------


def test_pause_file_round_trip(tmp_path: Path) -> None:
    path = pause_path(tmp_path / "state", "default")
    reader = PauseFile(path)
    assert reader.read() is None
    write_pause(path, since=100.0, until=160.0, gpu_only=True)
    assert oct(path.stat().st_mode & 0o777) == "0o600"
    request = reader.read()
    assert request is not None and (request.since, request.until, request.gpu_only) == (
        100,
        160,
        True,
    )
    assert clear_pause(path) and reader.read() is None and not clear_pause(path)


def test_pause_file_not_the_owners_is_ignored(tmp_path: Path) -> None:
    path = tmp_path / "x.pause.json"
    write_pause(path, since=1.0, until=None, gpu_only=False)
    path.chmod(0o666)
    assert PauseFile(path).read() is None  # writable by anyone: anyone could have written it
    if os.geteuid() == 0:
        os.chown(path, 1000, 1000)
        path.chmod(0o600)
        assert PauseFile(path).read() is None  # another user's


def test_a_malformed_pause_file_pauses_everything(tmp_path: Path) -> None:
    path = tmp_path / "x.pause.json"
    path.write_text("{not json")
    path.chmod(0o600)
    request = PauseFile(path).read()
    assert request is not None and request.until is None and not request.gpu_only
    path.write_text(json.dumps({"since": 5, "until": None, "gpu_only": "yes"}))
    assert PauseFile(path).read() == type(request)(since=5.0)


@pytest.mark.skipif(os.geteuid() != 0, reason="chown needs root")
def test_root_pausing_for_the_units_own_user_hands_it_the_file(tmp_path: Path) -> None:
    state = tmp_path / "state"
    state.mkdir(mode=0o700)
    os.chown(state, 4242, 4242)  # the systemd unit's DynamicUser owns its state dir
    path = pause_path(state, "default")
    write_pause(path, since=1.0, until=None, gpu_only=False)
    assert (path.stat().st_uid, path.stat().st_gid) == (4242, 4242)
