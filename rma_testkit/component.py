"""The component tier: the whole agent built in-process (`controller.app.serve`, the same
composition as `rma-worker`) on an in-memory engine and a virtual clock, against coordinators
served on loopback in this process. A scenario that used to start `rma-worker` as a process and
sleep real seconds (growing retry waits, a crash-loop back-off, a coordinator that must not be
hammered) runs here in milliseconds: the test moves the clock.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Collection, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

from controller.app import Host, Parts, serve
from controller.clients.docker_runtime import DockerRuntime
from controller.engine.doorbell import Doorbell
from controller.settings import Settings
from rma_testkit.clock import ManualTime, VirtualClock
from rma_testkit.engine import wait_until
from rma_testkit.fakes import FakeRuntime


@dataclass
class FakeOwned:
    """The runtime's own resources (networks, volumes, the parent cgroup): none here."""

    totals: None = None

    def list_volumes(self) -> list[Any]:
        return []

    def prune_networks(self, keep: frozenset[str]) -> None:
        return None

    def volume_path(self, name: str) -> str:
        return ""  # not on this machine: the caches are not measured


@dataclass
class ComponentRuntime(FakeRuntime):
    """The in-memory engine with what the composition root asks of Docker besides containers."""

    owned: FakeOwned = field(default_factory=FakeOwned)
    adopted_volumes: frozenset[str] = frozenset()
    engine_runtimes: frozenset[str] = frozenset({"runc"})  # `nvidia`: the toolkit configured
    image_envs: dict[str, list[str]] = field(default_factory=dict)  # image -> its config's Env
    local: bool = True

    def runtimes(self) -> frozenset[str]:
        return self.engine_runtimes

    def image_env(self, image: str) -> list[str]:
        return self.image_envs.get(image, [])

    def running(self) -> set[str]:
        return {c.name for c in self.containers.values() if c.state == "running"}

    def repo_digests(self, image: str) -> list[str]:
        return []

    def writable_sizes(self) -> dict[str, tuple[str, int]]:
        return {}

    def logs(self, container_id: str, tail: int = 200) -> str:
        return ""

    def close(self) -> None:
        return None


class InProcessAgent:
    """`rma-worker` with these settings, on a thread of this process. `advance` moves its clock;
    `parts` is what it built (its reconciler, membership and owner)."""

    def __init__(
        self, settings: Settings, runtime: ComponentRuntime, time: ManualTime | None = None
    ) -> None:
        self.settings, self.runtime = settings, runtime
        self.time, self.stop = time or ManualTime(), threading.Event()
        self.doorbell = Doorbell(self.stop, clock=VirtualClock(self.time))
        self.code: int | None = None
        self._built = threading.Event()
        self._parts: list[Parts] = []
        self.leave_running = threading.Event()  # set: stops as on SIGUSR1 (kept registered)
        host = Host(
            self.doorbell,
            self.leave_running,
            runtime=cast(DockerRuntime, runtime),
            on_built=self._on_built,
        )
        self._thread = threading.Thread(target=self._serve, args=(host,), daemon=True)

    def _on_built(self, parts: Parts) -> None:
        self._parts.append(parts)
        self._built.set()

    def _serve(self, host: Host) -> None:
        self.code = serve(self.settings, host)

    @property
    def parts(self) -> Parts:
        assert self._built.wait(10), "the agent was not built"
        return self._parts[0]

    def start(self) -> InProcessAgent:
        self._thread.start()
        return self

    def close(self, timeout: float = 10.0) -> int | None:
        self.stop.set()
        self.doorbell.ring()
        self._thread.join(timeout)
        assert not self._thread.is_alive(), "the agent did not stop"
        return self.code

    def status(self) -> dict[str, tuple[str, int, str | None]]:
        """{name: (state, restarts, error)} as the reconciler's latest pass saw them."""
        rows = self.parts.agent.status().containers
        return {c.name: (c.state, c.restarts, c.error) for c in rows}

    def advance(self, seconds: float, step: float = 0.5) -> None:
        """Move the clock `seconds`, `step` at a time (ManualTime.step), then let it settle."""
        for _ in range(round(seconds / step)):
            self.time.step(step)
        self.time.step(0.0)

    def settle(self, cond: Callable[[], Any], timeout: float = 10.0) -> Any:
        """Until `cond` holds, in real time, the clock still (a thread's first real work: until
        it has waited once, the clock cannot know to wait for it)."""
        return wait_until(cond, timeout, "the agent's first work", step=0.005)

    def until(self, cond: Callable[[], Any], *, within: float = 120.0, step: float = 0.5) -> Any:
        """Let virtual time pass until `cond` holds (at most `within` virtual seconds)."""
        done = threading.Event()
        for _ in range(round(within / step) + 1):
            for _ in range(20):  # a little real time for the threads to act
                got = cond()
                if got:
                    return got
                done.wait(0.005)
            self.advance(step, step)
        raise AssertionError(f"not within {within} s of virtual time")


def settings_for(state: Path, instance: str, *args: tuple[str, Any]) -> Settings:
    """Settings for a component test: its own state dir and instance, no health endpoint."""
    values: dict[str, Any] = {
        "state_dir": state,
        "instance": instance,
        "health_addr": "off",
        "image_refresh_interval": 0,
        "min_free_disk": 0,
        "allow_local_images": True,
        "drain_seconds": 0,
        # A long poll is held open in real time by the coordinator: the clock would wait for it
        # at every step. Changes arrive with the next (virtual) heartbeat instead.
        "long_poll_wait": 0,
    }
    values.update(dict(args))
    unknown = set(values) - set(Settings.model_fields)
    assert not unknown, f"not settings: {unknown}"
    return Settings(**values)


@contextmanager
def in_process(
    settings: Settings,
    images: Collection[str],
    crashing: Collection[str] = (),
    time: ManualTime | None = None,
    **engine: Any,
) -> Iterator[InProcessAgent]:
    """The agent on an in-memory engine holding `images`; `time`: its clock (an agent started
    again goes on from where the last one's time was); `engine`: more of its facts
    (`engine_runtimes`, `image_envs`: ComponentRuntime's fields)."""
    runtime = ComponentRuntime(images=set(images), crashing=set(crashing), **engine)
    agent = InProcessAgent(settings, runtime, time).start()
    try:
        yield agent
    finally:
        agent.close()
