"""Real inputs for the bad-input tests, built once per session and copied by each case that breaks one:

* ``tiny_run``: a download output (``make_download_output``) with one tiny model really trained on it and
  evaluated, under a ``paths.root`` layout (processed/v1/images, runs/<id>, runs/latest);
* ``extracted``: the demo's catalogue through the real extract, and one earlier ``make eda`` report.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

import pytest

from data.core.config import REPO_ROOT
from tests.helpers.train_data import make_download_output, tiny_transfer_options

MAPPING = REPO_ROOT / "data" / "label_mapping.csv"


@dataclass(frozen=True)
class TinyRun:
    """A ``paths.root`` with the download output and one finished, evaluated run (``runs/latest``)."""

    root: Path
    run_id: str

    def copy(self, target: Path) -> Path:
        """A copy of the root to break (the session's own stays as built)."""
        return Path(shutil.copytree(self.root, target))


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory) -> TinyRun:
    from train.evaluate import EvaluateOptions, evaluate
    from train.train import train

    root = tmp_path_factory.mktemp("bad-input-root")
    manifest = make_download_output(root / "processed" / "v1", per_class=6, size=40)
    options = tiny_transfer_options(root / "cache")
    run_dir = train(manifest, root / "runs", options).run_dir
    evaluate(run_dir, manifest.parent, EvaluateOptions(gallery_size=2))
    shutil.rmtree(run_dir / "logs", ignore_errors=True)  # TensorBoard events: nothing a case reads
    return TinyRun(root, run_dir.name)


@pytest.fixture(scope="session")
def extracted(tmp_path_factory) -> Path:
    """A ``paths.root`` with extract's outputs for the demo catalogue and an earlier EDA report."""
    from data.extract.stage import ExtractOptions, extract
    from develop.demo import write_demo_catalogue
    from visualise.eda import eda
    from visualise.inputs import EdaInputs
    from visualise.options import VisualiseOptions

    root = tmp_path_factory.mktemp("bad-input-eda")
    processed = root / "processed" / "v1"
    write_demo_catalogue(root / "raw" / "v1", "http://127.0.0.1:9", per_class=4)
    extract(ExtractOptions(raw_dir=root / "raw" / "v1", out_dir=processed, mapping=MAPPING))
    inputs = EdaInputs(
        catalogue=processed / "catalogue.parquet",
        dropped=processed / "dropped.parquet",
        extract_report=processed / "extract_report.json",
        manifest=processed / "images" / "manifest.parquet",
        images=processed / "images",
        mapping=MAPPING,
    )
    result = eda(inputs, root / "reports" / "eda", VisualiseOptions())
    assert result.html.is_file()  # the inputs are good: each case breaks exactly one thing
    return root
