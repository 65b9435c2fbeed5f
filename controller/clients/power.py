"""The machine's power readings, where it has them: the battery (psutil) and the CPU package
energy counters of Intel/AMD RAPL under /sys/class/powercap (readable by root only on most
kernels since 2020). A missing or unreadable source is None and named as such; nothing here
estimates what it cannot read.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import psutil

POWERCAP = Path("/sys/class/powercap")


@dataclass(frozen=True)
class Battery:
    on_battery: bool
    percent: float | None


def battery() -> Battery | None:
    """None: this machine has no battery (or it cannot be read)."""
    try:
        found = psutil.sensors_battery()
    except (AttributeError, OSError, RuntimeError):
        return None
    if found is None:
        return None
    plugged = found.power_plugged
    return Battery(on_battery=plugged is False, percent=float(found.percent))


@dataclass(frozen=True)
class RaplZone:
    name: str  # package-0, package-1, dram…
    path: Path
    max_uj: int


def rapl_zones(root: Path = POWERCAP) -> tuple[tuple[RaplZone, ...], str | None]:
    """The top-level package zones (and their dram subzones) whose counters can be read, and
    why none can when none can."""
    zones: list[RaplZone] = []
    problem = None
    if not root.is_dir():
        return (), f"{root} does not exist (no RAPL on this machine or kernel)"
    for zone in sorted(root.glob("intel-rapl:*")):
        name = _read(zone / "name")
        if name is None or not (name.startswith("package") or name == "dram"):
            continue  # core/uncore are inside the package; psys counts the whole platform
        energy, top = _read(zone / "energy_uj"), _read(zone / "max_energy_range_uj")
        if energy is None or top is None:
            problem = f"{zone / 'energy_uj'} is not readable (root only on most kernels)"
            continue
        zones.append(RaplZone(f"{name}@{zone.name}", zone / "energy_uj", int(top)))
    if not zones and problem is None:
        problem = f"no RAPL package zone under {root}"
    return tuple(zones), problem


def read_uj(zone: RaplZone) -> int | None:
    value = _read(zone.path)
    return int(value) if value is not None and value.isdigit() else None


def _read(path: Path) -> str | None:
    try:
        return path.read_text(encoding="ascii").strip()
    except (OSError, UnicodeDecodeError):
        return None
