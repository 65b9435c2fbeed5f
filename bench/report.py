"""Turns one benchmark run's results into what people read: the targets met or missed, a Markdown
report (the README embeds it between markers) and a PNG plot. Pure functions of the results dict,
except `plot`, which writes the image.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

BEGIN, END = "<!-- bench:begin -->", "<!-- bench:end -->"


def _get(results: dict[str, Any], *path: str) -> Any:
    node: Any = results
    for key in path:
        if not isinstance(node, dict) or key not in node:
            return None
        node = node[key]
    return node


# (label, path into the results, comparison, target, unit)
TARGETS: list[tuple[str, tuple[str, ...], str, float, str]] = [
    ("`rma-worker --version` (median)", ("startup", "version", "median"), "<", 0.12, "s"),
    ("`rma-worker --help` (median)", ("startup", "help", "median"), "<", 0.12, "s"),
    (
        "cold converge N=20: agent / docker-compose",
        ("converge", "sizes", "20", "agent_over_compose"),
        "<=",
        1.0,
        "x",
    ),
    (
        "cold converge N=20, process start → exit: agent / docker-compose",
        ("converge", "sizes", "20", "agent_over_compose_exit"),
        "<=",
        1.0,
        "x",
    ),
    (
        "cold converge N=50, process start → exit: agent / docker-compose",
        ("converge", "sizes", "50", "agent_over_compose_exit"),
        "<=",
        1.0,
        "x",
    ),
    (
        "cold converge N=50: agent / engine limit",
        ("converge", "sizes", "50", "agent_over_limit"),
        "<=",
        1.25,
        "x",
    ),
    (
        "cold converge N=50: agent / docker-compose",
        ("converge", "sizes", "50", "agent_over_compose"),
        "<=",
        1.0,
        "x",
    ),
    (
        "`rma-worker` start → first answer through the coordinator (median)",
        ("contribution", "start_to_first_answer", "median"),
        "<",
        2.0,
        "s",
    ),
    ("self-heal after `docker rm -f` (median)", ("heal", "remove", "median"), "<", 1.0, "s"),
    ("self-heal after `docker kill` (median)", ("heal", "kill", "median"), "<", 1.0, "s"),
    ("propagation with long poll (median)", ("propagation", "long_poll", "median"), "<", 1.0, "s"),
    (
        "service running → URL at the coordinator (median)",
        ("reach", "service_start_to_listed", "median"),
        "<",
        2.0,
        "s",
    ),
    (
        "tunnel killed → requests work again (median)",
        ("reach", "tunnel_killed_to_working", "median"),
        "<",
        2.0,
        "s",
    ),
    (
        "first ready probe → URL at the coordinator (median)",
        ("ready", "ready_to_listed", "median"),
        "<=",
        0.5,
        "s",
    ),
    ("502s through the proxy while the model loads", ("ready", "proxy_502"), "<=", 0, ""),
    (
        "proxy: time to first byte added (median)",
        ("proxy", "ttfb_added_ms"),
        "<=",
        10.0,
        "ms",
    ),
    (
        "proxy: first of 5 events sent 1 s apart",
        ("proxy", "first_event_s"),
        "<=",
        0.1,
        "s",
    ),
    ("idle CPU, 20 containers", ("idle", "cpu_percent_of_one_core"), "<", 1.0, "% of a core"),
    ("idle RSS, 20 containers", ("idle", "rss_mb_max"), "<", 80.0, "MB"),
    (
        "coordinator, 10 000 workers: heartbeats/s",
        ("capacity", "10000", "heartbeats_per_s"),
        ">=",
        2000.0,
        "/s",
    ),
    ("coordinator, 10 000 workers: p99", ("capacity", "10000", "p99_ms"), "<=", 50.0, "ms"),
    (
        "100 000 workers, two replicas on PostgreSQL: heartbeats/s",
        ("capacity", "pool", "postgres_two_replicas", "heartbeats_per_s"),
        ">=",
        5000.0,
        "/s",
    ),
    (
        "100 000 workers, two replicas vs one process on SQLite",
        ("capacity", "pool", "postgres_two_replicas", "times_one_process"),
        ">=",
        2.0,
        "x",
    ),
    (
        "100 000 workers, two replicas on PostgreSQL: p99",
        ("capacity", "pool", "postgres_two_replicas", "p99_ms"),
        "<=",
        100.0,
        "ms",
    ),
    (
        "100 000 workers: a silent worker offline",
        ("capacity", "pool", "postgres_two_replicas", "silent_to_offline_s"),
        "<=",
        30.0,
        "s",
    ),
    (
        "100 000 workers: replicas restarted → every worker heard again",
        ("capacity", "pool", "postgres_two_replicas", "restart_to_all_heard_again_s"),
        "<=",
        60.0,
        "s",
    ),
    (
        "100 000 workers: registrations after the restart",
        ("capacity", "pool", "postgres_two_replicas", "registrations_after_restart"),
        "<=",
        0,
        "",
    ),
    (
        "receipts verified per second, one core",
        ("receipts", "verified_per_s"),
        ">=",
        5000.0,
        "/s",
    ),
]


def targets(results: dict[str, Any]) -> list[dict[str, Any]]:
    rows = []
    for label, path, op, target, unit in TARGETS:
        value = _get(results, *path)
        met = (
            None
            if value is None
            else {"<=": value <= target, "<": value < target, ">=": value >= target}[op]
        )
        rows.append(
            {"target": label, "goal": f"{op} {target:g} {unit}", "measured": value, "met": met}
        )
    return rows


def _fmt(value: Any, unit: str = "") -> str:
    if value is None:
        return "-"
    return f"{value:g}{unit}" if isinstance(value, int | float) else str(value)


def _converge(results: dict[str, Any]) -> list[str]:
    sizes = _get(results, "converge", "sizes") or {}
    lines = [
        "| N containers | agent | docker-compose | engine limit | agent / compose "
        "| agent / limit | agent exits | compose exits | agent / compose (exits) |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for n, row in sizes.items():
        exits = row.get("agent_exit", {}), row.get("compose_exit", {})
        lines.append(
            f"| {n} | {_fmt(row['agent']['median'], ' s')} "
            f"| {_fmt(row['compose']['median'], ' s')} "
            f"| {_fmt(row['limit']['median'], ' s')} "
            f"| {_fmt(row['agent_over_compose'])} | {_fmt(row['agent_over_limit'])} "
            f"| {_fmt(exits[0].get('median'), ' s')} | {_fmt(exits[1].get('median'), ' s')} "
            f"| {_fmt(row.get('agent_over_compose_exit'))} |"
        )
    return lines


def _latencies(results: dict[str, Any]) -> list[str]:
    paused = _fmt(_get(results, "pause", "containers"))
    rows = [
        ("self-heal: `docker rm -f` → running", ("heal", "remove")),
        ("self-heal: `docker kill` → running", ("heal", "kill")),
        ("assignment change → running, long poll", ("propagation", "long_poll")),
        (
            f"assignment change → running, no long poll (heartbeat "
            f"{_fmt(_get(results, 'propagation', 'heartbeat_interval'))} s)",
            ("propagation", "without_long_poll"),
        ),
        (
            "HTTP service started → its URL listed at the coordinator",
            ("reach", "service_start_to_listed"),
        ),
        ("tunnel started → its URL listed (stand-in tunnel)", ("reach", "tunnel_start_to_listed")),
        ("first ready probe → its URL listed (stand-in model)", ("ready", "ready_to_listed")),
        (
            "`rma-worker` started → first answer through the coordinator",
            ("contribution", "start_to_first_answer"),
        ),
        (
            "tunnel killed → requests through the coordinator work",
            ("reach", "tunnel_killed_to_working"),
        ),
        (f"`rma-worker pause` → {paused} containers stopped", ("pause", "pause_to_stopped")),
        (f"`rma-worker resume` → {paused} containers running", ("pause", "resume_to_running")),
        ("200 containers: converged resync pass", ("scale", "converged_pass_s")),
        ("200 containers: pass changing one container", ("scale", "one_change_pass_s")),
        (
            "200 containers: one change, manifest written → running",
            ("scale", "one_change_end_to_end_s"),
        ),
    ]
    lines = ["| latency | median | min | max | runs |", "|---|---:|---:|---:|---:|"]
    for label, path in rows:
        s = _get(results, *path) or {}
        lines.append(
            f"| {label} | {_fmt(s.get('median'), ' s')} | {_fmt(s.get('min'), ' s')} "
            f"| {_fmt(s.get('max'), ' s')} | {_fmt(s.get('n'))} |"
        )
    return lines


def _idle_and_capacity(results: dict[str, Any]) -> list[str]:
    idle = results.get("idle") or {}
    lines = [
        f"Idle, {_fmt(idle.get('containers'))} containers over "
        f"{_fmt(idle.get('window_s'))} s: **{_fmt(idle.get('cpu_percent_of_one_core'))} %** "
        f"of one core, **{_fmt(idle.get('rss_mb_max'))} MB** RSS, "
        f"{_fmt(idle.get('docker_calls_per_minute'))} Docker API calls/min, "
        f"{_fmt(idle.get('coordinator_requests_per_minute'))} coordinator requests/min.",
        "",
        "| registered workers | heartbeats/s | p50 | p99 | errors |",
        "|---:|---:|---:|---:|---:|",
    ]
    for n, row in (results.get("capacity") or {}).items():
        if n == "pool":
            continue
        lines.append(
            f"| {n} | {_fmt(row['heartbeats_per_s'])} | {_fmt(row['p50_ms'], ' ms')} "
            f"| {_fmt(row['p99_ms'], ' ms')} | {row['non_2xx']} |"
        )
    return lines + _pool(results) + _proxy(results) + _receipts(results)


def _pool(results: dict[str, Any]) -> list[str]:
    found = (results.get("capacity") or {}).get("pool")
    if not found:
        return []
    one, two = found["sqlite_one_process"], found["postgres_two_replicas"]
    return [
        "",
        f"A pool of {_fmt(two['workers'])} workers (a 10 s interval offers 10 000 heartbeats/s), "
        f"`wrk` on the same 2 cores: one process on SQLite {_fmt(one['heartbeats_per_s'])}/s "
        f"(p99 {_fmt(one['p99_ms'])} ms); two replicas on PostgreSQL "
        f"{_fmt(two['heartbeats_per_s'])}/s (p99 {_fmt(two['p99_ms'])} ms), "
        f"{_fmt(two['cpu_s_per_1000'])} CPU-seconds of the coordinators per 1 000 heartbeats; "
        f"{_cores(two)}"
        f"with `--offline-after {_fmt(two['offline_after'])}` every silent worker offline after "
        f"{_fmt(two['silent_to_offline_s'])} s; both replicas restarted, every worker heard "
        f"from again after {_fmt(two['restart_to_all_heard_again_s'])} s with "
        f"{_fmt(two['registrations_after_restart'])} registrations.",
    ]


def _cores(two: dict[str, Any]) -> str:
    cores = two.get("cores_used")
    if not cores:
        return ""
    return (
        f"cores used: coordinators {_fmt(cores['coordinators'])}, `wrk` "
        f"{_fmt(cores['load_generator'])}, PostgreSQL {_fmt(cores['postgres'])}; "
    )


def _receipts(results: dict[str, Any]) -> list[str]:
    r = results.get("receipts")
    if not r:
        return []
    return [
        "",
        f"Receipts (issue 26), one core: the agent seals and signs one in {_fmt(r['sign_us'])} µs "
        f"(one every 10 minutes); the coordinator verifies {_fmt(r['verified_per_s'])} a second "
        f"(form, ed25519 signature, chain hash; a 100 000-worker pool makes ~170/s) and judges "
        f"and writes {_fmt(r['delivered_per_s'])} a second to a SQLite ledger, 50 per delivery.",
    ]


def _proxy(results: dict[str, Any]) -> list[str]:
    p = results.get("proxy")
    if not p:
        return []
    return [
        "",
        f"The coordinator's proxy, same client (the coordinator in its process): first byte "
        f"{_fmt(p['ttfb_direct_ms'])} ms directly, {_fmt(p['ttfb_proxied_ms'])} ms through it; "
        f"{_fmt(p['requests_per_s_direct'])} requests/s directly, "
        f"{_fmt(p['requests_per_s_proxied'])} through it, one after another; the first of 5 "
        f"events sent 1 s apart after {_fmt(p['first_event_s'])} s, the last after "
        f"{_fmt(p['stream_s'])} s.",
    ]


def markdown(results: dict[str, Any], plot_path: str | None = None) -> str:
    machine = results.get("machine") or {}
    lines = [
        f"Run {results.get('date', '?')} on {machine.get('summary', 'this machine')}"
        f"{' (quick mode: sizes reduced, not representative)' if results.get('quick') else ''}"
        ". Medians of repeated runs; JSON in `bench/results/bench.json`."
        + _later_sections(results),
        "",
    ]
    if plot_path:
        lines += [f"![benchmark plot]({plot_path})", ""]
    lines += ["| target | goal | measured | met |", "|---|---|---:|:-:|"]
    for t in targets(results):
        met = "-" if t["met"] is None else "yes" if t["met"] else "**no**"
        lines.append(f"| {t['target']} | {t['goal']} | {_fmt(t['measured'])} | {met} |")
    lines += ["", *_converge(results), "", *_latencies(results), "", *_idle_and_capacity(results)]
    return "\n".join(lines) + "\n"


def _later_sections(results: dict[str, Any]) -> str:
    """Sections run again on their own (`--only … --merge`), with their date."""
    dates = results.get("section_dates") or {}
    said = [f"{name} on {date}" for name, date in sorted(dates.items())]
    return f" Run again alone: {', '.join(said)}." if said else ""


def splice(readme: str, block: str) -> str:
    """Replace what is between the markers (kept) with `block`."""
    start, end = readme.index(BEGIN) + len(BEGIN), readme.index(END)
    return readme[:start] + "\n" + block + readme[end:]


def plot(results: dict[str, Any], path: Path) -> None:
    import matplotlib  # noqa: PLC0415 (only `make bench` needs it)

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415

    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4))
    _converge_bars(left, results)
    _latency_bars(right, results)
    fig.suptitle(
        f"RMA worker agent — {(results.get('machine') or {}).get('summary', '')}", fontsize=9
    )
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def _converge_bars(left: Any, results: dict[str, Any]) -> None:
    sizes = _get(results, "converge", "sizes") or {}
    names = list(sizes)
    for i, who in enumerate(("agent", "compose", "limit")):
        values = [sizes[n][who]["median"] for n in names]
        left.bar(
            [j + (i - 1) * 0.27 for j in range(len(names))],
            values,
            width=0.27,
            label={"compose": "docker-compose", "limit": "engine limit"}.get(who, who),
        )
    left.set_xticks(range(len(names)), [f"N={n}" for n in names])
    left.set_ylabel("seconds to all running (median)")
    left.set_title("Cold converge")
    left.legend()


def _latency_bars(right: Any, results: dict[str, Any]) -> None:
    labels, values = [], []
    for label, where in (
        ("rm -f → running", ("heal", "remove")),
        ("kill → running", ("heal", "kill")),
        ("change → running\n(long poll)", ("propagation", "long_poll")),
    ):
        labels.append(label)
        values.append(_get(results, *where, "median") or 0.0)
    right.bar(labels, values, color="tab:purple")
    right.axhline(1.0, color="grey", linestyle="--", linewidth=1, label="target 1 s")
    right.set_ylabel("seconds (median)")
    right.set_title("Reaction latency")
    right.legend()
