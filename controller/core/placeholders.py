"""Per-worker secrets in a spec: `${secret:NAME}` in an env value or a command argument is replaced
by a random secret this worker generated for NAME and keeps in its state dir (0600), so the
catalog's services get passwords that no other machine shares and no document publishes
(Postgres' POSTGRES_PASSWORD, Neo4j's NEO4J_AUTH) — instead of a known one.

Pure: the lookup (which creates a missing secret) is the caller's. The secret is stable, so the
spec's hash is too. A coordinator's own containers may ask for the same secret: the secret guards
the service against the rest of the machine and the LAN, not against the coordinator that runs it.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import replace

from controller.core.models import ContainerSpec, DesiredState

SECRET = re.compile(r"\$\{secret:([a-z0-9_-]{1,32})\}")
Lookup = Callable[[str], str]


def names(desired: DesiredState) -> set[str]:
    """Every secret the desired state asks for."""
    found: set[str] = set()
    for spec in desired.specs:
        for text in [v for _, v in spec.env] + list(spec.command or ()):
            found.update(SECRET.findall(text))
    return found


def fill(desired: DesiredState, lookup: Lookup) -> DesiredState:
    """The desired state with every `${secret:NAME}` replaced by `lookup(NAME)`."""
    return replace(desired, specs=tuple(_fill(spec, lookup) for spec in desired.specs))


def _fill(spec: ContainerSpec, lookup: Lookup) -> ContainerSpec:
    def sub(text: str) -> str:
        return SECRET.sub(lambda m: lookup(m.group(1)), text)

    env = tuple((k, sub(v)) for k, v in spec.env)
    command = tuple(sub(a) for a in spec.command) if spec.command is not None else None
    return replace(spec, env=env, command=command)
