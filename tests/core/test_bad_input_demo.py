"""``make demo`` writes only into a folder it owns: a ``--root`` (or a ``[paths]`` folder) it may not use is
one ``error:`` line (exit 2) and nothing anywhere changes; a stage that fails stops the demo with that stage's
one line, not a second one."""

from __future__ import annotations

from pathlib import Path

import pytest

from data.core.config import REPO_ROOT
from develop.demo import OWNER_MARK
from tests.helpers.bad_input import one_clear_line, run_stage, snapshot

pytestmark = pytest.mark.slow


# Each case gets an empty folder to use; returns (arguments, words the error must hold).
def _root_holds_other_files(spare: Path) -> tuple[list[object], list[object]]:
    (spare / "demo").mkdir()
    (spare / "demo" / "thesis.tex").write_text("years of work", encoding="utf-8")
    return ["--root", spare / "demo"], [spare / "demo", "did not make"]


def _root_is_a_file(spare: Path) -> tuple[list[object], list[object]]:
    (spare / "demo").write_text("a file", encoding="utf-8")
    return ["--root", spare / "demo"], [spare / "demo", "is a file"]


def _runs_outside_the_root(spare: Path) -> tuple[list[object], list[object]]:
    return ["--root", spare / "demo", "--set", f"paths.runs={spare / 'real-runs'}"], ["paths.runs", spare / "real-runs"]


def _relative_reports(spare: Path) -> tuple[list[object], list[object]]:
    # a relative folder is where the stages run (the repository), not inside the demo's root
    return ["--root", spare / "demo", "--set", "paths.reports=reports"], ["paths.reports", REPO_ROOT / "reports"]


def _too_few_products(spare: Path) -> tuple[list[object], list[object]]:
    return ["--root", spare / "demo", "--per-class", "2"], ["--per-class"]


def _bad_setting_of_a_late_stage(spare: Path) -> tuple[list[object], list[object]]:
    return ["--root", spare / "demo", "--set", "visualise.map_method='tsne'"], ["visualise.map_method", "tsne"]


CASES = {
    "root-holds-other-files": _root_holds_other_files,
    "root-is-a-file": _root_is_a_file,
    "runs-outside-the-root": _runs_outside_the_root,
    "relative-reports": _relative_reports,
    "too-few-products": _too_few_products,
    "bad-setting-of-a-late-stage": _bad_setting_of_a_late_stage,
}


@pytest.mark.parametrize("case", list(CASES))
def test_demo_refuses_before_it_writes_anything(case, tmp_path):
    spare = tmp_path / "spare"
    spare.mkdir()
    args, words = CASES[case](spare)
    before = snapshot(spare)
    repo_reports = REPO_ROOT / "reports"
    existed = repo_reports.exists()
    proc = run_stage("develop.demo", *args)
    one_clear_line(proc, *words)
    assert "SYNTHETIC" not in proc.stdout  # it never started
    assert snapshot(spare) == before
    assert repo_reports.exists() == existed


def test_a_failing_stage_stops_the_demo_with_its_own_line(tmp_path):
    root = tmp_path / "demo"
    proc = run_stage(
        "develop.demo", "--root", root, "--per-class", "3", "--set", f"paths.label_mapping={tmp_path}/no.csv"
    )
    one_clear_line(proc, f"{tmp_path}/no.csv")  # extract's line; the demo adds no second one
    assert "demo stopped: make extract failed" in proc.stderr
    assert (root / OWNER_MARK).is_file()  # its own folder, marked: a rerun may use it
    assert sorted(p.name for p in root.iterdir()) == sorted([OWNER_MARK, "raw"])
