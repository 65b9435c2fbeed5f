"""The signed receipts, agent side (issue 26): canonical bytes, the chain, the window's tally
(core/receipts.py); the key and the ledger on disk (clients/receipts.py); the receipts thread on
a virtual clock (ops/receipts.py); delivery and acknowledgement (membership/receipts.py)."""

from __future__ import annotations

import base64
import json
import os
import stat
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from hypothesis import given
from hypothesis import strategies as st

from controller.clients.receipts import ReceiptLedger, Signer
from controller.clients.store import Identity
from controller.core.errors import CoordinatorRejected, CoordinatorUnreachable
from controller.core.receipts import (
    GENESIS,
    KEEP_SECONDS,
    Tally,
    canonical,
    counted_since,
    digest,
    unsigned,
    window_end,
)
from controller.membership.receipts import UNSUPPORTED, ReceiptSender
from controller.ops.receipts import ReceiptKeeper, Sources


def test_canonical_bytes_are_jcs() -> None:
    value = {"b": 1.0, "a": [0.5, 2, "é"], "c": {"z": None, "y": True}, "d": 1.25}
    assert canonical(value) == '{"a":[0.5,2,"é"],"b":1,"c":{"y":true,"z":null},"d":1.25}'.encode()
    with pytest.raises(ValueError, match="finite"):
        canonical({"x": float("nan")})


receipt_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=0, max_value=2**53)
    | st.floats(min_value=0, max_value=1e12).map(lambda x: round(x, 3))
    | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)


@given(receipt_values)
def test_canonical_bytes_survive_a_json_round_trip(value: Any) -> None:
    """What a coordinator parses and canonicalises again is what was signed."""
    assert canonical(json.loads(canonical(value))) == canonical(value)


def test_the_digest_leaves_the_signature_out() -> None:
    receipt = {"seq": 1, "prev": GENESIS}
    assert digest(receipt) == digest({**receipt, "signature": "x"})
    assert unsigned({**receipt, "signature": "x"}) == receipt


def test_windows_line_up_with_wall_time() -> None:
    assert window_end(1000.0, 600) == 1200.0
    assert window_end(1200.0, 600) == 1800.0


def test_counters_seen_first_are_baselines_and_a_reset_counts_anew() -> None:
    assert counted_since({}, {"rag": 40}) == {}
    assert counted_since({"rag": 40}, {"rag": 45, "ocr": 3}) == {"rag": 5}
    assert counted_since({"rag": 45}, {"rag": 2}) == {"rag": 2}


def test_a_tally_seals_into_a_receipt() -> None:
    tally = Tally(start=1000.4).add(10, frozenset({"rag"}), {"rag": 3}, {"gpu": 7200.0})
    tally = tally.add(5, frozenset({"rag", "ocr"}), None, {"cpu": 36.0})
    receipt = tally.seal(worker_id="worker-1", seq=1, prev=GENESIS, end=1200, version="0.8.0")
    assert receipt == {
        "v": 1,
        "worker_id": "worker-1",
        "seq": 1,
        "prev": GENESIS,
        "start": 1000,
        "end": 1200,
        "services": {
            "ocr": {"ready_seconds": 5, "requests": 0},
            "rag": {"ready_seconds": 15, "requests": 3},
        },
        "requests_counted": True,
        "energy_wh": {"cpu": 0.01, "gpu": 2.0},
        "agent_version": "0.8.0",
    }
    nothing = Tally(start=0).add(10, frozenset({"rag"}), None, {})
    assert (
        nothing.seal(worker_id="w", seq=1, prev=GENESIS, end=60, version="v")["requests_counted"]
        is False
    )


def _verify(public_key: str, receipt: dict[str, Any]) -> None:
    key = Ed25519PublicKey.from_public_bytes(base64.b64decode(public_key))
    key.verify(base64.b64decode(receipt["signature"]), canonical(unsigned(receipt)))


def _add(ledger: ReceiptLedger, sealed: Any, worker_id: str, now: float) -> dict[str, Any]:
    receipt = ledger.append(sealed, worker_id, now=now)
    assert receipt is not None
    return receipt


def _sealed(worker_id: str = "worker-1", end: float = 1200) -> Any:
    return lambda seq, prev: Tally(start=end - 600).seal(
        worker_id=worker_id, seq=seq, prev=prev, end=end, version="t"
    )


def test_the_key_is_made_once_kept_0600_and_never_read_through_a_symlink(tmp_path: Path) -> None:
    path = tmp_path / "state" / "default.key.json"
    first = Signer(path)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert Signer(path).public_key == first.public_key
    assert len(base64.b64decode(first.public_key)) == 32
    elsewhere = tmp_path / "elsewhere.json"
    elsewhere.write_text(json.dumps({"ed25519": base64.b64encode(b"\1" * 32).decode()}))
    path.unlink()
    path.symlink_to(elsewhere)
    planted = Signer(path)  # not read through the link: a new key, written in its place
    assert not path.is_symlink() and planted.public_key != first.public_key
    assert json.loads(elsewhere.read_text())["ed25519"] == base64.b64encode(b"\1" * 32).decode()


def test_the_ledger_chains_signs_keeps_and_drops_what_was_acknowledged(tmp_path: Path) -> None:
    signer = Signer(tmp_path / "k.json")
    ledger = ReceiptLedger(tmp_path / "r.json", signer)
    one = _add(ledger, _sealed(end=1200), "worker-1", 1200)
    two = _add(ledger, _sealed(end=1800), "worker-1", 1800)
    assert (one["seq"], one["prev"]) == (1, GENESIS)
    assert (two["seq"], two["prev"]) == (2, digest(one))
    _verify(signer.public_key, one)
    _verify(signer.public_key, two)
    again = ReceiptLedger(tmp_path / "r.json", Signer(tmp_path / "k.json"))  # a restart
    assert again.pending(10) == ("worker-1", [one, two])
    assert again.acknowledge("worker-1", 1) == 1
    assert again.pending(10) == ("worker-1", [two])
    assert again.acknowledge("worker-other", 2) == 0
    three = _add(again, _sealed(end=2400), "worker-1", 2400)
    assert (three["seq"], three["prev"]) == (3, digest(two)) and again.head().accepted == 1


def test_a_new_worker_id_starts_a_new_chain_and_old_receipts_expire(tmp_path: Path) -> None:
    ledger = ReceiptLedger(tmp_path / "r.json", Signer(tmp_path / "k.json"))
    ledger.append(_sealed(end=1200), "worker-1", now=1200)
    fresh = _add(ledger, _sealed("worker-2", end=1800), "worker-2", 1800)
    assert (fresh["seq"], fresh["prev"]) == (1, GENESIS)
    assert ledger.pending(10) == ("worker-2", [fresh])
    later = 1800 + KEEP_SECONDS + 1
    ledger.append(_sealed("worker-2", end=later), "worker-2", now=later)
    assert [r["seq"] for r in ledger.pending(10)[1]] == [2]  # the first, 30 days old, dropped


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def test_the_keeper_tallies_each_window_and_seals_it_at_its_end(tmp_path: Path) -> None:
    clock, counter, joules = Clock(1150.0), [100], [{"gpu": 0.0}]
    ready = [frozenset({"rag"})]
    ledger = ReceiptLedger(tmp_path / "r.json", Signer(tmp_path / "k.json"))
    keeper = ReceiptKeeper(
        ledger,
        Sources(
            ready=lambda: ready[0],
            requests=lambda: {"rag": counter[0]},
            joules=lambda: dict(joules[0]),
        ),
        lambda: "worker-1",
        "t",
        window=600,
        clock=clock,
    )
    assert keeper.sample() is None  # baselines
    for _ in range(4):  # 1160 .. 1190: 40 s ready, 8 requests, 3600 J
        clock.now += 10
        counter[0] += 2
        joules[0] = {"gpu": joules[0]["gpu"] + 900}
        assert keeper.sample() is None
    ready[0] = frozenset()
    clock.now, counter[0] = 1210.0, counter[0] + 4  # 10 s over the boundary at 1200
    sealed = keeper.sample()
    assert sealed is not None
    assert (sealed["start"], sealed["end"], sealed["seq"]) == (1150, 1200, 1)
    assert sealed["services"] == {"rag": {"ready_seconds": 40, "requests": 10}}
    assert sealed["energy_wh"] == {"gpu": 1.0}
    clock.now = 1800.0
    second = keeper.sample()
    assert second is not None and (second["start"], second["end"]) == (1200, 1800)
    assert second["services"] == {"rag": {"ready_seconds": 0, "requests": 2}}
    assert second["prev"] == digest(sealed)


class FakeShared:
    def __init__(self, identity: Identity | None) -> None:
        self.standing = type("S", (), {"identity": identity})()


class FakeClient:
    def __init__(self) -> None:
        self.sent: list[tuple[str, list[dict[str, Any]], str | None]] = []
        self.answer: Any = None

    def send_receipts(
        self, worker_id: str, receipts: list[dict[str, Any]], *, token: str | None = None
    ) -> int:
        self.sent.append((worker_id, receipts, token))
        if isinstance(self.answer, Exception):
            raise self.answer
        return int(self.answer if self.answer is not None else receipts[-1]["seq"])

    def credits(self, worker_id: str) -> Any:
        raise CoordinatorUnreachable("no credits here")  # the page keeps what it had


def test_receipts_are_delivered_in_order_and_kept_until_acknowledged(tmp_path: Path) -> None:
    ledger = ReceiptLedger(tmp_path / "r.json", Signer(tmp_path / "k.json"))
    for end in (1200, 1800, 2400):
        ledger.append(_sealed(end=end), "worker-1", now=end)
    client, clock = FakeClient(), Clock(0.0)
    identity = Identity("worker-1", "http://c", token="tok")
    sender = ReceiptSender(client, FakeShared(identity), ledger, clock)  # type: ignore[arg-type]
    client.answer = CoordinatorUnreachable("down")
    assert sender.send() == 0 and len(ledger.pending(10)[1]) == 3  # an outage keeps them
    client.answer = 2
    assert sender.send() == 2 and [r["seq"] for r in ledger.pending(10)[1]] == [3]
    assert client.sent[-1][0] == "worker-1" and client.sent[-1][2] == "tok"
    assert [r["seq"] for r in client.sent[-1][1]] == [1, 2, 3]
    client.answer = CoordinatorRejected("no such route", 404)
    assert sender.send() == 0
    calls = len(client.sent)
    assert sender.send() == 0 and len(client.sent) == calls  # not asked again for an hour
    clock.now += UNSUPPORTED
    client.answer = None
    assert sender.send() == 1 and ledger.pending(10)[1] == []
    client.answer = 10**9  # a coordinator's word past what was sealed: up to what was sealed
    ledger.append(_sealed(end=3000), "worker-1", now=3000)
    assert sender.send() == 1 and ledger.head().accepted == 4


def test_no_receipts_without_a_token_or_for_another_worker(tmp_path: Path) -> None:
    ledger = ReceiptLedger(tmp_path / "r.json", Signer(tmp_path / "k.json"))
    ledger.append(_sealed(end=1200), "worker-1", now=1200)
    client = FakeClient()
    for identity in (
        None,
        Identity("worker-1", "http://c"),
        Identity("worker-2", "http://c", token="t"),
    ):
        sender = ReceiptSender(client, FakeShared(identity), ledger, Clock(0))  # type: ignore[arg-type]
        assert sender.send() == 0
    assert client.sent == []


def test_status_says_the_receipts_and_the_credits() -> None:
    from controller.cli.owner import owner_lines  # noqa: PLC0415

    kept: dict[str, Any] = {"sealed": 5, "accepted": 4, "pending": 1, "last_error": None}
    assert owner_lines({"credits": kept}) == ["Receipts:       5 signed, 4 accepted, 1 waiting"]
    kept["credited"] = {
        "rank": 2,
        "held": False,
        "credits": {"today": 1, "week": 2.5, "all_time": 9},
    }
    assert owner_lines({"credits": kept})[0] == (
        "Credits:        today 1.00; week 2.50; all time 9.00; rank #2"
    )


def test_a_machine_asleep_claims_no_ready_seconds_and_skips_the_windows_it_slept(
    tmp_path: Path,
) -> None:
    clock = Clock(1190.0)
    ledger = ReceiptLedger(tmp_path / "r.json", Signer(tmp_path / "k.json"))
    keeper = ReceiptKeeper(
        ledger, Sources(ready=lambda: frozenset({"rag"})), lambda: "w", "t", window=600, clock=clock
    )
    keeper.sample()
    clock.now = 1200.0 + 3 * 600 + 30  # asleep for half an hour
    sealed = keeper.sample()
    assert sealed is not None and sealed["services"] == {}  # nothing watched: nothing claimed
    clock.now += 10
    keeper.sample()
    clock.now = 3600.0
    after = keeper.sample()
    assert after is not None and (after["start"], after["end"]) == (3000, 3600)
    assert after["services"] == {"rag": {"ready_seconds": 10, "requests": 0}}


def test_a_window_never_starts_before_the_last_one_ended(tmp_path: Path) -> None:
    ledger = ReceiptLedger(tmp_path / "r.json", Signer(tmp_path / "k.json"))
    assert ledger.append(_sealed(end=1200), "worker-1", now=1200) is not None
    back = _add(ledger, _sealed(end=1500), "worker-1", 1500)  # the clock set back
    assert (back["start"], back["end"]) == (1200, 1500)
    assert ledger.append(_sealed(end=1400), "worker-1", now=1400) is None  # told already
    assert ledger.head().seq == 2
