"""``make eda`` and ``make visualise`` on inputs they cannot use: one ``error:`` line naming it (exit 2, no
traceback), and an earlier report, the inputs and any folder in the way left exactly as they were."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pandas as pd
import pytest

from tests.helpers.bad_input import one_clear_line, run_stage, snapshot

pytestmark = pytest.mark.slow


def _processed(root: Path) -> Path:
    return root / "processed" / "v1"


# make eda: each case breaks one input of a copy of the root; returns (arguments, words the error must hold).
def _report_not_json(root: Path) -> tuple[list[object], list[object]]:
    (_processed(root) / "extract_report.json").write_text('{"rows_read": ', encoding="utf-8")
    return [], [_processed(root) / "extract_report.json", "not valid JSON"]


def _catalogue_not_parquet(root: Path) -> tuple[list[object], list[object]]:
    (_processed(root) / "catalogue.parquet").write_bytes(b"key,url,label\n")
    return [], [_processed(root) / "catalogue.parquet", "not a readable Parquet file"]


def _catalogue_without(column: str):
    def prepare(root: Path) -> tuple[list[object], list[object]]:
        catalogue = _processed(root) / "catalogue.parquet"
        pd.read_parquet(catalogue).drop(columns=column).to_parquet(catalogue, index=False)
        return [], [catalogue, column]

    return prepare


def _manifest_not_parquet(root: Path) -> tuple[list[object], list[object]]:
    manifest = _processed(root) / "images" / "manifest.parquet"
    manifest.parent.mkdir(parents=True)
    manifest.write_bytes(b"PAR1 truncated")
    return [], [manifest, "make download-images"]


def _catalogue_without_rows(root: Path) -> tuple[list[object], list[object]]:
    catalogue = _processed(root) / "catalogue.parquet"
    pd.read_parquet(catalogue).head(0).to_parquet(catalogue, index=False)
    return [], [catalogue, "has no rows"]


def _report_counts_not_numbers(root: Path) -> tuple[list[object], list[object]]:
    report = _processed(root) / "extract_report.json"
    doc = json.loads(report.read_text(encoding="utf-8"))
    report.write_text(json.dumps({**doc, "rows_read": float("nan")}), encoding="utf-8")  # json writes NaN
    return [], [report, "rows_read = nan", "not whole numbers"]


def _manifest_is_a_folder(root: Path) -> tuple[list[object], list[object]]:
    manifest = _processed(root) / "images" / "manifest.parquet"
    manifest.mkdir(parents=True)
    return [], [manifest, "not a file"]


def _out_is_a_file(root: Path) -> tuple[list[object], list[object]]:
    (root / "notes.txt").write_text("mine", encoding="utf-8")
    return ["--out", root / "notes.txt"], [root / "notes.txt", "not a report folder"]


def _out_holds_other_files(root: Path) -> tuple[list[object], list[object]]:
    (root / "mine").mkdir()
    (root / "mine" / "photo.jpg").write_bytes(b"\xff\xd8 someone's photo")
    return ["--out", root / "mine"], [root / "mine", "not a report folder"]


def _out_below_a_file(root: Path) -> tuple[list[object], list[object]]:
    (root / "notes.txt").write_text("mine", encoding="utf-8")
    return ["--out", root / "notes.txt" / "eda"], [root / "notes.txt", "is a file"]


def _mapping_not_text(root: Path) -> tuple[list[object], list[object]]:
    (root / "mapping.csv").write_bytes(b"\xff\xfe\x00 binary")
    return ["--set", f"paths.label_mapping={root / 'mapping.csv'}"], [root / "mapping.csv"]


EDA_CASES = {
    "report-not-json": _report_not_json,
    "catalogue-not-parquet": _catalogue_not_parquet,
    "catalogue-without-label": _catalogue_without("label"),
    "catalogue-without-main-category": _catalogue_without("main_category"),
    "manifest-not-parquet": _manifest_not_parquet,
    "manifest-is-a-folder": _manifest_is_a_folder,
    "catalogue-without-rows": _catalogue_without_rows,
    "report-counts-not-numbers": _report_counts_not_numbers,
    "out-is-a-file": _out_is_a_file,
    "out-holds-other-files": _out_holds_other_files,
    "out-below-a-file": _out_below_a_file,
    "mapping-not-text": _mapping_not_text,
}
NOT_YET: dict[str, str] = {}  # cases whose fix is still missing (none now): xfail(strict) until fixed


def _cases(cases: dict, not_yet: dict) -> list:
    return [
        pytest.param(case, marks=[pytest.mark.xfail(strict=True, reason=not_yet[case])] if case in not_yet else [])
        for case in cases
    ]


@pytest.mark.parametrize("case", _cases(EDA_CASES, NOT_YET))
def test_eda_refuses_and_keeps_the_earlier_report(case, extracted, tmp_path):
    root = Path(shutil.copytree(extracted, tmp_path / "root"))
    args, words = EDA_CASES[case](root)
    before = snapshot(root)  # reports/eda/ holds an earlier report
    proc = run_stage("visualise.eda", "--set", f"paths.root={root}", *args)
    one_clear_line(proc, *words)
    assert snapshot(root) == before


# make visualise: the same, on a copy of an evaluated run whose earlier report is in reports/<run id>/.
def _run_dir(root: Path) -> Path:
    return root / "runs" / (root / "runs" / "latest").read_text().strip()


def _not_evaluated(root: Path) -> tuple[list[object], list[object]]:
    shutil.rmtree(_run_dir(root) / "evaluation")
    return [], [_run_dir(root) / "evaluation" / "metrics.json", "make evaluate"]


def _predictions_not_text(root: Path) -> tuple[list[object], list[object]]:
    predictions = _run_dir(root) / "evaluation" / "predictions.csv"
    predictions.write_bytes(b"\xff\xfe\x00\x01")
    return [], [predictions, "not a readable CSV"]


def _predictions_not_numbers(root: Path) -> tuple[list[object], list[object]]:
    predictions = _run_dir(root) / "evaluation" / "predictions.csv"
    frame = pd.read_csv(predictions, dtype=str)
    frame.assign(confidence="high").to_csv(predictions, index=False)
    return [], [predictions, "confidence"]


def _classes_not_a_list(root: Path) -> tuple[list[object], list[object]]:
    (_run_dir(root) / "classes.json").write_text('{"cat": 0}', encoding="utf-8")
    return [], [_run_dir(root) / "classes.json", "list of class names"]


def _split_without_columns(root: Path) -> tuple[list[object], list[object]]:
    split = _run_dir(root) / "split.csv"
    pd.read_csv(split, dtype=str).drop(columns="split").to_csv(split, index=False)
    return [], [split, "split"]


def _no_such_run(root: Path) -> tuple[list[object], list[object]]:
    return ["--run", "20000101-000000-none"], ["'20000101-000000-none'", "no run folder"]


def _report_out_is_a_file(root: Path) -> tuple[list[object], list[object]]:
    (root / "notes.txt").write_text("mine", encoding="utf-8")
    return ["--out", root / "notes.txt"], [root / "notes.txt", "not a report folder"]


def _report_out_below_a_file(root: Path) -> tuple[list[object], list[object]]:
    (root / "notes.txt").write_text("mine", encoding="utf-8")
    return ["--out", root / "notes.txt" / "report"], [root / "notes.txt", "is a file"]


REPORT_CASES = {
    "not-evaluated": _not_evaluated,
    "predictions-not-text": _predictions_not_text,
    "predictions-not-numbers": _predictions_not_numbers,
    "classes-not-a-list": _classes_not_a_list,
    "split-without-columns": _split_without_columns,
    "no-such-run": _no_such_run,
    "out-is-a-file": _report_out_is_a_file,
    "out-below-a-file": _report_out_below_a_file,
}


@pytest.mark.parametrize("case", list(REPORT_CASES))
def test_visualise_refuses_and_keeps_the_earlier_report(case, tiny_run, tmp_path):
    root = tiny_run.copy(tmp_path / "root")
    earlier = root / "reports" / tiny_run.run_id
    earlier.mkdir(parents=True)
    (earlier / "report.json").write_text(json.dumps({"run": {"run_id": tiny_run.run_id}}), encoding="utf-8")
    (earlier / "report.html").write_text("<html>the earlier report</html>", encoding="utf-8")
    args, words = REPORT_CASES[case](root)
    before = snapshot(root)
    proc = run_stage("visualise.report", "--set", f"paths.root={root}", *args)
    one_clear_line(proc, *words)
    assert snapshot(root) == before
