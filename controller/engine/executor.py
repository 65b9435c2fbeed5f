"""Carries out a plan against the container runtime.

Actions for different containers run concurrently on a bounded pool; removals finish before the
rest start, so that names and host ports they held are free. A container whose image is not yet
present is reported as waiting for its pull (see images.py) and its old container, if any, keeps
running. One failing container never stops the others: every action ends in an ActionOutcome.
"""

from __future__ import annotations

import contextvars
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor

import structlog

from controller.core.errors import AgentError, NameConflictError, TransientError
from controller.core.models import ContainerSpec
from controller.core.planner import (
    Action,
    Create,
    Pull,
    Recreate,
    Remove,
    ReportConflict,
    Start,
    Stop,
)
from controller.core.results import ActionOutcome, ExecutionReport
from controller.core.runtime import ContainerRuntime
from controller.engine.images import ImagePuller, ImageState

log = structlog.get_logger(__name__)
URGENT_GRACE = 2.0  # seconds a container has to stop when the GPU is given back (5 s promised)


class Executor:
    def __init__(
        self,
        runtime: ContainerRuntime,
        puller: ImagePuller,
        *,
        concurrency: int = 8,
        stop_grace: float = 10.0,
        should_stop: Callable[[], bool] = lambda: False,
        preflight: Callable[[ContainerSpec], str | None] = lambda spec: None,
    ) -> None:
        """`preflight(spec)`: why a container whose image is here still cannot run on this
        machine (a GPU image needing a newer CUDA driver), or None; such a one is
        `unavailable`, never created."""
        self._runtime = runtime
        self._puller = puller
        self._concurrency = max(1, concurrency)
        self._grace = stop_grace
        self._should_stop = should_stop
        self._preflight = preflight

    def execute(self, actions: Sequence[Action]) -> ExecutionReport:
        removes = [a for a in actions if isinstance(a, Remove)]
        rest = [a for a in actions if not isinstance(a, Remove | Pull)]
        if not removes and not rest:
            return ExecutionReport()
        images = self._ensure_images([a for a in actions if isinstance(a, Pull)])
        with ThreadPoolExecutor(self._concurrency, thread_name_prefix="exec") as pool:
            outcomes = self._run_all(pool, removes, images)
            outcomes += self._run_all(pool, rest, images)
        return ExecutionReport(tuple(outcomes))

    def _ensure_images(self, pulls: Sequence[Pull]) -> dict[str, ImageState]:
        """Start every needed pull first, so they overlap with the removals."""
        images: dict[str, ImageState] = {}
        for pull in pulls:
            try:
                images[pull.image] = self._puller.ensure(pull.image)
            except AgentError as exc:
                images[pull.image] = ImageState(
                    ready=False, error=str(exc), transient=isinstance(exc, TransientError)
                )
        return images

    def _run_all(
        self, pool: ThreadPoolExecutor, actions: Sequence[Action], images: dict[str, ImageState]
    ) -> list[ActionOutcome]:
        futures: list[Future[ActionOutcome]] = []
        for action in actions:
            ctx = contextvars.copy_context()
            futures.append(pool.submit(ctx.run, self._apply, action, images))
        return [f.result() for f in futures]

    def _apply(self, action: Action, images: dict[str, ImageState]) -> ActionOutcome:
        kind = type(action).__name__.lower()
        if self._should_stop() and not isinstance(action, Remove):
            return ActionOutcome(action.target, kind, ok=False, error="shutting down", skipped=True)
        try:
            outcome = self._dispatch(action, kind, images)
        except NameConflictError as exc:
            outcome = ActionOutcome(action.target, "conflict", ok=False, error=str(exc))
        except AgentError as exc:
            outcome = ActionOutcome(
                action.target,
                kind,
                ok=False,
                error=str(exc),
                transient=isinstance(exc, TransientError),
            )
        self._log(outcome)
        return outcome

    def _dispatch(self, action: Action, kind: str, images: dict[str, ImageState]) -> ActionOutcome:
        name = action.target
        if isinstance(action, ReportConflict):
            return ActionOutcome(
                name,
                "conflict",
                ok=False,
                error=(
                    f"a container named {name!r} ({action.container_id[:12]}) exists and is not "
                    "managed by this agent; it is left untouched"
                ),
            )
        if isinstance(action, Remove):
            self._stop_and_remove(action.container_id, action.grace)
        elif isinstance(action, Stop):
            self._stop(action)
        elif isinstance(action, Start):
            self._start(action)
        elif isinstance(action, Create | Recreate):
            image = images.get(action.spec.image) or self._puller.ensure(action.spec.image)
            if not image.ready:
                return ActionOutcome(
                    name,
                    kind,
                    ok=False,
                    error=image.error,
                    pending=image.pulling,
                    transient=image.transient,
                    unavailable=image.unavailable,
                )
            if (why := self._preflight(action.spec)) is not None:
                return ActionOutcome(name, kind, ok=False, error=why, unavailable=True)
            if isinstance(action, Recreate):
                self._stop_and_remove(action.container_id, action.grace)
            container_id = self._runtime.create(action.spec)
            self._runtime.start(container_id)
        return ActionOutcome(name, kind, ok=True)

    def _start(self, action: Start) -> None:
        """Start (or unpause) it, joining the agent's network again under its names."""
        spec = action.spec
        self._runtime.start(
            action.container_id, unpause=action.unpause, network=spec.network, aliases=spec.aliases
        )

    def _stop(self, action: Stop) -> None:
        """A hold's stop: the container's own grace, or at most URGENT_GRACE when urgent."""
        grace = self._grace if action.grace is None else action.grace
        self._runtime.stop(
            action.container_id, min(grace, URGENT_GRACE) if action.urgent else grace
        )

    def _stop_and_remove(self, container_id: str, grace: float | None = None) -> None:
        """Stopped within its own grace (`stop_grace_period`: Postgres checkpoints), else the
        agent's, then removed."""
        self._runtime.stop(container_id, self._grace if grace is None else grace)
        self._runtime.remove(container_id)

    @staticmethod
    def _log(o: ActionOutcome) -> None:
        if o.ok:
            log.info("action_done", container=o.name, action=o.action)
        elif o.skipped:
            log.info("action_skipped", container=o.name, action=o.action, reason=o.error)
        elif o.pending:
            log.info("action_waiting", container=o.name, action=o.action, reason="image pull")
        elif o.unavailable:  # said once where it was found (the image, the GPU's driver)
            log.debug("action_unavailable", container=o.name, action=o.action, reason=o.error)
        else:
            log.error(
                "action_failed",
                container=o.name,
                action=o.action,
                error=o.error,
                transient=o.transient,
            )
