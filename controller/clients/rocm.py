"""AMD GPUs through ROCm (issue 24, item 4): the device nodes a container needs, and what the
owner's conditions and the energy receipt read from `rocm-smi --json`.

A container gets an AMD GPU by its device nodes, not by a runtime: `/dev/kfd` (the compute
driver, shared) and the GPU's own render node, found under `/sys/class/drm/card<N>/device/drm/`
(rocm-smi's `card<N>` is the DRM card's number), with the host's `video` and `render` groups (by
GID: an image need not know their names). `rocm-smi` gives per GPU its edge temperature, package
power, energy counter and VRAM in use, and the processes on the compute driver (KFD) — every one
a compute process; which GPU each uses is not said, so a foreign one counts on every lent GPU, and
graphics programs (a game through Mesa) are not listed at all: said in the status, not guessed.
The reader has Nvml's shape (`available`, `snapshots()`, `limit_power`, `close`), so the
conditions and the receipt read either. Bounded: 15 s a call; fails soft.
"""

from __future__ import annotations

import grp
import json
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import structlog

from controller.clients.gpu_watch import GpuSnapshot
from controller.core.errors import PermanentError

log = structlog.get_logger(__name__)
KFD = "/dev/kfd"
DRM = Path("/sys/class/drm")
GROUPS = ("video", "render")
READ_ARGS = [
    "--showtemp", "--showpower", "--showenergycounter", "--showmeminfo", "vram", "--showpids",
    "--json",
]  # fmt: skip
Runner = Callable[[list[str]], str | None]


def render_nodes(card: int, drm: Path = DRM) -> tuple[str, ...]:
    """The render node(s) of DRM card `card`, as /dev paths (() when sysfs does not show it)."""
    found = sorted((drm / f"card{card}" / "device" / "drm").glob("renderD*"))
    return tuple(f"/dev/dri/{p.name}" for p in found)


def host_groups(names: tuple[str, ...] = GROUPS) -> tuple[str, ...]:
    """The host's GIDs of `names` (a group this machine lacks is left out)."""
    gids = []
    for name in names:
        try:
            gids.append(str(grp.getgrnam(name).gr_gid))
        except KeyError:
            continue
    return tuple(gids)


def run_rocm_smi(args: list[str]) -> str | None:
    """stdout of `rocm-smi ARGS`, or None when the tool is missing or fails."""
    exe = shutil.which("rocm-smi")
    if exe is None:
        return None
    try:
        done = subprocess.run([exe, *args], capture_output=True, text=True, timeout=15, check=False)
    except (OSError, subprocess.SubprocessError) as exc:
        log.debug("rocm_smi_failed", error=str(exc))
        return None
    return done.stdout if done.returncode == 0 else None


def _number(card: dict[str, Any], *keys: str) -> float | None:
    for key in keys:
        try:
            return float(str(card[key]).split()[0])
        except (KeyError, ValueError, IndexError):
            continue
    return None


def _pids(data: dict[str, Any]) -> tuple[tuple[int, int | None], ...]:
    """`PID1234: "python3, 1, 4294967296, 0, 0"` (name, GPUs, VRAM bytes, SDMA, CU occupancy)."""
    found = []
    for key, value in (data.get("system") or {}).items():
        if not str(key).startswith("PID") or not str(key)[3:].isdigit():
            continue
        parts = [p.strip() for p in str(value).split(",")]
        vram = int(parts[2]) if len(parts) > 2 and parts[2].isdigit() else None
        found.append((int(str(key)[3:]), vram))
    return tuple(sorted(found))


class RocmSmi:
    """The lent AMD GPUs as `rocm-smi --json` reads them (`lent`: card numbers; empty: all)."""

    name = "rocm-smi"

    def __init__(self, lent: frozenset[str] = frozenset(), runner: Runner = run_rocm_smi) -> None:
        self._lent, self._run = lent, runner
        self.error: str | None = None if runner(["--version"]) is not None else "rocm-smi absent"

    @property
    def available(self) -> bool:
        return self.error is None

    def snapshots(self) -> tuple[GpuSnapshot, ...]:
        out = self._run(READ_ARGS)
        try:
            data = json.loads(out or "")
        except ValueError:
            log.warning("rocm_smi_read_failed", error="no JSON from rocm-smi")
            return ()
        if not isinstance(data, dict):
            return ()
        pids = _pids(data)
        found = []
        for key in sorted(k for k in data if k.startswith("card") and k[4:].isdigit()):
            index, card = key[4:], data[key]
            if (self._lent and index not in self._lent) or not isinstance(card, dict):
                continue
            used, total = (
                _number(card, "VRAM Total Used Memory (B)"),
                _number(card, "VRAM Total Memory (B)"),
            )
            counter = _number(card, "Accumulated Energy (uJ)")
            found.append(
                GpuSnapshot(
                    index=index,
                    uuid=str(card.get("Unique ID", "")),
                    temperature=_number(card, "Temperature (Sensor edge) (C)"),
                    power_w=_number(
                        card,
                        "Average Graphics Package Power (W)",
                        "Current Socket Graphics Package Power (W)",
                    ),
                    energy_j=counter / 1e6 if counter is not None else None,
                    processes=pids,
                    memory_used=int(used) if used is not None else None,
                    memory_total=int(total) if total is not None else None,
                    compute=frozenset(pid for pid, _ in pids),
                )
            )
        return tuple(found)

    def limit_power(self, watts: float) -> list[str]:
        raise PermanentError("--gpu-power-limit: not supported on AMD GPUs by this agent yet")

    def close(self) -> None:
        return None
