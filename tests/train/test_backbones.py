"""Backbones: each applies its own preprocessing exactly once; the weights option (file, none, imagenet offline)."""

from __future__ import annotations

import socket

import keras
import numpy as np
import pytest

from train.backbones import (
    BACKBONES,
    WeightsUnavailable,
    base_model,
    build_backbone,
    make_trainable,
    unfreeze_top,
    weights_fingerprint,
)
from train.distribute import is_chief_task, make_strategy, precision_policy
from train.model import build_classifier, build_head
from train.options import BACKBONES as OPTION_BACKBONES

SIZE = 32


@pytest.fixture(scope="module")
def pixels():
    """RGB pixels in 0-255, as the input pipeline hands them over."""
    return np.random.default_rng(0).uniform(0, 255, (2, SIZE, SIZE, 3)).astype(np.float32)


def _run(model: keras.Model, x: np.ndarray) -> np.ndarray:
    return keras.ops.convert_to_numpy(model(x, training=False))


@pytest.mark.parametrize(
    "name, preprocess_input",
    [
        ("resnet50", keras.applications.resnet50.preprocess_input),
        ("vgg19", keras.applications.vgg19.preprocess_input),
    ],
)
def test_caffe_backbones_preprocess_exactly_once(name, preprocess_input, pixels):
    backbone = build_backbone(name, SIZE, weights=None)
    base = base_model(backbone)
    ours = _run(backbone, pixels)
    once = _run(base, preprocess_input(pixels.copy()))
    np.testing.assert_allclose(ours, once, rtol=1e-4, atol=1e-5)
    for wrong in (
        pixels,  # not at all
        preprocess_input(preprocess_input(pixels.copy())),  # twice
        preprocess_input(pixels / 255.0),
    ):  # after scaling to [0, 1] (the original's bug)
        assert not np.allclose(ours, _run(base, wrong), rtol=1e-3, atol=1e-4)


@pytest.mark.parametrize(
    "name, first_scale", [("mobilenet_v3_small", 1 / 127.5), ("efficientnet_b0", 1 / 255), ("tiny", 1 / 255)]
)
def test_builtin_preprocessing_backbones_add_nothing(name, first_scale, pixels):
    backbone = build_backbone(name, SIZE, weights=None)
    base = base_model(backbone)
    np.testing.assert_array_equal(_run(backbone, pixels), _run(base, pixels))  # nothing added in front
    rescaling = [layer for layer in base.layers if isinstance(layer, keras.layers.Rescaling)]
    assert rescaling and rescaling[0].scale == pytest.approx(first_scale)  # it expects 0-255 pixels
    assert not any(layer.name == "caffe_preprocess" for layer in backbone.layers)


def test_classifier_runs_the_backbone_once_in_inference_mode(pixels):
    backbone = build_backbone("tiny", SIZE, weights=None)
    head = build_head(backbone.output_shape[-1], 5, "deep", 0.5)
    model = build_classifier(backbone, head)
    probs = _run(model, pixels)
    assert probs.shape == (2, 5)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, rtol=1e-5)
    np.testing.assert_allclose(probs, _run(head, _run(backbone, pixels)), rtol=1e-5)


def test_weights_file_is_loaded(tmp_path, pixels):
    for name in ("tiny", "mobilenet_v3_small"):
        keras.utils.set_random_seed(1)
        original = build_backbone(name, SIZE, weights=None)
        path = tmp_path / f"{name}.weights.h5"
        base_model(original).save_weights(path)
        keras.utils.set_random_seed(2)
        assert weights_fingerprint(build_backbone(name, SIZE, weights="none")) != weights_fingerprint(original)
        loaded = build_backbone(name, SIZE, weights=str(path))
        assert weights_fingerprint(loaded) == weights_fingerprint(original)
        np.testing.assert_array_equal(_run(loaded, pixels), _run(original, pixels))
    with pytest.raises(WeightsUnavailable, match="does not exist"):
        build_backbone("tiny", SIZE, weights=str(tmp_path / "missing.weights.h5"))


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_imagenet_offline_says_where_to_put_the_file(monkeypatch):
    # an unreachable proxy makes the download fail the way it does offline, whatever this machine's network
    proxy = f"http://127.0.0.1:{_closed_port()}"
    for var in ("https_proxy", "HTTPS_PROXY", "http_proxy", "HTTP_PROXY"):
        monkeypatch.setenv(var, proxy)
    monkeypatch.delenv("no_proxy", raising=False)
    monkeypatch.delenv("NO_PROXY", raising=False)
    with pytest.raises(WeightsUnavailable) as info:
        build_backbone("mobilenet_v3_small", SIZE, weights="imagenet")
    message = str(info.value)
    assert "weights_mobilenet_v3_small_224_1.0_float_no_top_v2.h5" in message
    assert "models" in message and "train.weights=none" in message


def test_unfreeze_top_keeps_preprocessing_and_batch_norm_frozen():
    backbone = build_backbone("resnet50", SIZE, weights=None)
    backbone.trainable = False
    assert not backbone.trainable_weights
    unfrozen = unfreeze_top(backbone, 10)
    base = base_model(backbone)
    trainable = [layer for layer in base.layers if layer.trainable and layer.weights]
    assert unfrozen == len(trainable) > 0
    assert all(layer in base.layers[-10:] for layer in trainable)
    assert not any(isinstance(layer, keras.layers.BatchNormalization) for layer in trainable)
    assert not backbone.get_layer("caffe_preprocess").trainable


def test_strategy_and_chief_selection(monkeypatch):
    monkeypatch.delenv("TF_CONFIG", raising=False)
    strategy = make_strategy("auto")  # no TF_CONFIG, no second GPU here: the default strategy
    assert strategy.num_replicas_in_sync == 1
    with pytest.raises(ValueError, match="unknown strategy"):
        make_strategy("horovod")
    workers = {"cluster": {"worker": ["h1:1", "h2:1"]}}
    assert is_chief_task({**workers, "task": {"type": "worker", "index": 0}})
    assert not is_chief_task({**workers, "task": {"type": "worker", "index": 1}})
    with_chief = {"cluster": {"chief": ["h0:1"], "worker": ["h1:1"]}}
    assert is_chief_task({**with_chief, "task": {"type": "chief", "index": 0}})
    assert not is_chief_task({**with_chief, "task": {"type": "worker", "index": 0}})


def test_mixed_precision_keeps_float32_probabilities_and_restores_the_policy(pixels):
    with precision_policy(True) as policy:
        assert policy == "mixed_float16"
        backbone = build_backbone("tiny", SIZE, weights=None)
        model = build_classifier(backbone, build_head(backbone.output_shape[-1], 3))
        assert model(pixels).dtype == "float32"
        assert backbone.layers[-1].compute_dtype == "float16"
    assert keras.mixed_precision.global_policy().name == "float32"


def test_every_backbone_name_is_built_and_ours_has_no_imagenet(tmp_path):
    assert tuple(BACKBONES) == OPTION_BACKBONES  # options.py checks names without loading TensorFlow
    backbone = build_backbone("small_resnet", SIZE, weights=None)
    assert backbone.output_shape == (None, 256)
    assert make_trainable(backbone) == len(backbone.weights) - 2 * sum(
        isinstance(layer, keras.layers.BatchNormalization) for layer in base_model(backbone).layers
    )  # every weight but batch norm's moving statistics
    for name in ("small_resnet", "tiny"):
        with pytest.raises(WeightsUnavailable, match="no imagenet weights: use --set train.weights=none"):
            build_backbone(name, SIZE, weights="imagenet")
    wrong = tmp_path / "tiny.weights.h5"
    base_model(build_backbone("tiny", SIZE, weights=None)).save_weights(wrong)
    with pytest.raises(WeightsUnavailable, match="saved from a small_resnet backbone"):
        build_backbone("small_resnet", SIZE, weights=str(wrong))


def test_scratch_classifier_trains_batch_norm_and_transfer_keeps_it_frozen(pixels):
    for train_backbone in (True, False):
        backbone = build_backbone("small_resnet", SIZE, weights=None)
        # as the recipes prepare it: all trainable from scratch; fine-tuning's top layers with batch norm frozen
        make_trainable(backbone) if train_backbone else unfreeze_top(backbone, 1000)
        model = build_classifier(backbone, build_head(256, 3), train_backbone=train_backbone)
        bn = next(layer for layer in base_model(backbone).layers if isinstance(layer, keras.layers.BatchNormalization))
        before = keras.ops.convert_to_numpy(bn.moving_mean).copy()
        model(pixels, training=True)
        moved = not np.allclose(before, keras.ops.convert_to_numpy(bn.moving_mean))
        assert moved == train_backbone
