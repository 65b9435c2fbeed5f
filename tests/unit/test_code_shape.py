"""The code's shape, as the contributor guide promises it: every module of the agent, the
reference coordinator, the test kit, the bench and the tests opens with a docstring saying why it
exists, stays under 300 lines, and no function is 40 lines or longer."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("controller", "rma_coordinator", "rma_testkit", "bench", "tests")
MODULES = sorted(p for pkg in PACKAGES for p in (ROOT / pkg).rglob("*.py"))
MAX_MODULE_LINES = 300
MAX_FUNCTION_LINES = 40


def _name(path: Path) -> str:
    return str(path.relative_to(ROOT))


@pytest.mark.parametrize("path", MODULES, ids=_name)
def test_module_shape(path: Path) -> None:
    text = path.read_text(encoding="utf-8")
    lines = text.count("\n")
    assert lines < MAX_MODULE_LINES, f"{_name(path)} has {lines} lines"
    tree = ast.parse(text)
    if text.strip() and path.name != "__main__.py":
        assert ast.get_docstring(tree), f"{_name(path)} does not say why it exists"
    long = [
        f"{node.name} ({(node.end_lineno or node.lineno) - node.lineno + 1} lines)"
        for node in ast.walk(tree)
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
        and (node.end_lineno or node.lineno) - node.lineno + 1 >= MAX_FUNCTION_LINES
    ]
    assert not long, f"{_name(path)}: {', '.join(long)}"


def test_every_package_is_listed() -> None:
    assert len(MODULES) > 60
