"""Atomic writes: whole files or none, readable by others, no temporary file left behind."""

from __future__ import annotations

import stat

import pytest

import pandas as pd
import pyarrow as pa

from data.core.io import (
    atomic_write_bytes,
    atomic_write_with,
    read_json_lenient,
    replace_dir,
    staged_files,
    write_parquet,
)


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


def test_a_lock_leaves_no_file_behind_however_its_block_ends(tmp_path):
    from data.core.errors import BusyError
    from data.core.io import exclusive

    lock = tmp_path / "out" / ".lock"
    with exclusive(lock, "busy"):
        assert lock.is_file()
        with pytest.raises(BusyError, match="busy"), exclusive(lock, "busy"):
            pass  # a second holder is refused at once, and does not remove the first one's file
        assert lock.is_file()
    assert not lock.exists()
    with pytest.raises(KeyboardInterrupt), exclusive(lock, "busy"):
        raise KeyboardInterrupt
    assert not lock.exists() and lock.parent.is_dir()


def test_a_lock_removed_while_opening_is_taken_afresh(tmp_path):
    """A run that opened the lock file just as its holder removed it must not hold a file nobody else sees."""
    import fcntl

    from data.core.io import exclusive

    lock = tmp_path / ".lock"
    lock.write_text("")
    with open(lock) as stale:
        lock.unlink()  # as the holder before does when it ends
        fcntl.flock(stale, fcntl.LOCK_EX | fcntl.LOCK_NB)  # somebody still holds the removed file
        with exclusive(lock, "busy"):
            assert lock.is_file()  # a new file, locked by this block
        assert not lock.exists()


def test_a_device_or_fifo_in_the_way_is_refused_and_left_alone(tmp_path):
    """The rename would replace it: ``--out /dev/null`` once turned the machine's /dev/null into a CSV file."""
    import os

    from data.core.errors import InputError

    pipe = tmp_path / "pipe"
    os.mkfifo(pipe)
    with pytest.raises(InputError, match="not a regular file"):
        atomic_write_bytes(pipe, b"data")
    assert stat.S_ISFIFO(os.stat(pipe).st_mode) and [p.name for p in tmp_path.iterdir()] == ["pipe"]


def test_staged_files_moves_every_file_or_none(tmp_path):
    out = tmp_path / "processed"
    out.mkdir()
    (out / "a.txt").write_text("old a")
    (tmp_path / "processed" / "images").mkdir()  # another stage's folder beside them: never touched
    with pytest.raises(RuntimeError):
        with staged_files(out, ("a.txt", "b.txt")) as staging:
            (staging / "a.txt").write_text("new a")
            raise RuntimeError("the run fails before its last file")
    assert sorted(p.name for p in out.iterdir()) == ["a.txt", "images"] and (out / "a.txt").read_text() == "old a"
    with staged_files(out, ("a.txt", "b.txt")) as staging:
        (staging / "a.txt").write_text("new a")
        (staging / "b.txt").write_text("b")
    assert sorted(p.name for p in out.iterdir()) == ["a.txt", "b.txt", "images"]
    assert (out / "a.txt").read_text() == "new a"


def test_write_parquet_takes_a_frame_or_a_table_and_keeps_nullable_integers(tmp_path):
    frame = pd.DataFrame({"key": ["a", "b"], "n": pd.array([1, None], dtype="Int64")})
    write_parquet(tmp_path / "f.parquet", frame)
    write_parquet(tmp_path / "t.parquet", pa.table({"key": ["a"]}))
    back = pd.read_parquet(tmp_path / "f.parquet")
    assert str(back["n"].dtype) == "Int64" and back["n"].isna().tolist() == [False, True]
    assert pd.read_parquet(tmp_path / "t.parquet")["key"].tolist() == ["a"]
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no temporary left


@pytest.mark.parametrize("content", [None, b"", b"{not json", b"[1, 2]", b"\xff\xfe"])
def test_read_json_lenient_is_none_for_anything_but_an_object(tmp_path, content):
    path = tmp_path / "doc.json"
    if content is not None:
        path.write_bytes(content)
    assert read_json_lenient(path) is None
    path.write_text('{"a": 1}')
    assert read_json_lenient(path) == {"a": 1}
