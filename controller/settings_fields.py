"""The settings that contain what a coordinator may ask for (issue 11: ports, containers, processes,
volumes, the LAN, local images), as a base class of Settings (settings.py), and the `_f` helper
that declares a field with its group and documentation.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from pydantic import Field, field_validator
from pydantic.config import JsonDict
from pydantic_settings import BaseSettings

from controller.core.limits import memory_bytes

OFF = ("off", "", "none", "0")


def default_state_dir() -> Path:
    if os.geteuid() == 0:
        return Path("/var/lib/rma-worker")
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "rma-worker"


def setting(default: Any, group: str, doc: str, shown: str | None = None, **kw: Any) -> Any:
    """A setting: its default, who sets it, what it means, and the default as documented."""
    extra: JsonDict = {"group": group}
    if shown is not None:
        extra["shown"] = shown
    if callable(default):
        return Field(default_factory=default, description=doc, json_schema_extra=extra, **kw)
    return Field(default=default, description=doc, json_schema_extra=extra, **kw)


class ContainmentSettings(BaseSettings):
    publish_address: str = setting(
        "127.0.0.1",
        "contributor",
        "host address that published ports bind to; 0.0.0.0 exposes them to the LAN",
    )
    port_range: str = setting(
        "1024-65535",
        "contributor",
        "host ports a coordinator's container may publish (low-high; at most 8 per container)",
    )
    max_containers: int = setting(
        32, "contributor", "most containers an assignment may hold (a bigger one is refused)", ge=1
    )
    pids_limit: int = setting(1024, "contributor", "most processes in each container", ge=16)
    max_pids: int | None = setting(
        None,
        "contributor",
        "most processes of all the agent's containers and tunnels together (their parent "
        "cgroup's pids.max; systemd TasksMax)",
        "min(pid_max / 4, 8192)",
        ge=16,
    )
    max_container_disk: str = setting(
        "10g",
        "contributor",
        "most a container may write to its own filesystem (its writable layer, volumes not "
        "counted); over it, it is removed and created anew (off: no limit)",
    )
    container_disk_interval: float = setting(
        60.0, "tuning", "seconds between two measures of the containers' writable layers", gt=0
    )
    volume_retention: float = setting(
        7.0,
        "contributor",
        "days a volume no container uses any more is kept (0: until cleanup --volumes)",
        ge=0,
    )
    isolate_lan: bool = setting(
        False,
        "contributor",
        "drop traffic from the agent's containers to this machine, private ranges and "
        "link-local addresses (iptables DOCKER-USER; needs root)",
        "off",
    )
    run_placeholders: bool = setting(
        False,
        "contributor",
        "run the catalog's services whose image the RMA project has not published yet (else "
        "they are `unavailable`: never pulled, run or tunnelled)",
        "off",
    )
    allow_local_images: bool = setting(
        False,
        "contributor",
        "run a coordinator's image already on this machine even when the agent did not pull "
        "it from an allowed registry (air-gapped owners who `docker load`)",
        "off",
    )

    @field_validator("max_container_disk")
    @classmethod
    def _disk_size(cls, v: str) -> str:
        if v.strip().lower() not in OFF:
            memory_bytes(v)  # ValueError: not a size
        return v

    @field_validator("port_range")
    @classmethod
    def _port_range(cls, v: str) -> str:
        port_bounds(v)
        return v


def port_bounds(text: str) -> tuple[int, int]:
    """'1024-65535' -> (1024, 65535)."""
    low, sep, high = text.strip().partition("-")
    if not (sep and low.isdigit() and high.isdigit() and 1 <= int(low) <= int(high) <= 65535):
        raise ValueError(f"{text!r} is not a port range low-high within 1-65535")
    return int(low), int(high)
