"""The agent's service catalog (manifests/catalog.yaml, shipped as package data): every RMA service
of the contract's Part 3 on its port and tier, valid specs, no fixed password, no service the RMA
project does not run; and how a coordinator's answer becomes the desired set through it."""

from __future__ import annotations

import stat
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import yaml

from controller.clients.catalog import load_catalog
from controller.clients.store import StateStore
from controller.contract.assignment import NOT_IN_CATALOG, resolve
from controller.contract.catalog import Catalog, CatalogError
from controller.contract.schema import parse_specs
from controller.contract.services import services_status
from controller.core.admission import AssignmentTooLarge
from controller.core.errors import ConfigError
from controller.core.models import GPU_ALL, DesiredState
from controller.core.placeholders import fill, names
from controller.core.results import ExecutionReport
from controller.core.status import build_status
from controller.membership.source import AssignmentSource
from rma_coordinator.main import build_parser
from rma_coordinator.tiers import Catalog as CoordinatorCatalog

ROOT = Path(__file__).resolve().parents[2]
SHIPPED = load_catalog()
# Part 3: the local coordinator's service names and the ports it expects (tier 4: none run).
PART3 = {
    1: {"llm-inference": 8105, "vision-ocr": 8104, "rag-embeddings": 8102},
    2: {"ner-extraction": 8108, "document-processing": 8103, "notes-coa": 8100},
    3: {"chromadb": 8000, "redis": 6379, "postgres": 5432, "minio": 9000, "neo4j": 7474},
}


def test_manifests_catalog_is_the_shipped_one() -> None:
    assert load_catalog(ROOT / "manifests/catalog.yaml") == SHIPPED


@pytest.mark.parametrize("tier", [1, 2, 3])
def test_each_tier_runs_exactly_part3s_services_on_their_ports(tier: int) -> None:
    entries = [e for e in SHIPPED.entries if e.tier == tier]
    specs, errors = parse_specs([e.spec for e in entries])
    assert errors == []
    assert {e.service: specs[i].ports[0].host for i, e in enumerate(entries)} == PART3[tier]
    assert all(p.container == p.host for s in specs for p in s.ports)  # listens where announced
    assert all(s.gpu == (GPU_ALL if tier == 1 else 0) for s in specs)


def test_tier_4_runs_nothing_and_no_other_service_is_listed() -> None:
    assert SHIPPED.for_tier(4)[0] == []
    assert {e.service for e in SHIPPED.entries} == {n for t in PART3.values() for n in t}


def test_chromadb_is_pinned_to_the_0_4_line_its_clients_speak() -> None:
    chroma = next(e for e in SHIPPED.entries if e.service == "chromadb")
    assert chroma.spec["image"] == "chromadb/chroma:0.4.24"


def test_placeholders_are_exactly_the_unpublished_rma_images() -> None:
    assert set(SHIPPED.placeholders()) == {
        "rag-embeddings",
        "ner-extraction",
        "document-processing",
        "notes-coa",
    }
    page = (ROOT / "docs" / "running.md").read_text()
    for entry in SHIPPED.entries:
        if entry.placeholder:
            assert entry.spec["image"] in page  # the catalog's table names each placeholder


def test_every_spec_says_which_service_it_is() -> None:
    for entry in SHIPPED.entries:
        assert entry.spec["labels"]["rma.service"] == entry.service


def test_no_catalog_service_has_a_known_password_each_worker_makes_its_own(
    tmp_path: Path,
) -> None:
    specs, _ = parse_specs(SHIPPED.for_tier(3)[0])
    desired = DesiredState(tuple(specs))
    assert names(desired) == {"postgres", "neo4j", "redis", "minio", "chromadb"}
    one, two = StateStore(tmp_path / "a", "w"), StateStore(tmp_path / "b", "w")
    mine, theirs = fill(desired, one.secret), fill(desired, two.secret)
    env = {s.name: s.env_dict for s in mine.specs}
    password = env["rma-postgres"]["POSTGRES_PASSWORD"]
    assert len(password) >= 24 and "change-me" not in password and "$" not in password
    assert env["rma-neo4j"]["NEO4J_AUTH"].startswith("neo4j/")  # auth on, not "none"
    assert env["rma-minio"]["MINIO_ROOT_PASSWORD"] == one.secret("minio")
    redis = next(s for s in mine.specs if s.name == "rma-redis")
    assert redis.command is not None and redis.command[-1] == one.secret("redis")
    assert {s.name: s.env_dict for s in theirs.specs}["rma-postgres"] != env["rma-postgres"]
    assert fill(desired, one.secret) == mine  # stable: the spec hash does not change
    assert stat.S_IMODE(one.secrets_path.stat().st_mode) == 0o600


# -- a coordinator's answer through the catalog (Part 3's order) -----------------------------------

SPEC = {"name": "mine", "image": "img:1"}


@pytest.mark.parametrize(
    ("containers", "services", "expected", "unknown"),
    [
        ([SPEC], ["redis"], ["mine"], []),  # specs win
        ([], ["redis"], [], []),  # an explicit empty list runs nothing
        (None, ["redis", "coordinator"], ["rma-redis"], ["coordinator"]),  # names
        (None, [], [], []),
        (None, None, [e.spec["name"] for e in SHIPPED.entries if e.tier == 3], []),  # by tier
    ],
)
def test_where_the_desired_set_comes_from(
    containers: Any, services: Any, expected: list[str], unknown: list[str]
) -> None:
    entries, refused = resolve(SHIPPED, 3, containers, services)
    assert [e["name"] for e in entries] == expected
    assert [r.name for r in refused] == unknown
    assert all(r.message == NOT_IN_CATALOG and r.unknown_service for r in refused)


TIER2 = {"rma-ner-extraction", "rma-document-processing", "rma-notes-coa"}


def test_a_missing_key_never_means_run_nothing() -> None:
    source = AssignmentSource(catalog=replace(SHIPPED, run_placeholders=True))
    desired = source.set(2, None, None)
    assert {s.name for s in desired.specs} == TIER2


def test_placeholders_are_unavailable_by_default_and_never_run() -> None:
    """Issue 22, item 3: every tier-2 service is a placeholder: pulled, failed and retried every
    5 minutes for ever, with three tunnels to nothing."""
    desired = AssignmentSource(catalog=SHIPPED).set(2, None, None)
    assert desired.specs == ()
    assert {r.name for r in desired.refused if r.unavailable} == TIER2
    assert all("has not published this image yet" in r.message for r in desired.refused)
    status = build_status(desired, [], ExecutionReport(), {}, converged=True)
    assert {c.state for c in status.containers} == {"unavailable"} and status.healthy
    assert set(services_status(status).values()) == {"unavailable"}


def test_unknown_service_names_are_reported_and_the_rest_runs() -> None:
    catalog = replace(SHIPPED, run_placeholders=True)
    desired = AssignmentSource(catalog=catalog).set(2, None, None, ["notes-coa", "x-unknown"])
    assert [s.name for s in desired.specs] == ["rma-notes-coa"]
    assert [(r.name, r.unknown_service) for r in desired.refused] == [("x-unknown", True)]


def test_too_many_names_are_refused_whole() -> None:
    with pytest.raises(AssignmentTooLarge):
        resolve(SHIPPED, 2, None, ["n"] * 65)


@pytest.mark.parametrize(
    ("data", "error"),
    [
        ({"services": {"Bad Name": {"tier": 2, "container": SPEC}}}, "not a service name"),
        ({"services": {"a": {"tier": 5, "container": SPEC}}}, "tier"),
        ({"services": {"a": {"tier": 2, "container": {"name": "x"}}}}, "image"),
        ({"services": {"a": {"tier": 2, "container": {**SPEC, "privileged": True}}}}, "never"),
        ({"services": {"a": {"tier": 2, "container": SPEC, "typo": 1}}}, "typo"),
        (
            {"services": {s: {"tier": 2, "container": SPEC} for s in ("a", "b")}},
            "two services",
        ),
    ],
)
def test_a_bad_catalog_is_refused_whole(data: dict[str, Any], error: str) -> None:
    with pytest.raises(CatalogError, match=error):
        Catalog.from_data(data)


def test_an_owner_catalog_replaces_the_shipped_one_and_a_bad_file_is_a_config_error(
    tmp_path: Path,
) -> None:
    mine = tmp_path / "catalog.yaml"
    mine.write_text(yaml.safe_dump({"services": {"notes-coa": {"tier": 2, "container": SPEC}}}))
    assert [e.service for e in load_catalog(mine).entries] == ["notes-coa"]
    mine.write_text("services: [")
    with pytest.raises(ConfigError, match=str(mine)):
        load_catalog(mine)
    with pytest.raises(ConfigError):
        load_catalog(tmp_path / "missing.yaml")


def test_the_reference_coordinator_without_catalog_assigns_the_same_services() -> None:
    assert build_parser().parse_args([]).catalog is None
    packaged = CoordinatorCatalog.load()
    ours = replace(SHIPPED, run_placeholders=True).for_tier(2)[0]
    # the agent reads `health` as its readiness probe too; the coordinator sends the spec as is
    assert packaged.tiers[2] == [{k: v for k, v in s.items() if k != "readiness"} for s in ours]
