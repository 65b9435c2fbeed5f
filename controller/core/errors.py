"""The project's own exceptions.

Client modules translate library errors (docker, requests, pynvml) into these at the boundary, so
the layers above decide what to do from one small vocabulary: a transient error is retried (by
clients/retry.py around a single call, and by the loop's next pass); a permanent one is reported
and left until the desired state or the machine changes.
"""


class AgentError(Exception):
    """Base class of everything the agent raises on purpose."""


class TransientError(AgentError):
    """Worth retrying unchanged: the engine or a server was briefly unreachable or overloaded."""


class PermanentError(AgentError):
    """Retrying the same call will fail the same way (bad spec, refused request, missing image)."""


class NotFoundError(PermanentError):
    """The object (container, image) does not exist."""


class UnavailableError(PermanentError):
    """It cannot run on this machine through nobody's fault (an image with no build for this
    CPU): `unavailable`, not a failure that makes the worker unhealthy."""


class NameConflictError(PermanentError):
    """A container with the wanted name exists and the agent does not own it."""


class ConfigError(PermanentError):
    """The agent's own configuration or manifest is invalid."""


class CoordinatorUnreachable(TransientError):
    """The coordinator did not answer usefully: connection error, timeout, 5xx or 429."""

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class CoordinatorRejected(PermanentError):
    """The coordinator answered with a 4xx: the request itself is refused."""

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.status = status


class WorkerForgotten(PermanentError):
    """404 on a worker-scoped call: the coordinator no longer knows this worker id."""


class CoordinatorProtocolError(PermanentError):
    """The coordinator's answer is not what the contract says (bad JSON, wrong types)."""
