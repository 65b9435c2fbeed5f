"""An image's download size before it is pulled, from its registry (the Distribution API), so
that the disk floor can count a pull before it fills the disk (engine/images.py).

Docker's engine API says a manifest's digest but not its layers' sizes, so the manifest is read
here: `GET /v2/<name>/manifests/<ref>` (a list or index: the entry for this machine's platform,
then that manifest), with Docker Hub's and GHCR's anonymous bearer token when the registry asks
for one. Loopback registries are spoken to over plain HTTP, as Docker itself does. Bounded: 10 s
a request, 1 MiB an answer, 1 000 layers. Any failure answers None (size unknown): the pull is
then checked against the floor without it, as before.

The same reading says whether the image has a build for this machine's CPU (issue 24, item 7):
an index without a linux entry for it, or a single manifest whose config names another
architecture, raises `UnavailableError("unavailable: no linux/arm64 image")` — the image is not
pulled (Docker 20.10 would pull it and loop on `exec format error`).
"""

from __future__ import annotations

import platform
import re
from typing import Any

import requests
import structlog

from controller.core.errors import UnavailableError
from controller.core.policy import parse_reference

log = structlog.get_logger(__name__)
TIMEOUT = 10.0
MAX_ANSWER = 1024 * 1024
MAX_LAYERS = 1000
HUB = "registry-1.docker.io"
ACCEPT = ", ".join(
    (
        "application/vnd.docker.distribution.manifest.list.v2+json",
        "application/vnd.oci.image.index.v1+json",
        "application/vnd.docker.distribution.manifest.v2+json",
        "application/vnd.oci.image.manifest.v1+json",
    )
)
# The kernel's name for the CPU -> the OCI platform's architecture and variant.
_ARCH = {
    "x86_64": ("amd64", ""), "amd64": ("amd64", ""), "aarch64": ("arm64", ""),
    "arm64": ("arm64", ""), "armv7l": ("arm", "v7"), "armv6l": ("arm", "v6"),
    "i686": ("386", ""), "i386": ("386", ""), "ppc64le": ("ppc64le", ""), "s390x": ("s390x", ""),
    "riscv64": ("riscv64", ""),
}  # fmt: skip
_CHALLENGE = re.compile(r'(\w+)="([^"]*)"')


def machine_platform(machine: str | None = None) -> tuple[str, str]:
    """This machine's OCI architecture and variant (`arm64`, ""; `arm`, "v7")."""
    name = machine or platform.machine()
    return _ARCH.get(name, (name, ""))


def platform_name(arch: tuple[str, str]) -> str:
    return "linux/" + "/".join(p for p in arch if p)


def image_size(image: str) -> int | None:
    """The compressed size of `image`'s layers for this machine, or None when unknown;
    UnavailableError when the registry says it has no build for this machine's CPU."""
    try:
        ref = parse_reference(image)
        host = HUB if ref.registry == "docker.io" else ref.registry
        scheme = "http" if _loopback(host) else "https"
        base = f"{scheme}://{host}/v2/{ref.path}/manifests/"
        with requests.Session() as session:
            manifest = _get(session, base + (ref.digest or ref.tag or "latest"))
            if "manifests" in manifest:
                manifest = _get(session, base + _platform_digest(manifest))
            else:
                _check_config(session, base, manifest)
            layers = manifest.get("layers") or []
            if not isinstance(layers, list) or len(layers) > MAX_LAYERS:
                return None
            return sum(int(layer["size"]) for layer in layers) or None
    except (requests.RequestException, ValueError, KeyError, TypeError) as exc:
        log.debug("image_size_unknown", image=image, error=str(exc))
        return None


def _loopback(host: str) -> bool:
    name = host.rsplit(":", 1)[0] if not host.endswith("]") else host
    return name in ("localhost", "[::1]") or name.startswith("127.")


def _platform_digest(index: dict[str, Any]) -> str:
    arch, variant = machine_platform()
    offered = []
    for entry in index["manifests"][:MAX_LAYERS]:
        found = entry.get("platform") or {}
        ours = found.get("os") == "linux" and found.get("architecture") == arch
        if ours and (not variant or found.get("variant") in (None, "", variant)):
            return str(entry["digest"])
        built = str(found.get("architecture") or "unknown")
        if built != "unknown":  # attestation manifests say "unknown"
            offered.append(platform_name((built, str(found.get("variant") or ""))))
    raise UnavailableError(_no_build(offered))


def _check_config(session: requests.Session, base: str, manifest: dict[str, Any]) -> None:
    """A single-platform image: its config says the architecture it was built for."""
    digest = (manifest.get("config") or {}).get("digest")
    if not digest:
        return
    try:
        config = _get(session, base.replace("/manifests/", "/blobs/") + str(digest))
    except (requests.RequestException, ValueError) as exc:
        log.debug("image_config_unread", error=str(exc))
        return
    arch, built = machine_platform(), str(config.get("architecture") or "")
    if built and built != arch[0]:
        variant = str(config.get("variant") or "")
        raise UnavailableError(_no_build([platform_name((built, variant))]))


def _no_build(offered: list[str]) -> str:
    here = platform_name(machine_platform())
    has = f" (it has {', '.join(sorted(set(offered))[:4])})" if offered else ""
    return f"unavailable: no {here} image{has}"


def _get(session: requests.Session, url: str) -> dict[str, Any]:
    headers = {"Accept": ACCEPT}
    answer = _bounded(session, url, headers)
    if answer.status_code == 401 and "Authorization" not in session.headers:
        session.headers["Authorization"] = f"Bearer {_token(session, answer)}"
        answer = _bounded(session, url, headers)
    answer.raise_for_status()
    data = answer.json()
    if not isinstance(data, dict):
        raise ValueError("not a manifest")
    return data


def _bounded(session: requests.Session, url: str, headers: dict[str, str]) -> requests.Response:
    answer = session.get(url, headers=headers, timeout=TIMEOUT, stream=True, allow_redirects=True)
    body = answer.raw.read(MAX_ANSWER + 1, decode_content=True)
    if len(body) > MAX_ANSWER:
        raise ValueError("manifest over 1 MiB")
    answer._content = body  # requests keeps a read body there
    return answer


def _token(session: requests.Session, challenge: requests.Response) -> str:
    """An anonymous pull token from the realm the registry's 401 named."""
    header = challenge.headers.get("WWW-Authenticate", "")
    if not header.lower().startswith("bearer "):
        raise ValueError("the registry asks for credentials")
    params = dict(_CHALLENGE.findall(header))
    realm = params.pop("realm", "")
    if not realm.startswith("https://"):
        raise ValueError("token realm is not https")
    answer = _bounded(session, realm, {"Accept": "application/json"})
    answer.raise_for_status()
    data = answer.json()
    return str(data.get("token") or data["access_token"])
