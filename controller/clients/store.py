"""What the agent keeps on disk between runs: its identity with the coordinator (worker id, token,
coordinator URL) and the last assignment it received.

The deployed coordinator hands out a new worker id on every registration, so an agent that
registered again on each restart would leave ghost workers behind: the identity is reused. The last
assignment lets the agent keep running its containers while the coordinator is unreachable, like a
kubelet whose API server is down. Files are written atomically (temp file, fsync, rename) with mode
0600 and read with O_NOFOLLOW, so a symlink planted in the state dir is neither followed nor
written through; the dir is created 0700. A corrupt or unreadable file is logged and treated as
absent, never fatal.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import structlog

log = structlog.get_logger(__name__)


@dataclass(frozen=True)
class Identity:
    worker_id: str
    coordinator_url: str
    token: str | None = None
    assignment_url: str | None = None
    heartbeat_url: str | None = None
    heartbeat_interval: float | None = None
    announced: str | None = None  # digest of the services last registered (contract/services.py)
    contributor_key: str | None = None  # Part 5: the key that gives its owner's requests priority


@dataclass(frozen=True)
class StoredAssignment:
    """What the coordinator said: specs (`containers`), else service names (`services`), else
    neither (the catalog's containers for the tier). None is "not said", never "run nothing"."""

    tier: int
    containers: list[dict[str, Any]] | None
    generation: int | None = None
    etag: str | None = None
    services: list[str] | None = None


def private_dir(path: Path) -> None:
    """Create the state dir 0700 (parents too); an existing one keeps its mode."""
    path.mkdir(parents=True, exist_ok=True, mode=0o700)


def atomic_write_text(path: Path, text: str) -> None:
    """Write `text` to `path` atomically, mode 0600. The rename replaces a symlink at `path`
    itself: nothing is ever written through one."""
    private_dir(path.parent)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_json(path: Path, data: Any) -> None:
    atomic_write_text(path, json.dumps(data, indent=2, sort_keys=True))


def read_private(path: Path) -> str:
    """The text of `path`, refusing to follow a symlink (OSError ELOOP)."""
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    with os.fdopen(fd, encoding="utf-8") as handle:
        return handle.read()


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(read_private(path))
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        log.error(
            "state_file_unreadable",
            path=str(path),
            error=str(exc),
            action="ignored; the agent starts as if it were absent",
        )
        return None
    if not isinstance(data, dict):
        log.error(
            "state_file_unreadable",
            path=str(path),
            error="not a JSON object",
            action="ignored; the agent starts as if it were absent",
        )
        return None
    return data


def _secret(path: Path, name: str) -> str:
    known = _read_json(path) or {}
    value = known.get(name)
    if not isinstance(value, str) or len(value) < 16:
        value = secrets.token_urlsafe(24)
        atomic_write_json(path, {**known, name: value})
    return value


class StateStore:
    """Identity and last assignment for one agent instance, under the state dir."""

    def __init__(self, state_dir: Path, instance: str) -> None:
        self.identity_path = state_dir / f"{instance}.identity.json"
        self.assignment_path = state_dir / f"{instance}.assignment.json"
        self.images_path = state_dir / f"{instance}.images.json"
        self.adopted_path = state_dir / f"{instance}.volumes.json"
        self.unused_path = state_dir / f"{instance}.unused-volumes.json"
        self.secrets_path = state_dir / f"{instance}.secrets.json"
        self.worker_path = state_dir / f"{instance}.worker.json"
        self.page_path = state_dir / f"{instance}.page-secret.json"

    def secret(self, name: str) -> str:
        """This worker's secret `name` for its containers (core/placeholders.py), created on
        first use (0600)."""
        return _secret(self.secrets_path, name)

    def page_secret(self) -> str:
        """The owner's page's cookie secret: a file of its own, never one `${secret:NAME}` can
        hand to a container (the `dashboard` entry of secrets.json before 0.8 is not reused)."""
        return _secret(self.page_path, "page")

    def load_adopted(self) -> frozenset[str]:
        """Legacy (unprefixed) volumes recorded as the agent's own (`rma-worker adopt-volume`)."""
        names = (_read_json(self.adopted_path) or {}).get("adopted")
        return frozenset(str(n) for n in names) if isinstance(names, list) else frozenset()

    def save_adopted(self, names: frozenset[str]) -> None:
        atomic_write_json(self.adopted_path, {"adopted": sorted(names)})

    def load_unused(self) -> dict[str, float]:
        """The agent's volumes no spec uses, with since when (for the retention)."""
        data = _read_json(self.unused_path) or {}
        return {str(k): float(v) for k, v in data.items() if isinstance(v, int | float)}

    def save_unused(self, unused: dict[str, float]) -> None:
        atomic_write_json(self.unused_path, unused)

    def load_pulled(self) -> dict[str, float]:
        """Images this agent pulled, with when (for image garbage collection)."""
        data = _read_json(self.images_path) or {}
        return {str(k): float(v) for k, v in data.items() if isinstance(v, int | float)}

    def save_pulled(self, pulled: dict[str, float]) -> None:
        atomic_write_json(self.images_path, pulled)

    def own_worker_id(self) -> str:
        """The worker id this agent made for itself (once, kept across unregistrations): sent
        on every registration; a coordinator that assigns its own still wins."""
        known = (_read_json(self.worker_path) or {}).get("worker_id")
        if isinstance(known, str) and re.fullmatch(r"worker-[0-9a-f]{16}", known):
            return known
        made = f"worker-{secrets.token_hex(8)}"
        atomic_write_json(self.worker_path, {"worker_id": made})
        return made

    def load_identity(self) -> Identity | None:
        data = _read_json(self.identity_path)
        if data is None:
            return None
        try:
            interval = data.get("heartbeat_interval")
            return Identity(
                worker_id=str(data["worker_id"]),
                coordinator_url=str(data["coordinator_url"]),
                token=data.get("token"),
                assignment_url=data.get("assignment_url"),
                heartbeat_url=data.get("heartbeat_url"),
                heartbeat_interval=float(interval) if interval else None,
                announced=data.get("announced"),
                contributor_key=data.get("contributor_key"),
            )
        except KeyError as exc:
            log.error(
                "state_file_unreadable",
                path=str(self.identity_path),
                error=f"missing {exc}",
                action="ignored; the agent registers anew",
            )
            return None

    def save_identity(self, identity: Identity) -> None:
        atomic_write_json(self.identity_path, asdict(identity))

    def forget_identity(self) -> None:
        self.identity_path.unlink(missing_ok=True)

    def load_assignment(self) -> StoredAssignment | None:
        data = _read_json(self.assignment_path)
        if data is None:
            return None
        containers, services = data.get("containers"), data.get("services")
        tier = data.get("tier")
        if (
            not isinstance(tier, int)
            or not isinstance(containers, list | None)
            or not isinstance(services, list | None)
        ):
            log.error(
                "state_file_unreadable",
                path=str(self.assignment_path),
                error="bad shape",
                action="ignored; waiting for the coordinator",
            )
            return None
        return StoredAssignment(
            tier=tier,
            containers=containers,
            generation=data.get("generation"),
            etag=data.get("etag"),
            services=[str(n) for n in services] if services is not None else None,
        )

    def save_assignment(self, assignment: StoredAssignment) -> None:
        atomic_write_json(self.assignment_path, asdict(assignment))

    def forget_assignment(self) -> None:
        self.assignment_path.unlink(missing_ok=True)
