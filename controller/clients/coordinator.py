"""HTTP client for the coordinator's worker API (the RMA contract's Parts 1 and 2).

Nothing a coordinator answers can wedge it: redirects are not followed (an error), a parse that
recurses too deep is a protocol error like any malformed answer, and the worker token is never
sent over plain http to another machine unless the owner allows it.

Every call has connect and read timeouts. Connection errors, timeouts, 5xx and 429 are retried a
few times with capped exponential backoff and full jitter, honouring Retry-After; nothing else is
retried here (the lifecycle is the outer retry). Answers are validated with pydantic at this edge
and errors become the project's own exceptions: unreachable, rejected, forgotten worker, or a
protocol error.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, TypeVar
from urllib.parse import urlsplit

import requests
from pydantic import BaseModel, ValidationError

from controller import __version__
from controller.clients import http_bounds as http
from controller.clients import http_watchdog as watchdog
from controller.clients.retry import Sleep, call_with_retry
from controller.contract.api import (
    REGISTER_PATH,
    AssignmentResponse,
    CreditsResponse,
    HeartbeatResponse,
    ReceiptsResponse,
    RegisterResponse,
    credits_path,
    receipts_path,
    unregister_path,
)
from controller.core.backoff import Delays
from controller.core.errors import (
    CoordinatorProtocolError,
    CoordinatorRejected,
    CoordinatorUnreachable,
    WorkerForgotten,
)

M = TypeVar("M", bound=BaseModel)


CALL_RETRY = Delays(0.5, 10.0, jitter="full")  # 0.5 s doubling to 10 s, drawn in [0, d]


@dataclass(frozen=True)
class Patience:
    """How long one answer may take (connect, read), and how often a failed call is tried, with
    which waits between (full jitter)."""

    connect: float = 5.0
    read: float = 30.0
    attempts: int = 4
    delays: Delays = CALL_RETRY


PATIENT = Patience()


class CoordinatorClient:
    def __init__(
        self,
        base_url: str,
        *,
        ca_bundle: str | None = None,
        patience: Patience = PATIENT,
        sleep: Sleep = time.sleep,
        session: requests.Session | None = None,
        allow_insecure: bool = False,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self._allow_insecure = allow_insecure
        self._session = session or requests.Session()
        for prefix in ("http://", "https://"):  # a true deadline per answer (http_watchdog.py)
            self._session.mount(prefix, watchdog.WatchedAdapter())
        self._session.headers["User-Agent"] = f"rma-worker/{__version__}"
        self._session.verify = ca_bundle or True
        self._timeouts = (patience.connect, patience.read)
        self._attempts = patience.attempts
        self._delays = patience.delays
        self._sleep = sleep

    def url(self, path: str) -> str:
        """Resolve a path the coordinator gave; other origins are refused (the token must
        never leave for another host)."""
        if not path.startswith(("http://", "https://")):
            return self.base_url + ("" if path.startswith("/") else "/") + path
        if http.origin(path) != http.origin(self.base_url):
            raise CoordinatorProtocolError(f"coordinator pointed to another host: {path}")
        return path

    def close(self) -> None:
        self._session.close()

    # -- the API ------------------------------------------------------------------------------

    def register(self, body: dict[str, Any], *, token: str | None = None) -> RegisterResponse:
        """`token`: the previous identity's, proving a `previous_worker_id` is ours."""
        resp = self._request("POST", REGISTER_PATH, json=body, token=token)
        return self._model(RegisterResponse, self._json(resp), "register")

    def heartbeat(
        self, path: str, body: dict[str, Any], *, token: str | None = None
    ) -> HeartbeatResponse:
        resp = self._request("POST", path, json=body, worker_scoped=True, token=token)
        return self._model(HeartbeatResponse, self._json(resp), "heartbeat")

    def unregister(self, worker_id: str, *, token: str | None = None, timeout: float = 5.0) -> None:
        """One bounded attempt; 404 means already unregistered, which is success."""
        try:
            self._request(
                "DELETE",
                unregister_path(worker_id),
                attempts=1,
                timeout=(min(timeout, self._timeouts[0]), timeout),
                worker_scoped=True,
                token=token,
            )
        except WorkerForgotten:
            return

    def send_receipts(
        self, worker_id: str, receipts: list[dict[str, Any]], *, token: str | None = None
    ) -> int:
        """Part 5: deliver signed receipts, in order; the highest sequence number accepted.
        Sent once per call (the membership sends them again at its next tick)."""
        resp = self._request(
            "POST", receipts_path(worker_id), json=receipts, attempts=1, token=token
        )
        return self._model(ReceiptsResponse, self._json(resp), "receipts").highest_accepted

    def credits(self, worker_id: str) -> CreditsResponse:
        """Part 5: what the coordinator credited this worker with (one attempt)."""
        resp = self._request("GET", credits_path(worker_id), attempts=1)
        return self._model(CreditsResponse, self._json(resp), "credits")

    def fetch_assignment(
        self, path: str, *, token: str | None = None, etag: str | None = None, wait: float = 0
    ) -> AssignmentResponse | None:
        """The assignment, or None when unchanged (304). `wait` > 0 long-polls."""
        headers = {"If-None-Match": etag} if etag else {}
        params = {"wait": int(wait)} if wait > 0 else None
        timeout = (self._timeouts[0], self._timeouts[1] + wait)
        resp = self._request(
            "GET",
            path,
            headers=headers,
            params=params,
            timeout=timeout,
            worker_scoped=True,
            token=token,
        )
        if resp.status_code == 304:
            return None
        model = self._model(AssignmentResponse, self._json(resp), "assignment")
        return model.model_copy(update={"etag": resp.headers.get("ETag")})

    # -- plumbing -----------------------------------------------------------------------------

    def _request(
        self,
        method: str,
        path: str,
        *,
        attempts: int | None = None,
        worker_scoped: bool = False,
        token: str | None = None,
        **kwargs: Any,
    ) -> requests.Response:
        url = self.url(path)
        headers = dict(kwargs.pop("headers", None) or {})
        if token:
            self._check_token_transport(url)
            headers["Authorization"] = f"Bearer {token}"
        kwargs.setdefault("timeout", self._timeouts)

        def once() -> requests.Response:
            return self._send(method, url, headers=headers, **kwargs)

        resp = call_with_retry(
            once,
            attempts=attempts or self._attempts,
            delays=self._delays,
            sleep=self._sleep,
            hint=_retry_after,
        )
        self._raise_for_status(method, url, resp, worker_scoped)
        return resp

    def _check_token_transport(self, url: str) -> None:
        """The worker token goes over https, or plain http only to this machine (or when the
        owner allowed it: --allow-insecure-coordinator)."""
        parts = urlsplit(url)
        if parts.scheme == "https" or self._allow_insecure or http.loopback(parts.hostname or ""):
            return
        raise CoordinatorProtocolError(
            f"refusing to send the worker token over plain http to {parts.hostname}: use an "
            "https coordinator URL, or allow it with --allow-insecure-coordinator"
        )

    def _send(self, method: str, url: str, **kwargs: Any) -> requests.Response:
        connect, read = kwargs["timeout"]
        limit = connect + read
        with watchdog.deadline(limit) as exchange:
            try:
                resp = self._exchange(method, url, limit, **kwargs)
            finally:
                if exchange.expired:  # whatever the cut-off read raised or returned
                    raise CoordinatorUnreachable(
                        f"{method} {url} answered too slowly (not within {limit:g} s): cut off"
                    )
        if 300 <= resp.status_code < 400 and resp.status_code != 304:
            raise CoordinatorProtocolError(
                f"{method} {url} answered a redirect (HTTP {resp.status_code} to "
                f"{resp.headers.get('Location', '?')[:200]}): not followed"
            )
        if resp.status_code >= 500 or resp.status_code == 429:
            raise CoordinatorUnreachable(
                f"{method} {url} answered HTTP {resp.status_code}",
                retry_after=http.parse_retry_after(resp.headers.get("Retry-After")),
            )
        return resp

    def _exchange(self, method: str, url: str, limit: float, **kwargs: Any) -> requests.Response:
        """One request and its whole answer, library errors translated."""
        try:
            resp = self._session.request(method, url, stream=True, allow_redirects=False, **kwargs)
            http.read_capped(resp, deadline=time.monotonic() + limit)
        except requests.exceptions.SSLError as exc:
            raise CoordinatorRejected(
                f"TLS verification of {url} failed: {exc} (set RMA_CA_BUNDLE for a private CA)", 0
            ) from exc
        except (
            requests.exceptions.ConnectionError,
            requests.exceptions.Timeout,
            requests.exceptions.ChunkedEncodingError,
        ) as exc:
            raise CoordinatorUnreachable(f"{method} {url} failed: {http.short(exc)}") from exc
        return resp

    @staticmethod
    def _raise_for_status(
        method: str, url: str, resp: requests.Response, worker_scoped: bool
    ) -> None:
        if resp.status_code < 400:
            return
        detail = http.detail(resp)
        if resp.status_code == 404 and worker_scoped:
            raise WorkerForgotten(
                f"coordinator does not know this worker ({method} {url}: {detail})"
            )
        raise CoordinatorRejected(
            f"{method} {url} refused with HTTP {resp.status_code}: {detail}", resp.status_code
        )

    @staticmethod
    def _json(resp: requests.Response) -> Any:
        try:
            return resp.json()
        except (ValueError, RecursionError) as exc:  # RecursionError: absurdly deep nesting
            raise CoordinatorProtocolError(
                f"{resp.request.method} {resp.url} returned invalid JSON "
                f"(HTTP {resp.status_code}, {len(resp.content)} bytes)"
            ) from exc

    @staticmethod
    def _model(model: type[M], data: Any, what: str) -> M:
        try:
            return model.model_validate(data)
        except RecursionError as exc:
            raise CoordinatorProtocolError(f"malformed {what} response: nested too deep") from exc
        except ValidationError as exc:
            fields = "; ".join(
                f"{'.'.join(map(str, e['loc'])) or 'body'}: {e['msg']}" for e in exc.errors()[:5]
            )
            raise CoordinatorProtocolError(f"malformed {what} response: {fields}") from exc


def _retry_after(exc: Exception) -> float | None:
    return exc.retry_after if isinstance(exc, CoordinatorUnreachable) else None
