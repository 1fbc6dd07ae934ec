"""``make download-images`` on input lists it cannot use: one ``error:`` line naming the input (exit 2, no
traceback), and no output folder left behind (the input is read before the folder's lock is taken)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.helpers.bad_input import one_clear_line, run_stage, snapshot

pytestmark = pytest.mark.slow


# Each case writes one input list; returns (the file, words the error must hold besides its name).
def _empty_csv(folder: Path) -> tuple[Path, list[str]]:
    path = folder / "catalogue.csv"
    path.write_bytes(b"")
    return path, ["empty", "make extract"]


def _header_only_csv(folder: Path) -> tuple[Path, list[str]]:
    path = folder / "catalogue.csv"
    path.write_text("key,url\n", encoding="utf-8")  # no label column
    return path, ["label"]


def _binary_csv(folder: Path) -> tuple[Path, list[str]]:
    path = folder / "catalogue.csv"
    path.write_bytes(b"\xff\xfe\x00\x81 not text \x00" * 50)
    return path, []


CASES = {"empty-csv": _empty_csv, "header-only-csv": _header_only_csv, "binary-csv": _binary_csv}


@pytest.mark.parametrize("case", list(CASES))
def test_download_refuses_an_unusable_input_and_writes_nothing(case, tmp_path):
    inputs = tmp_path / "inputs"
    inputs.mkdir()
    source, words = CASES[case](inputs)
    root = tmp_path / "root"
    proc = run_stage("data.download", "--set", f"paths.root={root}", "--input", source, "--no-progress")
    one_clear_line(proc, source, *words)
    assert snapshot(root) == {}, "a refused download left a folder behind"
