"""The energy receipt's meter: every 10 s while the agent's containers run, it reads what this
machine measures — each lent GPU's board energy (NVML's energy counter, else its power times the
interval) and the CPU packages' RAPL counters — attributes it (core/energy.py says how) and adds
it to the day's total, kept in the state dir (`<instance>.energy.json`) across restarts.

What was available is said in `sources` (status, the page, the log at start); what is not
readable is not counted, never estimated.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import structlog

from controller.clients import power
from controller.clients.cpu_use import CpuUse
from controller.clients.gpu_watch import GpuReader
from controller.clients.store import atomic_write_text
from controller.core.energy import Price, Receipt, summary
from controller.core.observe import NullObserver, Observer
from controller.core.usage import CpuSample, our_share
from controller.ops.conditions import GpuUse

log = structlog.get_logger(__name__)
EVERY = 10.0  # seconds between samples
SAVE_EVERY = 6  # samples between writes of the receipt (and at close)


@dataclass(frozen=True)
class Reading:
    at: float
    cpu: CpuSample | None
    rapl: dict[power.RaplZone, int]
    gpus: dict[str, GpuUse]


@dataclass(frozen=True)
class Readers:
    """Where the energy is read: NVML (None: no GPU), the conditions' latest GPU use (one NVML
    reader a second, not two), the containers' CPU counters, the RAPL zones (None: found here)."""

    nvml: GpuReader | None = None
    gpus: Callable[[], tuple[GpuUse, ...]] = tuple
    cpu: CpuUse | None = None
    zones: tuple[tuple[power.RaplZone, ...], str | None] | None = None


@dataclass(frozen=True)
class Rates:
    """What the receipt converts energy with: the owner's price and grid carbon intensity."""

    price: Price | None = None
    carbon: float | None = None


NO_RATES = Rates()


class EnergyMeter:
    def __init__(
        self,
        path: Path,
        readers: Readers,
        *,
        ours: Callable[[], frozenset[str]],
        serving: Callable[[], list[str]] = list,
        clock: Callable[[], float] = time.monotonic,
        today: Callable[[], date] = date.today,
        observer: Observer | None = None,
        rates: Rates = NO_RATES,
    ) -> None:
        self._path, self._nvml, self._cpu, self._ours = path, readers.nvml, readers.cpu, ours
        self._gpus = readers.gpus
        self._serving = serving  # the services running now (hours served)
        zones = readers.zones
        self._zones, problem = zones if zones is not None else power.rapl_zones()
        self._clock, self._today = clock, today
        self._observer = observer or NullObserver()
        self._price, self._carbon = rates.price, rates.carbon
        self._lock = threading.Lock()
        self._receipt = self._load()
        self._prev: Reading | None = None
        self._samples = 0
        self.sources = self._sources(problem)
        log.info("energy_sources", **self.sources)

    def _sources(self, rapl_problem: str | None) -> dict[str, str]:
        """What could be read on this machine (`nvml`: only when a lent GPU answers)."""
        gpu = "not measured: no NVIDIA GPU, no rocm-smi"
        if self._nvml is not None and self._nvml.available:
            name = self._nvml.name
            gpu = f"{name} board energy of each lent GPU while only the agent's containers use it"
        cpu = f"not measured: {rapl_problem or 'no RAPL zone'}"
        if self._zones:
            names = ", ".join(z.name for z in self._zones)
            cpu = f"RAPL ({names}) times the agent's share of the CPU's busy time"
        return {"gpu": gpu, "cpu": cpu}

    def _load(self) -> Receipt:
        try:
            return Receipt.from_json(json.loads(self._path.read_text(encoding="utf-8")))
        except FileNotFoundError:
            return Receipt()
        except (OSError, ValueError, TypeError, AttributeError) as exc:
            log.warning("energy_receipt_unreadable", path=str(self._path), error=str(exc))
            return Receipt()

    def run(self, stop: threading.Event) -> None:
        while not stop.wait(EVERY):
            try:
                self.sample()
            except Exception as exc:  # the receipt must never take the agent down
                log.exception("energy_sample_failed", error=str(exc))
        self.save()

    def sample(self) -> dict[str, float]:
        """One interval's joules by source (added to today's), from the readings now."""
        now, ours = self._clock(), self._ours()
        cpu = self._cpu.sample(ours) if self._cpu is not None else None
        rapl = {z: v for z in self._zones if (v := power.read_uj(z)) is not None}
        by_gpu = {g.snapshot.index: g for g in self._gpus()}
        prev, self._prev = self._prev, Reading(now, cpu, rapl, by_gpu)
        if prev is None or not ours:
            return {}
        with self._lock:
            self._receipt = self._receipt.serve(now - prev.at, self._serving())
        joules = {
            "gpu": _gpu_joules(now - prev.at, prev.gpus, by_gpu),
            "cpu": _cpu_joules(prev.cpu, cpu, prev.rapl, rapl),
        }
        with self._lock:
            self._receipt = self._receipt.add(self._today().isoformat(), joules)
        for source, j in joules.items():
            self._observer.energy(source, j)
        self._samples += 1
        if self._samples % SAVE_EVERY == 0:
            self.save()
        return joules

    def save(self) -> None:
        with self._lock:
            data = self._receipt.as_json()
        try:
            atomic_write_text(self._path, json.dumps(data) + "\n")
        except OSError as exc:
            log.warning("energy_receipt_not_saved", path=str(self._path), error=str(exc))

    def joules_total(self) -> dict[str, float]:
        """All-time joules by source (the signed receipts take their windows' share of it)."""
        with self._lock:
            return dict(self._receipt.total)

    def receipt(self) -> dict[str, Any]:
        """Today, this week, all time (and the last 14 days) for status, the heartbeat and
        the page."""
        with self._lock:
            receipt = self._receipt
        return summary(
            receipt, self._today(), price=self._price, carbon=self._carbon, sources=self.sources
        )


def _gpu_joules(seconds: float, before: dict[str, GpuUse], now: dict[str, GpuUse]) -> float:
    """Each GPU the agent's containers use and no other program does: its energy counter's
    increase, else its power now times the interval."""
    total = 0.0
    for index, use in now.items():
        if not use.agent or use.others:
            continue
        snap, old_use = use.snapshot, before.get(index)
        old = old_use.snapshot if old_use is not None else None
        if old is not None and old.energy_j is not None and snap.energy_j is not None:
            total += max(0.0, snap.energy_j - old.energy_j)
        elif snap.power_w is not None:
            total += snap.power_w * seconds
    return total


def _cpu_joules(
    a: CpuSample | None,
    b: CpuSample | None,
    before: dict[power.RaplZone, int],
    now: dict[power.RaplZone, int],
) -> float:
    """The packages' energy (counters wrap at their range) times the agent's busy share."""
    share = our_share(a, b) if a is not None and b is not None else None
    if not share:
        return 0.0
    uj = 0
    for zone, value in now.items():
        old = before.get(zone)
        if old is not None:
            uj += value - old if value >= old else value + zone.max_uj - old  # wrapped
    return uj / 1e6 * share
