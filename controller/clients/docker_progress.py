"""A pull's progress from the engine's stream: per-layer lines summed into bytes downloaded of
bytes announced (for `status`, the log and the progress bar)."""

from __future__ import annotations

from typing import Any


class LayerProgress:
    """Sums the engine's per-layer pull progress lines into bytes downloaded / announced."""

    _DONE = frozenset({"Download complete", "Pull complete", "Already exists"})

    def __init__(self) -> None:
        self._layers: dict[str, tuple[int, int]] = {}

    def feed(self, line: dict[str, Any]) -> bool:
        """Take one stream line; True when the totals changed."""
        layer, status = line.get("id"), line.get("status", "")
        detail = line.get("progressDetail") or {}
        if not layer:
            return False
        before = self._layers.get(layer)
        if status == "Downloading" and detail.get("total"):
            self._layers[layer] = (int(detail.get("current", 0)), int(detail["total"]))
        elif status in self._DONE and layer in self._layers:
            total = self._layers[layer][1]
            self._layers[layer] = (total, total)
        return self._layers.get(layer) != before

    @property
    def downloaded(self) -> int:
        return sum(c for c, _ in self._layers.values())

    @property
    def total(self) -> int:
        return sum(t for _, t in self._layers.values())
