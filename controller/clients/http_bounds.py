"""Bounded HTTP for the coordinator client: a body read whole only up to a size and a deadline,
Retry-After understood, origins compared, loopback recognised, and errors shortened for a log line.
"""

from __future__ import annotations

import email.utils
import time
from typing import Any
from urllib.parse import urlsplit

import requests

from controller.core.addresses import loopback

__all__ = ["detail", "loopback", "origin", "parse_retry_after", "read_capped", "short"]

from controller.core.errors import CoordinatorProtocolError, CoordinatorUnreachable

MAX_RETRY_AFTER = 300.0
MAX_BODY = 4 * 1024 * 1024  # no answer of the contract comes near this; a larger one is refused


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """Seconds to wait from a Retry-After header (delta-seconds or HTTP-date), capped."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return min(float(value), MAX_RETRY_AFTER)
    try:
        when = email.utils.parsedate_to_datetime(value).timestamp()
    except (TypeError, ValueError):
        return None
    return max(0.0, min(when - (time.time() if now is None else now), MAX_RETRY_AFTER))


def read_capped(resp: requests.Response, *, deadline: float) -> None:
    """Read the body, at most MAX_BODY bytes and within the deadline (a trickling server cannot
    hold a thread forever, nor a huge one fill memory)."""
    chunks: list[bytes] = []
    size = 0
    try:
        for chunk in resp.iter_content(64 * 1024):
            size += len(chunk)
            if size > MAX_BODY:
                raise CoordinatorProtocolError(
                    f"{resp.request.method} {resp.url} answered more than {MAX_BODY} bytes"
                )
            if time.monotonic() > deadline:
                raise CoordinatorUnreachable(
                    f"{resp.request.method} {resp.url} answered too slowly"
                )
            chunks.append(chunk)
    finally:
        resp.close()
    resp._content = b"".join(chunks)  # requests' own cache: .json() and .text read it


def origin(url: str) -> tuple[str, str]:
    parts = urlsplit(url)
    return parts.scheme, parts.netloc.lower()


def detail(resp: requests.Response) -> str:
    """The coordinator's own words for a refusal, whatever its dialect's shape: FastAPI's
    `detail` (a string, or a list of field errors), `error` / `message`, or plain text."""
    try:
        data = resp.json()
    except (ValueError, RecursionError):
        return resp.text[:200] or resp.reason
    if isinstance(data, dict):
        found = data.get("detail", data.get("error", data.get("message")))
        if isinstance(found, list):
            return "; ".join(_field_error(e) for e in found[:5])[:300]
        if found is not None:
            return str(found)[:200]
    return str(data)[:200]


def _field_error(error: Any) -> str:
    """FastAPI's 422 entry {"loc": ["body", "worker_id"], "msg": "Field required"}."""
    if isinstance(error, dict) and "msg" in error:
        loc = ".".join(str(p) for p in error.get("loc") or ())
        return f"{loc}: {error['msg']}" if loc else str(error["msg"])
    return str(error)[:100]


def short(exc: Exception) -> str:
    text = str(exc)
    for marker in (
        "Connection refused",
        "timed out",
        "Name or service not known",
        "Read timed out",
        "Max retries exceeded",
    ):
        if marker in text:
            return marker.lower()
    return text[:200]
