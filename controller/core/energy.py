"""The energy receipt: what the agent's work drew, by source and by day, and what that cost and
emitted at the owner's price and carbon intensity; and the hours each service ran. Pure values;
ops/energy.py measures and keeps them in the state dir.

Only measured energy is counted (never an estimate): a GPU's board energy while the agent's
containers are the only processes on it, and the CPU package energy (RAPL) times the agent's
share of the CPU's busy time. `sources` names what could be read on this machine.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from datetime import date, timedelta
from typing import Any

KEEP_DAYS = 400
WH = 3600.0  # joules in a watt-hour
_PRICE = re.compile(r"^\s*(?:([A-Za-z€$£¥]{1,3})\s*)?(\d+(?:\.\d+)?)\s*([A-Za-z€$£¥]{1,3})?\s*$")


@dataclass(frozen=True)
class Price:
    per_kwh: float
    currency: str

    @classmethod
    def parse(cls, text: str) -> Price:
        """`0.30 EUR`, `0.30EUR`, `EUR 0.30`, `€0.30` (per kWh); ValueError otherwise."""
        match = _PRICE.match(text)
        if match is None or not (match.group(1) or match.group(3)):
            raise ValueError(f"{text!r}: a price per kWh with its currency, e.g. '0.30 EUR'")
        if match.group(1) and match.group(3):
            raise ValueError(f"{text!r}: one currency, before or after the amount")
        return cls(float(match.group(2)), (match.group(1) or match.group(3)).upper())


@dataclass(frozen=True)
class Receipt:
    """Joules by day (ISO date, the owner's local time) and source (`gpu`, `cpu`), and all time
    (kept when old days are dropped)."""

    days: dict[str, dict[str, float]] = field(default_factory=dict)
    total: dict[str, float] = field(default_factory=dict)
    served: dict[str, float] = field(default_factory=dict)  # seconds per service, all time

    def serve(self, seconds: float, services: list[str]) -> Receipt:
        """`seconds` more for each service running now."""
        if seconds <= 0 or not services:
            return self
        served = dict(self.served)
        for name in services[:64]:
            served[name] = served.get(name, 0.0) + seconds
        return replace(self, served=served)

    def add(self, day: str, joules: dict[str, float]) -> Receipt:
        if not any(v > 0 for v in joules.values()):
            return self
        days = {d: dict(v) for d, v in self.days.items()}
        today = days.setdefault(day, {})
        total = dict(self.total)
        for source, j in joules.items():
            if j > 0:
                today[source] = today.get(source, 0.0) + j
                total[source] = total.get(source, 0.0) + j
        kept = dict(sorted(days.items())[-KEEP_DAYS:])
        return replace(self, days=kept, total=total)

    def joules(self, first: date, last: date) -> dict[str, float]:
        out: dict[str, float] = {}
        for day, by_source in self.days.items():
            if first.isoformat() <= day <= last.isoformat():
                for source, j in by_source.items():
                    out[source] = out.get(source, 0.0) + j
        return out

    def as_json(self) -> dict[str, Any]:
        return {"version": 1, "days": self.days, "total": self.total, "served": self.served}

    @classmethod
    def from_json(cls, data: Any) -> Receipt:
        """A stored receipt; an unreadable one starts empty (ValueError says why)."""
        if not isinstance(data, dict) or data.get("version") != 1:
            raise ValueError("not a version 1 energy receipt")
        days = {
            str(d): {str(s): float(j) for s, j in v.items() if float(j) >= 0}
            for d, v in dict(data.get("days") or {}).items()
            if isinstance(v, dict)
        }
        total = {str(s): float(j) for s, j in dict(data.get("total") or {}).items()}
        served = {str(s): float(t) for s, t in dict(data.get("served") or {}).items()}
        return cls(dict(sorted(days.items())[-KEEP_DAYS:]), total, served)


def _period(joules: dict[str, float], price: Price | None, carbon: float | None) -> dict[str, Any]:
    wh = sum(joules.values()) / WH
    out: dict[str, Any] = {
        "wh": round(wh, 3),
        "by_source_wh": {s: round(j / WH, 3) for s, j in sorted(joules.items())},
    }
    if price is not None:
        out["cost"] = round(wh / 1000 * price.per_kwh, 4)
        out["currency"] = price.currency
    if carbon is not None:
        out["co2_g"] = round(wh / 1000 * carbon, 2)
    return out


def summary(
    receipt: Receipt,
    today: date,
    *,
    price: Price | None = None,
    carbon: float | None = None,
    sources: dict[str, str] | None = None,
) -> dict[str, Any]:
    """Today, the last 7 days (today included), all time, and each of the last 14 days."""
    last14 = [today - timedelta(days=i) for i in range(13, -1, -1)]
    return {
        "today": _period(receipt.joules(today, today), price, carbon),
        "week": _period(receipt.joules(today - timedelta(days=6), today), price, carbon),
        "all_time": _period(receipt.total, price, carbon),
        "days": [
            {"date": d.isoformat(), "wh": round(sum(receipt.joules(d, d).values()) / WH, 3)}
            for d in last14
        ],
        "sources": sources or {},
        "served_hours": {s: round(t / 3600, 2) for s, t in sorted(receipt.served.items())},
    }
