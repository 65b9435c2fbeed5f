"""The teardown after a graceful stop: converge to nothing (stop and remove every container the
agent owns), then remove the agent's own network. Split from the loop to keep it readable.
"""

from __future__ import annotations

import structlog

from controller.core.errors import AgentError
from controller.core.models import DesiredState
from controller.core.planner import plan
from controller.core.runtime import ContainerRuntime
from controller.engine.executor import Executor

log = structlog.get_logger(__name__)


def teardown(runtime: ContainerRuntime, executor: Executor, network: str) -> bool:
    """Stop and remove every managed container, then the agent's network. True when none is
    left."""
    log.info("teardown_started")
    try:
        actions = plan(DesiredState(), runtime.list_managed())
    except AgentError as exc:
        log.error("teardown_failed", error=str(exc))
        return False
    report = executor.execute(actions)
    ok = not report.failures
    if ok and network:
        try:
            runtime.release(network)
        except AgentError as exc:
            log.warning("network_not_removed", network=network, error=str(exc))
    (log.info if ok else log.error)(
        "teardown_done", removed=len(actions), failed=len(report.failures)
    )
    return ok
