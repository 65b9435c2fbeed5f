"""The composition root's credits side (issue 26): the worker's signing key and receipt ledger in
the state dir, the receipts thread fed by the loop's latest view (ready services), the tunnels'
request counters and the energy meter, and what `status`, the page and `rma-worker credits`
show. Built only when a coordinator is asked (a manifest run earns nothing).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any

from controller import __version__
from controller.clients import tunnel_metrics
from controller.clients.receipts import ReceiptLedger, Signer
from controller.clients.store import StateStore
from controller.contract.services import serving
from controller.core.clock import Clock, wall_time
from controller.core.tunnels import TUNNEL_PREFIX
from controller.engine.loop import Reconciler
from controller.membership.lifecycle import Lifecycle
from controller.ops.energy import EnergyMeter
from controller.ops.receipts import ReceiptKeeper, Sources
from controller.settings import Settings


@dataclass
class Credits:
    ledger: ReceiptLedger
    keeper: ReceiptKeeper
    display_name: str | None = None

    def start(self, stop: threading.Event, wait: Any) -> None:
        threading.Thread(
            target=self.keeper.run, args=(stop, wait), name="receipts", daemon=True
        ).start()

    def presented(self) -> dict[str, str]:
        """What registration adds to its body (Part 5)."""
        found = {"public_key": self.ledger.public_key}
        if self.display_name:
            found["display_name"] = self.display_name
        return found

    def view(self, lifecycle: Lifecycle | None = None) -> dict[str, Any]:
        """The receipts as this machine knows them, for `status` and the page, and the credits
        as the coordinator last said (`rma-worker credits` asks it)."""
        head = self.ledger.head()
        worker_id, pending = self.ledger.pending(10_000)
        sender = lifecycle.receipts if lifecycle is not None else None
        identity = lifecycle.identity if lifecycle is not None else None
        return {
            "public_key": self.ledger.public_key,
            "receipt_window": self.keeper.window,
            "worker_id": worker_id,
            "sealed": head.seq,
            "accepted": head.accepted,
            "pending": len(pending),
            "display_name": self.display_name,
            "contributor_key": identity.contributor_key if identity is not None else None,
            "last_error": sender.last_error if sender is not None else None,
            "credited": sender.credits if sender is not None else None,
        }


def ready_services(agent: Reconciler) -> frozenset[str]:
    """The services ready now (running, not failing or still starting), tunnels aside."""
    return frozenset(
        n for n in serving(agent.status(), frozenset()) if not n.startswith(TUNNEL_PREFIX)
    )


def credits_of(
    settings: Settings, agent: Reconciler, meter: EnergyMeter, worker_id: Any, clock: Clock
) -> Credits:
    store = StateStore(settings.state_dir, settings.instance)
    base = store.identity_path.parent
    ledger = ReceiptLedger(
        base / f"{settings.instance}.receipts.json",
        Signer(base / f"{settings.instance}.key.json"),
    )
    sources = Sources(
        ready=lambda: ready_services(agent),
        requests=lambda: tunnel_metrics.by_service(list(agent.actual())),
        joules=meter.joules_total,
    )
    keeper = ReceiptKeeper(
        ledger,
        sources,
        worker_id,
        __version__,
        window=settings.receipt_window,
        clock=wall_time(clock),
    )
    return Credits(ledger, keeper, settings.display_name)
