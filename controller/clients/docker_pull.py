"""A pull that finishes (issue 22): docker-py's pull has no timeout at all (it reads the engine's
stream with `timeout=None`), so a registry that stops sending mid-blob kept a pull `pulling` for
ever. Here the same request is made, and a watchdog shuts the stream's socket down when no byte
has been downloaded or extracted for `stall` seconds: the engine then cancels the pull (its
finished layers stay: the next try resumes from them), and the pull fails as `TransientError`
`pull stalled`, retried with back-off like any outage.
"""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Callable
from typing import Any

import docker
from docker.errors import APIError

from controller.clients.docker_errors import translate
from controller.clients.docker_progress import LayerProgress
from controller.core.errors import TransientError
from controller.core.runtime import ProgressCallback


class Stall:
    """Calls `on_stall` once when `moved()` has not been called for `seconds`."""

    def __init__(self, seconds: float, on_stall: Callable[[], None]) -> None:
        self._seconds = seconds
        self._on_stall = on_stall
        self._moved = threading.Event()
        self._done = threading.Event()
        self.fired = False
        self._thread = threading.Thread(target=self._watch, name="pull-stall", daemon=True)
        self._thread.start()

    def moved(self) -> None:
        self._moved.set()

    def close(self) -> None:
        self._done.set()
        self._moved.set()
        self._thread.join(5)

    def _watch(self) -> None:
        while not self._done.is_set():
            if not self._moved.wait(self._seconds):
                self.fired = True
                self._on_stall()
                return
            self._moved.clear()


def pull(
    api: docker.APIClient,
    repo: str,
    tag: str,
    progress: ProgressCallback | None,
    stall: float,
) -> None:
    """Pull `repo:tag`, reporting progress; TransientError `pull stalled` when nothing moves."""
    registry, _ = docker.auth.resolve_repository_name(repo)
    headers: dict[str, str] = {}
    header = docker.auth.get_config_header(api, registry)
    if header:
        headers["X-Registry-Auth"] = header
    response = api._post(  # api.pull with its response kept, to be cut off
        api._url("/images/create"),
        params={"fromImage": repo, "tag": tag},
        headers=headers,
        stream=True,
        timeout=None,
    )
    api._raise_for_status(response)
    watchdog = Stall(stall, lambda: _cut(api, response))
    try:
        _follow(api._stream_helper(response, decode=True), watchdog, progress)
    except Exception as exc:
        if watchdog.fired:
            raise TransientError(f"pull stalled: no progress for {stall:g} s") from exc
        raise
    finally:
        watchdog.close()
        response.close()
    if watchdog.fired:
        raise TransientError(f"pull stalled: no progress for {stall:g} s")


def _follow(lines: Any, watchdog: Stall, progress: ProgressCallback | None) -> None:
    layers = LayerProgress()
    for line in lines:
        if "error" in line:
            detail = line.get("errorDetail", {}).get("message") or line["error"]
            raise translate(APIError(str(detail), explanation=str(detail)))
        if layers.feed(line):
            watchdog.moved()
            if progress is not None:
                progress(layers.downloaded, layers.total, layers.extracted)


def _cut(api: docker.APIClient, response: Any) -> None:
    """End the blocked read: shut the stream's socket down (closing alone does not wake it)."""
    with contextlib.suppress(Exception):
        raw = api._get_raw_response_socket(response)
        getattr(raw, "_sock", raw).shutdown(socket.SHUT_RDWR)
    with contextlib.suppress(Exception):
        response.close()
