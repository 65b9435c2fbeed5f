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
A container whose coordinator said nothing of HTTP (`rma.http-from: probe`) is asked, once its
port accepts, whether it speaks HTTP (`GET /`, the first bytes read): one that answers `HTTP/` is
remembered (`answered_http`), gets its tunnel and shows `http_from: probe`; its tunnel found
already there (the agent restarted) says the same. Until then that tunnel is not shown.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace

import structlog

from controller.clients.probes import probe, speaks_http, warm_up
from controller.core.models import ActualContainer, ContainerSpec, Readiness, Warmup
from controller.core.status import AgentStatus
from controller.core.tunnels import asked_by_probe, tunnel_name

log = structlog.get_logger(__name__)
STARTING_PERIOD = 1.0
HTTP_TRIES = 3  # answers that said nothing before a port counts as not HTTP


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
    http_tries: int = HTTP_TRIES  # asks left whether it speaks HTTP (0: not asked)

    @property
    def state(self) -> str:
        if self.ready:
            return "healthy"
        return "unhealthy" if self.ever else "starting"


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
        http_fn: Callable[[str, int, float], str] = speaks_http,
    ) -> None:
        self._stop, self._restart, self._on_change = stop, restart, on_change
        self._clock, self._probe, self._warm, self._ask = clock, probe_fn, warm_fn, http_fn
        self._http: set[str] = set()  # names asked by probe that answered HTTP
        self._asked: frozenset[str] = frozenset()  # the tunnels of those asked by probe
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
        asked = {tunnel_name(n): n for n, s in wanted.items() if asked_by_probe(s)}
        with self._lock:
            self._wanted, self._asked = frozenset(wanted), frozenset(asked)
            self._http &= set(asked.values())
            self._http |= {asked[c.name] for c in actual if c.name in asked}
            for gone in set(self._known) - set(seen):
                del self._known[gone]
            for cid, (spec, address) in seen.items():
                if cid not in self._known:
                    self._known[cid] = _probed(cid, spec, address, now)
        self._wake.set()

    def answered_http(self) -> frozenset[str]:
        """The containers asked by probe that answered HTTP (they get a tunnel)."""
        with self._lock:
            return frozenset(self._http)

    def overlay(self, status: AgentStatus) -> AgentStatus:
        """The status with each probed container's readiness as its health (a Docker
        HEALTHCHECK that fails or still starts keeps the last word) and, while it is not
        ready, the probe's error and how long it has been starting."""
        with self._lock:
            by_name = {p.name: (p.state, p.error, p.since) for p in self._known.values()}
            wanted, http = self._wanted, frozenset(self._http)
            unasked = self._asked - {tunnel_name(n) for n in http}
        now, rows = self._clock(), []
        marked = (
            replace(c, http=True, http_from="probe") if c.name in http else c
            for c in status.containers
            if c.name not in unasked or c.state != "waiting"
        )
        for c in marked:
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
        answered = False
        try:
            error = self._probe(p.address, p.port, p.check, check.timeout)
            if not error and check.warmup is not None and not p.warmed:
                error = self._warm(p.address, p.port, check.warmup)
                p.warmed = not error
            answered = not error and self._asked_http(p, check.timeout)
        except Exception as exc:  # never a probe stuck `busy` for good: a failed probe
            log.exception("probe_crashed", container=p.name)
            error = f"probe crashed: {type(exc).__name__}"
        changed, restart = self._record(p, error, answered, check)
        if changed:
            log.info("service_" + p.state, container=p.name, error=p.error or None)
        if changed or answered:
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

    def _record(self, p: Probed, error: str, answered: bool, check: Readiness) -> tuple[bool, bool]:
        """One probe's answer kept: (whether its state changed, whether to restart it)."""
        now, restart = self._clock(), False
        with self._lock:
            if answered:
                self._http.add(p.name)
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
            return p.state != was, restart

    def _asked_http(self, p: Probed, timeout: float) -> bool:
        """Whether `p`, asked by probe, answered HTTP just now (at most HTTP_TRIES asks)."""
        with self._lock:
            if p.http_tries <= 0 or p.name in self._http:
                return False  # not asked, or already known
        verdict = self._ask(p.address, p.port, timeout)
        p.http_tries = 0 if verdict else p.http_tries - 1
        if verdict == "http":
            log.info("service_speaks_http", container=p.name, action="tunnelled")
        return verdict == "http"


def _probed(cid: str, spec: ContainerSpec, address: str, now: float) -> Probed:
    port = (spec.readiness.port if spec.readiness else None) or spec.ports[0].container
    tries = HTTP_TRIES if asked_by_probe(spec) else 0
    return Probed(cid, spec.name, address, port, spec.readiness, now, http_tries=tries)
