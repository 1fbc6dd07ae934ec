"""Training end to end with a tiny real model on generated images: run folder, TensorBoard, evaluation,
resume from a checkpoint, the embedding cache and the original (uncached) recipe."""

from __future__ import annotations

import dataclasses
import json

import keras
import numpy as np
import pandas as pd
import pytest
import tensorflow as tf

from data.core.config import load_config
from develop.synthetic import draw_product_image, encode_jpeg
from tests.helpers.train_data import make_download_output
from train.backbones import build_backbone
from train.dataset import ImageDataSet
from train.embeddings import EmbeddingCache, embed_files
from train.evaluate import EvaluateOptions, evaluate
from train.options import TrainOptions
from train.train import train


@pytest.fixture(scope="module")
def manifest(tmp_path_factory):
    return make_download_output(tmp_path_factory.mktemp("processed"), per_class=8, size=40)


@pytest.fixture
def options(tmp_path):
    return TrainOptions(
        backbone="tiny",
        weights="none",
        image_size=32,
        batch_size=16,
        epochs=3,
        fine_tune_epochs=1,
        fine_tune_layers=10,
        learning_rate=1e-2,
        fine_tune_learning_rate=1e-3,
        patience=10,
        cache_dir=str(tmp_path / "cache"),
    )


def _event_tags(folder) -> set[str]:
    tags = set()
    for path in folder.rglob("events.out.tfevents.*"):
        for event in tf.compat.v1.train.summary_iterator(str(path)):
            tags.update(value.tag for value in event.summary.value)
    return tags


def test_train_writes_the_run_folder_and_evaluate_scores_the_test_split(manifest, options, tmp_path):
    runs = tmp_path / "runs"
    result = train(manifest, runs, options, config=load_config(overrides=["train.backbone=tiny"]))
    run = result.run_dir
    for name in ("config.resolved.json", "options.json", "classes.json", "split.csv", "model.keras", "metrics.json"):
        assert (run / name).is_file(), name
    assert (runs / "latest").read_text().strip() == run.name and run.name.endswith("-tiny")
    assert json.loads((run / "classes.json").read_text()) == sorted(json.loads((run / "classes.json").read_text()))
    saved = pd.read_csv(run / "split.csv").set_index("key")["split"].to_dict()
    expected = ImageDataSet.from_manifest(manifest, seed=options.seed).frame.set_index("key")["split"].to_dict()
    assert saved == expected

    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["phases"]["frozen"]["mode"] == "embedding_cache"
    assert metrics["phases"]["frozen"]["epochs"] == 3 and metrics["phases"]["fine_tune"]["epochs"] == 1
    history = metrics["history"]
    assert [(r["phase"], r["epoch"]) for r in history] == [
        ("frozen", 1),
        ("frozen", 2),
        ("frozen", 3),
        ("fine_tune", 4),
    ]
    assert history[2]["loss"] < history[0]["loss"]  # the head learns on the cached embeddings
    assert 0.0 <= metrics["validation"]["accuracy"] <= 1.0 and metrics["validation"]["samples"] == 7

    tags = _event_tags(run / "logs")
    for tag in (
        "epoch_loss",
        "epoch_accuracy",
        "epoch_top3_accuracy",
        "epoch_macro_f1",
        "epoch_learning_rate",
        "confusion_matrix",
        "_hparams_/session_start_info",
        "final/macro_f1",
    ):
        assert tag in tags, tag

    report = evaluate(run, manifest.parent, EvaluateOptions(gallery_size=4))
    out = run / "evaluation"
    for name in (
        "metrics.json",
        "per_class.csv",
        "confusion_matrix.csv",
        "confusion_matrix.png",
        "confused_pairs.csv",
        "predictions.csv",
        "gallery.png",
    ):
        assert (out / name).is_file(), name
    predictions = pd.read_csv(out / "predictions.csv")
    assert set(predictions["key"]) == {k for k, s in saved.items() if s == "test"}
    assert report["accuracy"] == pytest.approx((predictions["label"] == predictions["predicted"]).mean(), abs=1e-4)
    assert pd.read_csv(out / "confusion_matrix.csv", index_col=0).to_numpy().sum() == len(predictions) == 7
    assert "confusion_matrix" in _event_tags(run / "logs" / "test")


class Interrupted(Exception):
    """Stands for a crash or Ctrl-C in the middle of training."""


class StopAfter(keras.callbacks.Callback):
    def __init__(self, epoch: int):
        super().__init__()
        self.epoch = epoch

    def on_epoch_end(self, epoch, logs=None):
        if epoch + 1 == self.epoch:
            raise Interrupted()


class EpochsRun(keras.callbacks.Callback):
    def __init__(self):
        super().__init__()
        self.epochs: list[int] = []

    def on_epoch_begin(self, epoch, logs=None):
        self.epochs.append(epoch + 1)


def test_resume_continues_from_the_checkpoint(manifest, options, tmp_path):
    options = dataclasses.replace(options, epochs=2, fine_tune_epochs=3)
    runs = tmp_path / "runs"
    with pytest.raises(Interrupted):
        train(manifest, runs, options, run_id="interrupted", callbacks=[StopAfter(3)])  # during fine-tuning
    run = runs / "interrupted"
    assert (run / "checkpoints" / "fine_tune_backup").is_dir() and not (run / "model.keras").exists()

    seen = EpochsRun()
    result = train(manifest, runs, options, resume=run, callbacks=[seen])
    assert seen.epochs == [4, 5]  # neither the frozen phase nor fine-tuning epoch 3 ran again
    phases = [(r["phase"], r["epoch"]) for r in result.metrics["history"]]
    assert phases == [("frozen", 1), ("frozen", 2), ("fine_tune", 3), ("fine_tune", 4), ("fine_tune", 5)]
    assert (run / "model.keras").is_file() and not (run / "checkpoints" / "fine_tune_backup").exists()
    assert (runs / "latest").read_text().strip() == "interrupted"


def test_original_recipe_without_cache_and_deep_head(manifest, options, tmp_path):
    options = dataclasses.replace(options, embedding_cache=False, head="deep", epochs=1, fine_tune_epochs=0)
    result = train(manifest, tmp_path / "runs", options)
    assert result.metrics["phases"]["frozen"]["mode"] == "images"
    assert list(result.metrics["phases"]) == ["frozen"]
    assert not (tmp_path / "cache").exists()
    model = keras.models.load_model(result.run_dir / "model.keras")
    assert model.get_layer("head").get_layer("head_dense_512") is not None


def test_embedding_cache_hits_and_invalidation(manifest, tmp_path):
    data = ImageDataSet.from_manifest(manifest)
    files = data.files("train")[:12]
    keras.utils.set_random_seed(0)
    backbone = build_backbone("tiny", 32, None)
    cache = EmbeddingCache(tmp_path, {"backbone": "tiny", "image_size": 32, "weights": "w1"})
    first, stats = embed_files(backbone, files, cache, 32, 8)
    assert stats == {"images": 12, "cache_hits": 0, "computed": 12}
    direct = backbone.predict(data.tf_dataset("train", 32, 8, with_labels=False), verbose=0)[:12]
    np.testing.assert_allclose(first, direct, rtol=1e-5, atol=1e-6)

    again, stats = embed_files(backbone, files, cache, 32, 8)
    assert stats["cache_hits"] == 12 and stats["computed"] == 0
    np.testing.assert_array_equal(again, first)

    changed = tmp_path / "changed.jpg"  # another picture under a known path: a miss
    changed.write_bytes(files[1].read_bytes())
    _, stats = embed_files(backbone, [files[0], changed], cache, 32, 8)
    assert stats["computed"] == 0  # same bytes, same digest: still a hit
    changed.write_bytes(encode_jpeg(draw_product_image(0, seed=12345, size=40)))
    _, stats = embed_files(backbone, [files[0], changed], cache, 32, 8)
    assert stats["computed"] == 1

    for other in (
        {"backbone": "tiny", "image_size": 48, "weights": "w1"},
        {"backbone": "resnet50", "image_size": 32, "weights": "w1"},
        {"backbone": "tiny", "image_size": 32, "weights": "w2"},
    ):
        assert EmbeddingCache(tmp_path, other).dir != cache.dir


def test_fine_tuning_that_does_not_help_is_discarded(manifest, options, tmp_path):
    # a learning rate this high wrecks the backbone: the final model must be the frozen phase's best
    options = dataclasses.replace(options, epochs=2, fine_tune_epochs=1, fine_tune_learning_rate=50.0)
    metrics = train(manifest, tmp_path / "runs", options).metrics
    assert metrics["phases"]["fine_tune"]["improved"] is False
    assert metrics["validation"]["loss"] == pytest.approx(metrics["phases"]["frozen"]["best"]["val_loss"], abs=2e-3)
