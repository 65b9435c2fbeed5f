"""What the agent never accepts from any coordinator (the contract's "never accepts" list), as
pure checks.

A spec that asks for something dangerous is refused whole — never run with the dangerous part
dropped: privileged mode, host network/PID/IPC/UTS/user namespaces, added capabilities, devices,
bind mounts, security options, other runtimes, sysctls, cgroup parents. Images must come from the
configured registries (default: those the RMA catalog uses), optionally pinned by digest.
Other unknown fields are ignored and never reach Docker.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

# Spec keys that would reach the host if honoured, with what they would have asked for.
DANGEROUS: Mapping[str, str] = {
    "privileged": "privileged mode",
    "cap_add": "added capabilities",
    "capabilities": "added capabilities",
    "devices": "host devices",
    "device_requests": "host devices",
    "network_mode": "another network namespace",
    "network": "another network namespace",
    "pid": "the host PID namespace",
    "pid_mode": "the host PID namespace",
    "ipc": "the host IPC namespace",
    "ipc_mode": "the host IPC namespace",
    "uts": "the host UTS namespace",
    "uts_mode": "the host UTS namespace",
    "userns_mode": "the host user namespace",
    "binds": "host bind mounts",
    "mounts": "host bind mounts",
    "volumes_from": "other mounts",
    "security_opt": "security options",
    "runtime": "another container runtime",
    "sysctls": "kernel parameters",
    "cgroup_parent": "another cgroup",
}
HARMLESS_NETWORKS = frozenset({"bridge", "default"})
DEFAULT_REGISTRIES = ("docker.io", "ghcr.io")
DOCKER_HUB_ALIASES = frozenset({"docker.io", "index.docker.io", "registry-1.docker.io"})


def dangerous_fields(raw: Mapping[str, Any]) -> list[str]:
    """Why this raw spec must be refused; [] when it asks for nothing dangerous."""
    found = []
    for key, what in DANGEROUS.items():
        value = raw.get(key)
        if value in (None, False, "", [], {}):
            continue
        if key in ("network_mode", "network") and value in HARMLESS_NETWORKS:
            continue
        found.append(f"{key} ({what})")
    return found


def image_registry(image: str) -> str:
    """The registry an image reference pulls from (Docker's rules: no host part = Docker Hub)."""
    first, sep, _rest = image.partition("/")
    if sep and ("." in first or ":" in first or first == "localhost"):
        return "docker.io" if first.lower() in DOCKER_HUB_ALIASES else first.lower()
    return "docker.io"


@dataclass(frozen=True)
class ImagePolicy:
    registries: frozenset[str] = frozenset(DEFAULT_REGISTRIES)  # "*" allows any
    require_digest: bool = False

    @classmethod
    def from_setting(cls, registries: str | Iterable[str], require_digest: bool) -> ImagePolicy:
        items = registries.split(",") if isinstance(registries, str) else list(registries)
        names = frozenset(r.strip().lower() for r in items if r.strip())
        return cls(names or frozenset(DEFAULT_REGISTRIES), require_digest)

    def check(self, image: str) -> str | None:
        """An error message when `image` is not allowed, else None."""
        registry = image_registry(image)
        if "*" not in self.registries and registry not in self.registries:
            allowed = ", ".join(sorted(self.registries))
            return f"image {image!r} is from {registry}, not an allowed registry ({allowed})"
        if self.require_digest and "@sha256:" not in image:
            return f"image {image!r} is not pinned by digest (@sha256:…)"
        return None
