"""Memory admission (core/memory.py, issue 24 item 6): what runs fits in the machine's memory
less the owner's reserve; the rest is `unavailable`, in the catalog's order."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from controller.clients.catalog import load_catalog
from controller.contract.schema import parse_specs
from controller.core.machine import GIB
from controller.core.memory import MIB, MemoryBudget, default_reserve, needs
from controller.core.models import HTTP_LABEL, ContainerSpec, DesiredState, PortMapping
from controller.core.tunnels import with_tunnels


def spec(name: str, memory: str | None = None, **kw: object) -> ContainerSpec:
    return ContainerSpec(name=name, image="img:1", memory_limit=memory, **kw)  # type: ignore[arg-type]


def tier(n: int) -> DesiredState:
    entries, _ = load_catalog().for_tier(n)
    return DesiredState(tuple(parse_specs(entries)[0]))


def test_the_2_gb_nas_runs_what_fits_of_the_data_tier_and_says_why_not_the_rest() -> None:
    nas = 2 * GIB
    budget = MemoryBudget(nas, default_reserve(nas))
    assert budget.budget == 1536 * MIB
    out = budget.apply(tier(3))
    assert [s.name for s in out.specs] == ["rma-chromadb", "rma-redis"]  # 1g + 512m
    assert {r.name: r.message for r in out.refused} == {
        "rma-postgres": "unavailable: not enough memory (needs 1.0 GiB, 0 MiB left)",
        "rma-minio": "unavailable: not enough memory (needs 1.0 GiB, 0 MiB left)",
        "rma-neo4j": "unavailable: not enough memory (needs 2.0 GiB, 0 MiB left)",
    }
    assert all(r.unavailable for r in out.refused)  # not the worker's fault: not degraded
    tunnelled = budget.apply(with_tunnels(tier(3), "tunnel:1"))  # each HTTP service's 256m too
    assert [s.name for s in tunnelled.specs] == ["rma-chromadb", "rma-tunnel-rma-chromadb"]
    assert MemoryBudget(4 * GIB, default_reserve(4 * GIB)).apply(tier(3)).refused[0].name == (
        "rma-minio"
    )


def test_a_32_gb_desktop_runs_the_whole_data_tier() -> None:
    out = MemoryBudget(32 * GIB, default_reserve(32 * GIB)).apply(tier(3))
    assert len(out.specs) == 5 and out.refused == ()


def test_a_spec_without_a_limit_gets_one_and_shm_and_tmpfs_count() -> None:
    out = MemoryBudget(8 * GIB, 0).apply(DesiredState((spec("a"), spec("g", gpu=1))))
    assert {s.name: s.memory_limit for s in out.specs} == {"a": "512m", "g": "4g"}
    assert needs(spec("b", "1g", shm_size="256m", tmpfs=(("/run", "16m"), ("/tmp", "240m")))) == (
        1536 * MIB
    )


def test_later_smaller_services_still_fit_after_a_big_one_does_not() -> None:
    desired = DesiredState((spec("a", "1g"), spec("big", "8g"), spec("c", "512m")))
    out = MemoryBudget(4 * GIB, 2 * GIB).apply(desired)
    assert [s.name for s in out.specs] == ["a", "c"]
    assert [r.name for r in out.refused] == ["big"]


def test_a_tunnel_counts_with_its_service_and_leaves_with_it() -> None:
    web = spec("web", "1g", ports=(PortMapping(8080, 18080),), labels=((HTTP_LABEL, "true"),))
    desired = with_tunnels(DesiredState((web,)), "tunnel:1")
    assert len(desired.specs) == 2  # the service and its 256m tunnel
    kept = MemoryBudget(2 * GIB, 768 * MIB).apply(desired)  # 1.25 GiB: both fit
    assert len(kept.specs) == 2
    out = MemoryBudget(2 * GIB, 1 * GIB).apply(desired)  # 1 GiB: not with its tunnel
    assert out.specs == () and out.refused[0].name == "web"


def test_the_budget_is_the_memory_less_the_reserve_and_never_negative() -> None:
    assert MemoryBudget(64 * GIB, 4 * GIB).budget == 60 * GIB
    assert MemoryBudget(1 * GIB, 2 * GIB).budget == 0


def test_the_default_reserve() -> None:
    assert default_reserve(2 * GIB) == 512 * MIB
    assert default_reserve(8 * GIB) == 8 * GIB // 5
    assert default_reserve(64 * GIB) == 4 * GIB


@given(
    st.lists(st.sampled_from(["64m", "256m", "512m", "1g", "2g", "8g", None]), max_size=12),
    st.integers(0, 16 * GIB),
)
def test_what_runs_always_fits_and_every_spec_is_run_or_said(
    sizes: list[str | None], budget: int
) -> None:
    desired = DesiredState(tuple(spec(f"s{i}", m) for i, m in enumerate(sizes)))
    out = MemoryBudget(budget, 0).apply(desired)
    assert sum(needs(s) for s in out.specs) <= budget
    assert {s.name for s in out.specs} | {r.name for r in out.refused} == {
        s.name for s in desired.specs
    }
