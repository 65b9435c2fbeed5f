"""What the agent never accepts from any coordinator (the contract's "never accepts" list), as
pure checks.

A spec that asks for something dangerous is refused whole — never run with the dangerous part
dropped: privileged mode, host network/PID/IPC/UTS/user namespaces, added capabilities, devices,
bind mounts, security options, other runtimes, sysctls, cgroup parents. Images are parsed by
Docker's own reference rules and must come from the configured registries or repository prefixes
(default: the registries the RMA catalog uses), optionally pinned by digest.
Other unknown fields are ignored and never reach Docker.
"""

from __future__ import annotations

import re
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


# Docker's reference grammar (distribution/reference): lowercase path components, a tag, a digest.
_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
_PATH = re.compile(rf"^{_COMPONENT}(?:/{_COMPONENT})*\Z")
_TAG = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}\Z")
_DIGEST = re.compile(r"^sha256:[a-f0-9]{64}\Z")
_ID = re.compile(r"^(?:sha256:)?[a-f0-9]{12,64}\Z")


@dataclass(frozen=True)
class ImageRef:
    registry: str  # lowercase host[:port]; docker.io for Docker Hub
    path: str  # library/redis for an official Hub image
    tag: str = ""
    digest: str = ""

    @property
    def name(self) -> str:
        return f"{self.registry}/{self.path}"


def parse_reference(image: str) -> ImageRef:
    """An image reference by Docker's rules, or ValueError: the first component is a registry
    host when it has '.' or ':', is 'localhost', or has an uppercase letter; IDs, digest-only
    references and uppercase repository names are refused."""
    if _ID.match(image):
        raise ValueError(f"image {image!r} is an image ID, not a name from a registry")
    rest, _, digest = image.partition("@")
    if digest and not _DIGEST.match(digest):
        raise ValueError(f"image {image!r} has a malformed digest")
    first, sep, remainder = rest.partition("/")
    hosted = sep and (
        "." in first or ":" in first or first != first.lower() or first == "localhost"
    )
    registry, path = (first.lower(), remainder) if hosted else ("docker.io", rest)
    path, tag = _split_tag(path)
    registry = "docker.io" if registry in DOCKER_HUB_ALIASES else registry
    if registry == "docker.io" and "/" not in path:
        path = f"library/{path}"
    if not _PATH.match(path):
        raise ValueError(f"image {image!r} is not a valid repository name (lowercase, no IDs)")
    if tag and not _TAG.match(tag):
        raise ValueError(f"image {image!r} has a malformed tag")
    return ImageRef(registry, path, tag, digest)


def _split_tag(path: str) -> tuple[str, str]:
    name, colon, tag = path.rpartition(":")
    return (name, tag) if colon and "/" not in tag else (path, "")


def image_registry(image: str) -> str:
    """The registry an image reference pulls from (Docker's rules: no host part = Docker Hub)."""
    try:
        return parse_reference(image).registry
    except ValueError:
        return ""


@dataclass(frozen=True)
class ImagePolicy:
    """Registries (`docker.io`) and repository prefixes (`ghcr.io/rma/`) a coordinator's images may
    come from; `*` allows any."""

    registries: frozenset[str] = frozenset(DEFAULT_REGISTRIES)
    require_digest: bool = False

    @classmethod
    def from_setting(cls, registries: str | Iterable[str], require_digest: bool) -> ImagePolicy:
        items = registries.split(",") if isinstance(registries, str) else list(registries)
        names = frozenset(r.strip().lower() for r in items if r.strip())
        return cls(names or frozenset(DEFAULT_REGISTRIES), require_digest)

    def allows(self, ref: ImageRef) -> bool:
        if "*" in self.registries or ref.registry in self.registries:
            return True
        return any("/" in p and f"{ref.name}/".startswith(_prefix(p)) for p in self.registries)

    def check(self, image: str) -> str | None:
        """An error message when `image` is not allowed, else None."""
        try:
            ref = parse_reference(image)
        except ValueError as exc:
            return str(exc)
        if not self.allows(ref):
            allowed = ", ".join(sorted(self.registries))
            return f"image {image!r} is from {ref.name}, not an allowed registry ({allowed})"
        if self.require_digest and not ref.digest:
            return f"image {image!r} is not pinned by digest (@sha256:…)"
        return None

    def trusts_digests(self, image: str, repo_digests: Iterable[str]) -> bool:
        """A local image is trusted when one of its RepoDigests shows it was pulled from (or
        pushed to) the very repository `image` names, and that repository is allowed."""
        try:
            wanted = parse_reference(image)
        except ValueError:
            return False
        for entry in repo_digests:
            try:
                ref = parse_reference(entry)
            except ValueError:
                continue
            if ref.name == wanted.name and self.allows(ref):
                return True
        return False


def _prefix(entry: str) -> str:
    """'docker.io/rma/' or 'rma/' (Hub) as a normalised name prefix ending in '/'."""
    first, _, rest = entry.partition("/")
    if not ("." in first or ":" in first or first == "localhost"):
        entry = f"docker.io/{entry}"
    elif first in DOCKER_HUB_ALIASES:
        entry = f"docker.io/{rest}"
    return entry.rstrip("/") + "/"
