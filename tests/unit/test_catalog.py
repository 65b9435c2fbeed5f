"""The tier catalog is valid: every tier parses into specs, tier 1 needs GPUs, ports don't clash."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest
import yaml

from controller.contract.schema import parse_specs
from controller.core.models import GPU_ALL
from rma_coordinator.main import build_parser
from rma_coordinator.tiers import Catalog

CATALOG = yaml.safe_load(
    (Path(__file__).resolve().parents[2] / "manifests/catalog.yaml").read_text()
)


@pytest.mark.parametrize("tier", [1, 2, 3])
def test_each_tier_parses_cleanly(tier: int) -> None:
    specs, errors = parse_specs(CATALOG["tiers"][tier]["containers"])
    assert errors == [] and specs
    host_ports = [p.host for s in specs for p in s.ports]
    assert len(host_ports) == len(set(host_ports))
    assert all(s.gpu == (GPU_ALL if tier == 1 else 0) for s in specs)


def test_the_catalog_has_the_rma_services() -> None:
    names = {c["name"] for t in CATALOG["tiers"].values() for c in t["containers"]}
    assert {
        "rma-vllm",
        "rma-ollama-vision",
        "rma-rag-service",
        "rma-ner-service",
        "rma-ocr-service",
        "rma-notes-service",
        "rma-postgres",
        "rma-neo4j",
        "rma-chromadb",
        "rma-redis",
    } <= names


def test_the_coordinator_without_catalog_uses_the_packaged_one() -> None:
    assert build_parser().parse_args([]).catalog is None
    packaged = Catalog.load()
    assert packaged.tiers == {int(k): v["containers"] for k, v in CATALOG["tiers"].items()}


def test_no_catalog_service_has_a_known_password_each_worker_makes_its_own(
    tmp_path: Path,
) -> None:
    from controller.clients.store import StateStore  # noqa: PLC0415
    from controller.core.models import DesiredState  # noqa: PLC0415
    from controller.core.placeholders import fill, names  # noqa: PLC0415

    specs, _ = parse_specs(CATALOG["tiers"][3]["containers"])
    desired = DesiredState(tuple(specs))
    assert names(desired) == {"postgres", "neo4j", "redis"}
    one, two = StateStore(tmp_path / "a", "w"), StateStore(tmp_path / "b", "w")
    mine, theirs = fill(desired, one.secret), fill(desired, two.secret)
    env = {s.name: s.env_dict for s in mine.specs}
    password = env["rma-postgres"]["POSTGRES_PASSWORD"]
    assert len(password) >= 24 and "change-me" not in password and "$" not in password
    assert env["rma-neo4j"]["NEO4J_AUTH"].startswith("neo4j/")  # auth on, not "none"
    redis = next(s for s in mine.specs if s.name == "rma-redis")
    assert redis.command is not None and redis.command[-1] == one.secret("redis")
    assert {s.name: s.env_dict for s in theirs.specs}["rma-postgres"] != env["rma-postgres"]
    assert fill(desired, one.secret) == mine  # stable: the spec hash does not change
    assert stat.S_IMODE(one.secrets_path.stat().st_mode) == 0o600
