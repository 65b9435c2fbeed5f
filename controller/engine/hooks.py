"""What the reconciler is built from, each by name (Nomad's named hooks): where the desired state
comes from, the stages that shape it, the gates that hold actions back, what runs after a pass.

A pass reads the source (when it rang), runs the `shape` stages once per new desired state
(secrets filled in, the agent's tunnels added, the owner's caps, the containment), the `holds`
stages on every pass (the owner's conditions, the tunnels' wait for their service), plans, lets
each gate hold actions back (the drain before a stop, the crash-loop back-off), executes, and
tells every after-pass listener (readiness tracking, image and volume collection, the
writable-layer watch, the membership). Gates and the puller say when their back-off ends
(`next_due`), so no timer is needed: the pass's `look_again` (core/pacing.py) is at most that.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from controller.core.models import ActualContainer, DesiredState
from controller.core.observe import Observer
from controller.core.planner import Action
from controller.core.results import ActionOutcome
from controller.core.status import AgentStatus


class DesiredSource(Protocol):
    """A manifest file or a coordinator's assignment. `watch` hands it the doorbell: it rings
    when it changes, so the reconciler never polls it."""

    def describe(self) -> str: ...

    def changed(self) -> bool: ...

    def load(self) -> DesiredState: ...

    def watch(self, ring: Callable[[], None], stop: threading.Event) -> None: ...


class DesiredStage(Protocol):
    """One step that shapes the desired state before it is planned; raising an AgentError
    refuses the state (the last good one is kept)."""

    @property
    def name(self) -> str: ...

    def apply(self, desired: DesiredState) -> DesiredState: ...


class Due(Protocol):
    def next_due(self) -> float | None:
        """Seconds until a back-off ends and a pass should look again, or None."""
        ...


class ActionGate(Due, Protocol):
    """Holds some of a pass's planned actions back, each as an outcome that says why."""

    @property
    def name(self) -> str: ...

    def hold(self, actions: Sequence[Action]) -> tuple[list[Action], list[ActionOutcome]]: ...

    def forget(self, desired: DesiredState, actual: Sequence[ActualContainer]) -> None:
        """Drop what is kept about containers that are gone from both states."""
        ...

    def settle(self, done: Sequence[ActionOutcome]) -> frozenset[str]:
        """After the pass: the containers whose start this pass was not a restart."""
        ...


class AfterPass(Protocol):
    def after_pass(self, desired: DesiredState, actual: Sequence[ActualContainer]) -> None: ...


class StatusOverlay(Protocol):
    def overlay(self, status: AgentStatus) -> AgentStatus: ...


@dataclass(frozen=True)
class Stage:
    """A desired-state stage made of a name and a function."""

    name: str
    fn: Callable[[DesiredState], DesiredState]

    def apply(self, desired: DesiredState) -> DesiredState:
        return self.fn(desired)


@dataclass(frozen=True)
class Listener:
    """An after-pass listener made of a name and a function of the pass's two states."""

    name: str
    fn: Callable[[DesiredState, Sequence[ActualContainer]], object]

    def after_pass(self, desired: DesiredState, actual: Sequence[ActualContainer]) -> None:
        self.fn(desired, actual)


@dataclass(frozen=True)
class Hooks:
    """The reconciler's named parts. `gates` None: the crash loop alone, on the loop's clock.
    `observer`: the metrics of each pass. `after` may be a list the composition root still
    appends to once the membership exists."""

    shape: tuple[DesiredStage, ...] = ()
    holds: tuple[DesiredStage, ...] = ()
    gates: tuple[ActionGate, ...] | None = None
    after: Sequence[AfterPass] = field(default_factory=tuple)
    dues: tuple[Due, ...] = ()
    overlay: StatusOverlay | None = None
    observer: Observer | None = None


def shaped(stages: Sequence[DesiredStage], desired: DesiredState) -> DesiredState:
    for stage in stages:
        desired = stage.apply(desired)
    return desired
