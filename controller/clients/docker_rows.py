"""A row of the engine's container list as the agent sees it (`ActualContainer`): its name, state,
spec hash and own time to stop from its labels, and Docker's health from the status line.
"""

from __future__ import annotations

from typing import Any

from controller.core.models import LABEL_SPEC_HASH, LABEL_STOP_GRACE, ActualContainer


def actual(row: dict[str, Any], *, managed: bool) -> ActualContainer:
    names = row.get("Names") or [""]
    labels = row.get("Labels") or {}
    return ActualContainer(
        id=str(row["Id"]),
        name=names[0].lstrip("/"),
        state=str(row.get("State", "")),
        spec_hash=labels.get(LABEL_SPEC_HASH),
        managed=managed,
        image=str(row.get("Image", "")),
        health=_health(str(row.get("Status", ""))),
        status=str(row.get("Status", ""))[:120],
        stop_grace=_seconds(labels.get(LABEL_STOP_GRACE)),
        addresses=_addresses(row),
    )


def _addresses(row: dict[str, Any]) -> tuple[tuple[str, str], ...]:
    networks = (row.get("NetworkSettings") or {}).get("Networks") or {}
    return tuple(
        sorted((str(n), str(v.get("IPAddress"))) for n, v in networks.items() if v.get("IPAddress"))
    )


def _seconds(text: str | None) -> float | None:
    try:
        return min(300.0, max(0.0, float(text))) if text else None
    except ValueError:
        return None


def _health(status: str) -> str:  # from the list's status line: "Up 5 s (health: starting)"
    for marker, state in (("(health: starting)", "starting"), ("(unhealthy)", "unhealthy")):
        if marker in status:
            return state
    return "healthy" if "(healthy)" in status else ""
