"""``make predict`` on files it cannot use: a refusal is one ``error:`` line naming the file (exit 2, no
traceback) and nothing written; a file it cannot read among good ones is a row of its CSV with the reason."""

from __future__ import annotations

import os

from pathlib import Path

import pandas as pd
import pytest

from tests.helpers.bad_input import one_clear_line, run_stage, snapshot

pytestmark = pytest.mark.slow


def _image(root: Path) -> Path:
    return sorted((root / "processed" / "v1" / "images").glob("*/*.jpg"))[0]


# Each case gets a copy of the root and a folder of its own and returns (arguments, words the error must hold).
def _not_an_image(root: Path, spare: Path) -> tuple[list[object], list[object]]:
    (spare / "note.jpg").write_text("a shopping list, not a photo", encoding="utf-8")
    return [spare / "note.jpg"], [spare / "note.jpg", "none of the 1 files", "not a decodable image"]


def _missing_file(root: Path, spare: Path) -> tuple[list[object], list[object]]:
    return [_image(root), spare / "gone.jpg"], [spare / "gone.jpg", "is not an image file"]


def _empty_folder(root: Path, spare: Path) -> tuple[list[object], list[object]]:
    (spare / "photos").mkdir()
    (spare / "photos" / "readme.txt").write_text("no pictures here", encoding="utf-8")
    return [spare / "photos"], [spare / "photos", "no image files found"]


def _list_missing(root: Path, spare: Path) -> tuple[list[object], list[object]]:
    return [f"@{spare / 'list.txt'}"], [spare / "list.txt", "does not exist"]


def _list_not_text(root: Path, spare: Path) -> tuple[list[object], list[object]]:
    (spare / "list.txt").write_bytes(b"\xff\xfe\x00\x01 binary")
    return [f"@{spare / 'list.txt'}"], [spare / "list.txt", "not UTF-8"]


def _out_is_a_folder(root: Path, spare: Path) -> tuple[list[object], list[object]]:
    (spare / "results").mkdir()
    return [_image(root), "--out", spare / "results"], [spare / "results", "is a folder"]


def _out_is_someone_elses_file(root: Path, spare: Path) -> tuple[list[object], list[object]]:
    (spare / "budget.csv").write_text("month,spent\njan,10\n", encoding="utf-8")
    return [_image(root), "--out", spare / "budget.csv"], [spare / "budget.csv", "not a predictions CSV"]


def _out_is_a_fifo(root: Path, spare: Path) -> tuple[list[object], list[object]]:
    """As ``--out /dev/null`` would be: the atomic rename replaced the device with a CSV file."""
    os.mkfifo(spare / "pipe")
    return [_image(root), "--out", spare / "pipe"], [spare / "pipe", "not a regular file"]


def _batch_size_zero(root: Path, spare: Path) -> tuple[list[object], list[object]]:
    return [_image(root), "--batch-size", "0"], ["--batch-size", "at least 1"]


def _top_k_zero(root: Path, spare: Path) -> tuple[list[object], list[object]]:
    return [_image(root), "--top-k", "0"], ["--top-k", "at least 1"]


def _run_without_model(root: Path, spare: Path) -> tuple[list[object], list[object]]:
    (root / "runs" / "empty").mkdir()
    return [_image(root), "--run", "empty"], [root / "runs" / "empty", "model.keras"]


def _list_of_comments_only(root: Path, spare: Path) -> tuple[list[object], list[object]]:
    (spare / "list.txt").write_text("# photos to check\n\n   # none yet\n", encoding="utf-8")
    return [f"@{spare / 'list.txt'}"], [spare / "list.txt", "no image files found"]


def _bare_at(root: Path, spare: Path) -> tuple[list[object], list[object]]:
    return ["@"], ["@list", "@photos.txt"]


CASES = {
    "bare-at": _bare_at,
    "not-an-image": _not_an_image,
    "list-of-comments-only": _list_of_comments_only,
    "missing-file": _missing_file,
    "folder-without-images": _empty_folder,
    "list-missing": _list_missing,
    "list-not-text": _list_not_text,
    "out-is-a-folder": _out_is_a_folder,
    "out-is-another-file": _out_is_someone_elses_file,
    "out-is-a-fifo": _out_is_a_fifo,
    "batch-size-zero": _batch_size_zero,
    "top-k-zero": _top_k_zero,
    "run-without-model": _run_without_model,
}


@pytest.mark.parametrize("case", list(CASES))
def test_predict_refuses_and_writes_nothing(case, tiny_run, tmp_path):
    root, spare = tiny_run.copy(tmp_path / "root"), tmp_path / "spare"
    spare.mkdir()
    args, words = CASES[case](root, spare)
    before = snapshot(root, spare)
    proc = run_stage("train.predict", "--set", f"paths.root={root}", *args)
    one_clear_line(proc, *words)
    assert snapshot(root, spare) == before


def test_a_file_it_cannot_read_is_a_row_with_the_reason(tiny_run, tmp_path):
    root = tiny_run.copy(tmp_path / "root")
    good, bad = _image(root), tmp_path / "truncated.jpg"
    bad.write_bytes(good.read_bytes()[:40])
    out = tmp_path / "predictions.csv"
    proc = run_stage("train.predict", "--set", f"paths.root={root}", good, bad, "--out", out)
    assert proc.returncode == 0 and "Traceback" not in proc.stderr, proc.stderr[-2000:]
    assert "1 images classified" in proc.stdout and "1 skipped" in proc.stdout
    rows = pd.read_csv(out, keep_default_na=False).set_index("path")
    assert rows.at[str(good), "skipped"] == "" and rows.at[str(good), "class_1"] != ""
    assert rows.at[str(bad), "skipped"].startswith("not a decodable image") and rows.at[str(bad), "class_1"] == ""


def test_a_list_skips_comments_and_expands_folders(tiny_run, tmp_path):
    root = tiny_run.copy(tmp_path / "root")
    good = _image(root)
    folder = good.parent
    listing = tmp_path / "list.txt"
    listing.write_text(f"# photos to check\n\n{good}\n  # {folder} (commented out)\n{folder}\n", encoding="utf-8-sig")
    out = tmp_path / "predictions.csv"
    proc = run_stage("train.predict", "--set", f"paths.root={root}", f"@{listing}", "--out", out)
    assert proc.returncode == 0 and "Traceback" not in proc.stderr, proc.stderr[-2000:]
    rows = pd.read_csv(out, keep_default_na=False)
    in_folder = sorted(str(p) for p in folder.glob("*.jpg"))
    assert sorted(rows["path"]) == sorted([str(good), *in_folder])  # the folder's images, no '#' row
    assert (rows["skipped"] == "").all(), rows["skipped"].tolist()
