"""Tier assignment and the tier catalog (pure).

The seed's thresholds: tier 1 = a GPU with at least 8 GB of VRAM; tier 2 = at least 4 GB of RAM
and 2 cores; tier 3 = anything else. Capability strings are read as the deployed coordinator
writes them ("64.0GB", "24564MB"); unreadable values count as zero.
"""

from __future__ import annotations

import re
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

TIER1_MIN_VRAM_MB = 8000.0
TIER2_MIN_RAM_GB = 4.0
TIER2_MIN_CORES = 2
_NUMBER = re.compile(r"[0-9]+(?:\.[0-9]+)?")


def number(value: Any) -> float:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    match = _NUMBER.search(str(value or ""))
    return float(match.group()) if match else 0.0


def tier_for(capabilities: dict[str, Any]) -> int:
    if capabilities.get("gpu_type") and number(capabilities.get("gpu_memory")) >= TIER1_MIN_VRAM_MB:
        return 1
    if (
        number(capabilities.get("ram")) >= TIER2_MIN_RAM_GB
        and number(capabilities.get("cpu_cores")) >= TIER2_MIN_CORES
    ):
        return 2
    return 3


class Catalog:
    """Which containers each tier runs, from a YAML file: `tiers: {N: {containers: [...]}}`, or
    the RMA service catalog's `services: {name: {tier, health, container}}` (the default,
    rma_coordinator/catalog.yaml, is the RMA project's catalog that manifests/ also holds)."""

    def __init__(self, tiers: dict[int, list[dict[str, Any]]]) -> None:
        self.tiers = tiers

    @classmethod
    def load(cls, path: Path | None = None) -> Catalog:
        """The catalog in `path`, or the RMA catalog shipped with the package."""
        if path is None:
            return cls.parse(
                resources.files("rma_coordinator")
                .joinpath("catalog.yaml")
                .read_text(encoding="utf-8")
            )
        return cls.parse(path.read_text(encoding="utf-8"))

    @classmethod
    def parse(cls, text: str) -> Catalog:
        data = yaml.safe_load(text) or {}
        tiers = {
            int(k): list((v or {}).get("containers") or [])
            for k, v in (data.get("tiers") or {}).items()
        }
        for name, service in (data.get("services") or {}).items():
            labels = {**(service["container"].get("labels") or {}), "rma.service": name}
            if service.get("health"):
                labels["rma.health"] = service["health"]
            if service.get("http"):
                labels["rma.http"] = "true"
            entry = {**service["container"], "labels": labels}
            tiers.setdefault(int(service["tier"]), []).append(entry)
        return cls(tiers)

    def containers_for(
        self, tier: int, worker_id: str, public_url: str, *, http_marks: bool = True
    ) -> list[dict[str, Any]]:
        """The tier's specs, each told who it runs for and where the coordinator is; without
        `http_marks` (the service coordinator's dialect, which has none) no `http` key and no
        `rma.http` label: the agent finds out itself."""
        out = []
        entries = self.tiers.get(tier, [])
        for entry in entries if http_marks else [_unmarked(e) for e in entries]:
            env = {
                **(entry.get("env") or {}),
                "WORKER_ID": worker_id,
                "COORDINATOR_URL": public_url,
            }
            out.append({**entry, "env": env})
        return out


def _unmarked(entry: dict[str, Any]) -> dict[str, Any]:
    """The spec without `http` and the `rma.http` label (what the service coordinator sends)."""
    labels = {k: v for k, v in (entry.get("labels") or {}).items() if k != "rma.http"}
    return {k: v for k, v in entry.items() if k != "http"} | {"labels": labels}
