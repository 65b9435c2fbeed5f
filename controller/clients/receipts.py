"""The worker's signing key and its chain of receipts, on disk (issue 26).

The key is an ed25519 key pair made at first start, its 32-byte private seed kept (base64) in
`<instance>.key.json` in the state dir — 0600, written atomically, read without following a
symlink, like every state file (store.py). Its public half is sent at registration.

The ledger (`<instance>.receipts.json`) holds the chain's head (worker id, last sequence number,
the hash of the last receipt) and the receipts the coordinator has not acknowledged yet, in
order: kept across restarts and outages, sent again until acknowledged, dropped after 30 days
(said in the log). One lock: the receipts thread appends, the membership thread acknowledges.
"""

from __future__ import annotations

import base64
import contextlib
import json
import math
import threading
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import structlog
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from controller.clients.store import atomic_write_json, read_private
from controller.core.receipts import GENESIS, KEEP_SECONDS, canonical, digest

log = structlog.get_logger(__name__)
MAX_PENDING = 30 * 24 * 6 + 100  # 30 days of 10-minute windows, and some


class Signer:
    """The worker's ed25519 key, made on first use."""

    def __init__(self, path: Path) -> None:
        self._key = _load_or_make(path)
        self.public_key = _public(self._key)

    def sign(self, receipt: dict[str, Any]) -> dict[str, Any]:
        """The receipt with its `signature`: base64 of ed25519 over its canonical bytes."""
        signature = self._key.sign(canonical(receipt))
        return {**receipt, "signature": base64.b64encode(signature).decode("ascii")}


def _read_key(path: Path) -> Ed25519PrivateKey:
    """The key kept at `path` (OSError, ValueError, KeyError or TypeError when it is not one)."""
    seed = base64.b64decode(json.loads(read_private(path))["ed25519"], validate=True)
    return Ed25519PrivateKey.from_private_bytes(seed)


def _public(key: Ed25519PrivateKey) -> str:
    return base64.b64encode(key.public_key().public_bytes_raw()).decode("ascii")


def _read_ledger(path: Path) -> tuple[Head, list[dict[str, Any]]]:
    """The chain's head and the receipts not acknowledged, as kept at `path` (raises as
    `_read_key` does)."""
    data = json.loads(read_private(path))
    return Head(**data["head"]), [r for r in data["pending"] if isinstance(r, dict)]


def _load_or_make(path: Path) -> Ed25519PrivateKey:
    try:
        return _read_key(path)
    except FileNotFoundError:
        pass
    except (OSError, ValueError, KeyError, TypeError) as exc:
        # A new key starts a new chain: the coordinator sees a new public key at registration.
        log.error("signing_key_unreadable", path=str(path), error=str(exc), action="a new key")
    key = Ed25519PrivateKey.generate()
    seed = key.private_bytes_raw()
    atomic_write_json(path, {"ed25519": base64.b64encode(seed).decode("ascii")})
    return key


@dataclass(frozen=True)
class Head:
    worker_id: str | None = None
    seq: int = 0
    prev: str = GENESIS
    accepted: int = 0  # the highest sequence number the coordinator acknowledged
    end: float = 0.0  # where the last receipt's window ended: the next never starts before


class ReceiptLedger:
    def __init__(self, path: Path, signer: Signer) -> None:
        self._path, self._signer = path, signer
        self._lock = threading.Lock()
        self._head, self._pending = self._load()

    def _load(self) -> tuple[Head, list[dict[str, Any]]]:
        try:
            return _read_ledger(self._path)
        except FileNotFoundError:
            return Head(), []
        except (OSError, ValueError, KeyError, TypeError) as exc:
            log.error("receipts_unreadable", path=str(self._path), error=str(exc))
            return Head(), []

    def _save(self) -> None:
        data = {"head": self._head.__dict__, "pending": self._pending}
        try:
            atomic_write_json(self._path, data)
        except OSError as exc:
            log.warning("receipts_not_saved", path=str(self._path), error=str(exc))

    @property
    def public_key(self) -> str:
        return self._signer.public_key

    def head(self) -> Head:
        with self._lock:
            return self._head

    def append(self, sealed: Any, worker_id: str, *, now: float) -> dict[str, Any] | None:
        """Seal the next receipt of `worker_id`'s chain (`sealed(seq, prev)` → the unsigned
        receipt), sign it and keep it until acknowledged. A new worker id starts a new chain
        (the old one's unacknowledged receipts are dropped: no coordinator holds that id). A
        window is never told twice: one that would start before the last ended (the clock set
        back) starts there, and one left with nothing is not sealed (None)."""
        with self._lock:
            if worker_id != self._head.worker_id:
                if self._pending:
                    log.warning(
                        "receipts_dropped", count=len(self._pending), reason="new worker id"
                    )
                self._head, self._pending = Head(worker_id), []
            unsigned = sealed(self._head.seq + 1, self._head.prev)
            if unsigned["start"] < self._head.end:
                unsigned = {**unsigned, "start": math.ceil(self._head.end)}
            if unsigned["end"] <= unsigned["start"]:
                return None
            receipt = self._signer.sign(unsigned)
            self._head = Head(
                worker_id, receipt["seq"], digest(receipt), self._head.accepted, receipt["end"]
            )
            self._pending.append(receipt)
            self._expire(now)
            self._save()
            return receipt

    def _expire(self, now: float) -> None:
        keep = [r for r in self._pending if now - float(r.get("end", 0)) <= KEEP_SECONDS]
        keep = keep[-MAX_PENDING:]
        if len(keep) < len(self._pending):
            log.warning(
                "receipts_expired",
                count=len(self._pending) - len(keep),
                note="older than 30 days and never acknowledged",
            )
        self._pending = keep

    def pending(self, limit: int) -> tuple[str | None, list[dict[str, Any]]]:
        """(worker id, the oldest `limit` receipts not acknowledged), in order."""
        with self._lock:
            return self._head.worker_id, list(self._pending[:limit])

    def acknowledge(self, worker_id: str, seq: int) -> int:
        """The coordinator accepted `worker_id`'s chain through `seq`: those are dropped; how
        many were. A coordinator's word past what was sealed counts up to what was sealed."""
        with self._lock:
            if worker_id != self._head.worker_id:
                return 0
            seq = min(seq, self._head.seq)
            before = len(self._pending)
            self._pending = [r for r in self._pending if int(r["seq"]) > seq]
            self._head = replace(self._head, accepted=max(seq, self._head.accepted))
            if len(self._pending) != before:
                self._save()
            return before - len(self._pending)


def on_disk(key_path: Path, ledger_path: Path) -> dict[str, Any]:
    """What `rma-worker credits` shows of this machine's receipts, read without making anything
    (no key is created by looking)."""
    found: dict[str, Any] = {"public_key": None, "sealed": 0, "accepted": 0, "pending": 0}
    with contextlib.suppress(OSError, ValueError, KeyError, TypeError):
        found["public_key"] = _public(_read_key(key_path))
    with contextlib.suppress(OSError, ValueError, KeyError, TypeError):
        head, pending = _read_ledger(ledger_path)
        found |= {"sealed": head.seq, "accepted": head.accepted, "pending": len(pending)}
    return found
