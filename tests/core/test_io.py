"""Atomic writes: whole files or none, readable by others, no temporary file left behind."""

from __future__ import annotations

import stat

import pytest

from data.core.io import atomic_write_bytes, atomic_write_with, replace_dir


def test_atomic_write_replaces_whole_file_with_shareable_mode(tmp_path):
    target = tmp_path / "sub" / "report.json"
    atomic_write_bytes(target, b"first")
    atomic_write_bytes(target, b"second")
    assert target.read_bytes() == b"second"
    assert stat.S_IMODE(target.stat().st_mode) == 0o644
    assert [p.name for p in target.parent.iterdir()] == ["report.json"]


def test_failed_writer_leaves_the_old_file_and_no_temporary(tmp_path):
    target = tmp_path / "data.parquet"
    target.write_bytes(b"old")

    def broken(path):
        path.write_bytes(b"half")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError):
        atomic_write_with(target, broken)
    assert target.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["data.parquet"]


def test_replace_dir_swaps_folders(tmp_path):
    target, new = tmp_path / "raw", tmp_path / "incoming"
    target.mkdir()
    (target / "old.csv").write_text("old")
    new.mkdir()
    (new / "new.csv").write_text("new")
    replace_dir(new, target)
    assert [p.name for p in target.iterdir()] == ["new.csv"] and not new.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["raw"]
