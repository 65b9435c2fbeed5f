"""The state dir is the agent's alone: created 0700, no symlink in it is followed or written
through (lock, identity, assignment, endpoint address), and a second agent cannot clobber the
first one's lock file."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from controller.cli.console import agent_url
from controller.clients.store import Identity, StateStore, atomic_write_text
from controller.core.errors import ConfigError
from controller.ops.lock import lock_instance
from controller.settings import Settings


def test_the_state_dir_is_created_private(tmp_path: Path) -> None:
    state = tmp_path / "a" / "state"
    handle = lock_instance(state, "i")
    handle.close()
    assert stat.S_IMODE(state.stat().st_mode) == 0o700


def test_a_symlinked_lock_is_refused_and_its_target_untouched(tmp_path: Path) -> None:
    victim = tmp_path / "victim"
    victim.write_text("keep me\n")
    state = tmp_path / "state"
    state.mkdir()
    (state / "i.lock").symlink_to(victim)
    with pytest.raises(ConfigError, match="cannot use state dir"):
        lock_instance(state, "i")
    assert victim.read_text() == "keep me\n"


def test_a_second_agent_does_not_clobber_the_first_ones_lock(tmp_path: Path) -> None:
    first = lock_instance(tmp_path, "i")
    with pytest.raises(ConfigError, match="another agent"):
        lock_instance(tmp_path, "i")
    assert (tmp_path / "i.lock").read_text() == f"{os.getpid()}\n"
    first.close()


def test_writes_replace_a_symlink_instead_of_writing_through_it(tmp_path: Path) -> None:
    victim = tmp_path / "victim"
    victim.write_text("keep me\n")
    store = StateStore(tmp_path / "state", "i")
    store.identity_path.parent.mkdir()
    store.identity_path.symlink_to(victim)
    store.save_identity(Identity("w", "http://c"))
    assert victim.read_text() == "keep me\n"
    assert not store.identity_path.is_symlink() and store.load_identity() == Identity(
        "w", "http://c"
    )
    health = tmp_path / "state" / "i.health"
    health.symlink_to(victim)
    atomic_write_text(health, "http://127.0.0.1:1\n")
    assert victim.read_text() == "keep me\n" and not health.is_symlink()


def test_symlinked_state_files_are_not_read(tmp_path: Path) -> None:
    planted = tmp_path / "planted.json"
    planted.write_text('{"worker_id": "someone-else", "coordinator_url": "http://evil"}')
    store = StateStore(tmp_path / "state", "i")
    store.identity_path.parent.mkdir()
    store.identity_path.symlink_to(planted)
    assert store.load_identity() is None
    url = tmp_path / "state" / "i.health"
    (tmp_path / "url").write_text("http://evil.test:1\n")
    url.symlink_to(tmp_path / "url")
    settings = Settings(state_dir=tmp_path / "state", instance="i", health_addr="127.0.0.1:9")
    assert agent_url(settings) == "http://127.0.0.1:9"
