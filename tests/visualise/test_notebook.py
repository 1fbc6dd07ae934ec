"""develop/notebooks/eda.ipynb: valid, committed without outputs, and its code runs (on the shared sample)
through the same functions as ``make eda``."""

from __future__ import annotations

import contextlib
import io
import os

import nbformat

from data.core.config import REPO_ROOT

NOTEBOOK = REPO_ROOT / "develop" / "notebooks" / "eda.ipynb"


def test_the_notebook_is_stripped_and_calls_the_report_functions():
    nb = nbformat.read(NOTEBOOK, as_version=4)
    nbformat.validate(nb)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert code and all(c.outputs == [] and c.execution_count is None for c in code)
    source = "\n".join(c.source for c in code)
    assert "from visualise.eda import EdaInputs, build_eda" in source and "plots.funnel(" in source


def test_the_notebook_runs_on_the_shared_sample(sample, monkeypatch):
    nb = nbformat.read(NOTEBOOK, as_version=4)
    overrides = f"paths.processed={sample.processed} paths.reports={sample.root / 'reports'}"
    monkeypatch.setenv("PC_SET", overrides)
    monkeypatch.chdir(REPO_ROOT / "develop" / "notebooks")  # where a notebook server starts it
    namespace: dict = {"__name__": "__notebook__"}
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        for cell in (c for c in nb.cells if c.cell_type == "code"):
            exec(compile(cell.source, str(NOTEBOOK), "exec"), namespace)
    assert os.getcwd() == str(REPO_ROOT)
    doc = namespace["doc"]
    assert doc["funnel"]["adds_up"] and doc["funnel"]["stored"] > 0 and "duplicates" in doc
    assert namespace["inputs"].catalogue == sample.processed / "catalogue.parquet"
    assert "adds up: True" in printed.getvalue()
