"""Host-level containment written outside Docker: the parent cgroup that makes the caps totals (in a
fake cgroup tree, v1 and v2) and the --isolate-lan chains."""

from __future__ import annotations

from pathlib import Path

import pytest

from controller.clients import cgroups
from controller.core.errors import PermanentError
from controller.core.limits import Limits

CAPS = Limits(cpus=1.5, memory=64 * 1024**2)


def test_cgroup_v2_gets_memory_swap_and_cpu_limits(tmp_path: Path) -> None:
    made = cgroups.prepare("w", CAPS, "cgroupfs", "2", root=tmp_path)
    group = tmp_path / "rma-w"
    assert made.parent == "/rma-w"
    assert (group / "memory.max").read_text() == str(64 * 1024**2)
    assert (group / "cpu.max").read_text() == "150000 100000"
    assert (tmp_path / "cgroup.subtree_control").read_text() == "+cpu +memory +pids"
    cgroups.release("w", "cgroupfs", root=tmp_path)
    assert group.exists()  # not empty here (files), as a busy group would be: kept


def test_cgroup_v1_gets_a_group_per_controller(tmp_path: Path) -> None:
    (tmp_path / "memory").mkdir()
    (tmp_path / "cpu").mkdir()
    assert cgroups.prepare("w", CAPS, "cgroupfs", "1", root=tmp_path).parent == "/rma-w"
    assert (tmp_path / "memory/rma-w/memory.limit_in_bytes").read_text() == str(64 * 1024**2)
    assert (tmp_path / "cpu/rma-w/cpu.cfs_quota_us").read_text() == "150000"
    assert (tmp_path / "cpu/rma-w/cpu.cfs_period_us").read_text() == "100000"


def test_an_unwritable_tree_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(PermanentError, match="cannot write the cgroup rma-w"):
        cgroups.prepare("w", CAPS, "cgroupfs", "1", root=tmp_path / "missing")
    with pytest.raises(PermanentError, match="unknown cgroup driver"):
        cgroups.prepare("w", CAPS, "none", "1", root=tmp_path)


def test_isolate_lan_chain_names_fit_iptables_and_differ_per_instance() -> None:
    from controller.clients.firewall import chains  # noqa: PLC0415

    long = chains("x" * 128)
    assert all(len(c) <= 28 for c in long) and chains("a") != chains("b")


def test_the_systemd_driver_gets_a_slice_limited_by_systemctl(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """No systemd on the test machines: the command the agent runs is checked instead."""
    calls: list[list[str]] = []

    def run(argv: list[str], **_: object) -> object:
        calls.append(argv)
        return type("Done", (), {"returncode": 0, "stderr": ""})()

    monkeypatch.setattr("shutil.which", lambda name: f"/usr/bin/{name}")
    monkeypatch.setattr("subprocess.run", run)
    made = cgroups.prepare("w", Limits(cpus=1.5, memory=64 * 1024**2, pids=100), "systemd", "2")
    assert made.parent == "rma-w.slice"
    assert calls == [
        [
            "/usr/bin/systemctl",
            "set-property",
            "--runtime",
            "rma-w.slice",
            "TasksMax=100",
            f"MemoryMax={64 * 1024**2}",
            "MemorySwapMax=0",
            "CPUQuota=150%",
        ]
    ]
    monkeypatch.setattr("shutil.which", lambda name: None)
    with pytest.raises(PermanentError, match="systemctl is missing"):
        cgroups.prepare("w", CAPS, "systemd", "2")


def test_the_process_budget_is_written_alone_without_caps(tmp_path: Path) -> None:
    """Issue 21: a parent group always, with pids.max, even when no CPU/memory cap is set."""
    budget = Limits(pids=512)
    cgroups.prepare("w", budget, "cgroupfs", "2", root=tmp_path)
    assert (tmp_path / "rma-w/pids.max").read_text() == "512"
    assert not (tmp_path / "rma-w/memory.max").exists()
    (tmp_path / "v1/pids").mkdir(parents=True)
    cgroups.prepare("w", budget, "cgroupfs", "1", root=tmp_path / "v1")
    assert (tmp_path / "v1/pids/rma-w/pids.max").read_text() == "512"
