"""Settings: every option from an env var and a flag, flags win; CLI exit codes."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from controller.cli import settings_table
from controller.cli.commands import build_parser, load_settings, main
from controller.settings import (
    DEFAULT_COORDINATOR,
    GROUPS,
    Settings,
    env_for,
    flag_for,
    group_of,
)


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
    assert (s.log_format, s.once, s.instance, s.resync_interval) == ("auto", False, "default", 30.0)


def test_seed_coordinator_env_is_honoured(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COORDINATOR_URL", "https://api.rmatool.org.uk/")
    assert settings().effective_coordinator == "https://api.rmatool.org.uk"
    assert settings("--coordinator", "http://127.0.0.1:9").coordinator_url == "http://127.0.0.1:9"


@pytest.mark.parametrize(
    ("field", "env_value", "flag_value", "expected"),
    [
        ("manifest", "/env.yaml", "/flag.yaml", Path("/flag.yaml")),
        ("state_dir", "/env", "/flag", Path("/flag")),
        ("heartbeat_interval", "10", "5", 5.0),
        ("log_format", "console", "json", "json"),
        ("instance", "envname", "flagname", "flagname"),
        ("stop_grace", "3", "1.5", 1.5),
        ("concurrency", "2", "6", 6),
        ("publish_address", "0.0.0.0", "127.0.0.1", "127.0.0.1"),
    ],
)
def test_every_option_has_env_and_flag_and_flag_wins(
    monkeypatch: pytest.MonkeyPatch, field: str, env_value: str, flag_value: str, expected: object
) -> None:
    monkeypatch.setenv(env_for(field), env_value)
    from_env = getattr(settings(), field)
    assert str(from_env) == str(type(expected)(env_value))  # type: ignore[call-arg]
    assert getattr(settings(flag_for(field), flag_value), field) == expected


# The interface as users and outside checks drive it: written out, not derived from the fields.
FLAGS_AND_ENV = {
    "--coordinator": "COORDINATOR_URL",
    "--manifest": "RMA_MANIFEST",
    "--catalog": "RMA_CATALOG",
    "--advertise-ip": "RMA_ADVERTISE_IP",
    "--ingress": "RMA_INGRESS",
    "--advertise-url": "RMA_ADVERTISE_URL",
    "--tunnel-image": "RMA_TUNNEL_IMAGE",
    "--tunnel-url-pattern": "RMA_TUNNEL_URL_PATTERN",
    "--drain-seconds": "RMA_DRAIN_SECONDS",
    "--state-dir": "RMA_STATE_DIR",
    "--instance": "RMA_INSTANCE",
    "--once": "RMA_ONCE",
    "--once-timeout": "RMA_ONCE_TIMEOUT",
    "--log-format": "RMA_LOG_FORMAT",
    "--log-level": "RMA_LOG_LEVEL",
    "--health-addr": "RMA_HEALTH_ADDR",
    "--ca-bundle": "RMA_CA_BUNDLE",
    "--docker-host": "RMA_DOCKER_HOST",
    "--allow-insecure-coordinator": "RMA_ALLOW_INSECURE_COORDINATOR",
    "--max-cpus": "RMA_MAX_CPUS",
    "--max-memory": "RMA_MAX_MEMORY",
    "--reserve-memory": "RMA_RESERVE_MEMORY",
    "--model-cache-max": "RMA_MODEL_CACHE_MAX",
    "--gpus": "RMA_GPUS",
    "--publish-address": "RMA_PUBLISH_ADDRESS",
    "--port-range": "RMA_PORT_RANGE",
    "--max-containers": "RMA_MAX_CONTAINERS",
    "--pids-limit": "RMA_PIDS_LIMIT",
    "--max-pids": "RMA_MAX_PIDS",
    "--run-placeholders": "RMA_RUN_PLACEHOLDERS",
    "--pull-stall-timeout": "RMA_PULL_STALL_TIMEOUT",
    "--max-container-disk": "RMA_MAX_CONTAINER_DISK",
    "--container-disk-interval": "RMA_CONTAINER_DISK_INTERVAL",
    "--volume-retention": "RMA_VOLUME_RETENTION",
    "--isolate-lan": "RMA_ISOLATE_LAN",
    "--allow-local-images": "RMA_ALLOW_LOCAL_IMAGES",
    "--allowed-registries": "RMA_ALLOWED_REGISTRIES",
    "--require-digest": "RMA_REQUIRE_DIGEST",
    "--min-free-disk": "RMA_MIN_FREE_DISK",
    "--image-gc-high": "RMA_IMAGE_GC_HIGH",
    "--image-gc-low": "RMA_IMAGE_GC_LOW",
    "--heartbeat-interval": "RMA_HEARTBEAT_INTERVAL",
    "--long-poll-wait": "RMA_LONG_POLL_WAIT",
    "--resync-interval": "RMA_RESYNC_INTERVAL",
    "--stop-grace": "RMA_STOP_GRACE",
    "--concurrency": "RMA_CONCURRENCY",
    "--image-refresh-interval": "RMA_IMAGE_REFRESH_INTERVAL",
    # issue 14: the volunteer stays in charge
    "--schedule": "RMA_SCHEDULE",
    "--pause-on-battery": "RMA_PAUSE_ON_BATTERY",
    "--pause-when-busy": "RMA_PAUSE_WHEN_BUSY",
    "--busy-cooldown": "RMA_BUSY_COOLDOWN",
    "--gpu-yield-cooldown": "RMA_GPU_YIELD_COOLDOWN",
    "--gpu-yield-min-memory": "RMA_GPU_YIELD_MIN_MEMORY",
    "--receipt-window": "RMA_RECEIPT_WINDOW",
    "--display-name": "RMA_DISPLAY_NAME",
    "--gpu-yield-min-util": "RMA_GPU_YIELD_MIN_UTIL",
    "--gpu-max-temp": "RMA_GPU_MAX_TEMP",
    "--gpu-power-limit": "RMA_GPU_POWER_LIMIT",
    "--energy-price": "RMA_ENERGY_PRICE",
    "--carbon-intensity": "RMA_CARBON_INTENSITY",
    # issue 15: the owner's page
    "--dashboard": "RMA_DASHBOARD",
}


def test_every_documented_flag_and_env_var_exists() -> None:
    help_text = " ".join(build_parser().format_help().split())  # unwrapped
    for flag, env in FLAGS_AND_ENV.items():
        assert f"{flag} " in help_text and f"[env {env}]" in help_text, flag
    assert {flag_for(n) for n in Settings.model_fields} == set(FLAGS_AND_ENV)
    assert {env_for(n) for n in Settings.model_fields} == set(FLAGS_AND_ENV.values())


def test_a_setting_from_its_env_var(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RMA_MAX_MEMORY", "8g")
    monkeypatch.setenv("RMA_IMAGE_GC_HIGH", "90")
    s = settings()
    assert s.max_memory == "8g" and s.image_gc_high == 90


def test_once_from_env_or_flag(monkeypatch: pytest.MonkeyPatch) -> None:
    assert settings("--once").once
    monkeypatch.setenv("RMA_ONCE", "true")
    assert settings().once


def test_bad_manifest_with_once_exits_non_zero(tmp_path: Path) -> None:
    bad = tmp_path / "m.yaml"
    bad.write_text("containers: [")
    code = main(
        [
            "--manifest",
            str(bad),
            "--once",
            "--once-timeout",
            "300",
            "--state-dir",
            str(tmp_path / "state"),
            "--docker-host",
            "unix:///nonexistent.sock",
            "--log-format",
            "json",
        ]
    )
    assert code == 1


def test_flags_file_is_generated_and_current() -> None:
    flags = Path(__file__).resolve().parents[2] / "controller/cli/flags.json"
    assert flags.read_text() == settings_table.flags(), (
        "controller/cli/flags.json is stale: run `make settings-table`"
    )


def test_help_and_version_import_neither_pydantic_nor_docker() -> None:
    code = (
        "import sys, contextlib, io\n"
        "from controller.cli import main\n"
        "for arg in ('--help', '--version'):\n"
        "    with contextlib.suppress(SystemExit), contextlib.redirect_stdout(io.StringIO()):\n"
        "        main([arg])\n"
        "heavy = [m for m in ('pydantic', 'docker', 'structlog', 'requests') if m in sys.modules]\n"
        "print(heavy)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"


def test_the_settings_table_is_generated_and_current() -> None:
    page = (Path(__file__).resolve().parents[2] / "docs" / "settings.md").read_text()
    assert settings_table.current(page) == settings_table.render(), (
        "docs/settings.md's table is stale: run `make settings-table`"
    )
    table = settings_table.render()
    assert "| `RMA_IMAGE_GC_HIGH` | `--image-gc-high` | `85` |" in table  # defaults shown
    assert "| `RMA_REQUIRE_DIGEST` | `--require-digest` | off |" in table


@pytest.mark.parametrize(
    "argv",
    [
        ["--health-addr", "localhost"],
        ["--health-addr", "127.0.0.1:http"],
        ["--health-addr", "127.0.0.1:70000"],
        ["--image-gc-low", "90", "--image-gc-high", "85"],
        ["--max-memory", "lots"],
    ],
)
def test_bad_combinations_are_configuration_errors(
    argv: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    assert main([*argv, "--test-capabilities"]) == 2
    err = capsys.readouterr().err
    assert len(err.splitlines()) == 1 and err.startswith("rma-worker: --")
    assert "pydantic" not in err and "https://" not in err and "Traceback" not in err


def test_settings_are_grouped_by_who_sets_them() -> None:
    assert group_of("max_memory") == "contributor" and group_of("state_dir") == "operator"
    assert group_of("resync_interval") == "tuning"
    assert {group_of(n) for n in Settings.model_fields} == set(GROUPS)


@pytest.mark.parametrize(
    ("args", "mode"),
    [
        (("--coordinator", "https://api.rmatool.org.uk"), "tunnel"),
        (("--coordinator", "http://127.0.0.1:8080"), "none"),
        (("--coordinator", "http://localhost:8080"), "none"),
        (("--manifest", "m.yaml"), "none"),
        (("--coordinator", "https://c.example", "--ingress", "none"), "none"),
        (("--ingress", "url", "--advertise-url", "https://{service}.example.org"), "url"),
        (("--ingress", "url", "--advertise-ip", "203.0.113.7"), "url"),
    ],
)
def test_the_ingress_by_default_tunnels_only_for_a_coordinator_elsewhere(
    args: tuple[str, ...], mode: str
) -> None:
    assert settings(*args).ingress_mode == mode


@pytest.mark.parametrize(
    "args",
    [
        ("--ingress", "url"),  # no address to announce
        ("--ingress", "url", "--advertise-url", "ftp://x"),
        ("--tunnel-image", "cloudflare/cloudflared"),  # unpinned
        ("--tunnel-image", "cloudflare/cloudflared:latest"),
        ("--tunnel-url-pattern", "(unclosed"),
    ],
)
def test_bad_ingress_settings_are_configuration_errors(args: tuple[str, ...]) -> None:
    with pytest.raises((ValueError, SystemExit)):
        settings(*args)


def test_subcommands_take_only_their_own_options() -> None:
    """Issue 21, item 6: `cleanup --help` listed all of the agent's settings."""
    from controller.cli.commands import build_parser  # noqa: PLC0415

    parser = build_parser()
    args = parser.parse_args(["cleanup", "--instance", "a", "--all-instances", "--dry-run"])
    assert (args.instance, args.all_instances, args.dry_run) == ("a", True, True)
    with pytest.raises(SystemExit):
        parser.parse_args(["cleanup", "--max-containers", "3"])
    with pytest.raises(SystemExit):
        parser.parse_args(["status", "--isolate-lan"])
    assert parser.parse_args(["--max-containers", "3", "status"]).max_containers == 3
    assert parser.parse_args(["cleanup", "--instance-only"]).all_instances is False
