"""TCP relays on loopback, for tests: each new connection goes to the next of its targets, round
robin — what a load balancer in front of coordinator replicas does — counting the connections each
target was given. With `cut_after`, each answer is forwarded until that many bytes, then nothing
more while the connection stays open: what a registry or a proxy that hangs mid-download looks
like to the engine (manifests, small, pass; a large layer stops partway)."""

from __future__ import annotations

import contextlib
import itertools
import socket
import threading
from collections import Counter


class RoundRobinRelay:
    def __init__(
        self, targets: list[tuple[str, int]] | None = None, cut_after: int | None = None
    ) -> None:
        self._targets = itertools.cycle(targets or [])
        self._cut_after = cut_after
        self._server = socket.create_server(("127.0.0.1", 0))
        self.port = int(self._server.getsockname()[1])
        self.url = f"http://127.0.0.1:{self.port}"
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
            pipes = ((client, upstream, None), (upstream, client, self._cut_after))
            for src, dst, limit in pipes:
                threading.Thread(target=self._pipe, args=(src, dst, limit), daemon=True).start()

    def _pipe(self, src: socket.socket, dst: socket.socket, limit: int | None) -> None:
        sent = 0
        with contextlib.suppress(OSError):
            while not self._closed.is_set():
                data = src.recv(65536)
                if not data:
                    break
                if limit is not None and sent + len(data) > limit:
                    dst.sendall(data[: max(0, limit - sent)])
                    self._closed.wait()  # stalled: nothing more, the connection kept open
                    return
                dst.sendall(data)
                sent += len(data)
        with contextlib.suppress(OSError):
            dst.shutdown(socket.SHUT_WR)

    def close(self) -> None:
        self._closed.set()
        self._server.close()
        for sock in self._open:
            with contextlib.suppress(OSError):
                sock.close()


class StallingRelay(RoundRobinRelay):
    """One target, each answer cut off after `cut_after` bytes (a registry that stalls)."""

    def __init__(self, target: tuple[str, int], cut_after: int) -> None:
        super().__init__([target], cut_after)
