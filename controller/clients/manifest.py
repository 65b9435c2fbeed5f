"""Desired state from a local file, like kubelet's static pod manifests.

The file is YAML or JSON with a top-level `containers:` list of ContainerSpecs. A file that does
not parse, or has any invalid entry, is rejected whole with a clear error and the agent keeps the
last good state: a typo while editing never removes a running container. An empty file is an
error too (a half-written file must not mean "remove everything"); `containers: []` is explicit.
Changes are detected by a cheap stat of the file (inode, size, mtime), so an editor's atomic save
is seen too: `watch` stats it twice a second on a thread of its own and rings the loop's doorbell
when it differs (the loop itself polls nothing).
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from pathlib import Path

import yaml

from controller.contract.schema import parse_specs
from controller.core.clock import SYSTEM, Clock
from controller.core.errors import ConfigError
from controller.core.models import DesiredState


class ManifestSource:
    def __init__(
        self, path: Path, *, publish_address: str = "", clock: Clock = SYSTEM, every: float = 0.5
    ) -> None:
        self.path = path
        self._publish_address = publish_address
        self._seen: tuple[int, int, int] | None = None
        self._clock, self._every = clock, every

    def watch(self, ring: Callable[[], None], stop: threading.Event) -> None:
        """Ring `ring` when the file changes, until `stop` (a daemon thread)."""

        def stat() -> None:
            while not self._clock.wait(stop, self._every):
                if self.changed():
                    ring()

        threading.Thread(target=stat, name="manifest-watch", daemon=True).start()

    def describe(self) -> str:
        return f"manifest {self.path}"

    def _signature(self) -> tuple[int, int, int] | None:
        try:
            st = os.stat(self.path)
        except OSError:
            return None
        return (st.st_ino, st.st_size, st.st_mtime_ns)

    def changed(self) -> bool:
        """True when the file differs from what the last load() read."""
        return self._signature() != self._seen

    def load(self) -> DesiredState:
        self._seen = self._signature()
        try:
            text = self.path.read_text(encoding="utf-8")
        except OSError as exc:
            raise ConfigError(f"cannot read manifest {self.path}: {exc.strerror}") from exc
        return parse_manifest(text, str(self.path), self._publish_address)


def parse_manifest(text: str, where: str = "manifest", publish_address: str = "") -> DesiredState:
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{where} is not valid YAML/JSON: {exc}") from exc
    if data is None:
        raise ConfigError(f"{where} is empty (write 'containers: []' to run no containers)")
    if not isinstance(data, dict) or "containers" not in data:
        raise ConfigError(f"{where} must be a mapping with a top-level 'containers:' list")
    specs, errors = parse_specs(data["containers"] or [], publish_address)
    if errors:
        detail = "; ".join(f"{e.name}: {e.message}" for e in errors)
        raise ConfigError(f"{where} rejected, nothing changed: {detail}")
    return DesiredState(tuple(specs))
