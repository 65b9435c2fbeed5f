"""What a worker's signed receipt is worth (issue 26, ADR 0024): the checks and the formula, pure.

A receipt (docs/worker-api.md, Part 5) is checked for its form, its signature (the ed25519 key
the worker registered), its place in the worker's chain (sequence and the previous receipt's
hash), and against what this coordinator witnessed itself: the requests its proxy routed to the
worker for each service, and the time it saw the worker online with the service running. A
worker is credited with the smaller of what it claims and what was witnessed — never more than
the coordinator saw — and energy is shown, never credited (it would reward waste).

The reference coordinator implements the canonical form itself (it shares no code with the
agent): RFC 8785 for the values a receipt holds.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import math
from dataclasses import dataclass, field
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

GENESIS = "0" * 64
MAX_RECEIPTS = 100  # per delivery
MAX_SERVICES = 64
MAX_WINDOW = 86400.0
FUTURE = 300.0  # seconds a receipt's end may be ahead of this coordinator's clock
# Credits per ready service-hour, by the worker's tier: what it offers (ADR 0024).
TIER_WEIGHT = {1: 10.0, 2: 3.0, 3: 2.0, 4: 1.0}
PER_REQUEST = 0.01  # credits per request served that the proxy witnessed
OVER_CLAIM = 0.10  # claimed requests above witnessed by more than this share…
OVER_CLAIM_SLACK = 2  # …and by more than this many (a request on a window's edge)
OVER_CLAIMS_HELD = 3  # windows over-claimed before the worker's credits are held
# Generous ceilings of what a machine can draw (its model's TDP is not known): per CPU core, and
# per GPU (a 700 W H100/H200 SXM); a claim above them over the window is impossible.
WATTS_PER_CORE = 20.0
WATTS_PER_GPU = 700.0


def canonical(value: Any) -> bytes:
    return json.dumps(
        _numbers(value), sort_keys=True, separators=(",", ":"), ensure_ascii=False
    ).encode("utf-8")


def _numbers(value: Any) -> Any:
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError("not a finite number")
        return int(value) if value.is_integer() else value
    if isinstance(value, dict):
        return {str(k): _numbers(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_numbers(v) for v in value]
    return value


def receipt_hash(receipt: dict[str, Any]) -> str:
    return hashlib.sha256(canonical(_unsigned(receipt))).hexdigest()


def _unsigned(receipt: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in receipt.items() if k != "signature"}


def form_problem(receipt: Any, worker_id: str, now: float) -> str | None:
    """Why `receipt` is not a receipt of `worker_id` this coordinator can judge, or None."""
    if not isinstance(receipt, dict):
        return "not an object"
    checks: list[tuple[Any, str]] = [
        (lambda: receipt.get("v") == 1, "unknown version"),
        (lambda: receipt.get("worker_id") == worker_id, "another worker's receipt"),
        (lambda: _whole(receipt.get("seq")) and receipt["seq"] >= 1, "seq"),
        (lambda: isinstance(receipt.get("prev"), str) and len(receipt["prev"]) == 64, "prev"),
        (lambda: isinstance(receipt.get("signature"), str), "no signature"),
        (lambda: _number(receipt.get("start")) and _number(receipt.get("end")), "start/end"),
        (lambda: _window_ok(receipt, now), "window out of bounds"),
        (lambda: _services_ok(receipt.get("services")), "services"),
        (lambda: _energy_ok(receipt.get("energy_wh", {})), "energy_wh"),
    ]
    return next((why for ok, why in checks if not ok()), None)


def _window_ok(receipt: dict[str, Any], now: float) -> bool:
    start, end = float(receipt["start"]), float(receipt["end"])
    return 0 < end - start <= MAX_WINDOW and end <= now + FUTURE


def _services_ok(services: Any) -> bool:
    if not isinstance(services, dict) or len(services) > MAX_SERVICES:
        return False
    return all(
        isinstance(entry, dict)
        and all(_whole(entry.get(k)) and entry[k] >= 0 for k in ("ready_seconds", "requests"))
        for entry in services.values()
    )


def _energy_ok(energy: Any) -> bool:
    return isinstance(energy, dict) and all(_number(v) and v >= 0 for v in energy.values())


def _whole(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _number(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)


def signed_by(receipt: dict[str, Any], public_key: str | None) -> bool:
    """Whether the receipt's signature is the registered key's over its canonical bytes."""
    if not public_key:
        return False
    try:
        key = Ed25519PublicKey.from_public_bytes(base64.b64decode(public_key, validate=True))
        key.verify(
            base64.b64decode(receipt["signature"], validate=True), canonical(_unsigned(receipt))
        )
    except (InvalidSignature, ValueError, binascii.Error):
        return False
    return True


@dataclass(frozen=True)
class Head:
    """The last receipt taken into a worker's chain."""

    seq: int = 0
    hash: str = GENESIS
    end: float = 0.0


def place(receipt: dict[str, Any], head: Head, known_hash: str | None) -> str:
    """Where the receipt stands in the chain: `next`, `duplicate` (already taken, same bytes),
    `fork` (an old sequence number with other contents, or the wrong previous hash), `gap`
    (receipts missing before it), `overlap` (its window starts before the last one ended)."""
    seq = int(receipt["seq"])
    if seq <= head.seq:
        return "duplicate" if known_hash == receipt_hash(receipt) else "fork"
    if seq > head.seq + 1:
        return "gap"
    if receipt["prev"] != head.hash:
        return "fork"
    if float(receipt["start"]) < head.end - 1:
        return "overlap"
    return "next"


@dataclass(frozen=True)
class Witnessed:
    """What this coordinator saw of one worker over one receipt's window, per service: the
    requests its proxy routed there, and the seconds it saw the service running."""

    requests: dict[str, int] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class Judged:
    ready_claimed: float
    ready_credited: float
    requests_claimed: int
    requests_witnessed: int
    requests_credited: int
    energy_wh: float
    credits: float
    flags: tuple[str, ...]


def judge(
    receipt: dict[str, Any], seen: Witnessed, *, tier: int, ceiling_w: float, chain_flag: str = ""
) -> Judged:
    """Credits for one receipt: ready seconds and requests each capped by what was witnessed;
    flags for what a worker cannot honestly claim. A receipt out of its chain is worth nothing."""
    length = float(receipt["end"]) - float(receipt["start"])
    ready_claimed = ready_credited = 0.0
    claimed = witnessed = credited = 0
    flags: list[str] = [chain_flag] if chain_flag else []
    for name, entry in receipt["services"].items():
        ready = min(float(entry["ready_seconds"]), length)
        ready_claimed += ready
        ready_credited += min(ready, seen.seconds.get(name, 0.0))
        asked, saw = int(entry["requests"]), seen.requests.get(name, 0)
        claimed, witnessed, credited = claimed + asked, witnessed + saw, credited + min(asked, saw)
    if claimed - witnessed > max(OVER_CLAIM * witnessed, OVER_CLAIM_SLACK):
        flags.append("over-claim")
    energy = sum(float(v) for v in (receipt.get("energy_wh") or {}).values())
    if energy > ceiling_w * length / 3600.0:
        flags.append("impossible energy")
    credits = ready_credited / 3600.0 * TIER_WEIGHT.get(tier, 1.0) + credited * PER_REQUEST
    if chain_flag:
        credits, ready_credited, credited = 0.0, 0.0, 0
    return Judged(
        ready_claimed,
        ready_credited,
        claimed,
        witnessed,
        credited,
        round(energy, 3),
        round(credits, 4),
        tuple(flags),
    )


def ceiling_watts(capabilities: dict[str, Any]) -> float:
    """The most a machine with these capabilities could draw (generous)."""
    cores_said: Any = capabilities.get("cpu_cores")
    gpus_said: Any = capabilities.get("gpu_count")
    cores = int(cores_said) if _whole(cores_said) and int(cores_said) > 0 else 64
    if _whole(gpus_said):
        gpus = int(gpus_said)
    else:
        gpus = 1 if capabilities.get("gpu_type") or capabilities.get("gpu_memory") else 0
    return WATTS_PER_CORE * cores + WATTS_PER_GPU * gpus
