"""The credits ledger (issue 26): each contributor's key and chain, the requests the proxy routed
(witnessed, counted per worker, service and minute in memory and written with the heartbeats),
the receipts as judged (credits.py), the leaderboard and what an operator must look at.

Both back-ends (db.py's connections; the tables are migration 3). Counters of suspicion are per
worker: a chain broken (gap, fork, overlap, a bad signature), an impossible energy claim, or
requests over-claimed in OVER_CLAIMS_HELD windows hold the worker's credits — they stay in the
ledger, out of the leaderboard — until an operator clears it.
"""

from __future__ import annotations

import hashlib
import json
import math
import secrets
import threading
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

from rma_coordinator import credits as c
from rma_coordinator.db import Registry


def key_hash(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


class Ledger:
    def __init__(self, registry: Registry, *, grace: float = 30.0) -> None:
        self._registry = registry
        self._grace = grace  # seconds a heartbeat vouches for after it (the interval)
        self._mem = threading.Lock()
        self._witnessed: Counter[tuple[str, str, int]] = Counter()

    # -- what registration and the proxy tell it ----------------------------------------------

    def registered(
        self,
        worker_id: str,
        *,
        public_key: str | None,
        display_name: str | None,
        tier: int,
        capabilities: dict[str, Any],
    ) -> str:
        """Record a registration; its new contributor key (only its hash is kept). A public key
        other than the one on record starts the worker's chain again."""
        key = secrets.token_urlsafe(24)
        name = display_name.strip()[:40] if isinstance(display_name, str) else None
        pk = public_key if isinstance(public_key, str) and len(public_key) <= 64 else None
        ceiling = c.ceiling_watts(capabilities)
        with self._registry.connection() as db:
            row = db.execute(
                "SELECT public_key FROM contributors WHERE worker_id = ?", (worker_id,)
            ).fetchone()
            if row is None:
                db.execute(
                    "INSERT INTO contributors (worker_id, public_key, display_name,"
                    " contributor_hash, tier, ceiling_w) VALUES (?, ?, ?, ?, ?, ?)",
                    (worker_id, pk, name, key_hash(key), tier, ceiling),
                )
            else:
                new_chain = row["public_key"] != pk
                db.execute(
                    "UPDATE contributors SET public_key = ?, display_name = ?,"
                    " contributor_hash = ?, tier = ?, ceiling_w = ?,"
                    " seq = CASE WHEN ? THEN 0 ELSE seq END,"
                    " hash = CASE WHEN ? THEN ? ELSE hash END WHERE worker_id = ?",
                    (
                        pk,
                        name,
                        key_hash(key),
                        tier,
                        ceiling,
                        new_chain,
                        new_chain,
                        c.GENESIS,
                        worker_id,
                    ),
                )
        return key

    def witness(self, worker_id: str, service: str, at: float) -> None:
        """The proxy routed one request of `service` to `worker_id` and it answered."""
        with self._mem:
            self._witnessed[(worker_id, service[:100], math.floor(at / 60))] += 1

    def flush(self) -> int:
        with self._mem:
            counted, self._witnessed = self._witnessed, Counter()
        if counted:
            self._registry.write(
                "INSERT INTO witnessed (worker_id, service, minute, requests) VALUES (?, ?, ?, ?)"
                " ON CONFLICT (worker_id, service, minute)"
                " DO UPDATE SET requests = witnessed.requests + excluded.requests",
                [(*k, n) for k, n in counted.items()],
            )
        return len(counted)

    # -- receipts -----------------------------------------------------------------------------

    def deliver(
        self, worker_id: str, receipts: list[Any], now: float
    ) -> tuple[int, list[dict[str, Any]]]:
        """Judge `receipts` in order: (the highest sequence number taken into the chain, each
        one's outcome). Stops at the first that cannot be taken (malformed, bad signature,
        fork): those after it could not chain either."""
        self.flush()
        outcomes: list[dict[str, Any]] = []
        with self._registry.connection() as db:
            row = db.execute(
                "SELECT * FROM contributors WHERE worker_id = ?", (worker_id,)
            ).fetchone()
            if row is None:
                return 0, [{"outcome": "refused: no public key registered"}]
            me = dict(row)
            for receipt in receipts[: c.MAX_RECEIPTS]:
                outcome = self._one(db, me, receipt, now)
                outcomes.append({"seq": _seq(receipt), "outcome": outcome})
                if outcome.startswith("refused"):
                    break
            held = int(
                me["chain_breaks"] > 0
                or me["impossible_energy"] > 0
                or me["over_claims"] >= c.OVER_CLAIMS_HELD
            )
            db.execute(
                "UPDATE contributors SET seq = ?, hash = ?, end_at = ?, over_claims = ?,"
                " chain_breaks = ?, impossible_energy = ?,"
                " held = CASE WHEN held = 1 THEN 1 ELSE ? END WHERE worker_id = ?",
                (
                    me["seq"],
                    me["hash"],
                    me["end_at"],
                    me["over_claims"],
                    me["chain_breaks"],
                    me["impossible_energy"],
                    held,
                    worker_id,
                ),
            )
        return int(me["seq"]), outcomes

    def _one(self, db: Any, me: dict[str, Any], receipt: Any, now: float) -> str:
        problem = c.form_problem(receipt, me["worker_id"], now)
        if problem is not None:
            return f"refused: {problem}"
        if not c.signed_by(receipt, me["public_key"]):
            me["chain_breaks"] += 1
            return "refused: bad signature"
        known = db.execute(
            "SELECT hash FROM receipts WHERE worker_id = ? AND seq = ?",
            (me["worker_id"], receipt["seq"]),
        ).fetchone()
        head = c.Head(int(me["seq"]), str(me["hash"]), float(me["end_at"]))
        place = c.place(receipt, head, known["hash"] if known else None)
        if place == "duplicate":
            return "duplicate"
        if place == "fork":
            me["chain_breaks"] += 1
            return "refused: fork"
        flag = "" if place == "next" else place
        judged = c.judge(
            receipt,
            self._seen(db, me["worker_id"], float(receipt["start"]), float(receipt["end"])),
            tier=int(me["tier"]),
            ceiling_w=float(me["ceiling_w"]),
            chain_flag=flag,
        )
        me["chain_breaks"] += bool(flag)
        me["over_claims"] += "over-claim" in judged.flags
        me["impossible_energy"] += "impossible energy" in judged.flags
        digest = c.receipt_hash(receipt)
        db.execute(
            "INSERT INTO receipts (worker_id, seq, hash, start_at, end_at, body, ready_claimed,"
            " ready_credited, requests_claimed, requests_witnessed, requests_credited,"
            " energy_wh, credits, flags, received_at)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
            " ON CONFLICT (worker_id, seq) DO NOTHING",
            (
                me["worker_id"],
                receipt["seq"],
                digest,
                receipt["start"],
                receipt["end"],
                json.dumps(receipt),
                judged.ready_claimed,
                judged.ready_credited,
                judged.requests_claimed,
                judged.requests_witnessed,
                judged.requests_credited,
                judged.energy_wh,
                judged.credits,
                json.dumps(judged.flags),
                now,
            ),
        )
        me["seq"], me["hash"], me["end_at"] = int(receipt["seq"]), digest, float(receipt["end"])
        return "flagged: " + ", ".join(judged.flags) if judged.flags else "credited"

    def _seen(self, db: Any, worker_id: str, start: float, end: float) -> c.Witnessed:
        """What this coordinator (all its replicas) saw of the worker over [start, end)."""
        rows = db.execute(
            "SELECT service, SUM(requests) AS n FROM witnessed WHERE worker_id = ?"
            " AND minute >= ? AND minute < ? GROUP BY service",
            (worker_id, math.floor(start / 60), math.ceil(end / 60)),
        ).fetchall()
        requests = {str(r["service"]): int(r["n"]) for r in rows}
        spans = [
            (str(r["services"]), float(r["since"]), float(r["until"]))
            for r in db.execute(
                "SELECT services, since, until FROM presence WHERE worker_id = ?"
                " AND until >= ? AND since <= ?",
                (worker_id, start - self._grace, end),
            ).fetchall()
        ]
        open_span = db.execute(
            "SELECT seen_services, seen_since, last_heartbeat FROM workers WHERE id = ?",
            (worker_id,),
        ).fetchone()
        if open_span is not None and open_span["seen_services"] is not None:
            spans.append(
                (
                    str(open_span["seen_services"]),
                    float(open_span["seen_since"]),
                    float(open_span["last_heartbeat"]),
                )
            )
        seconds: dict[str, float] = {}
        for services, since, until in spans:
            overlap = min(end, until + self._grace) - max(start, since)
            if overlap <= 0:
                continue
            for name in json.loads(services):
                seconds[name] = min(end - start, seconds.get(name, 0.0) + overlap)
        return c.Witnessed(requests, seconds)

    # -- what people see ----------------------------------------------------------------------

    def leaderboard(self, now: float, limit: int = 100) -> list[dict[str, Any]]:
        """Workers by all-time credits (held ones left out), with today's and this week's."""
        day, week = _periods(now)
        with self._registry.connection() as db:
            rows = db.execute(
                "SELECT k.worker_id, k.display_name, k.held,"
                " COALESCE(SUM(r.credits), 0) AS total,"
                " COALESCE(SUM(CASE WHEN r.end_at >= ? THEN r.credits ELSE 0 END), 0) AS today,"
                " COALESCE(SUM(CASE WHEN r.end_at >= ? THEN r.credits ELSE 0 END), 0) AS week,"
                " COUNT(r.seq) AS receipts,"
                " SUM(CASE WHEN r.flags <> '[]' THEN 1 ELSE 0 END) AS flagged"
                " FROM contributors k LEFT JOIN receipts r ON r.worker_id = k.worker_id"
                " WHERE k.held = 0 GROUP BY k.worker_id, k.display_name, k.held"
                " ORDER BY total DESC, k.worker_id LIMIT ?",
                (day, week, limit),
            ).fetchall()
        return [
            {
                "rank": n,
                "worker_id": r["worker_id"],
                "name": r["display_name"] or short_id(r["worker_id"]),
                "credits": {
                    "today": round(float(r["today"]), 2),
                    "week": round(float(r["week"]), 2),
                    "all_time": round(float(r["total"]), 2),
                },
                "receipts": int(r["receipts"]),
                "flags": ["flagged receipts"] if r["flagged"] else [],
            }
            for n, r in enumerate(rows, 1)
        ]

    def of(self, worker_id: str, now: float) -> dict[str, Any] | None:
        """One worker's credits, rank, receipts and flags (held ones included)."""
        day, week = _periods(now)
        with self._registry.connection() as db:
            me = db.execute(
                "SELECT * FROM contributors WHERE worker_id = ?", (worker_id,)
            ).fetchone()
            if me is None:
                return None
            r = db.execute(
                "SELECT COALESCE(SUM(credits), 0) AS total,"
                " COALESCE(SUM(CASE WHEN end_at >= ? THEN credits ELSE 0 END), 0) AS today,"
                " COALESCE(SUM(CASE WHEN end_at >= ? THEN credits ELSE 0 END), 0) AS week,"
                " COUNT(seq) AS receipts,"
                " SUM(CASE WHEN flags <> '[]' THEN 1 ELSE 0 END) AS flagged,"
                " COALESCE(SUM(requests_credited), 0) AS requests,"
                " COALESCE(SUM(ready_credited), 0) AS ready,"
                " COALESCE(SUM(energy_wh), 0) AS energy"
                " FROM receipts WHERE worker_id = ?",
                (day, week, worker_id),
            ).fetchone()
            total = float(r["total"])
            ahead = db.execute(
                "SELECT COUNT(*) AS n FROM (SELECT k.worker_id, SUM(x.credits) AS t"
                " FROM contributors k JOIN receipts x ON x.worker_id = k.worker_id"
                " WHERE k.held = 0 GROUP BY k.worker_id) s WHERE s.t > ?",
                (total,),
            ).fetchone()
        return {
            "worker_id": worker_id,
            "name": me["display_name"] or short_id(worker_id),
            "rank": None if me["held"] else int(ahead["n"]) + 1,
            "credits": {
                "today": round(float(r["today"]), 2),
                "week": round(float(r["week"]), 2),
                "all_time": round(total, 2),
            },
            "receipts": {
                "accepted": int(r["receipts"]),
                "flagged": int(r["flagged"] or 0),
                "last_seq": int(me["seq"]),
            },
            "credited": {
                "requests": int(r["requests"]),
                "ready_hours": round(float(r["ready"]) / 3600, 2),
            },
            "energy_wh": round(float(r["energy"]), 3),  # as claimed: shown, never credited
            "held": bool(me["held"]),
            "flags": _flags(dict(me)),
        }

    def suspicious(self) -> list[dict[str, Any]]:
        with self._registry.connection() as db:
            rows = db.execute(
                "SELECT * FROM contributors WHERE held = 1 OR over_claims > 0"
                " OR chain_breaks > 0 OR impossible_energy > 0 ORDER BY worker_id"
            ).fetchall()
        return [
            {
                "worker_id": r["worker_id"],
                "held": bool(r["held"]),
                "over_claims": int(r["over_claims"]),
                "chain_breaks": int(r["chain_breaks"]),
                "impossible_energy": int(r["impossible_energy"]),
                "flags": _flags(dict(r)),
            }
            for r in rows
        ]

    def clear(self, worker_id: str) -> bool:
        """An operator looked: the worker's counters start again and its credits count."""
        with self._registry.connection() as db:
            return bool(
                db.execute(
                    "UPDATE contributors SET held = 0, over_claims = 0, chain_breaks = 0,"
                    " impossible_energy = 0 WHERE worker_id = ?",
                    (worker_id,),
                ).rowcount
            )

    def contributor(self, key: str) -> tuple[str, float] | None:
        """(worker id, all-time credits) of the worker a contributor key was issued to (its
        credits: 0 while held)."""
        with self._registry.connection() as db:
            row = db.execute(
                "SELECT k.worker_id, k.held, COALESCE(SUM(r.credits), 0) AS total"
                " FROM contributors k LEFT JOIN receipts r ON r.worker_id = k.worker_id"
                " WHERE k.contributor_hash = ? GROUP BY k.worker_id, k.held",
                (key_hash(key),),
            ).fetchone()
        if row is None:
            return None
        return str(row["worker_id"]), 0.0 if row["held"] else float(row["total"])


def short_id(worker_id: str) -> str:
    return worker_id.removeprefix("worker-")[:8]


def _seq(receipt: Any) -> Any:
    return receipt.get("seq") if isinstance(receipt, dict) else None


def _flags(row: dict[str, Any]) -> list[str]:
    found = []
    if row["held"]:
        found.append("held until an operator clears it")
    if row["chain_breaks"]:
        found.append(f"chain broken {row['chain_breaks']}x")
    if row["over_claims"]:
        found.append(f"requests over-claimed in {row['over_claims']} windows")
    if row["impossible_energy"]:
        found.append(f"impossible energy {row['impossible_energy']}x")
    return found


def _periods(now: float) -> tuple[float, float]:
    """Start of today and of this week (Monday), UTC."""
    today = datetime.fromtimestamp(now, UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    week = today - timedelta(days=today.weekday())
    return today.timestamp(), week.timestamp()
