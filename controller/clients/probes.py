"""The agent's probes on the wire (issue 22), each one bounded: at most 64 KiB of an answer read,
no redirect followed, a timeout on every socket. The readiness prober (engine/readiness.py)
decides when to call them and what their answers mean.

- `probe`: readiness — an HTTP GET of the spec's path (status and `contains`), or without one a
  TCP connect to the first port;
- `warm_up`: the readiness `warmup` POST (Ollama pulling its model through its own API);
- `speaks_http`: whether a port a coordinator said nothing about answers HTTP at all.
"""

from __future__ import annotations

import http.client
import socket

from controller.core.models import Readiness, Warmup

MAX_ANSWER = 64 * 1024


def warm_up(address: str, port: int, warmup: Warmup) -> str:
    """ "" when the warm-up POST answered 2xx, else why not."""
    conn = http.client.HTTPConnection(address, port, timeout=warmup.timeout)
    try:
        headers = {"Content-Type": "application/json", "User-Agent": "rma-worker-probe"}
        conn.request("POST", warmup.path, body=warmup.body.encode(), headers=headers)
        answer = conn.getresponse()
        answer.read(MAX_ANSWER)
    except (OSError, http.client.HTTPException) as exc:
        return f"warm-up POST {warmup.path}: {type(exc).__name__}: {exc}"[:200]
    finally:
        conn.close()
    return "" if 200 <= answer.status < 300 else f"warm-up POST {warmup.path}: HTTP {answer.status}"


def speaks_http(address: str, port: int, timeout: float) -> str:
    """`http` when the port answers a `GET /` with an HTTP status line, `other` when it answers
    anything else, "" when it said nothing (ask again)."""
    head = b""
    try:
        with socket.create_connection((address, port), timeout=timeout) as sock:
            sock.sendall(
                b"GET / HTTP/1.0\r\nHost: rma-origin\r\nUser-Agent: rma-worker-probe\r\n\r\n"
            )
            while len(head) < len(b"HTTP/"):
                more = sock.recv(16)
                if not more:
                    break
                head += more
    except OSError:
        pass
    if not head:
        return ""
    return "http" if head.startswith(b"HTTP/") else "other"


def probe(address: str, port: int, check: Readiness | None, timeout: float) -> str:
    """ "" when ready, else why not (one line)."""
    if check is None:
        try:
            with socket.create_connection((address, port), timeout=timeout):
                return ""
        except OSError as exc:
            return f"TCP {port}: {exc.strerror or exc}"
    conn = http.client.HTTPConnection(address, port, timeout=timeout)
    try:
        conn.request("GET", check.path, headers={"User-Agent": "rma-worker-probe"})
        answer = conn.getresponse()
        body = answer.read(MAX_ANSWER).decode("utf-8", "replace")
    except (OSError, http.client.HTTPException) as exc:
        return f"GET {check.path}: {type(exc).__name__}: {exc}"[:200]
    finally:
        conn.close()
    wanted = check.expect_status or tuple(range(200, 400))
    if answer.status not in wanted:
        return f"GET {check.path}: HTTP {answer.status}"
    if check.contains and check.contains not in body:
        return f"GET {check.path}: the answer does not hold {check.contains!r}"
    return ""
