"""The owner's page at `/` on the agent's endpoint: what the worker, its containers, the machine
and the contribution look like now (`GET /api/dashboard`, polled by the page), and the one thing
it lets the owner do — pause and resume, the same as `rma-worker pause/resume`.

It runs on a volunteer's desktop, so no web page they visit may drive it: the endpoint answers
only requests that name it by address (ops/health.py); a write needs the per-install secret —
from the state dir, given to the page as a `SameSite=Strict`, `HttpOnly` cookie — and an `Origin`
that is this very endpoint; no CORS header is ever sent; the page's scripts and styles are its
own files (a Content-Security-Policy allows nothing else), shipped in the package.
"""

from __future__ import annotations

import hmac
import json
from collections.abc import Callable
from datetime import UTC, datetime
from http.cookies import SimpleCookie
from importlib import resources
from typing import Any

from controller.ops.events import RECENT
from controller.ops.health import Request, Response, Route, as_json

COOKIE = "rma_dashboard"
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
    "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
PAUSES = {"1h": 3600.0, "8h": 8 * 3600.0, "": None}  # what the page offers: 1 h, 8 h, until resumed
HEALING_SHOWN = 10.0  # seconds a healed container shows as healing
ASSETS = {"/": ("index.html", "text/html; charset=utf-8"),
          "/assets/app.js": ("app.js", "text/javascript; charset=utf-8"),
          "/assets/app.css": ("app.css", "text/css; charset=utf-8")}  # fmt: skip


def _asset(name: str) -> bytes:
    return (resources.files("controller") / "ops" / "page" / name).read_bytes()


class Dashboard:
    def __init__(
        self,
        *,
        secret: str,
        data: Callable[[], dict[str, Any]],
        pause: Callable[[float | None, bool], None],
        resume: Callable[[], bool],
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        writable: bool = True,
    ) -> None:
        self._secret, self._data, self._pause, self._resume = secret, data, pause, resume
        self._writable = writable  # `--dashboard read-only`: the page shows, never pauses
        self._clock = clock
        self._files = {path: (_asset(name), ctype) for path, (name, ctype) in ASSETS.items()}

    def routes(self) -> dict[tuple[str, str], Route]:
        table: dict[tuple[str, str], Route] = {("GET", p): self._file for p in self._files}
        table[("GET", "/api/dashboard")] = lambda _r: as_json(200, self.snapshot())
        table[("GET", "/favicon.ico")] = lambda _r: Response(204, "image/x-icon", b"")
        table[("POST", "/api/pause")] = lambda r: self._write(r, self._paused)
        table[("POST", "/api/resume")] = lambda r: self._write(r, self._resumed)
        return table

    def _file(self, request: Request) -> Response:
        body, ctype = self._files[request.path]
        headers: tuple[tuple[str, str], ...] = (("Content-Security-Policy", CSP),)
        if request.path == "/":
            cookie = f"{COOKIE}={self._secret}; Path=/; SameSite=Strict; HttpOnly"
            headers += (("Set-Cookie", cookie),)
        return Response(200, ctype, body, headers)

    # -- what the page shows --------------------------------------------------------------------

    def snapshot(self) -> dict[str, Any]:
        data = self._data()
        events = RECENT.newest_first()
        now = self._clock()
        healing = {
            e["container"]
            for e in events
            if e["event"] == "container_healed" and _age(e.get("at"), now) < HEALING_SHOWN
        }
        for row in data.get("containers") or []:
            row["healing"] = row.get("name") in healing and row.get("state") == "running"
        return data | {"events": events, "writable": self._writable}

    # -- the two writes ---------------------------------------------------------------------------

    def _write(self, request: Request, act: Callable[[dict[str, Any]], Response]) -> Response:
        refusal = self.refusal(request)
        if refusal:
            return as_json(403, {"ok": False, "refused": refusal})
        try:
            body = json.loads(request.body or b"{}")
        except ValueError:
            return as_json(400, {"ok": False, "refused": "the body is not JSON"})
        if not isinstance(body, dict):
            return as_json(400, {"ok": False, "refused": "the body is not a JSON object"})
        return act(body)

    def refusal(self, request: Request) -> str:
        """Why a write is refused ("" when it is not): the secret cookie, the Origin, JSON."""
        if not self._writable:
            return "the page is read-only here (RMA_DASHBOARD=read-only)"
        cookie = SimpleCookie()
        try:
            cookie.load(request.headers.get("Cookie", ""))
        except Exception:  # a malformed Cookie header is no cookie
            cookie = SimpleCookie()
        given = cookie[COOKIE].value if COOKIE in cookie else ""
        if not hmac.compare_digest(given.encode(), self._secret.encode()):
            return "the page's cookie is missing or wrong (open the page from the agent itself)"
        origin = request.headers.get("Origin", "")
        if origin != f"http://{request.headers.get('Host', '')}":
            return f"a request from {origin or 'an unknown origin'} may not change anything"
        if not request.headers.get("Content-Type", "").startswith("application/json"):
            return "the body must be application/json"
        return ""

    def _paused(self, body: dict[str, Any]) -> Response:
        length, gpu_only = body.get("for", ""), body.get("gpu_only", False)
        if length not in PAUSES or not isinstance(gpu_only, bool):
            return as_json(400, {"ok": False, "refused": "for: 1h, 8h or '' (until resumed)"})
        self._pause(PAUSES[str(length)], gpu_only)
        return as_json(200, {"ok": True, "paused": {"for": length, "gpu_only": gpu_only}})

    def _resumed(self, _body: dict[str, Any]) -> Response:
        return as_json(200, {"ok": True, "was_paused": self._resume()})


def _age(at: Any, now: datetime) -> float:
    try:
        return (now - datetime.fromisoformat(str(at))).total_seconds()
    except (TypeError, ValueError):
        return float("inf")
