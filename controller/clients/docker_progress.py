"""A pull's progress from the engine's stream: per-layer lines summed into bytes downloaded and
extracted of bytes announced (for `status`, the log, the page and the progress bar)."""

from __future__ import annotations

from typing import Any


class LayerProgress:
    """Sums the engine's per-layer pull progress lines into bytes downloaded / announced."""

    _DOWNLOADED = frozenset({"Download complete", "Verifying Checksum"})
    _DONE = frozenset({"Pull complete", "Already exists"})

    def __init__(self) -> None:
        self._layers: dict[str, tuple[int, int, int]] = {}  # id -> downloaded, total, extracted

    def feed(self, line: dict[str, Any]) -> bool:
        """Take one stream line; True when the totals changed."""
        layer, status = line.get("id"), line.get("status", "")
        detail = line.get("progressDetail") or {}
        if not layer:
            return False
        before = self._layers.get(layer)
        if status == "Downloading" and detail.get("total"):
            self._layers[layer] = (int(detail.get("current", 0)), int(detail["total"]), 0)
        elif layer in self._layers:
            _, total, extracted = self._layers[layer]
            if status in self._DOWNLOADED:
                self._layers[layer] = (total, total, extracted)
            elif status == "Extracting" and detail.get("total"):
                self._layers[layer] = (total, total, min(total, int(detail.get("current", 0))))
            elif status in self._DONE:
                self._layers[layer] = (total, total, total)
        return self._layers.get(layer) != before

    @property
    def downloaded(self) -> int:
        return sum(d for d, _, _ in self._layers.values())

    @property
    def total(self) -> int:
        return sum(t for _, t, _ in self._layers.values())

    @property
    def extracted(self) -> int:
        return sum(e for _, _, e in self._layers.values())
