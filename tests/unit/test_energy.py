"""The energy receipt: the arithmetic (days, the week, all time, cost and CO2), and the meter on
recorded readings — the H200's energy counter while only the agent's containers use it, nothing
while another program shares it, power times time on a card without the counter, RAPL package
energy times the agent's share of the busy CPU (counters wrap), kept across restarts."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

import pytest

from controller.clients.gpu_watch import GpuSnapshot
from controller.clients.power import RaplZone
from controller.core.energy import Price, Receipt, summary
from controller.core.usage import CpuSample, foreign_percent, our_share
from controller.ops.conditions import GpuUse
from controller.ops.energy import EnergyMeter, Readers
from rma_testkit.nvml_fake import FIXTURE

H200 = json.loads(FIXTURE.read_text(encoding="utf-8"))
DAY = date(2026, 11, 29)


@pytest.mark.parametrize(
    ("text", "price"),
    [
        ("0.30 EUR", Price(0.30, "EUR")),
        ("0.3EUR", Price(0.3, "EUR")),
        ("gbp 0.25", Price(0.25, "GBP")),
        ("€0.28", Price(0.28, "€")),
    ],
)
def test_prices(text: str, price: Price) -> None:
    assert Price.parse(text) == price


@pytest.mark.parametrize("text", ["0.30", "EUR", "0.30 EUR USD", "cheap"])
def test_bad_prices(text: str) -> None:
    with pytest.raises(ValueError):
        Price.parse(text)


def test_receipt_days_week_and_all_time() -> None:
    r = Receipt()
    for back, joules in enumerate([3600.0, 7200.0, 0.0, 3600.0, 3600, 3600, 3600, 3600, 36000]):
        r = r.add(
            date.fromordinal(DAY.toordinal() - back).isoformat(), {"gpu": joules, "cpu": 360.0}
        )
    out = summary(r, DAY, price=Price(0.30, "EUR"), carbon=400)
    assert out["today"]["wh"] == 1.1 and out["today"]["by_source_wh"] == {"cpu": 0.1, "gpu": 1.0}
    assert out["week"]["wh"] == pytest.approx(1.1 + 2.1 + 0.1 + 1.1 * 4)
    assert out["all_time"]["wh"] == pytest.approx(out["week"]["wh"] + 1.1 + 10.1)
    assert out["all_time"]["currency"] == "EUR"
    assert out["all_time"]["cost"] == pytest.approx(out["all_time"]["wh"] / 1000 * 0.30, abs=1e-4)
    assert out["today"]["co2_g"] == pytest.approx(0.44)
    assert [d["date"] for d in out["days"]][-1] == "2026-11-29" and len(out["days"]) == 14


def test_receipt_round_trips_and_refuses_garbage() -> None:
    r = Receipt().add("2026-11-29", {"gpu": 10.0})
    assert Receipt.from_json(json.loads(json.dumps(r.as_json()))) == r
    with pytest.raises(ValueError):
        Receipt.from_json({"version": 2})


def test_cpu_shares() -> None:
    a = CpuSample(total=100, busy=50, ours={"c": 10, "agent": 1})
    b = CpuSample(total=200, busy=130, ours={"c": 40, "agent": 1, "new": 10})
    assert our_share(a, b) == pytest.approx(40 / 80)
    assert foreign_percent(a, b) == pytest.approx(40.0)
    assert foreign_percent(a, CpuSample(200, 130, None)) is None


def snap(mode: str, *, energy: bool = True) -> GpuSnapshot:
    r = H200[mode]
    return GpuSnapshot(
        "0", H200["uuid"], float(r["temperature"]), r["power_mw"] / 1000,
        r["energy_mj"] / 1000 if energy else None, (),
    )  # fmt: skip


class Feed:
    def __init__(self) -> None:
        self.now = 0.0
        self.gpus: tuple[GpuUse, ...] = ()
        self.cpu: CpuSample | None = None
        self.ours = frozenset({"c" * 64})


def meter(tmp_path: Path, feed: Feed, zones: tuple[RaplZone, ...] = ()) -> EnergyMeter:
    class Cpu:
        def sample(self, ours: frozenset[str]) -> CpuSample | None:
            return feed.cpu

    return EnergyMeter(
        tmp_path / "default.energy.json",
        Readers(None, lambda: feed.gpus, Cpu(), (zones, None if zones else "no RAPL here")),  # type: ignore[arg-type]
        ours=lambda: feed.ours,
        clock=lambda: feed.now,
        today=lambda: DAY,
    )


def test_the_gpus_energy_counter_while_only_the_agent_uses_it(tmp_path: Path) -> None:
    feed = Feed()
    m = meter(tmp_path, feed)
    feed.gpus = (GpuUse(snap("busy"), agent=True, others=False),)
    assert m.sample() == {}  # the first reading only starts the interval
    later = snap("idle")  # the counter 14255.547 J, 7196.339 J before: 7059.208 J measured
    feed.now, feed.gpus = 70.0, (GpuUse(later, agent=True, others=False),)
    assert m.sample()["gpu"] == pytest.approx(14255.547 - 7196.339)
    feed.now, feed.gpus = 80.0, (GpuUse(later, agent=True, others=True),)
    assert m.sample()["gpu"] == 0.0  # shared with another program: not ours to count
    feed.now, feed.gpus = 90.0, (GpuUse(snap("idle", energy=False), agent=True, others=False),)
    assert m.sample()["gpu"] == pytest.approx(121.734 * 10)  # no counter: power x interval


def test_nothing_is_counted_while_no_container_of_the_agent_runs(tmp_path: Path) -> None:
    feed = Feed()
    feed.ours = frozenset()
    m = meter(tmp_path, feed)
    feed.gpus = (GpuUse(snap("busy"), agent=False, others=True),)
    m.sample()
    feed.now = 10.0
    assert m.sample() == {} and m.receipt()["all_time"]["wh"] == 0


def test_rapl_times_the_agents_share_and_the_counter_wrap(tmp_path: Path) -> None:
    _zone = tmp_path / "intel-rapl:0"
    _zone.mkdir()
    counter = _zone / "energy_uj"
    zone = RaplZone("package-0@intel-rapl:0", counter, max_uj=1_000_000_000)
    counter.write_text("999000000")
    feed = Feed()
    feed.cpu = CpuSample(0, 0, {"c" * 64: 0.0})
    m = meter(tmp_path, feed, (zone,))
    m.sample()
    counter.write_text("1000000")  # wrapped: 1 000 000 + 1 000 000 µJ = 2 J
    feed.now, feed.cpu = 10.0, CpuSample(20, 10, {"c" * 64: 2.5})
    assert m.sample()["cpu"] == pytest.approx(2.0 * 0.25)
    assert "RAPL (package-0@intel-rapl:0)" in m.sources["cpu"]


def test_the_receipt_is_kept_across_restarts(tmp_path: Path) -> None:
    feed = Feed()
    m = meter(tmp_path, feed)
    feed.gpus = (GpuUse(snap("busy"), agent=True, others=False),)
    m.sample()
    feed.now, feed.gpus = 10.0, (GpuUse(snap("idle"), agent=True, others=False),)
    m.sample()
    m.save()
    again = meter(tmp_path, Feed()).receipt()
    assert again["today"]["wh"] == pytest.approx((14255.547 - 7196.339) / 3600, abs=1e-3)
    assert again["sources"]["gpu"].startswith("not measured")
    (tmp_path / "default.energy.json").write_text("garbage")
    assert meter(tmp_path, Feed()).receipt()["all_time"]["wh"] == 0  # unreadable: starts anew


def test_hours_served_per_service(tmp_path: Path) -> None:
    feed = Feed()
    serving = [["notes-coa", "redis"]]
    m = EnergyMeter(
        tmp_path / "default.energy.json",
        Readers(zones=((), "none")),
        ours=lambda: feed.ours,
        serving=lambda: serving[0],
        clock=lambda: feed.now,
        today=lambda: DAY,
    )
    m.sample()
    feed.now = 1800.0
    m.sample()
    serving[0] = ["redis"]
    feed.now = 3600.0
    m.sample()
    assert m.receipt()["served_hours"] == {"notes-coa": 0.5, "redis": 1.0}
    m.save()
    stored = json.loads((tmp_path / "default.energy.json").read_text())
    assert Receipt.from_json(stored).served == {"notes-coa": 1800.0, "redis": 3600.0}
