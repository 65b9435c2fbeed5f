"""The code's shape, as the contributor guide promises it: every module of the agent, the
reference coordinator, the test kit, the bench and the tests opens with a docstring saying why it
exists. Size is ruff's to judge (C901 complexity ≤ 10, PLR0912 branches, PLR0913 arguments ≤ 8,
PLR0915 statements: pyproject.toml), not a line count a formatter exemption could dodge: in the
agent, the coordinator and the bench a `# fmt: skip` may only close a module-level data table."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("controller", "rma_coordinator", "rma_testkit", "bench", "tests")
MODULES = sorted(p for pkg in PACKAGES for p in (ROOT / pkg).rglob("*.py"))
STRICT = ("controller", "rma_coordinator", "bench")  # fmt: skip only on data tables there


def _name(path: Path) -> str:
    return str(path.relative_to(ROOT))


@pytest.mark.parametrize("path", MODULES, ids=_name)
def test_module_opens_with_why_it_exists(path: Path) -> None:
    text = path.read_text(encoding="utf-8")
    tree = ast.parse(text)
    if text.strip() and path.name != "__main__.py":
        assert ast.get_docstring(tree), f"{_name(path)} does not say why it exists"


def _skips_outside_tables(text: str) -> list[int]:
    """The lines with `# fmt: skip` that do not end a module-level assignment of a literal."""
    tables = {
        node.end_lineno
        for node in ast.parse(text).body
        if isinstance(node, ast.Assign | ast.AnnAssign)
        and isinstance(node.value, ast.Dict | ast.List | ast.Tuple | ast.Set | ast.Call)
    }
    lines = text.splitlines()
    return [i for i, line in enumerate(lines, 1) if "# fmt: skip" in line and i not in tables]


@pytest.mark.parametrize("path", [p for p in MODULES if _name(p).startswith(STRICT)], ids=_name)
def test_formatting_is_skipped_only_for_data_tables(path: Path) -> None:
    bad = _skips_outside_tables(path.read_text(encoding="utf-8"))
    assert not bad, f"{_name(path)}: `# fmt: skip` outside a module-level table, lines {bad}"


def test_the_rule_catches_a_skipped_call() -> None:
    code = (
        'TABLE = {"a": 1,\n         "b": 2}  # fmt: skip\n\n'
        "def f():\n    g(1,\n      2)  # fmt: skip\n"
    )
    assert _skips_outside_tables(code) == [6]


def test_every_package_is_listed() -> None:
    assert len(MODULES) > 60
