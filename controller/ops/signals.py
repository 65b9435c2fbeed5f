"""Signals as the agent understands them: SIGTERM/SIGINT/SIGHUP stop gracefully (containers
removed, worker unregistered; SIGHUP is the terminal the agent runs in closing, which must not
leave its containers running unattended); SIGUSR1 stops and leaves the containers running and
the worker registered (for agent upgrades: the next start adopts them); a second signal during
shutdown exits at once with 130.
"""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Callable
from types import FrameType

import structlog

from controller.core.models import LABEL_INSTANCE

log = structlog.get_logger(__name__)
EXIT_FORCED = 130


class Signals:
    """Turns SIGTERM/SIGINT/SIGHUP/SIGUSR1 into events; restores the previous handlers on
    close."""

    def __init__(self, stop: threading.Event, wake: Callable[[], None]) -> None:
        self.stop = stop
        self.leave_running = threading.Event()
        self._wake = wake
        self._previous = {
            sig: signal.signal(sig, self._handle)
            for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGUSR1)
        }

    def _handle(self, signum: int, _frame: FrameType | None) -> None:
        name = signal.Signals(signum).name
        if self.stop.is_set():
            log.warning(
                "forced_exit",
                signal=name,
                containers="left running",
                cleanup=f"docker ps -a --filter label={LABEL_INSTANCE}",
            )
            os._exit(EXIT_FORCED)
        if signum == signal.SIGUSR1:
            self.leave_running.set()
        log.info(
            "shutdown_requested",
            signal=name,
            containers="left running" if self.leave_running.is_set() else "removed",
        )
        self.stop.set()
        self._wake()

    def close(self) -> None:
        for sig, old in self._previous.items():
            signal.signal(sig, old)
