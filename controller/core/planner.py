"""The pure diff between desired and actual container state.

`plan(desired, actual)` does no I/O and reads no clock: given the same inputs it returns the same
actions, so it is tested exhaustively without Docker. A container the owner's holds stop (pause,
schedule, the GPU given back: `desired.held`) is stopped and kept, never removed. Containers are
compared by the spec-hash label the agent wrote when it created them, never by inspecting their
configuration field by field. Foreign containers (without the agent's labels) are never acted
on: a desired name held by one is reported as a conflict.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from controller.core.models import (
    RUNNING_STATES,
    STARTABLE_STATES,
    ActualContainer,
    ContainerSpec,
    DesiredState,
)


@dataclass(frozen=True)
class Pull:
    """Make `image` present locally (pull only when absent)."""

    image: str

    @property
    def target(self) -> str:
        return self.image


@dataclass(frozen=True)
class Create:
    """Create and start a container for `spec`; no container of that name exists."""

    spec: ContainerSpec

    @property
    def target(self) -> str:
        return self.spec.name


@dataclass(frozen=True)
class Start:
    """Start (or unpause) the existing, up-to-date container `container_id`."""

    spec: ContainerSpec
    container_id: str
    unpause: bool = False

    @property
    def target(self) -> str:
        return self.spec.name


@dataclass(frozen=True)
class Recreate:
    """Replace `container_id` (outdated spec, or dead) by a new container for `spec`. `grace`:
    the old container's own time to stop (None: the agent's)."""

    spec: ContainerSpec
    container_id: str
    grace: float | None = None

    @property
    def target(self) -> str:
        return self.spec.name


@dataclass(frozen=True)
class Remove:
    """Stop and remove the managed container `container_id`, which is no longer desired,
    given its own `grace` to stop (None: the agent's)."""

    name: str
    container_id: str
    grace: float | None = None

    @property
    def target(self) -> str:
        return self.name


@dataclass(frozen=True)
class Stop:
    """Stop (keep) the managed container `container_id`: a hold of the owner's stops it (pause,
    schedule, the GPU given back). `urgent`: at once, without draining."""

    name: str
    container_id: str
    urgent: bool = False
    grace: float | None = None

    @property
    def target(self) -> str:
        return self.name


@dataclass(frozen=True)
class ReportConflict:
    """A desired name is held by a container the agent does not own. Nothing is touched."""

    name: str
    container_id: str

    @property
    def target(self) -> str:
        return self.name


Action = Pull | Create | Start | Recreate | Remove | Stop | ReportConflict
MUTATING = (Create, Start, Recreate, Remove, Stop)


def plan(desired: DesiredState, actual: Iterable[ActualContainer]) -> list[Action]:
    """The actions that take `actual` to `desired`: removals, then pulls, then the rest."""
    wanted, held = desired.by_name(), desired.held_by_name()
    managed: dict[str, ActualContainer] = {}
    foreign: dict[str, ActualContainer] = {}
    for c in actual:
        (managed if c.managed else foreign)[c.name] = c

    removes: list[Action] = [
        Remove(name, c.id, c.stop_grace)
        for name, c in sorted(managed.items())
        if name not in wanted
    ]
    changes: list[Action] = []
    for name, spec in sorted(wanted.items()):
        hold = held.get(name)
        if name in desired.deferred and name not in managed:
            continue  # not created yet (a tunnel whose service has never run)
        if hold is not None:
            step = _held_step(name, managed.get(name), foreign.get(name), hold.urgent)
        else:
            step = _step(spec, managed.get(name), foreign.get(name))
        if step is not None:
            changes.append(step)
    pulls: list[Action] = [Pull(image) for image in _images_needed(changes)]
    return removes + pulls + changes


def _step(
    spec: ContainerSpec, mine: ActualContainer | None, other: ActualContainer | None
) -> Action | None:
    if mine is None:
        if other is not None:
            return ReportConflict(spec.name, other.id)
        return Create(spec)
    if mine.spec_hash != spec.spec_hash() or mine.state not in RUNNING_STATES | STARTABLE_STATES:
        return Recreate(spec, mine.id, mine.stop_grace)
    if mine.state in STARTABLE_STATES:
        return Start(spec, mine.id, unpause=mine.state == "paused")
    return None


def _held_step(
    name: str, mine: ActualContainer | None, other: ActualContainer | None, urgent: bool
) -> Action | None:
    """A held container is stopped and kept as it is (even outdated: it is recreated when the
    hold ends); a missing one is not created; a foreign one is still reported."""
    if mine is None:
        return ReportConflict(name, other.id) if other is not None else None
    if mine.state in RUNNING_STATES or mine.state == "paused":
        return Stop(name, mine.id, urgent, mine.stop_grace)
    return None


def _images_needed(actions: Iterable[Action]) -> list[str]:
    images = {a.spec.image for a in actions if isinstance(a, Create | Recreate)}
    return sorted(images)
