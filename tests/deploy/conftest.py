"""One tiny model, really trained, and one real export of it, shared by the deploy tests."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest

from data.core.config import load_config
from deploy.export import ExportResult, export_run
from deploy.options import ExportOptions
from tests.deploy.support import MODEL
from tests.helpers.train_data import make_download_output, tiny_transfer_options


@dataclass(frozen=True)
class Trained:
    run_dir: Path
    images_dir: Path


@pytest.fixture(scope="session")
def trained(tmp_path_factory) -> Trained:
    from train.train import train

    work = tmp_path_factory.mktemp("deploy-train")
    manifest = make_download_output(work / "processed", per_class=6, size=40)
    options = tiny_transfer_options(work / "cache")
    result = train(manifest, work / "runs", options, config=load_config())
    return Trained(result.run_dir, manifest.parent)


@pytest.fixture(scope="session")
def exported(trained, tmp_path_factory) -> ExportResult:
    exports = tmp_path_factory.mktemp("deploy-exports")
    options = ExportOptions(model_name=MODEL, latency_runs=3)
    return export_run(trained.run_dir, trained.images_dir, exports, options, config=load_config())
