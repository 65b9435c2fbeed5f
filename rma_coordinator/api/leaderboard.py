"""Credits over HTTP (issue 26; docs/worker-api.md Part 5): a worker delivers its signed receipts,
anyone reads the leaderboard (JSON, and a page rendered here with no script at all), a worker's
own credits, and an operator sees who is suspicious and clears them. The full dialect's only:
the edge and local coordinators this one emulates have no credits.
"""

from __future__ import annotations

import html
from typing import Annotated, Any

from fastapi import APIRouter, Body, Header, HTTPException
from fastapi.responses import HTMLResponse
from starlette.concurrency import run_in_threadpool

from rma_coordinator.api.deps import Admin, Coordinator, State, check_token
from rma_coordinator.credits import MAX_RECEIPTS
from rma_coordinator.ledger import Ledger

router = APIRouter()
admin = APIRouter(prefix="/api/admin/credits", dependencies=[Admin])
PAGE_CSP = "default-src 'none'; style-src 'unsafe-inline'; base-uri 'none'; form-action 'none'"


def _ledger(state: Coordinator) -> Ledger:
    if state.ledger is None:  # the routes are only included with a ledger
        raise HTTPException(404, "no credits on this coordinator")
    return state.ledger


@router.post("/api/worker/{worker_id}/receipts")
async def receipts(
    worker_id: str,
    state: State,
    body: Annotated[list[Any], Body()],
    authorization: Annotated[str | None, Header()] = None,
) -> dict[str, Any]:
    """Signed receipts, in order: the highest sequence number taken into the worker's chain,
    and what became of each (credited, flagged and why, a duplicate, refused and why)."""
    await run_in_threadpool(check_token, state.registry, worker_id, authorization)
    if len(body) > MAX_RECEIPTS:
        raise HTTPException(413, f"at most {MAX_RECEIPTS} receipts per delivery")
    state.requests["receipts"] += 1
    ledger = _ledger(state)
    highest, results = await run_in_threadpool(
        ledger.deliver, worker_id, body, state.config.clock()
    )
    return {"highest_accepted": highest, "results": results}


@router.get("/api/credits")
def leaderboard(state: State) -> dict[str, Any]:
    now = state.config.clock()
    return {"generated_at": now, "leaderboard": _ledger(state).leaderboard(now)}


@router.get("/api/credits/{worker_id}")
def worker_credits(worker_id: str, state: State) -> dict[str, Any]:
    found = _ledger(state).of(worker_id, state.config.clock())
    if found is None:
        raise HTTPException(404, "no credits for this worker")
    return found


@router.get("/leaderboard", response_class=HTMLResponse)
def leaderboard_page(state: State) -> HTMLResponse:
    rows = _ledger(state).leaderboard(state.config.clock())
    body = "".join(
        f"<tr><td>{r['rank']}</td><td>{html.escape(r['name'])}</td>"
        f"<td>{r['credits']['today']:.2f}</td><td>{r['credits']['week']:.2f}</td>"
        f"<td>{r['credits']['all_time']:.2f}</td><td>{r['receipts']}</td></tr>"
        for r in rows
    )
    empty = '<tr><td colspan="6">No credits yet.</td></tr>'
    page = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>RMA pool: leaderboard</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>body{{font:15px/1.4 system-ui,sans-serif;margin:2rem auto;max-width:52rem;padding:0 1rem}}
table{{border-collapse:collapse;width:100%}}th,td{{padding:.35rem .6rem;text-align:right}}
th:nth-child(2),td:nth-child(2){{text-align:left}}tr:nth-child(even){{background:#f3f3f3}}</style>
</head><body><h1>Leaderboard</h1>
<p>Credits for service this pool's coordinator witnessed itself: the hours a machine's
services were ready while the coordinator saw them running, weighted by tier, and the requests
its proxy routed to them. Energy is shown to each volunteer, never credited.</p>
<table id="leaderboard"><thead><tr><th>#</th><th>Contributor</th><th>Today</th><th>This week</th>
<th>All time</th><th>Receipts</th></tr></thead><tbody>{body or empty}</tbody></table>
</body></html>"""
    return HTMLResponse(page, headers={"Content-Security-Policy": PAGE_CSP})


@admin.get("/suspicious")
def suspicious(state: State) -> list[dict[str, Any]]:
    """Workers with anything suspicious counted, and whether their credits are held."""
    return _ledger(state).suspicious()


@admin.post("/{worker_id}/clear")
def clear(worker_id: str, state: State) -> dict[str, str]:
    if not _ledger(state).clear(worker_id):
        raise HTTPException(404, "no credits for this worker")
    return {"status": "cleared", "worker_id": worker_id}
