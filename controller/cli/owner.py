"""What `rma-worker` prints about the owner's side: `pause` and `resume` (the pause file in the
agent's state dir, then the running agent's confirmation), and the status lines of the owner's
conditions, the GPUs and the energy receipt."""

from __future__ import annotations

import sys
import time
import urllib.error
from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING, Any, TextIO

if TYPE_CHECKING:
    from controller.settings import Settings


def owner_lines(data: dict[str, Any]) -> list[str]:
    """The owner's conditions (each: held or not, why, when re-checked), the GPUs, and the
    energy receipt."""
    lines = []
    for c in data.get("conditions") or []:
        mark = "HOLDS" if c["active"] else "ok"
        when = f"   re-checked {_at(c['next_check'])}" if c.get("next_check") else ""
        lines.append(f"Condition:      {c['name']}: {mark}: {c['reason']}{when}")
    for g in data.get("gpus") or []:
        temp = f"{g['temperature']:.0f} °C" if g.get("temperature") is not None else "? °C"
        watts = f"{g['power_w']:.0f} W" if g.get("power_w") is not None else "? W"
        lines.append(f"GPU {g['index']}:          {temp}, {watts}")
        for p in g.get("processes") or []:
            verdict = "takes the GPU back" if p["counts"] else "does not count"
            lines.append(f"  {p['name'] or '?'} ({p['pid']}): {verdict}: {p['why']}")
    caches = data.get("model_caches") or {}
    if caches.get("volumes") or caches.get("unread"):
        held = caches.get("bytes")
        size = f"{held / 1e9:.1f} GB" if held is not None else "not measured"
        each = ", ".join(f"{n} {b / 1e9:.1f} GB" for n, b in caches["volumes"].items())
        line = f"Model caches:   {size} of {caches['max'] / 1e9:.0f} GB (RMA_MODEL_CACHE_MAX)"
        lines.append(line + (f": {each}" if each else ""))
        if caches.get("unread"):
            lines.append("  not readable here (run the agent as root, beside its engine)")
    energy = data.get("energy")
    if energy:
        parts = [f"{k.replace('_', ' ')} {_energy(energy[k])}" for k in ("today", "week")]
        parts.append(f"all time {_energy(energy['all_time'])}")
        lines.append("Energy:         " + "; ".join(parts))
        for source, how in (energy.get("sources") or {}).items():
            lines.append(f"  {source}: {how}")
    return lines + _credit_lines(data.get("credits"))


def _credit_lines(kept: dict[str, Any] | None) -> list[str]:
    """The receipts, and the credits as the coordinator last said (`rma-worker credits`)."""
    if not kept:
        return []
    got = kept.get("credited")
    lines = []
    if got:
        c, rank = got["credits"], f"#{got['rank']}" if got.get("rank") else "-"
        lines.append(
            f"Credits:        today {c['today']:.2f}; week {c['week']:.2f}; "
            f"all time {c['all_time']:.2f}; rank {rank}" + (" (held)" if got.get("held") else "")
        )
    lines.append(
        f"Receipts:       {kept['sealed']} signed, {kept['accepted']} accepted, "
        f"{kept['pending']} waiting"
        + (f" ({kept['last_error']})" if kept.get("last_error") else "")
    )
    return lines


def _energy(period: dict[str, Any]) -> str:
    wh = float(period["wh"])
    text = f"{wh / 1000:.2f} kWh" if wh >= 1000 else f"{wh:.1f} Wh"
    if "cost" in period:
        text += f", {period['cost']:.2f} {period['currency']}"
    if "co2_g" in period:
        text += f", {period['co2_g']:.0f} g CO2"
    return text


def _at(iso: str) -> str:
    return datetime.fromisoformat(iso).astimezone().strftime("%a %H:%M:%S")


def pause_command(
    settings: Settings, duration: str | None, *, gpu_only: bool, out: TextIO | None = None
) -> int:
    """Write the pause into the agent's state dir (only its owner can), then say what the
    running agent did."""
    from controller.clients.pause_file import pause_path, write_pause  # noqa: PLC0415
    from controller.core.schedule import parse_duration  # noqa: PLC0415

    out = out or sys.stdout
    try:
        seconds = parse_duration(duration) if duration else None
    except ValueError as exc:
        print(f"rma-worker: --for {exc}", file=sys.stderr)
        return 2
    now = time.time()
    until = now + seconds if seconds else None
    path = pause_path(settings.state_dir, settings.instance)
    try:
        write_pause(path, since=now, until=until, gpu_only=gpu_only)
    except OSError as exc:
        print(
            f"rma-worker: cannot pause: {exc}\nOnly the agent's owner (the user it runs as, "
            f"or root) can write {path.parent}.",
            file=sys.stderr,
        )
        return 1
    what = "the GPU containers" if gpu_only else "everything"
    ends = f" until {datetime.fromtimestamp(until).strftime('%a %H:%M')}" if until else ""
    out.write(f"Paused {what}{ends} ({path}).\n")
    said = "the agent stopped what the pause holds"
    return _confirm(settings, out, _paused, said, wait=settings.stop_grace + settings.drain_seconds)


def resume_command(settings: Settings, out: TextIO | None = None) -> int:
    from controller.clients.pause_file import clear_pause, pause_path  # noqa: PLC0415

    out = out or sys.stdout
    path = pause_path(settings.state_dir, settings.instance)
    try:
        had = clear_pause(path)
    except OSError as exc:
        print(f"rma-worker: cannot resume: {exc}", file=sys.stderr)
        return 1
    out.write("Resumed.\n" if had else "It was not paused.\n")
    resumed = lambda d: "pause" not in (d.get("holds") or [])  # noqa: E731
    return _confirm(settings, out, resumed, "the agent started its containers again", wait=10)


def _paused(data: dict[str, Any]) -> bool:
    """The last pass applied the pause, and every container it holds is stopped (a pass shows
    its stops done: the executor waits for them)."""
    held = [c for c in data.get("containers") or [] if c.get("reason")]
    return "pause" in (data.get("holds") or []) and all(
        c["state"] in ("paused", "yielded") for c in held
    )


def _confirm(
    settings: Settings,
    out: TextIO,
    done: Callable[[dict[str, Any]], bool],
    said: str,
    *,
    wait: float,
) -> int:
    """Wait (the containers' stop grace and drain, and a few seconds) for the running agent to
    show it; none running is fine: the pause file is read when it starts."""
    from controller.cli import console  # noqa: PLC0415 (it imports this module)

    deadline = time.monotonic() + wait + 5
    while True:
        try:
            data = console.fetch_status(settings)
        except (OSError, ValueError, urllib.error.URLError):
            out.write("No running agent answered: it applies when the agent starts.\n")
            return 0
        if done(data):
            out.write(f"Confirmed: {said} (rma-worker status shows each container).\n")
            return 0
        if time.monotonic() > deadline:
            out.write("The running agent has not shown it yet (rma-worker status).\n")
            return 0
        time.sleep(0.2)
