"""Model caches (issue 24, item 8): the volumes a catalog marks `cache: true` (Hugging Face's,
Ollama's) grow by tens of gigabytes as models are downloaded into them, out of sight of the image
garbage collection and the disk floor. They are measured (engine/caches.py) and held to the
owner's `--model-cache-max`: once they hold that much, no service that uses a cache and is not
already running is admitted (`unavailable: model caches hold 52 GB, over RMA_MODEL_CACHE_MAX
50 GB: rma-worker cleanup --caches empties them`) — the running ones keep what they downloaded.
The default cap is a fifth of the disk that holds Docker's data, at least 10 GiB and at most
100 GiB. Pure: the caller passes the sizes, the cap and what runs.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import replace

from controller.core.machine import GIB
from controller.core.models import ContainerSpec, DesiredState, Refusal
from controller.core.tunnels import TUNNEL_FOR


def default_cap(disk_total: int) -> int:
    """A fifth of Docker's disk, at least 10 GiB, at most 100 GiB (a 256 GB laptop: 51 GB)."""
    return max(10 * GIB, min(disk_total // 5, 100 * GIB))


def cache_volumes(desired: DesiredState) -> frozenset[str]:
    """The cache volumes the desired state mounts (their engine names)."""
    return frozenset(v.name for s in desired.specs for v in s.volumes if v.cache)


def uses_cache(spec: ContainerSpec) -> bool:
    return any(v.cache for v in spec.volumes)


def _gb(n: int) -> str:
    return f"{n / 1e9:.0f} GB" if n >= 10e9 else f"{n / 1e9:.1f} GB"


def over_cap(held: int, cap: int) -> str:
    return (
        f"unavailable: model caches hold {_gb(held)}, over RMA_MODEL_CACHE_MAX {_gb(cap)}: "
        "rma-worker cleanup --caches empties them"
    )


def admit(
    desired: DesiredState, held: int | None, cap: int, running: Collection[str]
) -> DesiredState:
    """Below the cap (or not measured yet): everything. At or over it: the services that use a
    cache and are not `running` are unavailable, with their tunnels."""
    if held is None or held < cap:
        return desired
    out = {s.name for s in desired.specs if uses_cache(s) and s.name not in running}
    if not out:
        return desired
    why = over_cap(held, cap)
    specs = tuple(
        s for s in desired.specs if s.name not in out and s.labels_dict.get(TUNNEL_FOR) not in out
    )
    refused = tuple(Refusal(n, why, unavailable=True) for n in sorted(out))
    return replace(desired, specs=specs, refused=desired.refused + refused)


def growth(held: int | None, cap: int) -> int:
    """What the caches may still grow to before the cap: kept free by the disk floor."""
    return max(0, cap - (held or 0))
