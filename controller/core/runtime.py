"""The container runtime as the executor and the loop see it: a small protocol that the Docker
client implements and that unit tests fake in memory.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Protocol

from controller.core.models import ActualContainer, ContainerSpec

# Called during a pull with (bytes downloaded, bytes announced) over all layers.
ProgressCallback = Callable[[int, int, int], None]  # downloaded, total, extracted


@dataclass(frozen=True)
class ContainerEvent:
    """One engine event about a managed container (`action` is Docker's: die, stop, destroy…)."""

    action: str
    container_id: str
    name: str


class EventStream(Protocol):
    def __iter__(self) -> Iterator[ContainerEvent]: ...

    def close(self) -> None: ...


class ContainerRuntime(Protocol):
    """Everything the agent does to containers. Raises only controller.core.errors exceptions."""

    def list_managed(self) -> list[ActualContainer]: ...

    def image_present(self, image: str) -> bool: ...

    def pull(self, image: str, progress: ProgressCallback | None = None) -> None: ...

    def create(self, spec: ContainerSpec) -> str: ...

    def start(
        self,
        container_id: str,
        *,
        unpause: bool = False,
        network: str = "",
        aliases: tuple[str, ...] = (),
    ) -> None: ...

    def stop(self, container_id: str, grace: float) -> None: ...

    def remove(self, container_id: str) -> None: ...

    def remove_image(self, image: str) -> bool: ...

    def release(self, network: str) -> None: ...

    def events(self) -> EventStream: ...

    def data_root(self) -> str | None: ...


@dataclass(frozen=True)
class OwnedVolume:
    """A volume carrying the agent's labels, as the engine lists it."""

    name: str
    instance: str
    created: str  # RFC 3339, as the engine reports it
    cache: bool = False  # a model cache (its label): `cleanup --caches` empties it


class VolumeOwner(Protocol):
    """The agent's own volumes (clients/docker_owned.py implements it)."""

    def list_volumes(self, all_instances: bool = False) -> list[OwnedVolume]: ...

    def remove_volume(self, name: str) -> None: ...
