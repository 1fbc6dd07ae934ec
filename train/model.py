"""Classifier heads and the full model: pixels -> backbone (preprocessing inside) -> embedding -> head."""

from __future__ import annotations

import keras

HEADS = ("original", "deep")


def build_head(input_dim: int, num_classes: int, kind: str = "original", dropout: float = 0.3) -> keras.Model:
    """A classifier head on one pooled embedding per image.

    ``original`` is the original project's head (after global pooling): batch norm, dropout, softmax.
    ``deep`` adds two ReLU layers (512, 256) with dropout before the softmax.
    """
    if kind not in HEADS:
        raise ValueError(f"unknown head {kind!r}; choose one of {', '.join(HEADS)}")
    inputs = keras.Input((input_dim,), name="embedding")
    x = keras.layers.BatchNormalization(name="head_bn")(inputs)
    if kind == "deep":
        for width in (512, 256):
            x = keras.layers.Dense(width, activation="relu", name=f"head_dense_{width}")(x)
            x = keras.layers.Dropout(dropout)(x)
    else:
        x = keras.layers.Dropout(dropout, name="head_dropout")(x)
    logits = keras.layers.Dense(num_classes, name="head_logits")(x)
    outputs = keras.layers.Activation("softmax", dtype="float32", name="probabilities")(logits)
    return keras.Model(inputs, outputs, name="head")


def build_classifier(backbone: keras.Model, head: keras.Model) -> keras.Model:
    """The deployable model: RGB pixels (0-255) in, class probabilities out.

    The backbone is called with ``training=False`` so that its batch norm stays in inference mode in both
    the frozen phase and fine-tuning (the Keras transfer-learning recipe).
    """
    inputs = keras.Input(backbone.input_shape[1:], name="pixels")
    features = backbone(inputs, training=False)
    # Named so that label, visualise and deploy can read the penultimate features (train/predict.py).
    features = keras.layers.Identity(name="embedding")(features)
    return keras.Model(inputs, head(features), name="classifier")


def compile_model(model: keras.Model, learning_rate: float) -> keras.Model:
    """Adam, categorical cross-entropy and the metrics logged per epoch (accuracy, top-3, macro-F1)."""
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate),
        loss=keras.losses.CategoricalCrossentropy(),
        metrics=[
            keras.metrics.CategoricalAccuracy(name="accuracy"),
            keras.metrics.TopKCategoricalAccuracy(k=3, name="top3_accuracy"),
            keras.metrics.F1Score(average="macro", name="macro_f1"),
        ],
    )
    return model
