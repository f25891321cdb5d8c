"""ceir_sdk.atomic: crash-safe writes that leave ordinary, shareable permissions."""

from __future__ import annotations

import os
import stat
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from ceir_sdk import atomic
from ceir_sdk.atomic import atomic_write_bytes, atomic_write_json, make_staging_dir


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture
def set_umask() -> Iterator[Callable[[int], None]]:
    previous = os.umask(0o022)
    try:
        yield os.umask
    finally:
        os.umask(previous)


def test_new_files_follow_the_umask_not_mkstemp_0600(tmp_path: Path, set_umask: Callable[[int], None]) -> None:
    set_umask(0o022)
    atomic_write_bytes(tmp_path / "weights.safetensors", b"abc")
    atomic_write_json(tmp_path / "config.json", {"a": 1})
    assert _mode(tmp_path / "weights.safetensors") == 0o644
    assert _mode(tmp_path / "config.json") == 0o644
    set_umask(0o027)
    atomic_write_bytes(tmp_path / "private.bin", b"x")
    assert _mode(tmp_path / "private.bin") == 0o640


def test_a_replaced_file_keeps_its_mode_and_nothing_is_left_behind(
    tmp_path: Path, set_umask: Callable[[int], None]
) -> None:
    set_umask(0o022)
    target = tmp_path / "manifest.json"
    target.write_text("{}")
    target.chmod(0o600)
    atomic_write_json(target, {"version": 2})
    assert _mode(target) == 0o600 and '"version": 2' in target.read_text()
    target.chmod(0o664)
    atomic_write_bytes(target, b"{}")
    assert _mode(target) == 0o664
    assert sorted(p.name for p in tmp_path.iterdir()) == ["manifest.json"]


def test_an_interrupted_write_keeps_the_old_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    target = tmp_path / "config.json"
    atomic_write_json(target, {"old": True})

    def fail(*args: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(atomic.os, "replace", fail)
    with pytest.raises(KeyboardInterrupt):
        atomic_write_json(target, {"old": False})
    monkeypatch.undo()
    assert '"old": true' in target.read_text()
    assert [p.name for p in tmp_path.iterdir()] == ["config.json"]


def test_staging_dirs_are_hidden_siblings_with_umask_permissions(
    tmp_path: Path, set_umask: Callable[[int], None]
) -> None:
    set_umask(0o022)
    first = make_staging_dir(tmp_path / "bundle")
    second = make_staging_dir(tmp_path / "bundle")
    assert first != second and first.parent == tmp_path and first.name.startswith(".bundle.partial-")
    assert _mode(first) == 0o755 and not any(first.iterdir())
