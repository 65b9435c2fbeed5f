"""Configuration errors as a person reads them (issue 23, item 6): one line per bad setting, naming
its flag and its environment variable, exit 2, no pydantic wording and no link."""

from __future__ import annotations

import pytest

from controller.cli.commands import main


def test_invalid_configuration_exits_2_with_one_line_per_setting(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue 23, item 6: no pydantic text, no link; each bad setting one line that names its
    flag and its environment variable."""
    monkeypatch.setenv("RMA_MAX_CPUS", "abc")
    assert main(["--instance", "no spaces", "--max-memory", "lots"]) == 2
    lines = capsys.readouterr().err.splitlines()
    assert sorted(lines) == [
        "rma-worker: --instance / RMA_INSTANCE: instance must be letters, digits, '_', '.', '-'"
        " (got 'no spaces')",
        "rma-worker: --max-cpus / RMA_MAX_CPUS: input should be a valid number, unable to parse"
        " string as a number (got 'abc')",
        "rma-worker: --max-memory / RMA_MAX_MEMORY: not a memory size: 'lots' (e.g. 512m, 8g)",
    ]


def test_a_bad_flag_is_one_line_not_the_usage(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["--max-cpus", "abc"])
    assert exited.value.code == 2
    err = capsys.readouterr().err
    assert (
        err
        == "rma-worker: argument --max-cpus: invalid float value: 'abc' (--help lists every flag)\n"
    )
