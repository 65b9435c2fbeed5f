"""The agent's service catalog: which container runs each RMA service (the names of the contract's
Part 3) and which tier runs it. A coordinator that names services (`assigned_services`, the
local/community coordinator) or names nothing at all (the edge coordinator: the catalog's
containers for the tier it gave) is turned into container specs here.

Validated whole when loaded (the owner's `--catalog` file is configuration: an error is fatal,
never half a catalog). Each spec carries its service name and health path as `rma.service` and
`rma.health` labels, so what runs says what it serves (in `docker ps` too) and the announcement
(contract/services.py) reads them back from the spec alone. Pure: the YAML is read in clients/.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from controller.contract.schema import ContainerSpecModel, one_line
from controller.core.models import (
    ALIASES_LABEL,
    HEALTH_LABEL,
    HTTP_LABEL,
    SERVICE_LABEL,
    Refusal,
)

SERVICE_NAME = re.compile(r"^[a-z0-9][a-z0-9._-]{0,62}\Z")
MAX_NAMES = 64  # service names a coordinator may list; more is refused whole


class CatalogError(ValueError):
    """The catalog file is not one the agent can run from."""


class _Service(BaseModel):
    model_config = ConfigDict(extra="forbid")
    tier: int = Field(ge=1, le=4)
    health: str | None = Field(default=None, pattern=r"^/[^\s]{0,200}$")
    placeholder: bool = False  # the image is a stand-in until the RMA project publishes one
    http: bool = False  # it speaks HTTP on its first port (a tunnel can carry it)
    aliases: list[str] = Field(default=[], max_length=4)  # names RMA's services expect (ollama)
    start_period: float | None = Field(default=None, ge=0, le=3600)  # readiness's, beside health
    ready_contains: str | None = Field(default=None, max_length=256)
    warmup: dict[str, Any] | None = None  # readiness's, beside health (Ollama's model pull)
    container: dict[str, Any]


class _Catalog(BaseModel):
    model_config = ConfigDict(extra="forbid")
    version: int = 1
    services: dict[str, _Service] = {}


@dataclass(frozen=True)
class CatalogEntry:
    service: str
    tier: int
    spec: dict[str, Any]  # a ContainerSpec on the wire, labels included
    placeholder: bool = False


PLACEHOLDER = "the RMA project has not published this image yet (--run-placeholders tries it)"


@dataclass(frozen=True)
class Catalog:
    """`run_placeholders`: run the entries marked `placeholder` (a stand-in image the RMA project
    has not published) instead of reporting them `unavailable` — never pulled, run or tunnelled
    by default, so a tier-2 laptop does not retry three missing images for ever."""

    entries: tuple[CatalogEntry, ...] = ()
    run_placeholders: bool = False

    @classmethod
    def from_data(cls, data: Any) -> Catalog:
        try:
            parsed = _Catalog.model_validate(data if data is not None else {})
        except ValidationError as exc:
            raise CatalogError(one_line(exc)) from exc
        entries = _with_addresses([_entry(name, svc) for name, svc in parsed.services.items()])
        names = [e.spec["name"] for e in entries]
        clash = sorted({n for n in names if names.count(n) > 1})
        if clash:
            raise CatalogError(f"two services run a container named {', '.join(clash)}")
        return cls(tuple(entries))

    def for_tier(self, tier: int) -> tuple[list[dict[str, Any]], list[Refusal]]:
        """(the specs of every service the catalog gives to `tier` (none for the edge, today),
        the placeholders among them, unavailable)."""
        return self._runnable([e for e in self.entries if e.tier == tier])

    def for_names(self, names: list[Any]) -> tuple[list[dict[str, Any]], list[str], list[Refusal]]:
        """(specs of the named services, the names the catalog does not know, the placeholders
        among them, unavailable)."""
        known = {e.service: e for e in self.entries}
        found: list[CatalogEntry] = []
        unknown: list[str] = []
        for name in dict.fromkeys(str(n)[:100] for n in names):
            entry = known.get(name)
            if entry is None:
                unknown.append(name)
            else:
                found.append(entry)
        specs, unavailable = self._runnable(found)
        return specs, unknown, unavailable

    def _runnable(self, entries: list[CatalogEntry]) -> tuple[list[dict[str, Any]], list[Refusal]]:
        run = [e for e in entries if self.run_placeholders or not e.placeholder]
        skipped = [
            Refusal(str(e.spec["name"]), f"unavailable: {PLACEHOLDER}", unavailable=True)
            for e in entries
            if e not in run
        ]
        return [dict(e.spec) for e in run], skipped

    def placeholders(self) -> list[str]:
        return [e.service for e in self.entries if e.placeholder]


def _readiness(svc: _Service) -> dict[str, Any]:
    """`health` and what the catalog gives beside it (start_period, ready_contains, warmup)."""
    ready: dict[str, Any] = {"path": svc.health}
    if svc.start_period is not None:
        ready["start_period"] = svc.start_period
    if svc.ready_contains:
        ready["contains"] = svc.ready_contains
    if svc.warmup:
        ready["warmup"] = svc.warmup
    return ready


def _entry(name: str, svc: _Service) -> CatalogEntry:
    if not SERVICE_NAME.match(name):
        raise CatalogError(f"{name!r} is not a service name (lowercase, digits, '.', '_', '-')")
    labels = {**(svc.container.get("labels") or {}), SERVICE_LABEL: name}
    if svc.health:
        labels[HEALTH_LABEL] = svc.health
    if svc.http:
        labels[HTTP_LABEL] = "true"
    bad = [a for a in svc.aliases if not SERVICE_NAME.match(a) or "." in a]
    if bad:
        raise CatalogError(f"service {name}: aliases {bad} are not plain names")
    if svc.aliases:
        labels[ALIASES_LABEL] = ",".join(svc.aliases)
    spec = {**svc.container, "labels": labels}
    if svc.health and "readiness" not in spec:  # `health: PATH` is `readiness: {path: PATH}`
        spec["readiness"] = _readiness(svc)
    try:
        ContainerSpecModel.model_validate(spec)
    except ValidationError as exc:
        raise CatalogError(f"service {name}: {one_line(exc)}") from exc
    return CatalogEntry(name, svc.tier, spec, svc.placeholder)


_ADDRESS = re.compile(r"\$\{(service|service_host):([a-z0-9._-]{1,63})\}")


def _with_addresses(entries: list[CatalogEntry]) -> list[CatalogEntry]:
    """`${service:NAME}` (`http://<alias>:<port>` of that service on the agent's network) and
    `${service_host:NAME}` (its alias) in env values and command words, filled in from the
    catalog itself; a name the catalog does not know is an error."""
    hosts = {e.service: _host_and_port(e.spec) for e in entries}

    def fill(text: str) -> str:
        def one(match: re.Match[str]) -> str:
            found = hosts.get(match.group(2))
            if found is None:
                raise CatalogError(f"{match.group(0)}: the catalog has no service {match.group(2)}")
            host, port = found
            return host if match.group(1) == "service_host" else f"http://{host}:{port}"

        return _ADDRESS.sub(one, text)

    filled = []
    for e in entries:
        spec = dict(e.spec)
        if isinstance(spec.get("env"), dict):
            spec["env"] = {k: fill(v) if isinstance(v, str) else v for k, v in spec["env"].items()}
        if isinstance(spec.get("command"), list):
            spec["command"] = [fill(w) if isinstance(w, str) else w for w in spec["command"]]
        filled.append(CatalogEntry(e.service, e.tier, spec, e.placeholder))
    return filled


def _host_and_port(spec: dict[str, Any]) -> tuple[str, int | None]:
    aliases = str((spec.get("labels") or {}).get(ALIASES_LABEL, ""))
    host = aliases.partition(",")[0] if aliases else str(spec["name"])
    ports = spec.get("ports") or []
    port = spec.get("port") or (ports[0].get("container") if ports else None)
    return host, port
