"""Prometheus metrics (prometheus-client, a private registry): the Observer the agent reports to.

rma_worker_passes_total{result}, rma_worker_pass_duration_seconds, rma_worker_actions_total{kind,
outcome}, rma_worker_containers{state}, rma_worker_heartbeats_total{result},
rma_worker_pull_bytes_total, rma_worker_energy_joules_total{source} (the energy receipt: measured
energy attributed to the agent's work), rma_worker_hold{condition} (1 while one of the owner's
conditions holds containers stopped).
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

STATES = (
    "running",
    "exited",
    "created",
    "paused",
    "yielded",
    "restarting",
    "missing",
    "pulling",
    "failed",
    "conflict",
    "refused",
    "backoff",
)


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self._passes = Counter("rma_worker_passes", "Reconcile passes", ["result"], registry=r)
        self._pass_seconds = Histogram(
            "rma_worker_pass_duration_seconds",
            "Duration of reconcile passes",
            registry=r,
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
        )
        self._actions = Counter(
            "rma_worker_actions", "Actions executed", ["kind", "outcome"], registry=r
        )
        self._containers = Gauge(
            "rma_worker_containers", "Desired containers by state", ["state"], registry=r
        )
        self._heartbeats = Counter(
            "rma_worker_heartbeats", "Heartbeats sent", ["result"], registry=r
        )
        self._pull_bytes = Counter("rma_worker_pull_bytes", "Image bytes downloaded", registry=r)
        self._energy = Counter(
            "rma_worker_energy_joules",
            "Measured energy attributed to the agent's containers",
            ["source"],
            registry=r,
        )
        self._holds = Gauge(
            "rma_worker_hold",
            "1 while an owner's condition holds containers stopped",
            ["condition"],
            registry=r,
        )

    def pass_done(self, ok: bool, seconds: float) -> None:
        self._passes.labels("ok" if ok else "error").inc()
        self._pass_seconds.observe(seconds)

    def action(self, kind: str, outcome: str) -> None:
        self._actions.labels(kind, outcome).inc()

    def containers(self, by_state: dict[str, int]) -> None:
        for state in set(STATES) | by_state.keys():
            self._containers.labels(state).set(by_state.get(state, 0))

    def heartbeat(self, ok: bool) -> None:
        self._heartbeats.labels("ok" if ok else "failed").inc()

    def pull_bytes(self, n: int) -> None:
        if n > 0:
            self._pull_bytes.inc(n)

    def energy(self, source: str, joules: float) -> None:
        if joules > 0:
            self._energy.labels(source).inc(joules)

    def holds(self, active: dict[str, bool]) -> None:
        for condition, on in active.items():
            self._holds.labels(condition).set(1 if on else 0)

    def render(self) -> bytes:
        return bytes(generate_latest(self.registry))
