"""The state store (identity, assignment: atomic, private, corrupt files ignored) and the
conversion of an assignment into the desired state."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest

from controller.clients.store import StateStore, StoredAssignment
from controller.contract.assignment import assignment_to_desired
from controller.core.admission import Admission
from controller.core.models import GPU_ALL

WEB = {"name": "web", "image": "img:1", "port": 8080}


@pytest.mark.parametrize("content", ["{not json", "[]", '{"worker_id": "x"}'])
def test_corrupt_state_files_are_ignored(tmp_path: Path, content: str) -> None:
    store = StateStore(tmp_path, "default")
    store.identity_path.write_text(content)
    store.assignment_path.write_text(content)
    assert store.load_identity() is None and store.load_assignment() is None


def test_state_writes_are_atomic_and_private(tmp_path: Path) -> None:
    store = StateStore(tmp_path / "new", "i")
    store.save_assignment(StoredAssignment(1, [WEB], 3, '"3"'))
    assert json.loads(store.assignment_path.read_text())["generation"] == 3
    assert stat.S_IMODE(store.assignment_path.stat().st_mode) == 0o600
    assert [p.name for p in store.assignment_path.parent.iterdir()] == ["i.assignment.json"]


def test_tier1_part1_entries_request_the_gpus_and_bad_entries_are_refused() -> None:
    desired = assignment_to_desired(
        1,
        [WEB, {**WEB, "name": "cpu", "gpu": False}, {"name": "bad name", "image": "x"}],
        admission=Admission(gpu_machine=True),
    )
    assert {s.name: s.gpu for s in desired.specs} == {"web": GPU_ALL, "cpu": 0}
    assert [r.name for r in desired.refused] == ["bad name"]
    assert all(s.gpu == 0 for s in assignment_to_desired(2, [WEB]).specs)


def test_the_pages_secret_is_out_of_a_coordinators_reach(tmp_path: Path) -> None:
    """Issue 21, item 7: `${secret:dashboard}` handed the owner page's cookie secret to a
    container; the page's secret is a file of its own now, and an old entry is not reused."""
    from controller.app.parts import secret_lookup  # noqa: PLC0415

    store = StateStore(tmp_path, "i")
    (tmp_path / "i.secrets.json").write_text(json.dumps({"dashboard": "x" * 32}))
    page = store.page_secret()
    assert page != "x" * 32 and page == store.page_secret()
    assert secret_lookup(store)("dashboard") != page
    assert stat.S_IMODE(store.page_path.stat().st_mode) == 0o600
