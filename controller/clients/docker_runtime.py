"""The Docker engine client: the runtime the loop drives (docker_owned.py, docker_specs.py,
docker_pull.py and docker_errors.py are its other parts that import `docker`).

It sees only containers carrying this agent instance's ownership labels (one label-filtered list
call per pass), writes the spec hash into a label at creation, and lets no docker-py or requests
error out (every call runs inside the error boundary of docker_errors.py).
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from typing import Any, TypeVar

import docker
import structlog
from docker.utils import parse_repository_tag

from controller.clients import docker_pull
from controller.clients.docker_errors import boundary as _boundary
from controller.clients.docker_events import DockerEventStream
from controller.clients.docker_owned import Holding, OwnedResources
from controller.clients.docker_rows import actual as _actual
from controller.clients.docker_specs import create_kwargs
from controller.clients.retry import Sleep, call_with_retry
from controller.core.containment import network_name
from controller.core.errors import (
    NameConflictError,
    NotFoundError,
    PermanentError,
    TransientError,
)
from controller.core.models import (
    LABEL_MANAGED,
    ActualContainer,
    ContainerSpec,
    owner_labels,
)
from controller.core.runtime import ProgressCallback

log = structlog.get_logger(__name__)
T = TypeVar("T")


NOTHING_HELD = Holding()


class DockerRuntime:
    """ContainerRuntime over a Docker engine reached through docker-py."""

    def __init__(
        self,
        instance: str,
        *,
        base_url: str | None = None,
        timeout: float = 60.0,
        pool_size: int = 16,
        sleep: Sleep | None = None,
        holding: Holding = NOTHING_HELD,
        pull_stall: float = 120.0,
    ) -> None:
        self.instance = instance
        self.pull_stall = pull_stall
        self.adopted_volumes = holding.adopted_volumes
        self._base_url = base_url
        self._timeout = timeout
        self._pool_size = pool_size
        self._client: docker.DockerClient | None = None
        self._lock = threading.Lock()
        self._retry_kwargs: dict[str, Any] = {"sleep": sleep} if sleep else {}
        self.owned = OwnedResources(
            instance, lambda: self.client, self._call, holding.totals, isolate=holding.isolate_lan
        )

    # -- connection ---------------------------------------------------------------------------

    @property
    def client(self) -> docker.DockerClient:
        """The docker-py client, connected on first use (the engine may start after the agent)."""
        with self._lock:
            if self._client is None:
                with _boundary():
                    if self._base_url:
                        self._client = docker.DockerClient(
                            base_url=self._base_url,
                            version="auto",
                            timeout=int(self._timeout),
                            max_pool_size=self._pool_size,
                        )
                    else:
                        self._client = docker.from_env(
                            version="auto",
                            timeout=int(self._timeout),
                            max_pool_size=self._pool_size,
                        )
            return self._client

    def _call(self, fn: Callable[[], T]) -> T:
        def once() -> T:
            with _boundary():
                return fn()

        return call_with_retry(once, **self._retry_kwargs)

    def close(self) -> None:
        with self._lock:
            if self._client is not None:
                self._client.close()
                self._client = None

    # -- reading ------------------------------------------------------------------------------

    def _filters(self) -> dict[str, Any]:
        return {"label": [f"{k}={v}" for k, v in owner_labels(self.instance).items()]}

    def list_all_instances(self) -> list[ActualContainer]:
        """Every container any rma-worker instance manages (for `rma-worker cleanup`)."""
        rows = self._call(
            lambda: self.client.api.containers(all=True, filters={"label": f"{LABEL_MANAGED}=true"})
        )
        return [_actual(row, managed=True) for row in rows]

    def list_managed(self) -> list[ActualContainer]:
        rows = self._call(lambda: self.client.api.containers(all=True, filters=self._filters()))
        return [_actual(row, managed=True) for row in rows]

    def image_present(self, image: str) -> bool:
        try:
            self._call(lambda: self.client.api.inspect_image(image))
        except NotFoundError:
            return False
        return True

    def repo_digests(self, image: str) -> list[str]:
        """Where a local image came from ([] when absent or never pulled from a registry)."""
        try:
            found = self._call(lambda: self.client.api.inspect_image(image))
        except NotFoundError:
            return []
        return [str(d) for d in found.get("RepoDigests") or []]

    def writable_sizes(self) -> dict[str, tuple[str, int]]:
        """{id: (name, bytes written to its writable layer)} of the agent's containers (one
        list call; the engine measures each layer)."""
        rows = self._call(
            lambda: self.client.api.containers(all=True, size=True, filters=self._filters())
        )
        return {
            str(r["Id"]): ((r.get("Names") or ["/"])[0].lstrip("/"), int(r.get("SizeRw") or 0))
            for r in rows
        }

    def data_root(self) -> str | None:
        info = self._call(lambda: self.client.api.info())  # noqa: PLW0108 (client is lazy)
        root = info.get("DockerRootDir")
        return str(root) if root else None

    def runtimes(self) -> frozenset[str]:
        """The OCI runtimes the engine has registered (`nvidia` once the NVIDIA Container
        Toolkit configured it)."""
        info = self._call(lambda: self.client.api.info())  # noqa: PLW0108 (client is lazy)
        return frozenset(str(name) for name in info.get("Runtimes") or {})

    @property
    def local(self) -> bool:
        """The engine runs on this machine (its socket, not a remote DOCKER_HOST)."""
        url = self._base_url or os.environ.get("DOCKER_HOST", "")
        return not url or url.startswith("unix://")

    def image_env(self, image: str) -> list[str]:
        """The environment an image's config sets (`NVIDIA_REQUIRE_CUDA`…); [] when unknown."""
        found = self._call(lambda: self.client.api.inspect_image(image))
        return [str(item) for item in (found.get("Config") or {}).get("Env") or []]

    # -- changing -----------------------------------------------------------------------------

    def pull(self, image: str, progress: ProgressCallback | None = None) -> None:
        """Pull it, cut off after `pull_stall` seconds without progress (docker_pull.py). One
        attempt: a stalled pull retried at once would stall again; the puller backs off."""
        repo, tag = parse_repository_tag(image)
        with _boundary():
            docker_pull.pull(self.client.api, repo, tag or "latest", progress, self.pull_stall)

    def create(self, spec: ContainerSpec) -> str:
        """Create the container, after its network and volumes (the agent's own: see
        docker_owned.py; one that is not refuses this container)."""
        parent = self.owned.cgroup_parent() if spec.cgroup_parent else ""
        kwargs = create_kwargs(spec, self.instance, parent)
        for volume in spec.volumes:
            self.owned.ensure_volume(volume.name, self.adopted_volumes, cache=volume.cache)
        try:
            if spec.network:
                self.owned.ensure_network(spec.network)
            try:
                result = self._call(lambda: self.client.api.create_container(**kwargs))
            except NotFoundError:
                if not spec.network:
                    raise
                self.owned.ensure_network(spec.network, again=True)  # it was deleted
                result = self._call(lambda: self.client.api.create_container(**kwargs))
        except PermanentError as exc:
            if "conflict" in str(exc).lower() and "already in use" in str(exc).lower():
                raise NameConflictError(str(exc)) from exc
            raise
        container_id = str(result["Id"])
        try:  # created on one network, as the oldest supported API allows: the rest joined now
            self.owned.join_all(container_id, spec.joins, spec.name)
        except Exception:
            self.remove(container_id)  # never a service half-joined: created anew next pass
            raise
        return container_id

    def start(
        self,
        container_id: str,
        *,
        unpause: bool = False,
        network: str = "",
        aliases: tuple[str, ...] = (),
    ) -> None:
        """Start (or unpause) a container; with `network`, joined again first (`stop` leaves),
        under its `aliases`."""
        if unpause:
            self._call(lambda: self.client.api.unpause(container_id))
            return
        try:
            if network:
                self.owned.join_network(container_id, network, aliases)
            self._call(lambda: self.client.api.start(container_id))
        except PermanentError as exc:
            if not network or "network" not in str(exc) or "not found" not in str(exc):
                raise
            # Its network was deleted (`docker network rm` while it was not attached): it
            # cannot start on it again. The network is made again now (an error here is the
            # start's: no removal, no event, the pass waits its delay), and the container is
            # removed to be created on it by the next pass.
            self.owned.ensure_network(network, again=True)
            self.remove(container_id)
            raise TransientError(
                f"its network {network} was deleted: made again, the container is created anew"
            ) from exc

    def stop(self, container_id: str, grace: float) -> None:
        """Leave the agent's network first, one container at a time, then stop (concurrently):
        Docker 20.10 before 20.10.27 can deadlock when many endpoints of one user-defined
        network are released together (moby/moby#46661), and a whole engine hung is far worse
        than a teardown a little slower."""
        self.owned.leave_network(container_id, network_name(self.instance))
        try:
            self._call(lambda: self.client.api.stop(container_id, timeout=max(0, int(grace))))
        except NotFoundError:
            return

    def remove(self, container_id: str) -> None:
        try:
            self._call(lambda: self.client.api.remove_container(container_id, force=True))
        except NotFoundError:
            return
        except PermanentError as exc:
            if "already in progress" in str(exc):
                return
            raise

    def release(self, network: str) -> None:
        """After teardown: remove the agent's networks (its services', its tunnels' and each
        pair's) and its parent cgroup (volumes are kept: they hold data)."""
        for name in {network, *self.owned.networks()}:
            self.owned.remove_network(name)
        self.owned.release_cgroup()

    def logs(self, container_id: str, tail: int = 200) -> str:
        """The last `tail` lines a container wrote (both streams), at most 64 KiB of them."""
        raw = self._call(
            lambda: self.client.api.logs(container_id, stdout=True, stderr=True, tail=tail)
        )
        return bytes(raw[-65536:]).decode("utf-8", "replace")

    def remove_image(self, image: str) -> bool:
        """Remove an image; False when it is in use (Docker refuses), True when gone."""
        try:
            self._call(lambda: self.client.api.remove_image(image, noprune=False))
        except NotFoundError:
            return True
        except PermanentError as exc:
            log.info("image_kept", image=image, reason=str(exc))
            return False
        return True

    def events(self) -> DockerEventStream:
        filters = {"type": ["container"], **self._filters()}
        with _boundary():
            raw = self.client.api.events(decode=True, filters=filters)
        return DockerEventStream(raw)
