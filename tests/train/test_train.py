"""Training end to end with tiny real models on generated images: the from-scratch recipe learns, a saved
backbone transfers from a local weights file, the run folder, TensorBoard, resume, the time budget, the
embedding cache and the original (uncached) transfer recipe."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import keras
import numpy as np
import pandas as pd
import pytest
import tensorflow as tf

from data.core.config import load_config
from data.core.contracts import RUN_FILES
from develop.synthetic import draw_product_image, encode_jpeg
from tests.helpers.train_data import make_download_output
from train.backbones import build_backbone, weights_fingerprint
from train.dataset import ImageDataSet
from train.embeddings import EmbeddingCache, embed_files
from train.evaluate import EvaluateOptions, evaluate
from train.options import TrainOptions
from data.core.runs import run_images_dir
from train.runs import INCOMPLETE
from train.train import train

pytestmark = pytest.mark.slow

SCRATCH = TrainOptions(
    backbone="small_resnet",
    weights="none",
    image_size=32,
    batch_size=16,
    epochs=10,
    learning_rate=3e-3,
    warmup_epochs=1.0,
    patience=20,
    split=(0.6, 0.2, 0.2),
)


@pytest.fixture(scope="module")
def manifest(tmp_path_factory):
    return make_download_output(tmp_path_factory.mktemp("processed"), per_class=8, size=40)


@pytest.fixture(scope="module")
def toy(tmp_path_factory):
    """A separable toy set: 7 classes of 15 generated pictures (one hue and shape per class)."""
    return make_download_output(tmp_path_factory.mktemp("toy"), per_class=15, size=40)


@pytest.fixture(scope="module")
def scratch_run(toy, tmp_path_factory):
    runs = tmp_path_factory.mktemp("runs")
    return train(toy, runs, SCRATCH, config=load_config(overrides=["train.backbone=small_resnet"]))


@pytest.fixture
def options(tmp_path):
    return TrainOptions(
        backbone="tiny",
        weights="none",
        recipe="transfer",
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


def _event_tags(folder: Path) -> set[str]:
    tags = set()
    for path in folder.rglob("events.out.tfevents.*"):
        for event in tf.compat.v1.train.summary_iterator(str(path)):
            tags.update(value.tag for value in event.summary.value)
    return tags


def test_from_scratch_learns_a_separable_toy_set(scratch_run):
    metrics = scratch_run.metrics
    assert metrics["recipe"] == "scratch" and list(metrics["phases"]) == ["scratch"]
    history = metrics["history"]
    assert len(history) == 10 and history[-1]["loss"] < 0.7 * history[0]["loss"]
    # 7 balanced classes: a constant predictor scores 1/7 on the 21 validation images
    validation, sanity = metrics["validation"], metrics["sanity"]
    assert validation["samples"] == 21 and sanity["majority_accuracy"] == pytest.approx(1 / 7, abs=1e-3)
    assert validation["accuracy"] >= 2.5 / 7 and sanity["passed"], (validation["accuracy"], sanity)
    # the warm-up then the cosine decay: low at the start, the peak after epoch 1, low again at the end
    rates = [r["learning_rate"] for r in history]
    assert rates[0] == pytest.approx(3e-3, rel=1e-3) and rates[-1] < 0.05 * 3e-3
    assert all(a >= b for a, b in zip(rates, rates[1:]))


def test_scratch_run_folder_tensorboard_and_throughput(scratch_run):
    run = scratch_run.run_dir
    for name in ("config", "options", "classes", "split", "model", "metrics", "backbone_weights"):
        assert (run / RUN_FILES[name]).is_file(), name
    assert (run.parent / "latest").read_text().strip() == run.name and run.name.endswith("-small_resnet")
    assert not (run.parent / INCOMPLETE).exists()
    phase = scratch_run.metrics["phases"]["scratch"]
    assert all(r["images_per_second"] > 0 for r in scratch_run.metrics["history"])
    assert phase["images_per_second"] > 0 and phase["input_pipeline"]["images_per_second"] > 0
    tags = _event_tags(run / "logs")
    for tag in ("epoch_loss", "epoch_macro_f1", "epoch_learning_rate", "epoch_images_per_second", "confusion_matrix"):
        assert tag in tags, tag
    model = keras.models.load_model(run / RUN_FILES["model"])
    bn = [layer for layer in model.get_layer("backbone_small_resnet").layers[-1].layers if "bn" in layer.name]
    assert bn and not np.allclose(bn[0].moving_variance.numpy(), 1.0)  # batch norm learnt its statistics


def _folder_of_styles(root: Path, styles: dict[str, int], per_class: int) -> Path:
    """``root/<label>/<n>.jpg`` drawn with the synthetic style of each class index."""
    for label, style in styles.items():
        (root / label).mkdir(parents=True)
        for i in range(per_class):
            picture = draw_product_image(style, seed=7000 + 100 * style + i, size=40)
            (root / label / f"{i}.jpg").write_bytes(encode_jpeg(picture))
    return root


def test_a_saved_backbone_transfers_from_a_local_weights_file(scratch_run, tmp_path):
    weights = scratch_run.run_dir / RUN_FILES["backbone_weights"]
    # another set: three picture styles, labelled anew; a frozen phase on the saved backbone, no fine-tuning
    other = _folder_of_styles(tmp_path / "other", {"first": 1, "second": 3, "third": 5}, per_class=12)
    options = dataclasses.replace(
        SCRATCH,
        weights=str(weights),
        images=str(other),
        epochs=15,
        fine_tune_epochs=0,
        learning_rate=1e-2,
        cache_dir=str(tmp_path / "cache"),
        split=(0.5, 0.25, 0.25),
    )
    assert not options.from_scratch  # auto: weights given -> the transfer recipe
    result = train(None, tmp_path / "runs", options)
    metrics = result.metrics
    assert metrics["recipe"] == "transfer" and metrics["phases"]["frozen"]["mode"] == "embedding_cache"
    assert metrics["sanity"]["passed"] and metrics["validation"]["accuracy"] > metrics["sanity"]["majority_accuracy"]
    loaded = build_backbone("small_resnet", 32, str(weights))
    trained = keras.models.load_model(scratch_run.run_dir / RUN_FILES["model"]).get_layer("backbone_small_resnet")
    assert weights_fingerprint(loaded) == weights_fingerprint(trained)
    assert not (result.run_dir / RUN_FILES["backbone_weights"]).exists()  # only from-scratch runs write one
    images = run_images_dir(result.run_dir, tmp_path / "not-the-images")  # the run's train.images folder
    assert images == other and evaluate(result.run_dir, images, EvaluateOptions(gallery_size=2))["samples"] == 9


def test_transfer_run_folder_and_evaluate_scores_the_test_split(manifest, options, tmp_path):
    runs = tmp_path / "runs"
    result = train(manifest, runs, options, config=load_config(overrides=["train.backbone=tiny"]))
    run = result.run_dir
    saved = pd.read_csv(run / "split.csv").set_index("key")["split"].to_dict()
    expected = ImageDataSet.from_manifest(manifest, seed=options.seed).frame.set_index("key")["split"].to_dict()
    assert saved == expected
    metrics = json.loads((run / "metrics.json").read_text())
    frozen = metrics["phases"]["frozen"]
    assert frozen["mode"] == "embedding_cache" and frozen["head"] == "solved" and frozen["iterations"] > 0
    assert frozen["epochs"] == 1 and metrics["phases"]["fine_tune"]["epochs"] == 1
    history = metrics["history"]
    # the linear head is solved in one step (train/linear_probe.py); fine-tuning numbers its epochs on
    assert [(r["phase"], r["epoch"]) for r in history] == [("frozen", 1), ("fine_tune", 2)]
    assert {"loss", "accuracy", "val_loss", "val_accuracy"} <= set(history[0])
    assert metrics["validation"]["samples"] == 7 and "sanity" in metrics
    for tag in ("epoch_top3_accuracy", "_hparams_/session_start_info", "final/macro_f1", "confusion_matrix"):
        assert tag in _event_tags(run / "logs"), tag

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
    assert report["sanity"]["samples"] == 7 and report["skipped"] == {}
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


class FailAtStart(keras.callbacks.Callback):
    def on_train_begin(self, logs=None):
        raise Interrupted()


class EpochsRun(keras.callbacks.Callback):
    def __init__(self):
        super().__init__()
        self.epochs: list[int] = []

    def on_epoch_begin(self, epoch, logs=None):
        self.epochs.append(epoch + 1)


def test_resume_continues_from_the_checkpoint(manifest, options, tmp_path):
    # the original head trains by epochs on the cache (the linear one is solved in one step)
    options = dataclasses.replace(options, head="original", epochs=2, fine_tune_epochs=3)
    runs = tmp_path / "runs"
    with pytest.raises(Interrupted):
        train(manifest, runs, options, run_id="interrupted", callbacks=[StopAfter(3)])  # during fine-tuning
    partial = runs / INCOMPLETE / "interrupted"
    assert (partial / "checkpoints" / "fine_tune_backup").is_dir() and not (partial / "model.keras").exists()
    assert not (runs / "interrupted").exists() and not (runs / "latest").exists()  # no run folder without a model

    seen = EpochsRun()
    result = train(manifest, runs, options, resume=partial, callbacks=[seen])
    assert seen.epochs == [4, 5]  # neither the frozen phase nor fine-tuning epoch 3 ran again
    phases = [(r["phase"], r["epoch"]) for r in result.metrics["history"]]
    assert phases == [("frozen", 1), ("frozen", 2), ("fine_tune", 3), ("fine_tune", 4), ("fine_tune", 5)]
    assert result.run_dir == runs / "interrupted" and not (runs / INCOMPLETE).exists()
    assert (result.run_dir / "model.keras").is_file() and not (
        result.run_dir / "checkpoints" / "fine_tune_backup"
    ).exists()
    assert (runs / "latest").read_text().strip() == "interrupted"


def test_scratch_resume_and_a_run_that_fails_before_its_first_epoch(toy, tmp_path):
    options = dataclasses.replace(SCRATCH, backbone="tiny", epochs=3)
    runs = tmp_path / "runs"
    with pytest.raises(Interrupted):
        train(toy, runs, options, run_id="refused", callbacks=[FailAtStart()])
    assert not (runs / "refused").exists() and not (runs / INCOMPLETE).exists()  # nothing left behind

    with pytest.raises(Interrupted):
        train(toy, runs, options, run_id="cut", callbacks=[StopAfter(2)])
    seen = EpochsRun()
    result = train(toy, runs, options, resume=runs / INCOMPLETE / "cut", callbacks=[seen])
    assert seen.epochs == [3] and [r["epoch"] for r in result.metrics["history"]] == [1, 2, 3]
    assert (runs / "latest").read_text().strip() == "cut"


def test_time_budget_stops_before_the_epoch_that_would_pass_it(toy, tmp_path):
    options = dataclasses.replace(SCRATCH, backbone="tiny", epochs=50, time_budget_s=1.0)
    result = train(toy, tmp_path / "runs", options)
    phase = result.metrics["phases"]["scratch"]
    assert phase["stopped_by_time_budget_after"] == 1 and phase["epochs"] == 1


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


def test_original_recipe_deep_head_and_fine_tuning_that_does_not_help(manifest, options, tmp_path):
    # the uncached frozen phase (backbone over every image), the deep head; then a fine-tuning learning
    # rate this high wrecks the backbone: the final model must be the frozen phase's best
    options = dataclasses.replace(
        options, embedding_cache=False, head="deep", epochs=2, fine_tune_epochs=1, fine_tune_learning_rate=1.0
    )
    result = train(manifest, tmp_path / "runs", options)
    metrics = result.metrics
    assert metrics["phases"]["frozen"]["mode"] == "images" and not (tmp_path / "cache").exists()
    model = keras.models.load_model(result.run_dir / "model.keras")
    assert model.get_layer("head").get_layer("head_dense_512") is not None
    assert metrics["phases"]["fine_tune"]["improved"] is False
    assert metrics["validation"]["loss"] == pytest.approx(metrics["phases"]["frozen"]["best"]["val_loss"], abs=2e-3)


def test_run_images_dir_reads_the_runs_options_and_names_a_corrupt_file(tmp_path):
    from data.core.errors import InputError

    default = tmp_path / "images"
    assert run_images_dir(tmp_path, default) == default  # no options.json: the configured folder
    options = tmp_path / RUN_FILES["options"]
    options.write_text(json.dumps({"images": str(tmp_path / "elsewhere")}))
    assert run_images_dir(tmp_path, default) == tmp_path / "elsewhere"
    options.write_text('{"images": "cut off')
    with pytest.raises(InputError, match=r"options\.json is not valid JSON"):
        run_images_dir(tmp_path, default)
