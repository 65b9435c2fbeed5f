"""What a coordinator's container may ask of this machine (admission), what every container is held
to (containment), image references by Docker's rules, and the keeping of unused volumes."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import pytest

from controller.clients.store import StateStore
from controller.contract.assignment import assignment_to_desired
from controller.core.admission import Admission, AssignmentTooLarge
from controller.core.containment import Containment
from controller.core.models import ContainerSpec, VolumeMount
from controller.core.policy import ImagePolicy, parse_reference
from controller.core.runtime import OwnedVolume
from controller.engine.images import ImagePuller, PullGuards
from controller.engine.volumes import DAY, VolumeKeeper
from controller.membership.source import AssignmentSource
from rma_testkit.fakes import FakeRuntime

IMG = "ghcr.io/rma/svc:1"


def entry(name: str, **kw: Any) -> dict[str, Any]:
    return {"name": name, "image": IMG, **kw}


def refusals(tier: int, entries: list[dict[str, Any]], **kw: Any) -> dict[str, str]:
    desired = assignment_to_desired(tier, entries, "127.0.0.1", Admission(**kw))
    return {r.name: r.message for r in desired.refused}


def test_ports_outside_the_range_or_too_many_are_refused_and_the_rest_runs() -> None:
    many = [{"container": p} for p in range(2000, 2009)]
    found = refusals(
        2,
        [entry("low", port=25), entry("many", ports=many), entry("ok", port=8080)],
    )
    assert "outside the allowed range 1024-65535" in found["low"]
    assert "publishes 9 ports, more than 8" in found["many"]
    assert "ok" not in found
    assert "ok" in refusals(2, [entry("ok", port=8080)], port_range=(9000, 9100))


def test_published_ports_bind_the_publish_address() -> None:
    desired = assignment_to_desired(2, [entry("a", port=8080)], "127.0.0.1")
    assert desired.specs[0].ports[0].host_ip == "127.0.0.1"


def test_gpus_only_on_tier_1_and_only_on_a_machine_that_qualifies() -> None:
    assert "only for tier 1" in refusals(2, [entry("g", gpu=True)], gpu_machine=True)["g"]
    assert "does not qualify" in refusals(1, [entry("g")], gpu_machine=False)["g"]
    assert refusals(1, [entry("g")], gpu_machine=True) == {}
    assert refusals(2, [entry("cpu", gpu=False)]) == {}


def test_an_assignment_over_the_container_limit_is_refused_whole() -> None:
    with pytest.raises(AssignmentTooLarge):
        assignment_to_desired(2, [entry(f"c{i}") for i in range(33)])
    source = AssignmentSource("127.0.0.1", Admission(max_containers=2))
    source.set(2, [entry("a")], 1)
    kept = source.set(2, [entry("a"), entry("b"), entry("c")], 2)
    assert [s.name for s in kept.specs] == ["a"]  # the last good assignment keeps running
    assert "refused whole" in kept.refused[-1].message
    assert source.load() == kept


def test_containment_puts_every_container_on_the_agents_network_and_volumes() -> None:
    spec = ContainerSpec("db", "pg:16", volumes=(VolumeMount("pgdata", "/var/lib/pg"),))
    held = Containment("w1", adopted=frozenset({"legacy"})).apply(spec)
    assert (held.network, held.pids_limit) == ("rma-w1", 1024)
    assert held.volumes == (VolumeMount("rma2-w1-pgdata", "/var/lib/pg"),)
    assert held.spec_hash() != spec.spec_hash()  # an upgrade recreates onto the network
    legacy = ContainerSpec("db", "pg:16", volumes=(VolumeMount("legacy", "/d"),))
    assert Containment("w1", adopted=frozenset({"legacy"})).apply(legacy).volumes[0].name == (
        "legacy"
    )


@pytest.mark.parametrize(
    ("image", "name"),
    [
        ("redis", "docker.io/library/redis"),
        ("redis:7", "docker.io/library/redis"),
        ("index.docker.io/someone/x", "docker.io/someone/x"),
        ("LOCALHOST/x", "localhost/x"),  # an uppercase first part is a registry host
        ("Registry.Example:5000/a/b:1", "registry.example:5000/a/b"),
        ("127.0.0.1:5000/rma/x@sha256:" + "a" * 64, "127.0.0.1:5000/rma/x"),
    ],
)
def test_references_parse_by_dockers_rules(image: str, name: str) -> None:
    assert parse_reference(image).name == name


@pytest.mark.parametrize(
    "image", ["a" * 64, "sha256:" + "b" * 64, "9916c51a4f05", "Redis", "ghcr.io/RMA/x", "x@sha1:a"]
)
def test_ids_digest_only_and_uppercase_names_are_refused(image: str) -> None:
    with pytest.raises(ValueError):
        parse_reference(image)
    assert ImagePolicy.from_setting("*", False).check(image) is not None


def test_repository_prefixes_narrow_a_registry() -> None:
    policy = ImagePolicy.from_setting("ghcr.io/rma/,rma/", False)
    assert policy.check("ghcr.io/rma/ollama:1") is None
    assert policy.check("rma/worker") is None and policy.check("docker.io/rma/w") is None
    assert policy.check("ghcr.io/rmaevil/x") is not None
    assert policy.check("someone/x") is not None and policy.check("redis") is not None
    assert ImagePolicy().check("LOCALHOST/x") is not None  # a host "LOCALHOST", not Docker Hub


def test_local_images_are_trusted_by_their_repo_digests() -> None:
    policy = ImagePolicy.from_setting("ghcr.io", False)
    digest = "@sha256:" + "c" * 64
    assert policy.trusts_digests("ghcr.io/rma/x:1", ["ghcr.io/rma/x" + digest])
    assert not policy.trusts_digests("ghcr.io/rma/x:1", ["evil.example/rma/x" + digest])
    # the same bytes pushed under another name do not vouch for this name
    assert not policy.trusts_digests("ghcr.io/rma/y:1", ["ghcr.io/rma/x" + digest])
    assert not policy.trusts_digests("ghcr.io/rma/x:1", [])


def test_an_untrusted_local_image_is_pulled_not_used() -> None:
    rt = FakeRuntime(images={"ghcr.io/rma/x:1"})
    done = threading.Event()
    puller = ImagePuller(
        rt, on_done=done.set, refresh_interval=0, guards=PullGuards(trusted=lambda image: False)
    )
    assert puller.ensure("ghcr.io/rma/x:1").pulling
    assert done.wait(5)
    assert "pull:ghcr.io/rma/x:1" in rt.calls
    trusting = ImagePuller(FakeRuntime(images={"i:1"}), refresh_interval=0)
    assert trusting.ensure("i:1").ready


class FakeOwned:
    def __init__(self, names: list[str]) -> None:
        self.names = names
        self.removed: list[str] = []

    def list_volumes(self, all_instances: bool = False) -> list[OwnedVolume]:
        return [OwnedVolume(n, "w", "") for n in self.names]

    def remove_volume(self, name: str) -> None:
        self.removed.append(name)
        self.names.remove(name)


def test_unused_volumes_are_kept_listed_then_removed_after_the_retention(tmp_path: Path) -> None:
    now = [1000.0]
    owned = FakeOwned(["rma-w-a", "rma-w-b"])
    store = StateStore(tmp_path, "w")
    keeper = VolumeKeeper(owned, store, retention=7 * DAY, clock=lambda: now[0])
    keeper.sweep({"rma-w-a"})
    assert keeper.kept == ("rma-w-b",) and owned.removed == []
    now[0] += 6 * DAY
    again = VolumeKeeper(owned, store, retention=7 * DAY, clock=lambda: now[0])
    again.sweep({"rma-w-a"})  # a restart keeps the clock: the state dir records since when
    assert owned.removed == []
    now[0] += 1 * DAY
    again.sweep(set())
    assert owned.removed == ["rma-w-b"] and again.kept == ("rma-w-a",)
    forever = VolumeKeeper(owned, store, retention=0, clock=lambda: now[0] + 99 * DAY)
    forever.sweep(set())
    assert owned.removed == ["rma-w-b"]  # retention 0: kept until cleanup --volumes
