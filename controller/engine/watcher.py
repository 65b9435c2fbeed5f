"""Wakes the reconcile loop when the engine reports that a managed container died, stopped, was
paused or removed, so it is restored within a pass instead of at the next timer tick.

The stream is reopened with capped backoff when the engine goes away; each (re)connect rings the
loop once, since events may have been missed while disconnected. Any other error (a bug, a
library's surprise) is logged with its traceback and the stream reopened the same way: the
watcher thread never ends silently while the agent runs.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

import structlog

from controller.core.backoff import Delays
from controller.core.clock import SYSTEM, Clock
from controller.core.errors import AgentError
from controller.core.runtime import ContainerEvent, ContainerRuntime, EventStream

log = structlog.get_logger(__name__)
# A local socket: reconnecting often costs nothing.
RECONNECT = Delays(base=0.5, cap=5.0)


class EventWatcher:
    def __init__(
        self,
        runtime: ContainerRuntime,
        on_event: Callable[[ContainerEvent | None], None],
        stop: threading.Event,
        *,
        delays: Delays = RECONNECT,
        clock: Clock = SYSTEM,
    ) -> None:
        self._runtime, self._clock = runtime, clock
        self._on_event = on_event
        self._stop = stop
        self._delays = delays
        self._stream: EventStream | None = None
        self._thread = threading.Thread(target=self._run, name="docker-events", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def close(self, timeout: float = 2.0) -> None:
        """Stop watching (the caller has set `stop`); unblocks a pending read."""
        stream = self._stream
        if stream is not None:
            stream.close()
        if self._thread.is_alive():
            self._thread.join(timeout)

    def _run(self) -> None:
        failures = 0
        while not self._stop.is_set():
            try:
                self._stream = self._runtime.events()
                log.debug("event_stream_open")
                self._on_event(None)
                failures = 0
                for event in self._stream:
                    if self._stop.is_set():
                        return
                    log.debug("container_event", action=event.action, container=event.name)
                    self._on_event(event)
                if self._stop.is_set():
                    return
                log.warning("event_stream_ended", hint="engine restarted?; reconnecting")
            except AgentError as exc:
                if self._stop.is_set():
                    return
                log.warning(
                    "event_stream_failed", error=str(exc), retry_in=self._delays.delay(failures + 1)
                )
            except Exception:  # never the end of the thread: logged, then reopened
                if self._stop.is_set():
                    return
                retry = self._delays.delay(failures + 1)
                log.exception("event_watcher_crashed", retry_in=retry)
            failures += 1
            self._clock.wait(self._stop, self._delays.delay(failures))
