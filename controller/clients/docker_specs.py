"""The Docker engine's create-container arguments for a ContainerSpec (pure: no engine call).

Everything the agent sets is here and nothing else: the owner labels and spec hash, env, command,
published ports, restart policy, memory/CPU limits, named volumes (never binds), the GPU request of
a GPU spec, and `no-new-privileges`.
"""

from __future__ import annotations

from typing import Any

from docker.types import DeviceRequest, HostConfig, Mount

from controller.core.models import LABEL_NAME, LABEL_SPEC_HASH, ContainerSpec, owner_labels

# The oldest engine API the agent supports (Docker 20.10); HostConfig validates against it.
MIN_API_VERSION = "1.41"


def _gpu_request(spec: ContainerSpec) -> DeviceRequest:
    if spec.gpu_ids:  # only the devices the contributor allowed
        return DeviceRequest(device_ids=list(spec.gpu_ids), capabilities=[["gpu"]])
    return DeviceRequest(count=spec.gpu, capabilities=[["gpu"]])


def create_kwargs(spec: ContainerSpec, instance: str) -> dict[str, Any]:
    """The docker-py `create_container` arguments for `spec` (pure; unit-tested)."""
    labels = {
        **spec.labels_dict,
        **owner_labels(instance),
        LABEL_NAME: spec.name,
        LABEL_SPEC_HASH: spec.spec_hash(),
    }
    ports = [(p.container, p.protocol) for p in spec.ports]
    bindings = {
        f"{p.container}/{p.protocol}": (p.host_ip, p.host) if p.host_ip else p.host
        for p in spec.ports
    }
    restart: dict[str, Any] = {"Name": spec.restart if spec.restart != "no" else ""}
    host_config = HostConfig(
        version=MIN_API_VERSION,
        port_bindings=bindings,
        restart_policy=restart,
        mem_limit=spec.memory_limit,
        nano_cpus=int(spec.cpus * 1e9) if spec.cpus else None,
        mounts=[Mount(target=v.path, source=v.name, type="volume") for v in spec.volumes],
        device_requests=[_gpu_request(spec)] if spec.gpu else None,
        security_opt=["no-new-privileges"],
    )
    return {
        "image": spec.image,
        "name": spec.name,
        "command": list(spec.command) if spec.command is not None else None,
        "environment": spec.env_dict,
        "labels": labels,
        "ports": ports or None,
        "host_config": host_config,
        "detach": True,
    }
