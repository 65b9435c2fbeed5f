"""The benchmark suite's pure parts: statistics, wrk output parsing, targets, the Markdown report
and its splice into docs/performance.md (measured in tests/integration/test_bench.py)."""

from __future__ import annotations

from typing import Any

import pytest

from bench.capacity import parse_wrk
from bench.common import summary
from bench.report import BEGIN, END, markdown, splice, targets

WRK = """Running 1s test @ http://127.0.0.1:51065
  1 threads and 4 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency     2.02ms  583.41us   7.16ms   80.37%
    Req/Sec     1.99k   421.87     2.48k    60.00%
  Latency Distribution
     50%    1.79ms
     75%    2.38ms
     90%  812.00us
     99%    1.20s
  1976 requests in 1.00s, 320.33KB read
  Non-2xx or 3xx responses: 3
Requests/sec:   1975.60
Transfer/sec:    320.26KB
"""


def _summary(median: float) -> dict[str, Any]:
    return {"n": 3, "median": median, "min": median, "max": median}


RESULTS: dict[str, Any] = {
    "date": "2026-11-28",
    "machine": {"summary": "Debian 12, 2 cores"},
    "converge": {
        "sizes": {
            "50": {
                "agent": _summary(7.0),
                "compose": _summary(7.5),
                "limit": _summary(5.0),
                "agent_over_compose": 0.93,
                "agent_over_limit": 1.4,
            }
        }
    },
    "heal": {"remove": _summary(0.3), "kill": _summary(0.31)},
    "propagation": {
        "heartbeat_interval": 30.0,
        "long_poll": _summary(0.4),
        "without_long_poll": _summary(14.0),
    },
    "idle": {
        "containers": 20,
        "window_s": 65.0,
        "cpu_percent_of_one_core": 0.06,
        "rss_mb_max": 52.0,
        "docker_calls_per_minute": 2.0,
        "coordinator_requests_per_minute": 3.0,
    },
    "capacity": {
        "10000": {"heartbeats_per_s": 2500.0, "p50_ms": 12.0, "p99_ms": 60.0, "non_2xx": 0}
    },
}


def test_summary_is_median_min_max() -> None:
    assert summary([3.0, 1.0, 2.0, 10.0]) == {"n": 4, "median": 2.5, "min": 1.0, "max": 10.0}
    assert summary([]) == {"n": 0, "median": None, "min": None, "max": None}


def test_wrk_output_is_parsed_in_milliseconds() -> None:
    parsed = parse_wrk(WRK)
    assert parsed["heartbeats_per_s"] == 1975.6
    assert (parsed["p50_ms"], parsed["p90_ms"], parsed["p99_ms"]) == (1.79, 0.81, 1200.0)
    assert parsed["non_2xx"] == 3


def test_wrk_output_without_a_rate_is_an_error() -> None:
    with pytest.raises(ValueError, match="no rate"):
        parse_wrk(WRK.replace("Requests/sec", "Req"))


def test_targets_say_met_missed_or_not_measured() -> None:
    by_name = {t["target"]: t for t in targets(RESULTS)}
    assert by_name["cold converge N=50: agent / engine limit"]["met"] is False
    assert by_name["cold converge N=50: agent / docker-compose"]["met"] is True
    assert by_name["coordinator, 10 000 workers: heartbeats/s"]["met"] is True
    assert by_name["coordinator, 10 000 workers: p99"]["met"] is False
    assert by_name["idle RSS, 20 containers"]["measured"] == 52.0
    assert all(t["met"] is None for t in targets({}))


def test_markdown_has_the_machine_the_tables_and_the_misses() -> None:
    md = markdown(RESULTS, plot_path="bench/results/bench.png")
    assert "Debian 12, 2 cores" in md and "![benchmark plot](bench/results/bench.png)" in md
    assert "| 50 | 7 s | 7.5 s | 5 s | 0.93 | 1.4 |" in md
    assert "| self-heal: `docker kill` → running | 0.31 s |" in md
    assert "| 10000 | 2500 | 12 ms | 60 ms | 0 |" in md
    assert md.count("**no**") == 2


def test_splice_replaces_only_between_the_markers() -> None:
    readme = f"intro\n{BEGIN}\nold table\n{END}\nrest\n"
    out = splice(readme, "new table\n")
    assert out == f"intro\n{BEGIN}\nnew table\n{END}\nrest\n"
    assert splice(out, "newer\n").count(BEGIN) == 1
