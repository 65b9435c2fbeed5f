"""The Docker client's pure parts: error translation and create arguments (no engine needed)."""

from __future__ import annotations

from typing import Any

import pytest
import requests
from docker.errors import APIError, DockerException, ImageNotFound, NotFound

from controller.clients.docker_errors import translate
from controller.clients.docker_specs import create_kwargs
from controller.core.errors import NotFoundError, PermanentError, TransientError
from controller.core.models import (
    GPU_ALL,
    LABEL_INSTANCE,
    LABEL_MANAGED,
    LABEL_SPEC_HASH,
    ContainerSpec,
    PortMapping,
    VolumeMount,
)


class FakeResponse:
    def __init__(self, status: int) -> None:
        self.status_code = status
        self.reason = "x"
        self.url = "http://docker/x"


def api_error(status: int, msg: str) -> APIError:
    return APIError(msg, response=FakeResponse(status), explanation=msg)


@pytest.mark.parametrize(
    ("exc", "kind"),
    [
        (NotFound("no such container"), NotFoundError),
        (ImageNotFound("no such image"), NotFoundError),
        (api_error(500, "server error"), TransientError),
        (api_error(503, "engine busy"), TransientError),
        (api_error(429, "toomanyrequests"), TransientError),
        (api_error(500, "Bind for 0.0.0.0:80 failed: port is already allocated"), PermanentError),
        (
            api_error(500, 'could not select device driver "" with capabilities: [[gpu]]'),
            PermanentError,
        ),
        (api_error(400, "invalid reference format"), PermanentError),
        (api_error(409, "Conflict. The container name is already in use"), PermanentError),
        (requests.exceptions.ConnectionError("refused"), TransientError),
        (requests.exceptions.ReadTimeout("slow"), TransientError),
        (DockerException("Error while fetching server API version"), TransientError),
        (ValueError("odd"), PermanentError),
    ],
)
def test_translate(exc: Exception, kind: type[Exception]) -> None:
    assert type(translate(exc)) is kind


def test_create_kwargs_carry_labels_ports_limits_volumes_and_gpus() -> None:
    spec = ContainerSpec(
        name="vllm",
        image="vllm/vllm-openai:v0.6.3",
        ports=(PortMapping(8000, 8000, "tcp", "127.0.0.1"),),
        env=(("MODEL", "m"),),
        command=("serve", "m"),
        gpu=GPU_ALL,
        volumes=(VolumeMount("hf-cache", "/root/.cache"),),
        memory_limit="2g",
        cpus=1.5,
        restart="always",
        labels=(("team", "rma"),),
    )
    kw: dict[str, Any] = create_kwargs(spec, "inst1")
    hc = kw["host_config"]
    assert kw["name"] == "vllm" and kw["image"] == "vllm/vllm-openai:v0.6.3"
    assert kw["command"] == ["serve", "m"] and kw["environment"] == {"MODEL": "m"}
    assert kw["labels"][LABEL_MANAGED] == "true" and kw["labels"][LABEL_INSTANCE] == "inst1"
    assert kw["labels"][LABEL_SPEC_HASH] == spec.spec_hash() and kw["labels"]["team"] == "rma"
    assert kw["ports"] == [(8000, "tcp")]
    assert hc["PortBindings"] == {"8000/tcp": [{"HostIp": "127.0.0.1", "HostPort": "8000"}]}
    assert hc["RestartPolicy"] == {"Name": "always"}
    assert hc["Memory"] == 2 * 1024**3 and hc["NanoCpus"] == 1_500_000_000
    assert hc["Mounts"] == [
        {"Target": "/root/.cache", "Source": "hf-cache", "Type": "volume", "ReadOnly": False}
    ]
    assert hc["DeviceRequests"] == [
        {"Driver": "", "Count": -1, "DeviceIDs": [], "Capabilities": [["gpu"]], "Options": {}}
    ]
    assert hc["SecurityOpt"] == ["no-new-privileges"]
    assert "Binds" not in hc and not hc.get("Privileged") and hc["NetworkMode"] == "default"
    assert not {"CapAdd", "Devices", "PidMode", "IpcMode"} & hc.keys()


def test_create_kwargs_minimal_spec() -> None:
    kw = create_kwargs(ContainerSpec("a", "i:1"), "default")
    assert kw["ports"] is None and kw["command"] is None
    assert "DeviceRequests" not in kw["host_config"] and not kw["host_config"]["Mounts"]
