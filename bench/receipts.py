"""Receipts (issue 26): what signing costs the agent, and how many receipts the reference
coordinator verifies per second on one core — their form, the ed25519 signature over the
canonical bytes and the hash that chains them (a 100 000-worker pool at 10-minute windows makes
~170 a second) — and, for scale, whole deliveries judged and written to a SQLite ledger.
"""

from __future__ import annotations

import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from controller.clients.receipts import Signer
from controller.core.receipts import GENESIS, Tally, digest
from rma_coordinator import credits
from rma_coordinator.db import NewWorker, Registry
from rma_coordinator.ledger import Ledger

T0 = 1_800_000_000.0


def _receipts(signer: Signer, worker_id: str, count: int) -> tuple[list[dict[str, Any]], float]:
    """`count` chained receipts of three services each; the median seconds to seal and sign one."""
    made, costs, prev = [], [], GENESIS
    for n in range(count):
        start = T0 + 600 * n
        tally = Tally(start=start)
        for name in ("rag", "ner", "ocr"):
            tally = tally.add(600, frozenset({name}), {name: 40 + n % 7}, {"cpu": 3600.0})
        began = time.perf_counter()
        receipt = signer.sign(
            tally.seal(worker_id=worker_id, seq=n + 1, prev=prev, end=start + 600, version="b")
        )
        prev = digest(receipt)
        costs.append(time.perf_counter() - began)
        made.append(receipt)
    return made, statistics.median(costs)


def run(count: int = 5000, deliveries: int = 20) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        signer = Signer(Path(tmp) / "key.json")
        receipts, sign_s = _receipts(signer, "worker-bench", count)
        began = time.perf_counter()
        for r in receipts:
            assert credits.form_problem(r, "worker-bench", T0 + 600 * (count + 1)) is None
            assert credits.signed_by(r, signer.public_key)
            credits.receipt_hash(r)
        verify_s = time.perf_counter() - began
        registry = Registry(Path(tmp) / "ledger.db")
        ledger = Ledger(registry)
        registry.add(NewWorker("worker-bench", 2, {"cpu_cores": 8}, []), now=T0)
        ledger.registered(
            "worker-bench",
            public_key=signer.public_key,
            display_name=None,
            tier=2,
            capabilities={"cpu_cores": 8},
        )
        batch = receipts[: deliveries * 50]
        began = time.perf_counter()
        for k in range(0, len(batch), 50):
            highest, _ = ledger.deliver("worker-bench", batch[k : k + 50], T0 + 600 * (count + 1))
        deliver_s = time.perf_counter() - began
        registry.close()
    return {
        "receipts": count,
        "sign_us": round(sign_s * 1e6, 1),
        "verified_per_s": round(count / verify_s),
        "delivered_per_s": round(len(batch) / deliver_s),
        "delivered_highest": highest,
    }
