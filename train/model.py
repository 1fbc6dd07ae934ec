"""Classifier heads and the full model: pixels -> backbone (preprocessing inside) -> embedding -> head."""

from __future__ import annotations

import keras

from train.options import HEADS

LINEAR_L2 = 2e-4  # on the summed squared weights: about scikit-learn's C = 1 at a few thousand images


def build_head(input_dim: int, num_classes: int, kind: str = "original", dropout: float = 0.3) -> keras.Model:
    """A classifier head on one pooled embedding per image.

    ``linear`` is a softmax layer with an L2 penalty on its weights, nothing else: a logistic regression on
    pretrained features (on the embedding cache it is solved exactly, ``train/linear_probe.py``; the grocery
    photos: 0.824 test accuracy, 0.782 for ``original``, whose batch norm re-scales features the backbone
    already normalised).
    ``original`` is the original project's head (after global pooling): batch norm, dropout, softmax.
    ``deep`` adds two ReLU layers (512, 256) with dropout before the softmax. The batch norm's moving
    statistics follow at momentum 0.9 (Keras' 0.99 leaves them near their start after a small data set's
    few hundred steps, and a model trained from scratch then predicts one class).
    """
    if kind not in HEADS:
        raise ValueError(f"unknown head {kind!r}; choose one of {', '.join(HEADS)}")
    inputs = keras.Input((input_dim,), name="embedding")
    if kind == "linear":
        regulariser = keras.regularizers.L2(LINEAR_L2)
        logits = keras.layers.Dense(num_classes, kernel_regularizer=regulariser, name="head_logits")(inputs)
        outputs = keras.layers.Activation("softmax", dtype="float32", name="probabilities")(logits)
        return keras.Model(inputs, outputs, name="head")
    x = keras.layers.BatchNormalization(momentum=0.9, name="head_bn")(inputs)
    if kind == "deep":
        for width in (512, 256):
            x = keras.layers.Dense(width, activation="relu", name=f"head_dense_{width}")(x)
            x = keras.layers.Dropout(dropout)(x)
    else:
        x = keras.layers.Dropout(dropout, name="head_dropout")(x)
    logits = keras.layers.Dense(num_classes, name="head_logits")(x)
    outputs = keras.layers.Activation("softmax", dtype="float32", name="probabilities")(logits)
    return keras.Model(inputs, outputs, name="head")


def build_classifier(backbone: keras.Model, head: keras.Model, *, train_backbone: bool = False) -> keras.Model:
    """The deployable model: RGB pixels (0-255) in, class probabilities out.

    For the transfer recipe (``train_backbone=False``) the backbone is called with ``training=False`` (the
    Keras transfer-learning recipe); what keeps its batch norm in inference mode under Keras 3, though, is
    that those layers stay frozen in both phases (a frozen BatchNormalization runs in inference mode; the
    ``training=False`` of a nested call does not survive ``fit``'s ``training=True``, see
    tests/train/test_backbones.py). From scratch it is called plainly and every layer is trainable: ``fit``
    runs batch norm in training mode and updates its statistics, ``predict`` uses them.
    """
    inputs = keras.Input(backbone.input_shape[1:], name="pixels")
    features = backbone(inputs) if train_backbone else backbone(inputs, training=False)
    # Named so that label, visualise and deploy can read the penultimate features (train/predict.py).
    features = keras.layers.Identity(name="embedding")(features)
    return keras.Model(inputs, head(features), name="classifier")


def _metrics() -> list[keras.metrics.Metric]:
    return [
        keras.metrics.CategoricalAccuracy(name="accuracy"),
        keras.metrics.TopKCategoricalAccuracy(k=3, name="top3_accuracy"),
        keras.metrics.F1Score(average="macro", name="macro_f1"),
    ]


def compile_model(model: keras.Model, learning_rate: float) -> keras.Model:
    """Adam, categorical cross-entropy and the metrics logged per epoch (accuracy, top-3, macro-F1)."""
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate), loss=keras.losses.CategoricalCrossentropy(), metrics=_metrics()
    )
    return model


def compile_scratch(
    model: keras.Model, learning_rate: float, weight_decay: float, label_smoothing: float
) -> keras.Model:
    """AdamW (decoupled weight decay, not on biases or batch-norm scales) and label-smoothed cross-entropy.

    The learning rate is a variable that :class:`train.callbacks.WarmupCosine` sets before every step.
    """
    optimizer = keras.optimizers.AdamW(learning_rate, weight_decay=weight_decay)
    optimizer.exclude_from_weight_decay(var_names=["bias", "gamma", "beta"])
    model.compile(
        optimizer=optimizer,
        loss=keras.losses.CategoricalCrossentropy(label_smoothing=label_smoothing),
        metrics=_metrics(),
    )
    return model
