"""A round-robin TCP relay on loopback, for tests: each new connection goes to the next of its
targets — what a load balancer in front of coordinator replicas does. It counts the connections
each target was given."""

from __future__ import annotations

import contextlib
import itertools
import socket
import threading
from collections import Counter


class RoundRobinRelay:
    def __init__(self, targets: list[tuple[str, int]] | None = None) -> None:
        self._targets = itertools.cycle(targets or [])
        self._server = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self._server.getsockname()[1]}"
        self.connections: Counter[int] = Counter()  # target port -> connections given
        self._closed = threading.Event()
        self._open: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def aim(self, targets: list[tuple[str, int]]) -> None:
        """Where connections go from now on (targets known only once the relay has its URL)."""
        self._targets = itertools.cycle(targets)

    def _accept(self) -> None:
        while not self._closed.is_set():
            try:
                client, _ = self._server.accept()
            except OSError:
                return
            target = next(self._targets)
            self.connections[target[1]] += 1
            try:
                upstream = socket.create_connection(target, timeout=10)
            except OSError:
                client.close()
                continue
            upstream.settimeout(None)
            self._open += [client, upstream]
            for src, dst in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(src, dst), daemon=True).start()

    @staticmethod
    def _pipe(src: socket.socket, dst: socket.socket) -> None:
        with contextlib.suppress(OSError):
            while data := src.recv(65536):
                dst.sendall(data)
        with contextlib.suppress(OSError):
            dst.shutdown(socket.SHUT_WR)

    def close(self) -> None:
        self._closed.set()
        self._server.close()
        for sock in self._open:
            with contextlib.suppress(OSError):
                sock.close()
