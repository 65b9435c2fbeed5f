"""The settings of how the pool reaches this machine's services (the contract's Part 4): the
ingress mode, the owner's own address template, and the tunnel's image and URL pattern — a base
class of Settings (settings.py), like the containment settings (settings_fields.py).
"""

from __future__ import annotations

import re
from typing import Literal

from pydantic import field_validator
from pydantic_settings import BaseSettings

from controller.settings_fields import setting

INGRESS_MODES = ("auto", "tunnel", "url", "none")


class IngressSettings(BaseSettings):
    ingress: Literal["auto", "tunnel", "url", "none"] = setting(
        "auto",
        "contributor",
        "how the pool reaches the services: tunnel (an outbound quick tunnel per HTTP service), "
        "url (your address: --advertise-url), none (not reachable); auto: tunnel with a "
        "coordinator that is not on this machine, else none",
    )
    advertise_url: str | None = setting(
        None,
        "contributor",
        "with --ingress url: each service's URL, e.g. https://{service}.example.org or "
        "http://203.0.113.7:{port}",
        "(http://<advertise-ip>:{port})",
    )
    tunnel_image: str = setting(
        "cloudflare/cloudflared:2024.10.1",
        "contributor",
        "image of the tunnel containers (pinned to a release tag, never latest)",
    )
    tunnel_url_pattern: str = setting(
        r"https://[-a-z0-9]+\.trycloudflare\.com",
        "tuning",
        "regular expression of the public URL in a tunnel's log",
    )

    drain_seconds: float = setting(
        10.0,
        "tuning",
        "on SIGTERM: seconds between withdrawing the services' URLs and stopping the "
        "containers, for requests in flight (0: stop at once)",
        ge=0,
        le=600,
    )

    @field_validator("advertise_url")
    @classmethod
    def _a_url(cls, v: str | None) -> str | None:
        if v and not re.match(r"^https?://[^\s/]+", v):
            raise ValueError(f"{v!r} is not an http(s):// URL template")
        return v or None

    @field_validator("tunnel_image")
    @classmethod
    def _pinned(cls, v: str) -> str:
        last = v.split("@", 1)[0].rsplit("/", 1)[-1]
        if "@" not in v and (":" not in last or last.endswith(":latest")):
            raise ValueError(f"{v!r}: pin the tunnel image to a release tag or digest")
        return v

    @field_validator("tunnel_url_pattern")
    @classmethod
    def _a_pattern(cls, v: str) -> str:
        try:
            re.compile(v)
        except re.error as exc:
            raise ValueError(f"{v!r} is not a regular expression: {exc}") from exc
        return v
