"""In-memory stand-ins for the runtime and the desired-state source, for unit tests.

FakeRuntime behaves like a tiny Docker engine: names are unique, create fails with a name conflict
when the name is taken (by an owned or a foreign container), removing a missing container is
success, and images must be pulled before create.
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace

from controller.core.errors import NameConflictError, NotFoundError, PermanentError, TransientError
from controller.core.models import ActualContainer, ContainerSpec, DesiredState
from controller.core.runtime import ContainerEvent, ProgressCallback


@dataclass
class FakeRuntime:
    containers: dict[str, ActualContainer] = field(default_factory=dict)  # by id
    images: set[str] = field(default_factory=set)
    broken_images: dict[str, str] = field(default_factory=dict)
    fail_create: dict[str, Exception] = field(default_factory=dict)  # by name
    list_error: Exception | None = None
    calls: list[str] = field(default_factory=list)
    graces: list[float] = field(default_factory=list)  # each stop's grace, in order
    crashing: set[str] = field(default_factory=set)  # by name: exits as soon as it starts
    created: dict[str, ContainerSpec] = field(default_factory=dict)  # by name: as last created
    _ids: Iterator[int] = field(default_factory=lambda: itertools.count(1))
    _lock: threading.Lock = field(default_factory=threading.Lock)

    # helpers for tests
    def add(
        self,
        name: str,
        *,
        spec: ContainerSpec | None = None,
        state: str = "running",
        managed: bool = True,
    ) -> ActualContainer:
        c = ActualContainer(
            id=f"c{next(self._ids)}",
            name=name,
            state=state,
            spec_hash=spec.spec_hash() if spec else None,
            managed=managed,
            image=spec.image if spec else "x",
        )
        self.containers[c.id] = c
        return c

    def by_name(self, name: str) -> ActualContainer | None:
        return next((c for c in self.containers.values() if c.name == name), None)

    def set_state(self, name: str, state: str) -> None:
        c = self.by_name(name)
        assert c is not None
        self.containers[c.id] = replace(c, state=state)

    # ContainerRuntime
    def list_managed(self) -> list[ActualContainer]:
        self.calls.append("list")
        if self.list_error is not None:
            raise self.list_error
        return [c for c in self.containers.values() if c.managed]

    def image_present(self, image: str) -> bool:
        return image in self.images

    def pull(self, image: str, progress: ProgressCallback | None = None) -> None:
        self.calls.append(f"pull:{image}")
        if image in self.broken_images:
            raise PermanentError(self.broken_images[image])
        self.images.add(image)

    def create(self, spec: ContainerSpec) -> str:
        with self._lock:
            self.calls.append(f"create:{spec.name}")
            if spec.name in self.fail_create:
                raise self.fail_create[spec.name]
            if spec.image not in self.images:
                raise NotFoundError(f"No such image: {spec.image}")
            if self.by_name(spec.name) is not None:
                raise NameConflictError(
                    f"Conflict. The container name /{spec.name} is already in use"
                )
            self.created[spec.name] = spec
            c = ActualContainer(
                id=f"c{next(self._ids)}",
                name=spec.name,
                state="created",
                spec_hash=spec.spec_hash(),
                image=spec.image,
            )
            self.containers[c.id] = c
            return c.id

    def start(
        self,
        container_id: str,
        *,
        unpause: bool = False,
        network: str = "",
        aliases: tuple[str, ...] = (),
    ) -> None:
        self.calls.append(f"start:{container_id}")
        c = self.containers.get(container_id)
        if c is None:
            raise NotFoundError(container_id)
        state = "exited" if c.name in self.crashing else "running"
        self.containers[container_id] = replace(c, state=state)

    def stop(self, container_id: str, grace: float) -> None:
        self.calls.append(f"stop:{container_id}")
        self.graces.append(grace)
        c = self.containers.get(container_id)
        if c is not None:
            self.containers[container_id] = replace(c, state="exited")

    def remove(self, container_id: str) -> None:
        self.calls.append(f"remove:{container_id}")
        self.containers.pop(container_id, None)

    def remove_image(self, image: str) -> bool:
        self.calls.append(f"rmi:{image}")
        self.images.discard(image)
        return True

    def release(self, network: str) -> None:
        self.calls.append(f"release:{network}")

    def events(self) -> FakeEvents:
        return FakeEvents()

    def data_root(self) -> str | None:
        return None


class FakeEvents:
    def __init__(self) -> None:
        self._closed = threading.Event()

    def __iter__(self) -> Iterator[ContainerEvent]:
        self._closed.wait()
        return iter(())

    def close(self) -> None:
        self._closed.set()


class FakeSource:
    """A desired-state source whose content the test sets; `error` makes load() fail."""

    def __init__(self, desired: DesiredState | None = None) -> None:
        self.desired = desired or DesiredState()
        self.error: Exception | None = None
        self.version = 0
        self._loaded = -1
        self._ring: Callable[[], None] = lambda: None

    def watch(self, ring: Callable[[], None], stop: threading.Event) -> None:
        self._ring = ring

    def set(self, desired: DesiredState) -> None:
        self.desired = desired
        self.version += 1
        self._ring()

    def describe(self) -> str:
        return "fake"

    def changed(self) -> bool:
        return self.version != self._loaded

    def load(self) -> DesiredState:
        self._loaded = self.version
        if self.error is not None:
            raise self.error
        return self.desired


def spec(name: str, image: str = "img:1", **kw: object) -> ContainerSpec:
    return ContainerSpec(name=name, image=image, **kw)  # type: ignore[arg-type]


def transient(msg: str = "engine busy") -> TransientError:
    return TransientError(msg)
