"""``make label`` and ``make apply-labels`` on inputs they cannot use: each ends in one ``error:`` line that
names the input (exit 2, no traceback), and the whole ``paths.root`` (the manifest, the run, an earlier
data version) is left byte for byte as it was."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pandas as pd
import pytest

from data.core.contracts import ISSUES
from tests.helpers.bad_input import one_clear_line, run_stage, snapshot

pytestmark = pytest.mark.slow

VERSION = "v1"


def _manifest(root: Path) -> Path:
    return root / "processed" / "v1" / "images" / "manifest.parquet"


# make label: each case breaks one input of a good root and returns (arguments, words the error must hold).
def _run_without_model(root: Path) -> tuple[list[str], list[object]]:
    broken = root / "runs" / "broken"
    broken.mkdir()
    (broken / "split.csv").write_bytes(
        (root / "runs" / (root / "runs" / "latest").read_text().strip() / "split.csv").read_bytes()
    )
    return ["--run", "broken"], [broken, "model.keras"]


def _manifest_without_status(root: Path) -> tuple[list[str], list[object]]:
    pd.read_parquet(_manifest(root)).drop(columns="status").to_parquet(_manifest(root), index=False)
    return [], [_manifest(root), "status"]


def _manifest_not_parquet(root: Path) -> tuple[list[str], list[object]]:
    _manifest(root).write_bytes(b"key,label\nnot,parquet\n")
    return [], [_manifest(root), "not a readable Parquet file"]


def _images_all_gone(root: Path) -> tuple[list[str], list[object]]:
    for image in _manifest(root).parent.glob("*/*.jpg"):
        image.unlink()
    return [], [_manifest(root), "no stored image", "missing_file"]


def _version_holds_a_data_version(root: Path) -> tuple[list[str], list[object]]:
    applied = root / "processed" / "v1" / "labels" / VERSION / "applied"
    applied.mkdir(parents=True)
    (applied / "manifest.parquet").write_bytes(_manifest(root).read_bytes())
    return ["--version", VERSION], [applied.parent, "already holds a data version"]


def _version_name_outside(root: Path) -> tuple[list[str], list[object]]:
    return ["--version", "../elsewhere"], ["'../elsewhere'"]


LABEL_CASES = {
    "run-without-model": _run_without_model,
    "manifest-without-status": _manifest_without_status,
    "manifest-not-parquet": _manifest_not_parquet,
    "images-all-missing": _images_all_gone,
    "version-holds-data-version": _version_holds_a_data_version,
    "version-name-outside": _version_name_outside,
}


@pytest.mark.parametrize("case", list(LABEL_CASES))
def test_label_refuses_and_changes_nothing(case, tiny_run, tmp_path):
    root = tiny_run.copy(tmp_path / "root")
    args, words = LABEL_CASES[case](root)
    before = snapshot(root)
    proc = run_stage("label", "--set", f"paths.root={root}", "--set", "label.workers=1", *args)
    one_clear_line(proc, *words)
    assert snapshot(root) == before


def test_label_warns_when_the_run_knows_other_classes(tiny_run, tmp_path):
    root = tiny_run.copy(tmp_path / "root")
    run_dir = root / "runs" / (root / "runs" / "latest").read_text().strip()
    classes = json.loads((run_dir / "classes.json").read_text())
    (run_dir / "classes.json").write_text(json.dumps([*classes[:-1], "Martian"]), encoding="utf-8")
    proc = run_stage("label", "--set", f"paths.root={root}", "--set", "label.workers=1", "--version", "v9")
    assert proc.returncode == 0 and "Traceback" not in proc.stderr, proc.stderr[-2000:]
    warning = next((line for line in proc.stderr.splitlines() if "other classes" in line), "")
    assert "WARNING" in warning and "only in the run: Martian" in warning, proc.stderr[-2000:]
    assert f"only in the manifest: {classes[-1]}" in warning


def test_label_leaves_out_a_path_outside_the_images_and_a_bomb(tiny_run, tmp_path):
    """A manifest path like ../../etc/hostname is never read; a 20000x20000 PNG is never decoded."""
    from tests.core.test_bad_input_train import _bomb_png

    root = tiny_run.copy(tmp_path / "root")
    rows = pd.read_parquet(_manifest(root))
    stored = rows.index[rows["status"] == "ok"]
    rows.loc[stored[0], "path"] = "../../../../../../etc/hostname"
    _bomb_png(_manifest(root).parent / rows.loc[stored[1], "path"])
    rows.to_parquet(_manifest(root), index=False)
    proc = run_stage("label", "--set", f"paths.root={root}", "--set", "label.workers=1", "--version", "v9")
    assert proc.returncode == 0 and "Traceback" not in proc.stderr, proc.stderr[-2000:]
    left = pd.read_csv(root / "processed" / "v1" / "labels" / "v9" / "left_out.csv").set_index("key")
    assert left.at[rows.loc[stored[0], "key"], "reason"] == "outside_images_folder"
    assert left.at[rows.loc[stored[1], "key"], "reason"] == "too_many_pixels"


def _label_version(root: Path) -> Path:
    """A label version as make label writes it (issues.parquet, summary.json, latest), one issue per class."""
    frame = pd.read_parquet(_manifest(root)).query("status == 'ok'").reset_index(drop=True)
    table = pd.DataFrame({column: [""] * len(frame) for column in ISSUES.columns})
    table = table.assign(key=frame["key"], path=frame["path"], label=frame["label"], split="train", action="keep")
    numbers = ("suggested_prob", "given_prob", "quality_score", "knn_agreement", "oof_given_prob")
    table = table.assign(suggested_label=frame["label"], **dict.fromkeys(numbers, 0.5), label_issue=False)
    folder = root / "processed" / "v1" / "labels" / VERSION
    folder.mkdir(parents=True)
    table.to_parquet(folder / ISSUES.file_name, index=False)
    classes = sorted(frame["label"].unique())
    (folder / "summary.json").write_text(json.dumps({"version": VERSION, "classes": classes}), encoding="utf-8")
    (folder.parent / "latest").write_text(VERSION + "\n", encoding="utf-8")
    return folder


def _decide(path: Path, decisions: dict, **extra: object) -> Path:
    path.write_text(json.dumps({"label_version": VERSION, "decisions": decisions, **extra}), encoding="utf-8")
    return path


@pytest.fixture(scope="session")
def applied_root(tiny_run, tmp_path_factory) -> tuple[Path, str, str]:
    """A root with a label version that an earlier apply-labels already made a data version of; a key it
    lists and another class for it."""
    from label.apply import apply_labels
    from label.options import LabelOptions

    root = tiny_run.copy(tmp_path_factory.mktemp("bad-input-labels") / "root")
    folder = _label_version(root)
    key, label = pd.read_parquet(folder / ISSUES.file_name)[["key", "label"]].iloc[0]
    other = next(c for c in json.loads((folder / "summary.json").read_text())["classes"] if c != label)
    good = _decide(root.parent / "earlier.json", {key: {"action": "relabel", "label": other}})
    apply_labels(folder, _manifest(root), good, LabelOptions())
    return root, key, other


@pytest.fixture
def version(applied_root, tmp_path) -> tuple[Path, Path, str]:
    root = Path(shutil.copytree(applied_root[0], tmp_path / "root"))
    return root, root / "processed" / "v1" / "labels" / VERSION, applied_root[1]


@pytest.mark.parametrize("bom", [False, True], ids=["utf-8", "utf-8-with-bom"])
def test_apply_labels_applies_a_good_decisions_file(version, applied_root, tmp_path, bom):
    """The version the cases break is a good one: its decisions apply (so each refusal is the case's doing);
    a byte-order mark, as some editors save, is read."""
    root, folder, key = version
    decided = _decide(tmp_path / "good.json", {key: {"action": "drop"}})
    if bom:
        decided.write_bytes(b"\xef\xbb\xbf" + decided.read_bytes())
    proc = run_stage("label.apply", "--set", f"paths.root={root}", "--decisions", decided)
    assert proc.returncode == 0, proc.stderr[-2000:]
    applied = pd.read_parquet(folder / "applied" / "manifest.parquet").set_index("key")
    assert applied.at[key, "status"] == "dropped" and applied["label_version"].eq(VERSION).all()
    changes = pd.read_csv(folder / "applied" / "changes.csv")
    assert changes[["key", "action"]].values.tolist() == [[key, "drop"]]


# make apply-labels: (root, version folder, a key it lists, where a decisions file goes) -> (arguments, words).
def _not_json(root, folder, key, d):
    d.write_text('{"decisions": {', encoding="utf-8")
    return ["--decisions", d], [d, "not valid JSON"]


def _not_an_object(root, folder, key, d):
    d.write_text("[1, 2]", encoding="utf-8")
    return ["--decisions", d], [d, '{"decisions"']


def _unknown_key(root, folder, key, d):
    return ["--decisions", _decide(d, {key: {"action": "drop"}, "nokey": {"action": "drop"}})], [d, "'nokey'"]


def _unknown_label(root, folder, key, d):
    return ["--decisions", _decide(d, {key: {"action": "relabel", "label": "Martian"}})], [d, "'Martian'"]


def _unknown_action(root, folder, key, d):
    return ["--decisions", _decide(d, {key: {"action": "burn"}})], [d, "unknown action(s)", "'burn'"]


def _other_version(root, folder, key, d):
    decided = _decide(d, {key: {"action": "drop"}}, label_version="v0")
    return ["--decisions", decided], [d, "another label version", "v0"]


def _missing_file(root, folder, key, d):
    return ["--decisions", d], [d, "does not exist"]


def _a_folder(root, folder, key, d):
    d.mkdir()
    return ["--decisions", d], [d, "is a folder"]


def _key_gone_from_manifest(root, folder, key, d):
    manifest = _manifest(root)
    pd.read_parquet(manifest).query("key != @key").to_parquet(manifest, index=False)
    return ["--decisions", _decide(d, {key: {"action": "drop"}})], [key, "not in the manifest any more"]


def _issues_not_parquet(root, folder, key, d):
    (folder / ISSUES.file_name).write_bytes(b"PAR1 broken")
    return ["--decisions", _decide(d, {key: {"action": "drop"}})], [folder / ISSUES.file_name, "Parquet"]


def _issues_without_columns(root, folder, key, d):
    issues = folder / ISSUES.file_name
    pd.read_parquet(issues).drop(columns="suggested_label").to_parquet(issues, index=False)
    return ["--decisions", _decide(d, {key: {"action": "drop"}})], [issues, "suggested_label"]


def _summary_missing(root, folder, key, d):
    (folder / "summary.json").unlink()
    return ["--decisions", _decide(d, {key: {"action": "drop"}})], [folder / "summary.json", "does not exist"]


def _nothing_to_apply(root, folder, key, d):
    return [], ["nothing to apply", "auto_threshold"]


def _threshold_out_of_range(root, folder, key, d):
    return ["--set", "label.auto_threshold=1.5"], ["label.auto_threshold = 1.5"]


def _same_key_twice(root, folder, key, d):
    d.write_text(
        f'{{"label_version": "{VERSION}", "decisions": {{"{key}": {{"action": "drop"}}, '
        f'"{key}": {{"action": "keep"}}}}}}',
        encoding="utf-8",
    )
    return ["--decisions", d], [d, "same key more than once", repr(key)]


def _no_decisions(root, folder, key, d):
    return ["--decisions", _decide(d, {})], [d, "holds no decisions"]


def _only_keeps(root, folder, key, d):
    return ["--decisions", _decide(d, {key: {"action": "keep"}})], [folder / "applied", "change no image"]


def _deeply_nested(root, folder, key, d):
    d.write_text('{"decisions": ' + "[" * 100_000 + "]" * 100_000 + "}", encoding="utf-8")
    return ["--decisions", d], [d, "not valid JSON"]


APPLY_CASES = {
    "same-key-twice": _same_key_twice,
    "no-decisions": _no_decisions,
    "only-keeps-over-an-earlier-version": _only_keeps,
    "deeply-nested": _deeply_nested,
    "decisions-not-json": _not_json,
    "decisions-not-an-object": _not_an_object,
    "unknown-key": _unknown_key,
    "unknown-label": _unknown_label,
    "unknown-action": _unknown_action,
    "another-version": _other_version,
    "decisions-missing": _missing_file,
    "decisions-a-folder": _a_folder,
    "key-gone-from-manifest": _key_gone_from_manifest,
    "issues-not-parquet": _issues_not_parquet,
    "issues-without-columns": _issues_without_columns,
    "summary-missing": _summary_missing,
    "nothing-to-apply": _nothing_to_apply,
    "threshold-out-of-range": _threshold_out_of_range,
}


@pytest.mark.parametrize("case", list(APPLY_CASES))
def test_apply_labels_refuses_and_keeps_the_earlier_data_version(case, version, tmp_path):
    root, folder, key = version
    args, words = APPLY_CASES[case](root, folder, key, tmp_path / "decisions.json")
    before = snapshot(root, tmp_path / "decisions.json")
    proc = run_stage("label.apply", "--set", f"paths.root={root}", *args)
    one_clear_line(proc, *words)
    assert snapshot(root, tmp_path / "decisions.json") == before  # applied/ of the earlier run included
