"""The Docker error boundary (docker-py's own split, kept here): every docker-py and requests
exception becomes one of the project's errors. A missing object is NotFound; a 5xx or 429 is
transient unless its message says retrying cannot help (a port in use, an image that does not
exist); a 4xx is permanent; an unreachable engine is transient.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import requests
from docker.errors import APIError, DockerException, NotFound

from controller.core.errors import AgentError, NotFoundError, PermanentError, TransientError

# 5xx answers that retrying cannot fix.
_PERMANENT_MARKERS = (
    "port is already allocated",
    "address already in use",
    "could not select device driver",
    "no such image",
    "invalid reference format",
    "manifest unknown",
    "pull access denied",
    "repository does not exist",
    "unauthorized",
    "is not connected to",  # a network disconnect with nothing to disconnect
)


def translate(exc: Exception) -> AgentError:
    """Map a docker-py / requests exception onto the project's own exceptions."""
    if isinstance(exc, AgentError):
        return exc
    if isinstance(exc, NotFound):
        return NotFoundError(_explain(exc))
    if isinstance(exc, APIError):
        return _translate_api(exc)
    if isinstance(exc, requests.exceptions.ConnectionError | requests.exceptions.Timeout):
        return TransientError(f"Docker engine unreachable: {exc}")
    if isinstance(exc, DockerException):
        return TransientError(f"Docker engine unavailable: {exc}")
    return PermanentError(f"{type(exc).__name__}: {exc}")


def _translate_api(exc: APIError) -> AgentError:
    """5xx and 429 are transient unless the message says retrying cannot help; 4xx are not."""
    message = _explain(exc)
    status = exc.status_code or 0
    retryable = status >= 500 or status == 429
    if retryable and not any(m in message.lower() for m in _PERMANENT_MARKERS):
        return TransientError(message)
    return PermanentError(message)


def _explain(exc: APIError) -> str:
    return str(exc.explanation or exc)


@contextmanager
def boundary() -> Iterator[None]:
    try:
        yield
    except (DockerException, requests.exceptions.RequestException) as exc:
        raise translate(exc) from exc
