"""A registry that stalls mid-blob, for tests: a loopback TCP relay in front of the local
registry that forwards each answer until `cut_after` bytes, then sends nothing more and keeps the
connection open — what a registry or a proxy that hangs mid-download looks like to the engine.
Manifests (small) pass; a large layer stops partway."""

from __future__ import annotations

import contextlib
import socket
import threading


class StallingRelay:
    def __init__(self, target: tuple[str, int], cut_after: int) -> None:
        self._target = target
        self._cut_after = cut_after
        self._server = socket.create_server(("127.0.0.1", 0))
        self.port = int(self._server.getsockname()[1])
        self._closed = threading.Event()
        self._open: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while not self._closed.is_set():
            try:
                client, _ = self._server.accept()
            except OSError:
                return
            upstream = socket.create_connection(self._target, timeout=10)
            self._open += [client, upstream]
            threading.Thread(target=self._pipe, args=(client, upstream, None), daemon=True).start()
            threading.Thread(
                target=self._pipe, args=(upstream, client, self._cut_after), daemon=True
            ).start()

    def _pipe(self, src: socket.socket, dst: socket.socket, limit: int | None) -> None:
        sent = 0
        with contextlib.suppress(OSError):
            while not self._closed.is_set():
                data = src.recv(65536)
                if not data:
                    return
                if limit is not None and sent + len(data) > limit:
                    dst.sendall(data[: max(0, limit - sent)])
                    self._closed.wait()  # stalled: nothing more, the connection kept open
                    return
                dst.sendall(data)
                sent += len(data)

    def close(self) -> None:
        self._closed.set()
        self._server.close()
        for sock in self._open:
            with contextlib.suppress(OSError):
                sock.close()
