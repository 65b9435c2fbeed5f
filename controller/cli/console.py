"""What `rma-worker` prints for people: the `status` table, `cleanup`, and the pull progress bar.
With commands.py, owner.py and settings_table.py, the only modules that write to stdout/stderr
directly (everything else logs)."""

from __future__ import annotations

import json
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from datetime import UTC, datetime
from functools import partial
from typing import Any, TextIO

from controller.cli.owner import owner_lines
from controller.clients.docker_runtime import DockerRuntime
from controller.clients.store import StateStore, read_private
from controller.core.errors import AgentError
from controller.core.observe import PullProgress
from controller.core.text import printable_all
from controller.settings import Settings


def agent_url(settings: Settings) -> str:
    """The running agent's endpoint: the URL it wrote to the state dir, else --health-addr."""
    url_file = settings.state_dir / f"{settings.instance}.health"
    try:
        return read_private(url_file).strip()
    except OSError:
        return "http://" + settings.health_addr


def fetch_status(settings: Settings) -> dict[str, Any]:
    url = agent_url(settings) + "/status"
    with urllib.request.urlopen(url, timeout=5) as resp:
        data: dict[str, Any] = json.load(resp)
    return data


def status_command(settings: Settings, as_json: bool, out: TextIO = sys.stdout) -> int:
    try:
        data = fetch_status(settings)
    except (OSError, ValueError, urllib.error.URLError) as exc:
        print(
            f"rma-worker: no running agent answered at {agent_url(settings)} ({exc}).\n"
            "Is it running, with the same --state-dir/--instance/--health-addr?",
            file=sys.stderr,
        )
        return 1
    if as_json:  # JSON escapes control characters by itself
        json.dump(data, out, indent=2)
        out.write("\n")
    else:  # the agent's answer carries a coordinator's words: no control character is drawn
        out.write(render_status(printable_all(data)))
    return 0


def _ago(iso: str | None) -> str:
    if not iso:
        return "never"
    seconds = (datetime.now(UTC) - datetime.fromisoformat(iso)).total_seconds()
    return f"{int(seconds)} s ago ({iso})"


def _membership_lines(data: dict[str, Any]) -> list[str]:
    lines = [
        f"Coordinator:    {data['coordinator']}",
        f"Worker:         {data['worker_id'] or '(not registered yet)'}   "
        f"Tier: {data['tier'] or '-'}",
        f"Last heartbeat: {_ago(data['last_heartbeat'])}"
        + (f"   error: {data['heartbeat_error']}" if data["heartbeat_error"] else ""),
    ]
    if data.get("coordinator_notice"):
        lines.append(f"Notice:         {data['coordinator_notice']}")
    reachable = ", ".join(f"{s['name']} at {s['service_url']}" for s in data.get("reachable") or [])
    ingress = data.get("ingress", "none")
    lines.append(f"Reachable:      {reachable or 'nothing'} (ingress {ingress})")
    for name, why in (data.get("not_reachable") or {}).items():
        lines.append(f"Not reachable:  {name}: {why}")
    return lines


def render_status(data: dict[str, Any]) -> str:
    lines = [
        f"RMA worker agent {data['version']} (instance {data['instance']}, {data['mode']} mode)"
    ]
    if data["mode"] == "coordinator":
        lines += _membership_lines(data)
    else:
        lines.append(f"Manifest:       {data['manifest']}")
    state = ("converged" if data["converged"] else "converging") + (
        ", healthy" if data["healthy"] else ", degraded"
    )
    if data.get("state") in ("paused", "yielded"):
        state = f"{data['state']} ({state})"
    lines += [f"State:          {state}"]
    lines += _unfit_line(data["containers"])
    lines += owner_lines(data)
    lines.append("")
    rows = [("NAME", "STATE", "RESTARTS", "IMAGE", "LAST ERROR")]
    rows += [
        (c["name"], _state(c), str(c["restarts"]), c["image"], c["error"] or "")
        for c in data["containers"]
    ]
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    lines += ["  ".join(r[i].ljust(widths[i]) for i in range(4)) + "  " + r[4] for r in rows]
    lines += _ignored_lines(data["containers"])
    kept = data.get("unused_volumes") or []
    if kept:
        lines.append(
            f"Unused volumes (kept, data): {', '.join(kept)}  "
            "(rma-worker cleanup --volumes removes them)"
        )
    for p in data["pulls"]:
        pct = f"{p['percent']:.1f}%" if p["percent"] is not None else "?"
        lines.append(
            f"pulling {p['image']}: {pct} {p['downloaded'] / 1e6:.1f}/"
            f"{p['total'] / 1e6:.1f} MB at {p['rate'] / 1e6:.1f} MB/s"
        )
    return "\n".join(line.rstrip() for line in lines) + "\n"


def _state(c: dict[str, Any]) -> str:
    """Its state, and while it runs whether it is ready yet (the agent's probe); the GPUs it is
    placed on."""
    if c.get("gpus"):
        return (
            _state({k: v for k, v in c.items() if k != "gpus"}) + f" on GPU {','.join(c['gpus'])}"
        )
    if c.get("starting_for") is not None:
        return f"{c['state']} (starting {c['starting_for']} s)"
    if c.get("health") == "unhealthy":
        return f"{c['state']} (unhealthy)"
    return str(c["state"])


def _unfit_line(containers: list[dict[str, Any]]) -> list[str]:
    """A GPU machine on which no GPU service fits says so, once, above the rows' reasons."""
    unfit = [c for c in containers if "of GPU memory" in str(c.get("error") or "")]
    if not unfit or any(c.get("gpus") for c in containers):
        return []
    return ["GPU:            no GPU service fits this machine's GPUs (each one's reason below)"]


def _ignored_lines(containers: list[dict[str, Any]]) -> list[str]:
    return [
        f"{c['name']}: fields this agent does not know, not applied: "
        + ", ".join(c["ignored_fields"])
        for c in containers
        if c.get("ignored_fields")
    ]


def cleanup_command(
    settings: Settings,
    dry_run: bool,
    *,
    instance_only: bool = True,
    volumes: bool = False,
    out: TextIO = sys.stdout,
) -> int:
    """Remove every container and network carrying the agent's labels (of --instance, or of any
    instance with `instance_only` False: `--all-instances`); with `volumes`, the agent's
    volumes too (their data is lost)."""
    runtime = DockerRuntime(settings.instance, base_url=settings.docker_host)
    owned, every = runtime.owned, not instance_only
    try:
        found = runtime.list_all_instances() if every else runtime.list_managed()
        items: list[tuple[str, str, Callable[[], None]]] = [
            (c.name, c.id[:12], partial(runtime.remove, c.id)) for c in found
        ]
        items += [
            (n, "network", partial(owned.remove_network, n, any_instance=every))
            for n in owned.networks(every)
        ]
        if volumes:
            items += [
                (v.name, "volume", partial(owned.remove_volume, v.name))
                for v in owned.list_volumes(every)
            ]
        failed = sum(not _remove(name, what, remove, dry_run, out) for name, what, remove in items)
        if not items:
            print("nothing of the agent's to remove", file=out)
        return 1 if failed else 0
    except AgentError as exc:
        print(f"rma-worker: {exc}", file=sys.stderr)
        return 1
    finally:
        runtime.close()


def caches_command(
    settings: Settings,
    dry_run: bool,
    *,
    confirmed: bool = False,
    out: TextIO = sys.stdout,
    ask: Callable[[str], str] = input,
) -> int:
    """Empty the model caches of --instance: remove its volumes labelled as caches (models are
    downloaded again when needed). On a terminal it asks first unless `confirmed`; a cache in use
    by a container is left, said with what to do."""
    runtime = DockerRuntime(settings.instance, base_url=settings.docker_host)
    try:
        caches = [v.name for v in runtime.owned.list_volumes() if v.cache]
        if not caches:
            print("no model caches of the agent's to empty", file=out)
            return 0
        if not dry_run and not confirmed and sys.stdin.isatty():
            answer = ask(f"Remove {len(caches)} model cache(s): {', '.join(caches)}? [y/N] ")
            if answer.strip().lower() not in ("y", "yes"):
                print("nothing removed", file=out)
                return 1
        remove = runtime.owned.remove_volume
        failed = sum(
            not _remove(n, "model cache", partial(remove, n), dry_run, out) for n in caches
        )
        if failed:
            print(
                "a cache in use: rma-worker pause (or stop the agent), then again", file=sys.stderr
            )
        return 1 if failed else 0
    except AgentError as exc:
        print(f"rma-worker: {exc}", file=sys.stderr)
        return 1
    finally:
        runtime.close()


def adopt_command(settings: Settings, names: list[str], out: TextIO = sys.stdout) -> int:
    """Record legacy (unprefixed) volumes as the agent's own: a spec naming one mounts it as it
    is, instead of a new `rma-<instance>-<name>` volume. Read when the agent starts."""
    runtime = DockerRuntime(settings.instance, base_url=settings.docker_host)
    store = StateStore(settings.state_dir, settings.instance)
    try:
        for name in names:
            runtime.owned.check_adoptable(name)
        store.save_adopted(store.load_adopted() | frozenset(names))
    except AgentError as exc:
        print(f"rma-worker: {exc}", file=sys.stderr)
        return 1
    finally:
        runtime.close()
    for name in names:
        print(f"adopted {name}: specs naming it mount it as it is (after a restart)", file=out)
    return 0


def _remove(name: str, what: str, remove: Callable[[], None], dry_run: bool, out: TextIO) -> bool:
    if dry_run:
        print(f"would remove {name} ({what})", file=out)
        return True
    try:
        remove()
    except AgentError as exc:
        print(f"could not remove {name}: {exc}", file=sys.stderr)
        return False
    print(f"removed {name} ({what})", file=out)
    return True


class ProgressBar:
    """Draws pull progress on one terminal line, at most five times a second."""

    def __init__(self, stream: TextIO = sys.stderr, width: int = 30) -> None:
        self._stream = stream
        self._width = width
        self._last = 0.0

    def __call__(self, p: PullProgress) -> None:
        done = bool(p.total) and p.downloaded >= p.total
        now = time.monotonic()
        if now - self._last < 0.2 and not done:
            return
        self._last = now
        frac = p.downloaded / p.total if p.total else 0.0
        bar = "#" * int(self._width * frac)
        self._stream.write(
            f"\r{p.image[-40:]:>40} [{bar:<{self._width}}] {frac * 100:5.1f}% "
            f"{p.downloaded / 1e6:8.1f}/{p.total / 1e6:.1f} MB "
            f"{p.rate / 1e6:6.1f} MB/s"
        )
        if done:
            self._stream.write("\n")
        self._stream.flush()
