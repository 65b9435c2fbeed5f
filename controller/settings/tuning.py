"""Timings few need to touch (the `tuning` group): heartbeats and long polls, passes and stops,
pulls, tunnels and the drain before a stop.
"""

from __future__ import annotations

import re

from pydantic import field_validator
from pydantic_settings import BaseSettings

from controller.settings.fields import setting


class TuningSettings(BaseSettings):
    tunnel_url_pattern: str = setting(
        r"https://[-a-z0-9]+\.trycloudflare\.com",
        "regular expression of the public URL in a tunnel's log",
    )
    drain_seconds: float = setting(
        10.0,
        "on SIGTERM: seconds between withdrawing the services' URLs and stopping the "
        "containers, for requests in flight (0: stop at once)",
        ge=0,
        le=600,
    )
    container_disk_interval: float = setting(
        60.0, "seconds between two measures of the containers' writable layers", gt=0
    )
    pull_stall_timeout: float = setting(
        120.0,
        "seconds a pull may go without a byte downloaded or extracted before it is aborted "
        "(`pull_stalled`) and tried again with back-off",
        gt=0,
    )
    heartbeat_interval: float | None = setting(
        None,
        "seconds between heartbeats (overrides the coordinator's)",
        "(the coordinator's)",
        gt=0,
    )
    long_poll_wait: float = setting(
        55.0,
        "seconds the coordinator may hold an assignment "
        "long poll open (0: no long poll; changes then arrive with the "
        "next heartbeat)",
        ge=0,
        le=60,
    )
    resync_interval: float = setting(30.0, "seconds between full safety-net passes", gt=0)
    stop_grace: float = setting(10.0, "seconds a container gets to stop before it is killed", ge=0)
    concurrency: int = setting(8, "containers created/started/removed at once", ge=1, le=64)
    image_refresh_interval: float = setting(
        6 * 3600.0,
        "seconds between background refreshes of a mutable image tag (0: never)",
        ge=0,
    )

    @field_validator("tunnel_url_pattern")
    @classmethod
    def _a_pattern(cls, v: str) -> str:
        try:
            re.compile(v)
        except re.error as exc:
            raise ValueError(f"{v!r} is not a regular expression: {exc}") from exc
        return v
