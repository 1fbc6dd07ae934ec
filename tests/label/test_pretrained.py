"""``make label`` on a transfer run reads the frozen backbone's embeddings from the training cache.

A tiny transfer run starts from the weights the shared fixture's from-scratch run saved (a "pretrained"
backbone, as ``train.weights=<file>``), trains only its frozen phase on the embedding cache, and ``make label``
then finds every train and validation vector already cached under the key the frozen phase wrote."""

from __future__ import annotations

import json
import shutil

import pandas as pd
import pytest

from data.core.contracts import RUN_FILES
from data.core.errors import ConfigError
from label.options import LabelOptions
from label.stage import find_issues
from train.errors import WeightsUnavailable

pytestmark = pytest.mark.slow


def test_a_transfer_run_is_labelled_on_its_pretrained_embeddings_from_the_training_cache(labelled, tmp_path):
    from train.options import TrainOptions
    from train.train import train

    cache = labelled.root / "cache" / "embeddings"
    weights = tmp_path / "pretrained.weights.h5"  # a copy: removed at the end
    shutil.copy(labelled.run_dir / RUN_FILES["backbone_weights"], weights)
    options = TrainOptions(
        backbone="tiny",
        weights=str(weights),
        recipe="transfer",
        image_size=32,
        batch_size=16,
        epochs=3,
        fine_tune_epochs=0,
        embedding_cache=True,
        cache_dir=str(cache),
    )
    manifest = tmp_path / "manifest.parquet"
    rows = pd.read_parquet(labelled.manifest)
    rows[~rows["key"].isin(["brokenfile", "gonefile", "rarephoto"])].to_parquet(manifest, index=False)
    run = train(manifest, tmp_path / "runs", options, images_dir=labelled.images, run_id="transfer")
    frozen = json.loads((run.run_dir / "metrics.json").read_text())["phases"]["frozen"]
    assert frozen["mode"] == "embedding_cache"

    version = find_issues(
        run.run_dir,
        labelled.manifest,
        labelled.images,
        tmp_path / "labels" / "t1",
        LabelOptions(cache_dir=str(cache), workers=2, min_side=16),
    )
    embedding = version.summary["embedding"]
    assert embedding["source"] == "pretrained" and embedding["backbone"] == "tiny"
    assert embedding["cache"] == frozen["cache_dir"]  # the very folder the frozen phase filled
    split = pd.read_csv(run.run_dir / "split.csv")
    trained = split["split"].isin(["train", "validation"]).sum()
    assert embedding["cache_hits"] >= trained  # every train and validation vector came from the training pass
    assert embedding["computed"] == embedding["images"] - embedding["cache_hits"] > 0  # test split and later files
    table = pd.read_parquet(version.out_dir / "issues.parquet")
    assert table["cross_class"].sum() == 3 and len(table) == version.summary["images"]

    # penultimate features on request; pretrained refused for a from-scratch run, before any image is read
    model = find_issues(
        run.run_dir,
        labelled.manifest,
        labelled.images,
        tmp_path / "labels" / "t2",
        LabelOptions(cache_dir=str(cache), workers=2, min_side=16, embeddings="model"),
    )
    assert model.summary["embedding"]["source"] == "model"
    with pytest.raises(ConfigError, match="trained from scratch"):
        find_issues(
            labelled.run_dir,
            labelled.manifest,
            labelled.images,
            tmp_path / "labels" / "t3",
            LabelOptions(cache_dir=str(cache), embeddings="pretrained"),
        )
    assert not (tmp_path / "labels" / "t3").exists()

    weights.unlink()  # the run's pretrained weights are gone: one clear error, and what to do instead
    with pytest.raises(WeightsUnavailable, match="label.embeddings=model"):
        find_issues(
            run.run_dir,
            labelled.manifest,
            labelled.images,
            tmp_path / "labels" / "t4",
            LabelOptions(cache_dir=str(cache), workers=2, min_side=16),
        )
    assert not (tmp_path / "labels" / "t4").exists()
