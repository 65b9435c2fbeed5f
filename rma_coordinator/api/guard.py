"""Where the proxy may go: a worker's announced URL is a stranger's word, and without a check the
coordinator would fetch whatever it names — its own host's services on loopback, the LAN it sits
in, its own proxy in a loop (the contract's Part 4 safety, issue 21).

A URL is screened when it is announced (registration, a heartbeat's newer URL: refused ones are
kept out of the service index) and again when the proxy connects, with the address it resolved
to pinned for that connection (a name that resolved to a public address when announced cannot
point to loopback later: DNS rebinding). Refused unless `--allow-private-workers` (a LAN pool, the
tests, `make run`): loopback, private, link-local, multicast, reserved and unspecified addresses,
carrier-grade NAT. Always refused: anything but http/https, and the coordinator's own listening
address and port.
"""

from __future__ import annotations

import ipaddress
import socket
import threading
import time
import urllib.parse
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

Resolver = Callable[[str, int], list[str]]
MAX_REMEMBERED = 10_000
REMEMBER_FOR = 60.0


class Refused(ValueError):
    """The URL may not be proxied to; the message says why."""


def resolve(host: str, port: int) -> list[str]:
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


@dataclass(frozen=True)
class Target:
    """A screened URL: connect to `address` (pinned), say `host` in Host and TLS."""

    url: str
    scheme: str
    host: str
    port: int
    address: str

    def pinned(self, path: str) -> str:
        """The URL to connect to, the resolved address in place of the name, with `path`."""
        literal = f"[{self.address}]" if ":" in self.address else self.address
        base = self.url.rstrip("/")
        split = urllib.parse.urlsplit(base)
        return f"{self.scheme}://{literal}:{self.port}{split.path}/{path}"

    @property
    def host_header(self) -> str:
        default = 443 if self.scheme == "https" else 80
        name = f"[{self.host}]" if ":" in self.host else self.host
        return name if self.port == default else f"{name}:{self.port}"


@dataclass
class Guard:
    allow_private: bool = False
    own: frozenset[tuple[str, int]] = frozenset()  # (address, port) the coordinator listens on
    resolver: Resolver = resolve
    clock: Callable[[], float] = time.monotonic
    _seen: OrderedDict[str, tuple[float, str]] = field(default_factory=OrderedDict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def target(self, url: str) -> Target:
        """The URL resolved and checked; Refused with the reason."""
        split = urllib.parse.urlsplit(url)
        if split.scheme not in ("http", "https") or not split.hostname:
            raise Refused("not an http(s) URL")
        if split.username or split.password:
            raise Refused("credentials in the URL")
        try:
            port = split.port or (443 if split.scheme == "https" else 80)
        except ValueError as exc:
            raise Refused("a bad port") from exc
        try:
            addresses = self.resolver(split.hostname, port)
        except OSError as exc:
            raise Refused(f"{split.hostname} does not resolve") from exc
        if not addresses:
            raise Refused(f"{split.hostname} does not resolve")
        for address in addresses:  # every address: a name with one bad one is refused whole
            self._check(address, port)
        return Target(url, split.scheme, split.hostname, port, addresses[0])

    def _check(self, address: str, port: int) -> None:
        ip = ipaddress.ip_address(address.partition("%")[0])
        mapped = getattr(ip, "ipv4_mapped", None)
        ip = mapped or ip
        if (str(ip), port) in self.own or (ip.is_unspecified and port in {p for _, p in self.own}):
            raise Refused("the coordinator's own address")
        if ip.is_loopback and any(
            a in ("0.0.0.0", "::") or ipaddress.ip_address(a).is_loopback
            for a, p in self.own
            if p == port
        ):
            raise Refused("the coordinator's own address")
        if self.allow_private:
            return
        if not ip.is_global or ip.is_multicast:
            raise Refused(f"{ip} is not a public address (--allow-private-workers)")

    def announced(self, url: str) -> bool:
        """Whether an announced URL may enter the index (remembered a minute: a heartbeat
        repeats the same URLs)."""
        if not url:
            return True
        now = self.clock()
        with self._lock:
            known = self._seen.get(url)
            if known is not None and now - known[0] < REMEMBER_FOR:
                return known[1] == ""
        try:
            self.target(url)
            verdict = ""
        except Refused as exc:
            verdict = str(exc)
        with self._lock:
            self._seen[url] = (now, verdict)
            self._seen.move_to_end(url)
            while len(self._seen) > MAX_REMEMBERED:
                self._seen.popitem(last=False)
        return verdict == ""

    def known(self, url: str) -> bool:
        """Whether `announced(url)` would answer without resolving (the heartbeat's fast path)."""
        with self._lock:
            found = self._seen.get(url)
            return not url or (found is not None and self.clock() - found[0] < REMEMBER_FOR)

    def screen(self, rows: list[dict[str, Any]] | None, key: str = "service_url") -> None:
        """Blank, in place, each announced URL that may not be proxied to (the row stays: the
        worker runs the service, the pool just cannot be sent there)."""
        for row in rows or ():
            url = row.get(key) if isinstance(row, dict) else None
            if isinstance(url, str) and not self.announced(url):
                row[key] = ""
