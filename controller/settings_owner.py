"""The settings by which the volunteer stays in charge of the machine they lend (issue 14): the
schedule, pausing on battery or when their own programs are busy, giving the GPU back (other
programs on it, its temperature, a power limit), and what the energy receipt costs — a base class
of Settings (settings.py), like the ingress and containment settings.
"""

from __future__ import annotations

from typing import Literal

from pydantic import field_validator
from pydantic_settings import BaseSettings

from controller.core.energy import Price
from controller.core.schedule import Schedule
from controller.settings_fields import setting


class OwnerSettings(BaseSettings):
    schedule: str | None = setting(
        None,
        "contributor",
        "when the machine is lent, in local time, e.g. 'mon-fri 18:00-08:00; sat,sun' "
        "(outside it everything is paused)",
        "(always)",
    )
    pause_on_battery: bool = setting(
        True,
        "contributor",
        "pause everything while a laptop runs on its battery (--no-pause-on-battery: keep on)",
        "on (where a battery exists)",
    )
    pause_when_busy: float | None = setting(
        None,
        "contributor",
        "when your own programs keep the CPU above this % for 30 s, pause the GPU containers, "
        "30 s later everything; resumed after --busy-cooldown below it",
        "(off)",
        gt=0,
        le=100,
    )
    busy_cooldown: float = setting(
        120.0, "contributor", "seconds below --pause-when-busy before resuming", ge=0
    )
    gpu_yield_cooldown: float = setting(
        300.0,
        "contributor",
        "seconds a GPU must stay free of other programs (and cool) before the agent uses it again",
        ge=0,
    )
    gpu_max_temp: float = setting(
        83.0,
        "contributor",
        "°C above which a GPU is given back until it is 5 °C cooler for the cool-down",
        gt=0,
        le=120,
    )
    gpu_power_limit: float | None = setting(
        None,
        "contributor",
        "watts each lent GPU is limited to while the agent runs (root only; restored on exit)",
        "(the card's own)",
        gt=0,
    )
    energy_price: str | None = setting(
        None,
        "contributor",
        "your electricity price per kWh with its currency, e.g. '0.30 EUR' (for the receipt)",
        "(none)",
    )
    carbon_intensity: float | None = setting(
        None,
        "contributor",
        "grams of CO2 per kWh of your electricity (for the receipt)",
        "(none)",
        ge=0,
        le=5000,
    )

    dashboard: Literal["on", "read-only", "off"] = setting(
        "on",
        "operator",
        "the owner's page at / on the health endpoint: on (pause and resume from it), read-only, "
        "off. Anyone who can open the endpoint on this machine can use the page: read-only on a "
        "machine shared with people who should not pause it",
    )

    @field_validator("schedule")
    @classmethod
    def _a_schedule(cls, v: str | None) -> str | None:
        if v and v.strip():
            Schedule.parse(v)  # ValueError: what is wrong
            return v.strip()
        return None

    @field_validator("energy_price")
    @classmethod
    def _a_price(cls, v: str | None) -> str | None:
        if v and v.strip():
            Price.parse(v)
            return v.strip()
        return None

    @property
    def price(self) -> Price | None:
        return Price.parse(self.energy_price) if self.energy_price else None
