"""An assignment as the coordinator sends it, turned into the desired state.

Entries are checked one by one: a refused entry is reported, the rest of the assignment runs. A
Part 1 coordinator sends no GPU flag, so on tier 1 an entry without `gpu` requests the GPUs (tier 1
is the GPU tier; container names are never used to guess). Every entry must pass the admission
rules (core/admission.py: name, ports, volumes, GPU, image); an assignment over the container
limit is refused whole (AssignmentTooLarge), before any entry is read, and so is one whose
admitted entries need, with their tunnels, more containers, ports or volumes than allowed.

Where the entries come from (the contract's Part 3), in this order: the coordinator's specs
(`assigned_containers`, Part 2's `containers`); else its service names (`assigned_services`)
through the catalog; else, when it said neither, the catalog's containers for the tier it gave.
An explicit empty list runs nothing; a key that is missing never does.
"""

from __future__ import annotations

from typing import Any

from controller.contract.catalog import MAX_NAMES, Catalog
from controller.contract.schema import parse_specs
from controller.core.admission import GPU_TIER, Admission, AssignmentTooLarge
from controller.core.models import (
    ALIASES_LABEL,
    HEALTH_LABEL,
    HTTP_FROM,
    HTTP_LABEL,
    SERVICE_LABEL,
    DesiredState,
    Refusal,
)
from controller.core.policy import parse_reference

NOT_IN_CATALOG = "the coordinator named a service this agent's catalog does not know: not run"


def resolve(
    catalog: Catalog, tier: int, containers: Any, services: Any, *, marks_http: bool = False
) -> tuple[Any, list[Refusal]]:
    """(the entries to run, the service names refused and the placeholders, unavailable) from
    what the coordinator said; `marks_http`: it speaks Part 2, whose specs say `http` themselves
    (absent is false), so none of them is asked by probe."""
    if containers is not None:
        kept, refused = _no_claimed_aliases(catalog, containers)
        return _known_http(catalog, kept, probe=not marks_http), refused
    if services is None:
        return catalog.for_tier(tier)
    if not isinstance(services, list):
        return [], [Refusal("(assignment)", "assigned_services is not a list of names")]
    if len(services) > MAX_NAMES:
        raise AssignmentTooLarge(f"{len(services)} service names (at most {MAX_NAMES})")
    specs, unknown, unavailable = catalog.for_names(services)
    refused = [Refusal(name, NOT_IN_CATALOG, unknown_service=True) for name in unknown]
    return specs, refused + unavailable


CLAIMS = "sets rma.aliases: the names on the agent's network are the catalog's to give"


def _no_claimed_aliases(catalog: Catalog, containers: Any) -> tuple[Any, list[Refusal]]:
    """A coordinator's own spec may carry `rma.aliases` only as the catalog gives it to the
    container of that name (the catalog's entries it sent back); any other claim is refused, so
    no spec can answer as `ollama` or `neo4j` in another service's place."""
    if not isinstance(containers, list):
        return containers, []
    given = {
        str(e.spec["name"]): e.spec.get("labels", {}).get(ALIASES_LABEL) for e in catalog.entries
    }
    kept, refused = [], []
    for entry in containers:
        labels = entry.get("labels") if isinstance(entry, dict) else None
        claim = labels.get(ALIASES_LABEL) if isinstance(labels, dict) else None
        if claim is not None and given.get(str(entry.get("name"))) != claim:
            refused.append(Refusal(str(entry.get("name", "?"))[:128], CLAIMS))
        else:
            kept.append(entry)
    return kept, refused


def _known_http(catalog: Catalog, containers: Any, *, probe: bool) -> Any:
    """A Part 1 coordinator marks nothing as HTTP (the service coordinator sends no `http`), so
    none of its containers would get a tunnel or a probe: one the catalog knows — by container
    name, else by image repository — takes the catalog's `http`, service, health path and
    readiness (`rma.http-from: catalog` says so). One it does not know, sent without any `http`
    key by a coordinator that has none (`probe`: not Part 2), is marked `rma.http-from: probe`:
    the agent asks its port itself once it runs (engine/readiness.py) and tunnels it if it
    answers HTTP (core/tunnels.py)."""
    if not isinstance(containers, list):
        return containers
    by_name = {str(e.spec["name"]): e for e in catalog.entries}
    by_repo = {_repository(str(e.spec["image"])): e for e in catalog.entries}
    marked = []
    for entry in containers:
        known = None
        if isinstance(entry, dict) and not entry.get("http"):
            known = by_name.get(str(entry.get("name"))) or by_repo.get(
                _repository(str(entry.get("image", "")))
            )
        labels = known.spec.get("labels", {}) if known is not None else {}
        if known is None or labels.get(HTTP_LABEL) != "true":
            marked.append(_probe_mark(entry) if probe else entry)
            continue
        taken = {k: v for k, v in labels.items() if k in (SERVICE_LABEL, HEALTH_LABEL)}
        mine = entry.get("labels") if isinstance(entry.get("labels"), dict) else {}
        http = {**entry, "http": True, "labels": {**taken, **mine, HTTP_FROM: "catalog"}}
        if "readiness" not in http and "readiness" in known.spec:
            http["readiness"] = known.spec["readiness"]
        marked.append(http)
    return marked


def _probe_mark(entry: Any) -> Any:
    """An entry that says nothing of HTTP (no `http` key) and publishes a port: asked by probe."""
    if not isinstance(entry, dict) or "http" in entry:
        return entry
    if not (entry.get("ports") or entry.get("port")):
        return entry
    labels = entry.get("labels")
    if labels is not None and not isinstance(labels, dict):
        return entry  # the parser refuses it
    return {**entry, "labels": {HTTP_FROM: "probe", **(labels or {})}}


def _repository(image: str) -> str:
    try:
        return parse_reference(image).name
    except ValueError:
        return ""


def assignment_to_desired(
    tier: int, entries: Any, publish_address: str = "", admission: Admission | None = None
) -> DesiredState:
    admission = admission or Admission()
    if isinstance(entries, list):
        admission.check_size(len(entries))
    if tier == GPU_TIER and isinstance(entries, list):
        entries = [
            {**e, "gpu": True} if isinstance(e, dict) and "gpu" not in e else e for e in entries
        ]
    specs, refused = parse_specs(entries, publish_address)
    allowed = []
    for spec in specs:
        problem = admission.check(spec, tier)
        if problem is None:
            allowed.append(spec)
        else:
            refused.append(Refusal(spec.name, problem))
    admission.check_totals(allowed)
    return DesiredState(tuple(allowed), tuple(refused))
