"""What a receipt is worth (rma_coordinator/credits.py, ADR 0024), pure: its form, its place in
the chain, the credits for what was witnessed, and the flags."""

from __future__ import annotations

import base64
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import given
from hypothesis import strategies as st

from rma_coordinator import credits as c


def receipt(**over: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "v": 1,
        "worker_id": "worker-1",
        "seq": 1,
        "prev": c.GENESIS,
        "start": 1000,
        "end": 1600,
        "services": {"rag": {"ready_seconds": 600, "requests": 10}},
        "requests_counted": True,
        "energy_wh": {"cpu": 5.0},
        "agent_version": "t",
        "signature": "x",
    }
    return base | over


@pytest.mark.parametrize(
    ("over", "problem"),
    [
        ({}, None),
        ({"v": 2}, "unknown version"),
        ({"worker_id": "worker-2"}, "another worker's receipt"),
        ({"seq": 0}, "seq"),
        ({"seq": True}, "seq"),
        ({"prev": "00"}, "prev"),
        ({"signature": None}, "no signature"),
        ({"start": "1000"}, "start/end"),
        ({"end": 1000}, "window out of bounds"),
        ({"end": 1000 + 86401}, "window out of bounds"),
        ({"start": 9000, "end": 9100}, "window out of bounds"),  # ends after now + 5 min
        ({"services": {"rag": {"ready_seconds": -1, "requests": 0}}}, "services"),
        (
            {"services": {f"s{i}": {"ready_seconds": 0, "requests": 0} for i in range(65)}},
            "services",
        ),
        ({"energy_wh": {"gpu": float("inf")}}, "energy_wh"),
        ({"energy_wh": {"gpu": -1}}, "energy_wh"),
    ],
)
def test_a_receipts_form(over: dict[str, Any], problem: str | None) -> None:
    assert c.form_problem(receipt(**over), "worker-1", now=8000) == problem


def test_only_the_registered_key_signs() -> None:
    key = Ed25519PrivateKey.generate()
    public = base64.b64encode(key.public_key().public_bytes_raw()).decode()
    body = {k: v for k, v in receipt().items() if k != "signature"}
    signed = body | {"signature": base64.b64encode(key.sign(c.canonical(body))).decode()}
    assert c.signed_by(signed, public)
    assert not c.signed_by(signed | {"seq": 2}, public)
    assert not c.signed_by(signed, None)
    assert not c.signed_by(signed | {"signature": "!!"}, public)
    other = base64.b64encode(Ed25519PrivateKey.generate().public_key().public_bytes_raw()).decode()
    assert not c.signed_by(signed, other)


@pytest.mark.parametrize(
    ("over", "head", "known", "place"),
    [
        ({}, c.Head(), None, "next"),
        ({"seq": 3}, c.Head(1, "h", 1000), None, "gap"),
        ({"seq": 2, "prev": "0" * 63 + "1"}, c.Head(1, "h", 1000), None, "fork"),
        ({"seq": 2, "prev": "h" * 64, "start": 900}, c.Head(1, "h" * 64, 1000), None, "overlap"),
        ({"seq": 2, "prev": "h" * 64, "start": 1000}, c.Head(1, "h" * 64, 1000), None, "next"),
        ({}, c.Head(1, "h", 1600), "same", "duplicate"),
        ({}, c.Head(1, "h", 1600), "other", "fork"),
    ],
)
def test_a_receipts_place_in_the_chain(
    over: dict[str, Any], head: c.Head, known: str | None, place: str
) -> None:
    r = receipt(**over)
    digest = c.receipt_hash(r) if known == "same" else known
    assert c.place(r, head, digest) == place


def test_credits_are_what_was_witnessed_weighted_by_tier() -> None:
    seen = c.Witnessed(requests={"rag": 4}, seconds={"rag": 300.0})
    judged = c.judge(receipt(), seen, tier=1, ceiling_w=100)
    assert (judged.ready_claimed, judged.ready_credited) == (600, 300)
    assert (judged.requests_claimed, judged.requests_witnessed, judged.requests_credited) == (
        10,
        4,
        4,
    )
    assert judged.credits == pytest.approx(300 / 3600 * 10 + 4 * 0.01, abs=1e-4)
    assert judged.flags == ("over-claim",) and judged.energy_wh == 5.0
    honest = c.judge(receipt(), c.Witnessed({"rag": 10}, {"rag": 600}), tier=4, ceiling_w=100)
    assert honest.flags == () and honest.credits == pytest.approx(600 / 3600 + 0.1, abs=1e-4)


def test_a_receipt_out_of_its_chain_is_worth_nothing_and_energy_is_never_credited() -> None:
    seen = c.Witnessed({"rag": 10}, {"rag": 600})
    assert c.judge(receipt(), seen, tier=1, ceiling_w=100, chain_flag="gap").credits == 0
    lots = receipt(energy_wh={"gpu": 1000.0})  # 6 kW over ten minutes
    judged = c.judge(
        lots, seen, tier=1, ceiling_w=c.ceiling_watts({"cpu_cores": 8, "gpu_type": "RTX"})
    )
    assert judged.flags == ("impossible energy",)
    assert judged.credits == c.judge(receipt(), seen, tier=1, ceiling_w=860).credits


@given(
    ready=st.integers(0, 600),
    asked=st.integers(0, 10_000),
    saw_s=st.floats(0, 600),
    saw_n=st.integers(0, 10_000),
    tier=st.integers(1, 4),
)
def test_never_credited_more_than_was_witnessed(
    ready: int, asked: int, saw_s: float, saw_n: int, tier: int
) -> None:
    r = receipt(services={"rag": {"ready_seconds": ready, "requests": asked}})
    judged = c.judge(r, c.Witnessed({"rag": saw_n}, {"rag": saw_s}), tier=tier, ceiling_w=1e9)
    assert judged.requests_credited <= saw_n and judged.ready_credited <= saw_s + 1e-9
    most = saw_s / 3600 * c.TIER_WEIGHT[tier] + saw_n * c.PER_REQUEST
    assert judged.credits <= most + 1e-3


def test_a_machines_ceiling() -> None:
    assert c.ceiling_watts({"cpu_cores": 4}) == 80
    assert c.ceiling_watts({"cpu_cores": 8, "gpu_count": 2}) == 160 + 1400
    assert c.ceiling_watts({"cpu_cores": "many", "gpu_memory": "24GB"}) == 64 * 20 + 700
