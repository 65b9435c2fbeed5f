"""Services find each other on one machine (issue 22, item 6): the catalog's aliases on the
agent's network, `${service:NAME}` and `${service_host:NAME}` filled in from the catalog, and no
coordinator spec answering as another service."""

from __future__ import annotations

import pytest

from controller.clients.catalog import load_catalog
from controller.clients.docker_specs import create_kwargs
from controller.contract.assignment import resolve
from controller.contract.catalog import Catalog, CatalogError
from controller.contract.schema import parse_specs
from controller.core.containment import Containment

SHIPPED = load_catalog(None)


def test_catalog_containers_answer_to_the_names_rmas_services_expect() -> None:
    specs = {e.service: e.spec for e in SHIPPED.entries}
    (ocr,), _ = parse_specs([specs["vision-ocr"]])
    assert ocr.aliases == ("rma-vision-ocr", "ollama")
    kwargs = create_kwargs(Containment("i").apply(ocr), "i")
    assert kwargs["networking_config"]["EndpointsConfig"]["rma-i"]["Aliases"] == [
        "rma-vision-ocr",
        "ollama",
    ]
    given = {e.service: e.spec["labels"].get("rma.aliases") for e in SHIPPED.entries}
    assert (given["llm-inference"], given["chromadb"], given["neo4j"]) == (
        "vllm",
        "chromadb",
        "neo4j",
    )
    assert specs["rag-embeddings"]["env"]["OLLAMA_BASE_URL"] == "http://ollama:8104"


def test_service_addresses_are_filled_in_and_unknown_ones_refused() -> None:
    data = {
        "services": {
            "db": {
                "tier": 3,
                "aliases": ["neo4j"],
                "container": {"name": "rma-db", "image": "x", "port": 7687},
            },
            "app": {
                "tier": 3,
                "container": {
                    "name": "rma-app",
                    "image": "y",
                    "env": {"URL": "${service:db}", "HOST": "bolt://${service_host:db}:7687"},
                },
            },
        }
    }  # fmt: skip
    app = {e.service: e.spec for e in Catalog.from_data(data).entries}["app"]
    assert app["env"] == {"URL": "http://neo4j:7687", "HOST": "bolt://neo4j:7687"}
    data["services"]["app"]["container"]["env"] = {"URL": "${service:nowhere}"}  # type: ignore[index]
    with pytest.raises(CatalogError, match="no service nowhere"):
        Catalog.from_data(data)


def test_a_coordinator_spec_cannot_claim_another_services_alias() -> None:
    mine = {"name": "evil", "image": "ghcr.io/x/y:1", "labels": {"rma.aliases": "ollama"}}
    given = {e.service: e.spec for e in SHIPPED.entries}["vision-ocr"]
    kept, refused = resolve(SHIPPED, 1, [mine, given], None)
    assert [k["name"] for k in kept] == ["rma-vision-ocr"]
    assert [r.name for r in refused] == ["evil"] and "catalog's to give" in refused[0].message


def test_a_part1_container_the_catalog_knows_counts_as_http() -> None:
    """Issue 22, item 7: the service coordinator sends no `http` mark, so its containers got no
    tunnel and the worker registered with an empty tunnel_url; one the catalog knows by name or
    image repository now takes the catalog's http, service, health and readiness."""
    by_name = {"name": "rma-notes-coa", "image": "ghcr.io/rma/notes-coa:1.2", "port": 8100}
    by_image = {"name": "w-ocr", "image": "ollama/ollama:0.3.99", "port": 8104}
    unknown = {"name": "w-x", "image": "ghcr.io/rma/other:1", "port": 9000}
    kept, refused = resolve(SHIPPED, 2, [by_name, by_image, unknown], None)
    assert refused == []
    notes, ocr, other = kept
    assert notes["http"] and notes["labels"]["rma.service"] == "notes-coa"
    assert notes["labels"]["rma.http-from"] == "catalog" and notes["readiness"]["path"] == "/health"
    assert ocr["http"] and ocr["labels"]["rma.service"] == "vision-ocr"
    assert "rma.aliases" not in ocr["labels"]  # a name on the network is still not given
    assert "http" not in other and other["labels"] == {"rma.http-from": "probe"}  # asked by probe
