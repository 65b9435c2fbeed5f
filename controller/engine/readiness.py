"""Readiness, probed by the agent (kubelet's startup and readiness probes, issue 22): a service is
announced only after it answers, not when its container runs — vLLM needs minutes to load a
model and its image has no HEALTHCHECK.

The reconcile loop hands over, after each pass, the running containers and their specs (`track`);
a thread of its own probes each one when due, from where the agent runs to the container's
address on the agent's network (never a published port or a tunnel), on a bounded pool (4 at
a time), reading at most 64 KiB of an answer and following no redirect:
- with `readiness` (core/models.py), an HTTP GET of its path: ready on a status in
  `expect_status` (default 200-399) whose body holds `contains`;
- without it and without a Docker HEALTHCHECK, a TCP connect to its first port.
A container is `starting` until its first success (probed every second), then `healthy`;
`failure_threshold` failures in a row make it `unhealthy` (withdrawn) until it succeeds again.
One that has not succeeded within `start_period` is stopped (the loop starts it again, which
counts for the crash-loop back-off) and its last probe error reported. A `warmup` (Ollama
pulling its model through its own API) is POSTed once, after the first answer and before the
service counts as ready; until it succeeds the service stays `starting`. A container seen anew —
created, or started again after a pause or the GPU given back — starts over as `starting`.
"""

from __future__ import annotations

import http.client
import socket
import threading
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace

import structlog

from controller.core.models import ActualContainer, ContainerSpec, Readiness, Warmup
from controller.core.status import AgentStatus

log = structlog.get_logger(__name__)
MAX_ANSWER = 64 * 1024
STARTING_PERIOD = 1.0


@dataclass
class Probed:
    """What the prober knows of one container (by id)."""

    cid: str
    name: str
    address: str
    port: int
    check: Readiness | None
    since: float
    ready: bool = False
    ever: bool = False
    failures: int = 0
    error: str = ""
    due: float = 0.0
    busy: bool = False
    restarted: bool = False
    warmed: bool = False

    @property
    def state(self) -> str:
        if self.ready:
            return "healthy"
        return "unhealthy" if self.ever else "starting"


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


class ReadinessProber:
    def __init__(
        self,
        stop: threading.Event,
        *,
        restart: Callable[[str], None],
        on_change: Callable[[], None] = lambda: None,
        clock: Callable[[], float] = time.monotonic,
        workers: int = 4,
        probe_fn: Callable[[str, int, Readiness | None, float], str] = probe,
        warm_fn: Callable[[str, int, Warmup], str] = warm_up,
    ) -> None:
        self._stop, self._restart, self._on_change = stop, restart, on_change
        self._clock, self._probe, self._warm = clock, probe_fn, warm_fn
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="probe")
        self._lock = threading.Lock()
        self._known: dict[str, Probed] = {}  # container id -> its probe state
        self._wanted: frozenset[str] = frozenset()  # names that are probed once they run
        self._wake = threading.Event()

    def start(self) -> threading.Thread:
        thread = threading.Thread(target=self._run, name="readiness", daemon=True)
        thread.start()
        return thread

    def track(self, specs: Iterable[ContainerSpec], actual: Iterable[ActualContainer]) -> None:
        """The running containers to probe, as the latest pass saw them (any thread)."""
        wanted = {s.name: s for s in specs if s.ports}
        wanted = {n: s for n, s in wanted.items() if s.readiness or s.healthcheck is None}
        now, seen = self._clock(), {}
        for c in actual:
            spec = wanted.get(c.name)
            if spec is None or c.state != "running" or not spec.ports:
                continue
            address = dict(c.addresses).get(spec.network, "")
            if not address or (spec.readiness is None and spec.healthcheck is not None):
                continue  # nowhere to probe, or Docker's own check decides
            seen[c.id] = (spec, address)
        with self._lock:
            self._wanted = frozenset(wanted)
            for gone in set(self._known) - set(seen):
                del self._known[gone]
            for cid, (spec, address) in seen.items():
                if cid not in self._known:
                    port = (spec.readiness.port if spec.readiness else None) or spec.ports[
                        0
                    ].container
                    self._known[cid] = Probed(cid, spec.name, address, port, spec.readiness, now)
        self._wake.set()

    def overlay(self, status: AgentStatus) -> AgentStatus:
        """The status with each probed container's readiness as its health (a Docker
        HEALTHCHECK that fails or still starts keeps the last word) and, while it is not
        ready, the probe's error and how long it has been starting."""
        with self._lock:
            by_name = {p.name: (p.state, p.error, p.since) for p in self._known.values()}
            wanted = self._wanted
        now, rows = self._clock(), []
        for c in status.containers:
            found = by_name.get(c.name)
            if found is None and c.name in wanted:
                found = ("starting", "", now)  # running, not probed yet: not ready yet
            if found is None or c.state != "running" or c.health in ("starting", "unhealthy"):
                rows.append(c)
                continue
            state, error, since = found
            if state == "healthy":
                rows.append(replace(c, health=state))
                continue
            starting = round(now - since) if state == "starting" else None
            why = c.error or error or None
            rows.append(replace(c, health=state, error=why, starting_for=starting))
        return replace(status, containers=tuple(rows))

    def check_now(self) -> None:
        """Probe every container that is due, in this thread (the prober's own uses its pool)."""
        due, _ = self._take_due()
        for p in due:
            self._one(p)

    def _take_due(self) -> tuple[list[Probed], float]:
        """The probes due now (marked busy), and how long until the next one."""
        now = self._clock()
        with self._lock:
            due = [p for p in self._known.values() if p.due <= now and not p.busy]
            for p in due:
                p.busy = True
            later = [p.due - now for p in self._known.values() if p.due > now]
        return due, min([1.0, *later])

    def _run(self) -> None:
        while not self._stop.is_set():
            due, wait = self._take_due()
            for p in due:
                self._pool.submit(self._one, p)
            self._wake.wait(wait)
            self._wake.clear()
        self._pool.shutdown(wait=False, cancel_futures=True)

    def _one(self, p: Probed) -> None:
        check = p.check or Readiness("/")
        try:
            error = self._probe(p.address, p.port, p.check, check.timeout)
            if not error and check.warmup is not None and not p.warmed:
                error = self._warm(p.address, p.port, check.warmup)
                p.warmed = not error
        except Exception as exc:  # never a probe stuck `busy` for good: a failed probe
            log.exception("probe_crashed", container=p.name)
            error = f"probe crashed: {type(exc).__name__}"
        now, changed, restart = self._clock(), False, False
        with self._lock:
            was = p.state
            if not error:
                p.ready, p.ever, p.failures, p.error = True, True, 0, ""
            else:
                p.failures, p.error = p.failures + 1, error
                if p.ever and p.failures >= check.failure_threshold:
                    p.ready = False
                restart = not p.ever and now - p.since >= check.start_period and not p.restarted
                p.restarted = p.restarted or restart
            p.due = now + (check.period if p.ever else STARTING_PERIOD)
            p.busy = False
            changed = p.state != was
        if changed:
            log.info("service_" + p.state, container=p.name, error=p.error or None)
            self._on_change()
        if restart:
            log.error(
                "service_not_ready",
                container=p.name,
                seconds=check.start_period,
                error=error,
                action="restarted (counts for the crash-loop back-off)",
            )
            self._restart(p.cid)
