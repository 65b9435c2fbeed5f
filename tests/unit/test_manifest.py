"""The manifest source: formats, whole-file rejection, and change detection."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest

from controller.clients.manifest import ManifestSource, parse_manifest
from controller.core.errors import ConfigError
from rma_testkit.clock import ManualTime, VirtualClock
from rma_testkit.engine import wait_until

ROOT = Path(__file__).resolve().parents[2]


def test_yaml_and_json_are_equivalent() -> None:
    y = parse_manifest("containers:\n  - {name: a, image: 'i:1', port: 80}\n")
    j = parse_manifest('{"containers": [{"name": "a", "image": "i:1", "port": 80}]}')
    assert y == j and y.specs[0].name == "a"


def test_explicit_empty_list_means_no_containers() -> None:
    assert parse_manifest("containers: []").specs == ()


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("", "empty"),
        ("containers: [", "not valid YAML"),
        ("- a\n- b", "top-level 'containers:'"),
        ("containers:\n  - {name: a}\n  - {name: b, image: i}", "rejected, nothing changed: a:"),
        ("containers:\n  - {name: a, image: i}\n  - {name: a, image: j}", "duplicate"),
    ],
)
def test_bad_manifests_are_rejected_whole(text: str, why: str) -> None:
    with pytest.raises(ConfigError, match=why):
        parse_manifest(text)


def test_publish_address_applies_to_every_port() -> None:
    d = parse_manifest(
        "containers:\n  - {name: a, image: i, port: 80}", publish_address="127.0.0.1"
    )
    assert d.specs[0].ports[0].host_ip == "127.0.0.1"


def test_source_notices_edits_and_atomic_replacement(tmp_path: Path) -> None:
    path = tmp_path / "m.yaml"
    path.write_text("containers: []\n")
    source = ManifestSource(path)
    assert source.changed()
    assert source.load().specs == ()
    assert not source.changed()
    path.write_text("containers:\n  - {name: a, image: i}\n")
    assert source.changed()
    assert [s.name for s in source.load().specs] == ["a"]
    tmp = tmp_path / "new.yaml"
    tmp.write_text("containers:\n  - {name: b, image: i}\n")
    os.replace(tmp, path)
    assert source.changed()
    assert [s.name for s in source.load().specs] == ["b"]


def test_missing_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read manifest"):
        ManifestSource(tmp_path / "nope.yaml").load()


def test_demo_manifest_is_valid() -> None:
    demo = parse_manifest((ROOT / "manifests/demo/manifest.yaml").read_text())
    assert {s.name for s in demo.specs} == {"rma-demo-web", "rma-demo-worker", "rma-demo-data"}


def test_watch_rings_the_doorbell_when_the_file_changes(tmp_path: Path) -> None:
    """The loop polls nothing: the source stats its file on its own thread (virtual time here)
    and rings once it differs from what the last load read."""
    path = tmp_path / "m.yaml"
    path.write_text("containers: []\n")
    time, stop, rang = ManualTime(), threading.Event(), threading.Event()
    source = ManifestSource(path, clock=VirtualClock(time))
    source.load()
    source.watch(rang.set, stop)
    try:
        wait_until(lambda: time.waiting > 0, 5, step=0.005)
        time.advance(0.5)
        wait_until(lambda: time.waiting > 0, 5, step=0.005)
        assert not rang.is_set()  # unchanged: nothing to say
        path.write_text("containers:\n  - {name: a, image: 'img:1'}\n")
        time.advance(0.5)
        assert rang.wait(5)
    finally:
        stop.set()
