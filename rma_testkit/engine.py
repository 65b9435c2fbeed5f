"""Helpers for tests and benchmarks on the real Docker engine and the local registry: the test
images, what an agent instance owns and runs, waiting for a condition."""

from __future__ import annotations

import contextlib
import io
import os
import tarfile
import time
from collections.abc import Callable
from typing import Any

import docker

from controller.core.models import LABEL_INSTANCE

REGISTRY = os.environ.get("RMA_TEST_REGISTRY", "127.0.0.1:5000")
LOCAL_IMAGE = "rma-demo/busybox:1"
REGISTRY_IMAGE = f"{REGISTRY}/rma-test/busybox:1"
LOCAL_TUNNEL_IMAGE = "rma-test/tunnel:1"  # the stand-in tunnel (manifests/tunnel/)
REGISTRY_TUNNEL_IMAGE = f"{REGISTRY}/rma-test/tunnel:1"
LOCAL_MODEL_IMAGE = "rma-test/model-server:1"  # the stand-in model server (manifests/model-server/)
REGISTRY_MODEL_IMAGE = f"{REGISTRY}/rma-test/model-server:1"
TUNNEL_URL = r"http://[0-9.]+:[0-9]+"  # what the stand-in prints
# PID 1 shells ignore SIGTERM unless they trap it.
LOOP = "trap 'exit 0' TERM; while true; do sleep 1 & wait; done"


def drop_image(client: docker.DockerClient, ref: str) -> None:
    """Make sure `ref` is not present locally (so that the next use must pull it)."""
    with contextlib.suppress(docker.errors.ImageNotFound):
        client.images.remove(ref, force=True)


def managed(client: docker.DockerClient, instance: str) -> dict[str, dict[str, Any]]:
    """name -> container summary for every container the instance owns."""
    rows = client.api.containers(all=True, filters={"label": f"{LABEL_INSTANCE}={instance}"})
    return {r["Names"][0].lstrip("/"): r for r in rows}


def running(client: docker.DockerClient, instance: str) -> dict[str, str]:
    """name -> container id for the instance's running containers."""
    return {n: r["Id"] for n, r in managed(client, instance).items() if r["State"] == "running"}


def wait_until(
    cond: Callable[[], Any], timeout: float = 30.0, what: str = "condition", step: float = 0.1
) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = cond()
        if value:
            return value
        time.sleep(step)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def wait_running(
    client: docker.DockerClient, instance: str, names: set[str], what: str = "convergence"
) -> dict[str, str]:
    """Until exactly `names` run for the instance; then name -> container id."""

    def check() -> dict[str, str] | None:
        now = running(client, instance)
        return now if set(now) == names else None

    return dict(wait_until(check, what=what))


def container_spec(name: str, image: str, **extra: Any) -> dict[str, Any]:
    return {"name": name, "image": image, "command": ["sh", "-c", LOOP], **extra}


def services(instance: str, image: str) -> list[dict[str, Any]]:
    """The two containers the test coordinator's catalog assigns (tiers 2 and 3)."""
    return [container_spec(f"{instance}-svc1", image), container_spec(f"{instance}-svc2", image)]


def three_containers(instance: str, image: str) -> list[dict[str, object]]:
    """web, worker (each with its own env) and data (with a named volume) of this instance."""
    return [
        container_spec(f"{instance}-web", image, env={"ROLE": "web"}),
        container_spec(f"{instance}-worker", image, env={"ROLE": "worker"}),
        container_spec(
            f"{instance}-data", image, volumes=[{"name": f"{instance}-vol", "path": "/data"}]
        ),
    ]


def push_random_image(client: docker.DockerClient, image: str, size: int) -> str:
    """An image of one layer of `size` random bytes, pushed to its registry and removed here, so
    that a pull of it really downloads (none of its layers is on this machine)."""
    blob = io.BytesIO()
    with tarfile.open(fileobj=blob, mode="w") as tar:
        info = tarfile.TarInfo("payload.bin")
        info.size = size
        tar.addfile(info, io.BytesIO(os.urandom(size)))
    repo, tag = image.rsplit(":", 1)
    client.api.import_image_from_data(blob.getvalue(), repository=repo, tag=tag)
    for line in client.api.push(image, stream=True, decode=True):
        assert "error" not in line, line
    client.images.remove(image, force=True)
    return image
