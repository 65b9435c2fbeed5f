"""The agent's configuration, one package: every option is an environment variable (`RMA_`
prefix; the seed's `COORDINATOR_URL` is honoured as is) and a command-line flag that overrides
it. The CLI builds its flags and the settings table (`make settings-table`) from these fields, so
the three cannot drift apart.

Each group of who sets it is a module: `contributor` (what the volunteer lends), `operator` (how
this agent runs), `tuning` (timings few need to touch); `fields` holds the one helper they are
declared with. Settings is the three together, with the rules that span groups, so a bad
combination is a configuration error (exit 2) before anything starts. It sits between the
command line and the composition root (`app`) in the layer contracts: nothing below `app` sees
Settings; every part gets plain values.
"""

from __future__ import annotations

from typing import Self
from urllib.parse import urlsplit

from pydantic import ValidationError, model_validator
from pydantic_settings import SettingsConfigDict

from controller.core.addresses import loopback
from controller.settings.contributor import ContributorSettings
from controller.settings.fields import OFF, parse_host_port, port_bounds
from controller.settings.operator import DEFAULT_COORDINATOR, OperatorSettings
from controller.settings.tuning import TuningSettings

__all__ = [
    "DEFAULT_COORDINATOR",
    "GROUPS",
    "OFF",
    "Settings",
    "env_for",
    "flag_for",
    "group_of",
    "parse_host_port",
    "port_bounds",
    "problems",
]

GROUPS = ("contributor", "operator", "tuning")
_DECLARED: dict[str, frozenset[str]] = {
    "contributor": frozenset(ContributorSettings.model_fields),
    "operator": frozenset(OperatorSettings.model_fields),
    "tuning": frozenset(TuningSettings.model_fields),
}


class Settings(TuningSettings, OperatorSettings, ContributorSettings):
    """Every setting (contributor's first, then operator's, then tuning's: the flags' order)."""

    model_config = SettingsConfigDict(env_prefix="RMA_", extra="ignore", populate_by_name=True)

    @model_validator(mode="after")
    def _url_needs_an_address(self) -> Self:
        if self.ingress == "url" and not (self.advertise_url or self.advertise_ip):
            raise ValueError("--ingress url needs --advertise-url (or --advertise-ip)")
        return self

    @property
    def ingress_mode(self) -> str:
        """`auto` resolved: a tunnel for a coordinator elsewhere, none for one on this machine
        and in manifest mode."""
        if self.ingress != "auto":
            return self.ingress
        if self.manifest is not None:
            return "none"
        host = urlsplit(self.effective_coordinator).hostname or ""
        return "none" if loopback(host) else "tunnel"


# CLI flag names that differ from the field name.
FLAG_NAMES = {"coordinator_url": "--coordinator"}


def flag_for(field: str) -> str:
    return FLAG_NAMES.get(field, "--" + field.replace("_", "-"))


def env_for(field: str) -> str:
    return "COORDINATOR_URL" if field == "coordinator_url" else "RMA_" + field.upper()


def group_of(field: str) -> str:
    """Who sets it: the group module that declares it."""
    return next(g for g, declared in _DECLARED.items() if field in declared)


def problems(exc: ValidationError) -> list[str]:
    """One line per bad setting, naming its flag and environment variable and what is wrong
    (no pydantic wording, no link): what `rma-worker` prints before it exits 2."""
    lines = []
    for error in exc.errors(include_url=False):
        message = str(error["msg"]).removeprefix("Value error, ").removeprefix("Assertion failed, ")
        field = str(error["loc"][0]) if error["loc"] else ""
        if field not in Settings.model_fields:
            lines.append(message)  # a rule across settings: its message names them
            continue
        given = error.get("input")
        shown = isinstance(given, str | int | float) and repr(given) not in message
        got = f" (got {given!r})" if shown else ""
        lines.append(
            f"{flag_for(field)} / {env_for(field)}: {message[:1].lower()}{message[1:]}{got}"
        )
    return lines
