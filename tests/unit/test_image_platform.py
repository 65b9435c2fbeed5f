"""An image's build for this machine's CPU (issue 24, item 7): the registry's index or the single
manifest's config is read before the pull (clients/registry.py, against a loopback stand-in for
the Distribution API); an image with no build for the machine is `unavailable: no linux/arm64
image`, never pulled, retried slowly, and does not make the worker unhealthy."""

from __future__ import annotations

import json
import platform
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from controller.clients import registry
from controller.core.errors import UnavailableError
from controller.core.models import ContainerSpec, DesiredState
from controller.core.planner import plan
from controller.core.status import build_status
from controller.engine.executor import Executor
from controller.engine.images import ImagePuller, PullGuards
from rma_testkit.fakes import FakeRuntime

AMD64 = {"os": "linux", "architecture": "amd64"}
ARM64 = {"os": "linux", "architecture": "arm64"}
ARMV7 = {"os": "linux", "architecture": "arm", "variant": "v7"}
INDEX_TYPE = "application/vnd.oci.image.index.v1+json"


def index(*platforms: dict[str, str]) -> dict[str, object]:
    entries = [
        {"digest": f"sha256:{i:064x}", "size": 1, "platform": p, "mediaType": "m"}
        for i, p in enumerate(platforms, start=1)
    ]
    entries.append(
        {"digest": f"sha256:{99:064x}", "platform": {"os": "unknown", "architecture": "unknown"}}
    )
    return {"schemaVersion": 2, "mediaType": INDEX_TYPE, "manifests": entries}


SINGLE = {"schemaVersion": 2, "config": {"digest": "sha256:" + "c" * 64}, "layers": [{"size": 700}]}
ANSWERS: dict[str, object] = {
    "/v2/multi/manifests/1": index(AMD64, ARMV7),
    "/v2/amd64-only/manifests/1": SINGLE,
    "/v2/amd64-only/blobs/sha256:" + "c" * 64: {"architecture": "amd64", "os": "linux"},
    **{f"/v2/multi/manifests/sha256:{i:064x}": {"layers": [{"size": 100 * i}]} for i in (1, 2)},
}


class Registry(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        found = ANSWERS.get(self.path)
        body = json.dumps(found or {"errors": [{"code": "MANIFEST_UNKNOWN"}]}).encode()
        self.send_response(200 if found else 404)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        return None


@pytest.fixture(scope="module")
def served() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), Registry)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def on(monkeypatch: pytest.MonkeyPatch, machine: str) -> None:
    monkeypatch.setattr(platform, "machine", lambda: machine)


def test_the_build_for_this_cpu_is_found_in_the_index(
    served: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    on(monkeypatch, "x86_64")
    assert registry.image_size(f"{served}/multi:1") == 100
    on(monkeypatch, "armv7l")
    assert registry.image_size(f"{served}/multi:1") == 200


def test_no_build_for_this_cpu_is_unavailable_and_says_what_there_is(
    served: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    on(monkeypatch, "aarch64")
    with pytest.raises(UnavailableError) as multi:
        registry.image_size(f"{served}/multi:1")
    assert (
        str(multi.value) == "unavailable: no linux/arm64 image (it has linux/amd64, linux/arm/v7)"
    )
    with pytest.raises(UnavailableError) as single:
        registry.image_size(f"{served}/amd64-only:1")  # one platform: its config says which
    assert str(single.value) == "unavailable: no linux/arm64 image (it has linux/amd64)"
    on(monkeypatch, "x86_64")
    assert registry.image_size(f"{served}/amd64-only:1") == 700
    assert registry.image_size(f"{served}/never-pushed:1") is None  # unknown: pulled as before


def test_an_image_without_a_build_is_not_pulled_and_shows_unavailable() -> None:
    image, why = "img:arm", "unavailable: no linux/arm64 image (it has linux/amd64)"

    def size(ref: str) -> int | None:
        raise UnavailableError(why)

    runtime, done = FakeRuntime(), threading.Event()
    guards = PullGuards(size=size)
    puller = ImagePuller(
        runtime, on_done=done.set, refresh_interval=0, clock=lambda: 1.0, guards=guards
    )
    desired = DesiredState((ContainerSpec("app", image), ContainerSpec("web", "img:1")))
    runtime.images.add("img:1")
    executor = Executor(runtime, puller)
    executor.execute(plan(desired, runtime.list_managed()))
    assert done.wait(5)
    report = executor.execute(plan(desired, runtime.list_managed()))
    assert not any(c.startswith("pull:") for c in runtime.calls)  # never pulled
    (outcome,) = [o for o in report.outcomes if o.name == "app"]
    assert outcome.unavailable and outcome.error == why + " (checked again in 600 s)"
    assert puller.next_due() == 600.0  # the slow back-off of an image that is not there
    status = build_status(desired, runtime.list_managed(), report, {}, converged=False)
    rows = {c.name: c for c in status.containers}
    assert rows["app"].state == "unavailable" and rows["web"].state == "running"
    assert status.healthy
