"""A byte-forwarding proxy that counts HTTP requests, put between the agent and the Docker socket
(unix) or the coordinator (TCP) to measure how many calls the agent makes while idle. Clients
here (docker-py, requests) send one request at a time per connection and each request's head in
one write, so a chunk that starts with a method and a path is one request.
"""

from __future__ import annotations

import contextlib
import re
import socket
import threading
from collections import Counter
from pathlib import Path

REQUEST_LINE = re.compile(rb"^(GET|POST|PUT|DELETE|HEAD|PATCH) (/[^ ?]*)")
VERSION_PREFIX = re.compile(r"^/v[0-9.]+")
ID_SEGMENT = re.compile(r"/([0-9a-f]{12,64}|worker-[0-9a-f]{8})(?=/|$)")


class CountingProxy:
    def __init__(self, listen: Path | tuple[str, int], target: Path | tuple[str, int]) -> None:
        self._target = target
        family = socket.AF_UNIX if isinstance(listen, Path) else socket.AF_INET
        self._server = socket.socket(family, socket.SOCK_STREAM)
        self._server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._server.bind(str(listen) if isinstance(listen, Path) else listen)
        self._server.listen(64)
        self.address = self._server.getsockname()
        self.requests: Counter[str] = Counter()
        self._lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    def total(self) -> int:
        with self._lock:
            return sum(self.requests.values())

    def snapshot(self) -> Counter[str]:
        with self._lock:
            return Counter(self.requests)

    def _connect(self) -> socket.socket:
        if isinstance(self._target, Path):
            upstream = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            upstream.connect(str(self._target))
        else:
            upstream = socket.create_connection(self._target)
        return upstream

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self._server.accept()
            except OSError:
                return
            upstream = self._connect()
            threading.Thread(target=self._pump, args=(conn, upstream, True), daemon=True).start()
            threading.Thread(target=self._pump, args=(upstream, conn, False), daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket, count: bool) -> None:
        try:
            while data := src.recv(65536):
                if count:
                    self._count(data)
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)

    def _count(self, data: bytes) -> None:
        match = REQUEST_LINE.match(data)
        if match:
            path = VERSION_PREFIX.sub("", match.group(2).decode(errors="replace"))
            # Collapse container and worker ids so that calls group by kind.
            path = ID_SEGMENT.sub("/{id}", path)
            with self._lock:
                self.requests[f"{match.group(1).decode()} {path}"] += 1

    def close(self) -> None:
        self._server.close()
