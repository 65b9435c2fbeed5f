"""The Docker engine's create-container arguments for a ContainerSpec (pure: no engine call).

Everything the agent sets is here and nothing else: the owner labels and spec hash, env, command,
entrypoint, working dir, user, published ports, restart policy, memory/CPU limits, /dev/shm,
tmpfs mounts, ulimits, Docker's health check, the time to stop (`StopTimeout`, and a label the
agent reads back for its own stops), named volumes (never binds), the GPU request of a GPU spec,
the agent's network (the container's name is its DNS alias there), and the hardening
every container gets: `no-new-privileges`, Docker's default capabilities less NET_RAW, MKNOD and
AUDIT_WRITE, a pids limit, swap capped at the memory limit, and rotated logs (3 x 10 MB).
"""

from __future__ import annotations

from typing import Any

from docker.types import DeviceRequest, HostConfig, Mount, Ulimit

from controller.core.models import (
    LABEL_NAME,
    LABEL_SPEC_HASH,
    LABEL_STOP_GRACE,
    ContainerSpec,
    HealthCheck,
    owner_labels,
)

NS = 1_000_000_000  # Docker's health check durations are nanoseconds

# Dropped from Docker's default set; what remains is CHOWN, DAC_OVERRIDE, FOWNER, FSETID, KILL,
# SETGID, SETUID, SETPCAP, NET_BIND_SERVICE, SYS_CHROOT and SETFCAP (docs/adr/0009).
CAP_DROP = ("NET_RAW", "MKNOD", "AUDIT_WRITE")
LOG_CONFIG = {"type": "json-file", "config": {"max-size": "10m", "max-file": "3"}}

# The oldest engine API the agent supports (Docker 20.10); HostConfig validates against it.
MIN_API_VERSION = "1.41"


def _gpu_request(spec: ContainerSpec) -> DeviceRequest:
    if spec.gpu_ids:  # only the devices the contributor allowed
        return DeviceRequest(device_ids=list(spec.gpu_ids), capabilities=[["gpu"]])
    return DeviceRequest(count=spec.gpu, capabilities=[["gpu"]])


def _host_config(spec: ContainerSpec, cgroup_parent: str) -> HostConfig:
    bindings = {
        f"{p.container}/{p.protocol}": (p.host_ip, p.host) if p.host_ip else p.host
        for p in spec.ports
    }
    return HostConfig(
        version=MIN_API_VERSION,
        port_bindings=bindings,
        restart_policy={"Name": spec.restart if spec.restart != "no" else ""},
        mem_limit=spec.memory_limit,
        nano_cpus=int(spec.cpus * 1e9) if spec.cpus else None,
        mounts=[Mount(target=v.path, source=v.name, type="volume") for v in spec.volumes],
        # An AMD GPU is its device nodes (the agent's own mapping); an NVIDIA one a request.
        device_requests=[_gpu_request(spec)] if spec.gpu and not spec.devices else None,
        devices=[f"{d}:{d}:rwm" for d in spec.devices] or None,
        group_add=list(spec.group_add) or None,
        security_opt=["no-new-privileges"],
        cap_drop=list(CAP_DROP),
        pids_limit=spec.pids_limit or None,
        memswap_limit=spec.memory_limit,  # = the memory limit: no swap beyond it
        log_config=LOG_CONFIG,
        network_mode=spec.network or None,
        cgroup_parent=cgroup_parent or None,
        shm_size=spec.shm_size,
        tmpfs={path: f"size={size}" for path, size in spec.tmpfs} or None,
        ulimits=[Ulimit(name=n, soft=soft, hard=hard) for n, soft, hard in spec.ulimits] or None,
    )


def _healthcheck(check: HealthCheck | None) -> dict[str, Any] | None:
    if check is None:
        return None
    return {
        "test": list(check.test),
        "interval": int(check.interval * NS),
        "timeout": int(check.timeout * NS),
        "retries": check.retries,
        "start_period": int(check.start_period * NS),
    }


def create_kwargs(spec: ContainerSpec, instance: str, cgroup_parent: str = "") -> dict[str, Any]:
    """The docker-py `create_container` arguments for `spec` (pure; unit-tested).
    `cgroup_parent`: where the engine's cgroup driver puts the agent's parent group
    (clients/cgroups.py), when the spec names one."""
    labels = {
        **spec.labels_dict,
        **owner_labels(instance),
        LABEL_NAME: spec.name,
        LABEL_SPEC_HASH: spec.spec_hash(),
    }
    if spec.stop_grace is not None:
        labels[LABEL_STOP_GRACE] = f"{spec.stop_grace:g}"
    networking = None
    if spec.network:
        networking = {"EndpointsConfig": {spec.network: {"Aliases": list(spec.aliases)}}}
    return {
        "image": spec.image,
        "name": spec.name,
        "command": list(spec.command) if spec.command is not None else None,
        "environment": spec.env_dict,
        "labels": labels,
        "ports": [(p.container, p.protocol) for p in spec.ports] or None,
        "host_config": _host_config(spec, cgroup_parent if spec.cgroup_parent else ""),
        "networking_config": networking,
        "detach": True,
        "entrypoint": list(spec.entrypoint) if spec.entrypoint is not None else None,
        "working_dir": spec.working_dir,
        "user": spec.user,
        "healthcheck": _healthcheck(spec.healthcheck),
        "stop_timeout": int(spec.stop_grace) if spec.stop_grace is not None else None,
    }
