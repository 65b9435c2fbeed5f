"""`rma-worker credits`: what this machine has earned, in the volunteer's words (issue 26) — the
credits its coordinator counted (today, this week, all time) and its rank, the receipts signed,
accepted and waiting, the contributor key that puts the owner's own requests first when the pool
is full, and the name the leaderboard shows. The receipts and key are read from the state dir;
the credits are asked of the coordinator (nobody else counts them).
"""

from __future__ import annotations

import json
import sys
from typing import Any, TextIO

from controller.clients.coordinator import CoordinatorClient, Patience
from controller.clients.receipts import on_disk
from controller.clients.store import StateStore
from controller.core.errors import AgentError
from controller.core.text import printable_all
from controller.settings import Settings


def credits_command(settings: Settings, as_json: bool, out: TextIO = sys.stdout) -> int:
    store = StateStore(settings.state_dir, settings.instance)
    base, instance = store.identity_path.parent, settings.instance
    identity = store.load_identity()
    data: dict[str, Any] = {
        "worker_id": identity.worker_id if identity else None,
        "coordinator": identity.coordinator_url if identity else None,
        "display_name": settings.display_name,
        "contributor_key": identity.contributor_key if identity else None,
        "receipts": on_disk(base / f"{instance}.key.json", base / f"{instance}.receipts.json"),
        "credited": None,
        "error": None,
    }
    if identity is None:
        data["error"] = "not registered with a coordinator yet: nothing earned so far"
    else:
        client = CoordinatorClient(
            identity.coordinator_url,
            patience=Patience(attempts=1),
            ca_bundle=str(settings.ca_bundle) if settings.ca_bundle else None,
            allow_insecure=settings.allow_insecure_coordinator,
        )
        try:
            data["credited"] = client.credits(identity.worker_id).model_dump()
        except AgentError as exc:
            data["error"] = f"the coordinator did not say ({exc})"
        finally:
            client.close()
    if as_json:
        json.dump(data, out, indent=2)
        out.write("\n")
    else:  # a coordinator's words: no control character is drawn
        out.write(render(printable_all(data)))
    return 0 if data["credited"] is not None else 1


def render(data: dict[str, Any]) -> str:
    got, kept = data["credited"], data["receipts"]
    lines = [f"Worker:      {data['worker_id'] or '(not registered yet)'}"]
    if data["coordinator"]:
        lines.append(f"Coordinator: {data['coordinator']}")
    if got:
        c = got["credits"]
        rank = f"#{got['rank']}" if got.get("rank") else "-"
        lines += [
            f"Credits:     today {c['today']:.2f}   this week {c['week']:.2f}   "
            f"all time {c['all_time']:.2f}   rank {rank}",
            f"Shown as:    {got.get('name') or '-'}",
        ]
        if got.get("held"):
            lines.append(f"Held:        {'; '.join(got.get('flags') or [])}")
    lines += [
        f"Receipts:    {kept['sealed']} signed, {kept['accepted']} accepted, "
        f"{kept['pending']} waiting to be sent",
        f"Contributor key: {data['contributor_key'] or '(none yet)'}",
        "  (send it as the X-RMA-Contributor-Key header: your requests go first when the pool "
        "is full)",
        "Credits come from what the coordinator saw this machine serve: the hours its services "
        "were ready while it watched, and the requests it sent here. Energy is shown, never "
        "paid for.",
    ]
    if data["error"]:
        lines.append(f"Note:        {data['error']}")
    return "\n".join(lines) + "\n"
