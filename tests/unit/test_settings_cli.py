"""Settings: every option from an env var and a flag, flags win; CLI exit codes."""

from __future__ import annotations

from pathlib import Path

import pytest

from controller.cli.commands import build_parser, load_settings, main
from controller.settings import DEFAULT_COORDINATOR, Settings, env_for, flag_for


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in Settings.model_fields:
        monkeypatch.delenv(env_for(name), raising=False)
    monkeypatch.delenv("RMA_COORDINATOR_URL", raising=False)


def settings(*argv: str) -> Settings:
    return load_settings(build_parser().parse_args(list(argv)))


def test_defaults() -> None:
    s = settings()
    assert s.manifest is None and s.coordinator_url is None
    assert s.effective_coordinator == DEFAULT_COORDINATOR == "http://localhost:8080"
    assert (s.log_format, s.once, s.instance, s.resync_interval) == ("auto", False, "default",
                                                                       30.0)


def test_seed_coordinator_env_is_honoured(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COORDINATOR_URL", "https://api.rmatool.org.uk/")
    assert settings().effective_coordinator == "https://api.rmatool.org.uk"
    assert settings("--coordinator", "http://127.0.0.1:9").coordinator_url == "http://127.0.0.1:9"


@pytest.mark.parametrize(("field", "env_value", "flag_value", "expected"), [
    ("manifest", "/env.yaml", "/flag.yaml", Path("/flag.yaml")),
    ("state_dir", "/env", "/flag", Path("/flag")),
    ("heartbeat_interval", "10", "5", 5.0),
    ("log_format", "console", "json", "json"),
    ("instance", "envname", "flagname", "flagname"),
    ("stop_grace", "3", "1.5", 1.5),
    ("concurrency", "2", "6", 6),
    ("publish_address", "0.0.0.0", "127.0.0.1", "127.0.0.1"),
])
def test_every_option_has_env_and_flag_and_flag_wins(
        monkeypatch: pytest.MonkeyPatch, field: str, env_value: str, flag_value: str,
        expected: object) -> None:
    monkeypatch.setenv(env_for(field), env_value)
    from_env = getattr(settings(), field)
    assert str(from_env) == str(type(expected)(env_value))  # type: ignore[call-arg]
    assert getattr(settings(flag_for(field), flag_value), field) == expected


def test_every_field_has_a_flag() -> None:
    help_text = build_parser().format_help()
    for name in Settings.model_fields:
        assert flag_for(name) in help_text and env_for(name) in help_text


def test_once_from_env_or_flag(monkeypatch: pytest.MonkeyPatch) -> None:
    assert settings("--once").once
    monkeypatch.setenv("RMA_ONCE", "true")
    assert settings().once


def test_invalid_configuration_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--instance", "no spaces"]) == 2
    assert "invalid configuration" in capsys.readouterr().err


def test_bad_manifest_with_once_exits_non_zero(tmp_path: Path) -> None:
    bad = tmp_path / "m.yaml"
    bad.write_text("containers: [")
    code = main(["--manifest", str(bad), "--once", "--once-timeout", "300", "--state-dir",
                 str(tmp_path / "state"), "--docker-host", "unix:///nonexistent.sock",
                 "--log-format", "json"])
    assert code == 1


def test_readme_documents_every_setting() -> None:
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    for name in Settings.model_fields:
        assert f"`{env_for(name)}` | `{flag_for(name)}`" in readme, name
