"""What the volunteer lends, and on what terms (the `contributor` group): the owner's schedule,
pausing and the GPU given back (issue 14), the energy receipt's prices, how the pool reaches the
services (the contract's Part 4), what a coordinator's containers may have (issue 11: ports,
containers, processes, disk, volumes, the LAN, local images), the caps and the images allowed.
"""

from __future__ import annotations

import re
from typing import Literal, Self

from pydantic import field_validator, model_validator
from pydantic_settings import BaseSettings

from controller.core.energy import Price
from controller.core.limits import memory_bytes
from controller.core.schedule import Schedule
from controller.settings.fields import OFF, port_bounds, setting


class ContributorSettings(BaseSettings):
    schedule: str | None = setting(
        None,
        "when the machine is lent, in local time, e.g. 'mon-fri 18:00-08:00; sat,sun' "
        "(outside it everything is paused)",
        "(always)",
    )
    pause_on_battery: bool = setting(
        True,
        "pause everything while a laptop runs on its battery (--no-pause-on-battery: keep on)",
        "on (where a battery exists)",
    )
    pause_when_busy: float | None = setting(
        None,
        "when your own programs keep the CPU above this % for 30 s, pause the GPU containers, "
        "30 s later everything; resumed after --busy-cooldown below it",
        "(off)",
        gt=0,
        le=100,
    )
    busy_cooldown: float = setting(120.0, "seconds below --pause-when-busy before resuming", ge=0)
    gpu_yield_cooldown: float = setting(
        300.0,
        "seconds a GPU must stay free of other programs (and cool) before the agent uses it again",
        ge=0,
    )
    gpu_yield_min_memory: int = setting(
        1024,
        "MiB of GPU memory a graphics program (not a compute one) must hold before the GPU is "
        "given back to it: a game yes, a browser or a video call no",
        ge=0,
    )
    gpu_yield_min_util: float = setting(
        15.0,
        "% of the GPU's SMs a graphics program must use for 5 s before the GPU is given back",
        ge=0,
        le=100,
    )
    gpu_max_temp: float = setting(
        83.0,
        "°C above which a GPU is given back until it is 5 °C cooler for the cool-down",
        gt=0,
        le=120,
    )
    gpu_power_limit: float | None = setting(
        None,
        "watts each lent GPU is limited to while the agent runs (root only; restored on exit)",
        "(the card's own)",
        gt=0,
    )
    receipt_window: float = setting(
        600.0,
        "seconds each signed receipt of what this machine served covers (the credits it earns)",
        ge=60,
        le=86400,
    )
    display_name: str | None = setting(
        None,
        "the name the pool's leaderboard shows for this machine (opt-in: else a short id)",
        "(none: a short id)",
    )
    energy_price: str | None = setting(
        None,
        "your electricity price per kWh with its currency, e.g. '0.30 EUR' (for the receipt)",
        "(none)",
    )
    carbon_intensity: float | None = setting(
        None,
        "grams of CO2 per kWh of your electricity (for the receipt)",
        "(none)",
        ge=0,
        le=5000,
    )
    ingress: Literal["auto", "tunnel", "url", "none"] = setting(
        "auto",
        "how the pool reaches the services: tunnel (an outbound quick tunnel per HTTP service), "
        "url (your address: --advertise-url), none (not reachable); auto: tunnel with a "
        "coordinator that is not on this machine, else none",
    )
    advertise_url: str | None = setting(
        None,
        "with --ingress url: each service's URL, e.g. https://{service}.example.org or "
        "http://203.0.113.7:{port}",
        "(http://<advertise-ip>:{port})",
    )
    tunnel_image: str = setting(
        "cloudflare/cloudflared:2024.10.1",
        "image of the tunnel containers (pinned to a release tag, never latest)",
    )
    publish_address: str = setting(
        "127.0.0.1",
        "host address that published ports bind to; 0.0.0.0 exposes them to the LAN",
    )
    port_range: str = setting(
        "1024-65535",
        "host ports a coordinator's container may publish (low-high; at most 8 per container)",
    )
    max_containers: int = setting(
        32, "most containers an assignment may hold (a bigger one is refused)", ge=1
    )
    pids_limit: int = setting(1024, "most processes in each container", ge=16)
    max_pids: int | None = setting(
        None,
        "most processes of all the agent's containers and tunnels together (their parent "
        "cgroup's pids.max; systemd TasksMax)",
        "min(pid_max / 4, 8192)",
        ge=16,
    )
    max_container_disk: str = setting(
        "10g",
        "most a container may write to its own filesystem (its writable layer, volumes not "
        "counted); over it, it is removed and created anew (off: no limit)",
    )
    volume_retention: float = setting(
        7.0,
        "days a volume no container uses any more is kept (0: until cleanup --volumes)",
        ge=0,
    )
    isolate_lan: bool = setting(
        False,
        "drop traffic from the agent's containers to this machine, private ranges and "
        "link-local addresses (iptables DOCKER-USER; needs root)",
        "off",
    )
    run_placeholders: bool = setting(
        False,
        "run the catalog's services whose image the RMA project has not published yet (else "
        "they are `unavailable`: never pulled, run or tunnelled)",
        "off",
    )
    allow_local_images: bool = setting(
        False,
        "run a coordinator's image already on this machine even when the agent did not pull "
        "it from an allowed registry (air-gapped owners who `docker load`)",
        "off",
    )
    max_cpus: float | None = setting(
        None,
        "at most this many CPUs for each of the agent's containers (also what is offered)",
        "(no cap)",
        gt=0,
    )
    max_memory: str | None = setting(
        None,
        "at most this much memory for each container, e.g. 8g (also what is offered)",
        "(no cap)",
    )
    reserve_memory: str | None = setting(
        None,
        "memory kept for your own programs: the containers together get the machine's memory "
        "less this (those that do not fit are `unavailable`), e.g. 2g",
        "(a fifth of the memory, 512m to 4g)",
    )
    gpus: str | None = setting(
        None,
        "comma-separated GPU indices or UUIDs the containers may use (empty: none)",
        "(all)",
    )
    allowed_registries: str = setting(
        "docker.io,ghcr.io",
        "comma-separated registries a coordinator's images may come from ('*': any)",
    )
    require_digest: bool = setting(
        False,
        "refuse coordinator images that are not pinned by @sha256: digest",
        "off",
    )
    min_free_disk: float = setting(
        5.0,
        "GiB that must stay free on Docker's disk: pulls are refused under it",
        ge=0,
    )
    model_cache_max: str | None = setting(
        None,
        "how much the model caches (Hugging Face's, Ollama's) may hold together; at it, no new "
        "service that uses one starts (rma-worker cleanup --caches empties them), e.g. 50g",
        "(a fifth of Docker's disk, 10g to 100g)",
    )
    image_gc_high: float = setting(
        85.0,
        "disk use (%) above which images the agent pulled and no longer uses are removed",
        ge=0,
        le=100,
    )
    image_gc_low: float = setting(
        80.0,
        "disk use (%) that image removal brings the disk back under (at most --image-gc-high)",
        ge=0,
        le=100,
    )

    @field_validator("schedule")
    @classmethod
    def _a_schedule(cls, v: str | None) -> str | None:
        if v and v.strip():
            Schedule.parse(v)  # ValueError: what is wrong
            return v.strip()
        return None

    @field_validator("display_name")
    @classmethod
    def _display_name(cls, v: str | None) -> str | None:
        if v is None:
            return None
        v = v.strip()
        if not 1 <= len(v) <= 40 or not v.isprintable():
            raise ValueError(f"{v!r}: 1 to 40 printable characters")
        return v

    @field_validator("energy_price")
    @classmethod
    def _a_price(cls, v: str | None) -> str | None:
        if v and v.strip():
            Price.parse(v)
            return v.strip()
        return None

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

    @field_validator("max_container_disk")
    @classmethod
    def _disk_size(cls, v: str) -> str:
        if v.strip().lower() not in OFF:
            memory_bytes(v)  # ValueError: not a size
        return v

    @field_validator("max_memory", "reserve_memory", "model_cache_max")
    @classmethod
    def _memory_size(cls, v: str | None) -> str | None:
        if v is not None:
            memory_bytes(v)  # ValueError: not a size
        return v

    @field_validator("port_range")
    @classmethod
    def _port_range(cls, v: str) -> str:
        port_bounds(v)
        return v

    @model_validator(mode="after")
    def _image_gc_marks(self) -> Self:
        if self.image_gc_low > self.image_gc_high:
            raise ValueError(
                f"--image-gc-low ({self.image_gc_low:g}) must not be above "
                f"--image-gc-high ({self.image_gc_high:g})"
            )
        return self

    @property
    def price(self) -> Price | None:
        return Price.parse(self.energy_price) if self.energy_price else None
