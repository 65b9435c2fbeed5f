"""The spec fields real services need (issue 22), as the wire (Part 2), manifests and the
catalog give them, each bounded:

- `shm_size`: a memory size, at most the container's memory limit (vLLM needs more than Docker's
  64 MB; `ipc: host` stays refused);
- `ulimits`: `memlock`, `nofile` and `stack` only — `memlock: -1` (unlimited) only for a GPU spec;
- `stop_grace_period`: seconds (or `90s`, `1m30s`) to stop before the kill, at most 300;
- `entrypoint` (list or string), `working_dir` (absolute), `user` (`uid[:gid]` or a name);
- `tmpfs`: `{path: size}`, at most 4, their sizes and `shm_size` within the memory limit;
- `healthcheck`: Docker's (`test`, `interval` ≥ 5 s, `timeout`, `retries`, `start_period`);
- `readiness`: the agent's own probe (`path`, `port`, `expect_status`, `contains`,
  `start_period` ≤ 1 h, `period` 1-300 s, `timeout` ≤ 30 s, `failure_threshold` ≤ 20).
Any other field is reported as ignored (`ignored_fields`), never passed on.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, field_validator

from controller.core.limits import memory_bytes
from controller.core.models import HealthCheck, Readiness, Warmup
from controller.core.policy import DANGEROUS

MAX_STOP_GRACE = 300.0
MAX_TMPFS = 4
MAX_IGNORED = 16
ULIMITS: Mapping[str, int] = {"nofile": 1_048_576, "stack": 1024**3, "memlock": 64 * 1024**3}
_DURATION = re.compile(r"(?:(\d+)h)?(?:(\d+)m(?!s))?(?:(\d+(?:\.\d+)?)s)?(?:(\d+)ms)?")
_USER = re.compile(
    r"(?:[0-9]{1,10}|[a-z_][a-z0-9_-]{0,31})(?::(?:[0-9]{1,10}|[a-z_][a-z0-9_-]{0,31}))?"
)
_FIELD = re.compile(r"[A-Za-z0-9_.-]{1,64}")


def seconds(value: Any) -> Any:
    """`30`, `30.5`, `"30s"`, `"1m30s"`, `"500ms"`, `"1h"` → seconds (compose's durations)."""
    if isinstance(value, str):
        text = value.strip()
        match = _DURATION.fullmatch(text)
        if not text or match is None:
            raise ValueError(f"{value!r} is not a duration (30, 30s, 1m30s, 500ms)")
        h, m, s, ms = match.groups()
        return int(h or 0) * 3600 + int(m or 0) * 60 + float(s or 0) + int(ms or 0) / 1000
    return value


Seconds = Annotated[float, BeforeValidator(seconds)]


class UlimitModel(BaseModel):
    model_config = ConfigDict(extra="ignore")
    soft: int
    hard: int


class HealthCheckModel(BaseModel):
    """Docker's HEALTHCHECK as compose writes it."""

    model_config = ConfigDict(extra="ignore")
    test: list[str] | str
    interval: Seconds = Field(default=30.0, ge=5, le=3600)
    timeout: Seconds = Field(default=30.0, ge=1, le=600)
    retries: int = Field(default=3, ge=1, le=20)
    start_period: Seconds = Field(default=0.0, ge=0, le=3600)

    @field_validator("test")
    @classmethod
    def _bounded(cls, v: list[str] | str) -> list[str] | str:
        words = [v] if isinstance(v, str) else v
        if not words or len(words) > 64 or any(len(w) > 1024 for w in words):
            raise ValueError("healthcheck.test: 1 to 64 words of at most 1024 characters")
        if not isinstance(v, str) and v[0] == "NONE":
            raise ValueError("healthcheck.test NONE: leave healthcheck out instead")
        return v

    def to_check(self) -> HealthCheck:
        if isinstance(self.test, str):
            test: tuple[str, ...] = ("CMD-SHELL", self.test)
        elif self.test[0] in ("CMD", "CMD-SHELL"):
            test = tuple(self.test)
        else:
            test = ("CMD", *self.test)
        return HealthCheck(test, self.interval, self.timeout, self.retries, self.start_period)


class WarmupModel(BaseModel):
    model_config = ConfigDict(extra="ignore")
    path: str = Field(pattern=r"^/[\x21-\x7e]{0,255}$")
    body: dict[str, Any] = Field(default={}, max_length=16)
    timeout: Seconds = Field(default=1800.0, ge=1, le=3600)

    def to_warmup(self) -> Warmup:
        text = json.dumps(self.body, sort_keys=True) if self.body else ""
        if len(text) > 4096:
            raise ValueError("readiness.warmup.body: at most 4096 characters of JSON")
        return Warmup(self.path, text, self.timeout)


class ReadinessModel(BaseModel):
    """When the agent counts the service ready (engine/readiness.py), all bounded."""

    model_config = ConfigDict(extra="ignore")
    path: str = Field(pattern=r"^/[\x21-\x7e]{0,255}$")
    port: int | None = Field(default=None, ge=1, le=65535)
    expect_status: list[int] = Field(default=[], max_length=16)
    contains: str = Field(default="", max_length=256)
    start_period: Seconds = Field(default=60.0, ge=0, le=3600)
    period: Seconds = Field(default=10.0, ge=1, le=300)
    timeout: Seconds = Field(default=2.0, ge=0.1, le=30)
    failure_threshold: int = Field(default=3, ge=1, le=20)
    warmup: WarmupModel | None = None

    @field_validator("expect_status")
    @classmethod
    def _statuses(cls, v: list[int]) -> list[int]:
        if any(not 100 <= s <= 599 for s in v):
            raise ValueError("readiness.expect_status: HTTP statuses 100-599")
        return v

    def to_readiness(self) -> Readiness:
        return Readiness(
            self.path,
            self.port,
            tuple(self.expect_status),
            self.contains,
            self.start_period,
            self.period,
            self.timeout,
            self.failure_threshold,
            self.warmup.to_warmup() if self.warmup else None,
        )


def check_fields(
    shm: str | None,
    tmpfs: Mapping[str, str],
    memory_limit: str | None,
    working_dir: str | None,
    user: str | None,
) -> None:
    """ValueError naming the field when one is out of bounds."""
    for path, size in tmpfs.items():
        _absolute("tmpfs", path)
        memory_bytes(size)  # ValueError: not a size
    if working_dir is not None:
        _absolute("working_dir", working_dir)
    if user is not None and not _USER.fullmatch(user):
        raise ValueError(f"user {user!r} must be uid[:gid] or a user name")
    if memory_limit:
        limit = memory_bytes(memory_limit)
        used = (memory_bytes(shm) if shm else 0) + sum(memory_bytes(v) for v in tmpfs.values())
        if used > limit:
            raise ValueError(f"shm_size and tmpfs take {used} bytes, over memory_limit {limit}")


def _absolute(field: str, path: str) -> None:
    if not path.startswith("/") or ".." in path.split("/") or len(path) > 256:
        raise ValueError(f"{field} {path!r} must be an absolute path without '..'")
    if any(ord(c) < 32 or ord(c) == 127 for c in path):
        raise ValueError(f"{field} may not hold control characters")


def check_ulimits(ulimits: Mapping[str, int | UlimitModel], *, gpu: bool) -> None:
    for name, value in ulimits.items():
        most = ULIMITS.get(name)
        if most is None:
            raise ValueError(f"ulimit {name!r}: only {', '.join(sorted(ULIMITS))}")
        soft, hard = (value, value) if isinstance(value, int) else (value.soft, value.hard)
        for limit in (soft, hard):
            if limit == -1 and name == "memlock" and gpu:
                continue
            if not 1 <= limit <= most:
                raise ValueError(
                    f"ulimit {name} {limit} is out of 1-{most}"
                    + (" (-1 only for memlock of a GPU spec)" if limit == -1 else "")
                )
        if soft != -1 and hard != -1 and soft > hard:
            raise ValueError(f"ulimit {name}: soft {soft} over hard {hard}")


def ulimit_tuples(ulimits: Mapping[str, int | UlimitModel]) -> tuple[tuple[str, int, int], ...]:
    return tuple(
        sorted(
            (name, v, v) if isinstance(v, int) else (name, v.soft, v.hard)
            for name, v in ulimits.items()
        )
    )


def ignored_fields(raw: Any, known: Iterable[str]) -> tuple[str, ...]:
    """The keys of a raw spec this agent does not know (at most 16, printable names)."""
    if not isinstance(raw, dict):
        return ()
    known = set(known) | set(DANGEROUS)
    names = sorted(str(k) for k in raw if str(k) not in known)
    shown = [n if _FIELD.fullmatch(n) else "(unprintable)" for n in names[:MAX_IGNORED]]
    return tuple(dict.fromkeys(shown))
