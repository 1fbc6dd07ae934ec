"""TFLite variants of an export: conversion, and single-image inference to measure them against Keras.

    float32        the model as is
    float16        weights stored as float16 (half the size; computed in float32 on most CPUs)
    dynamic_int8   weights quantised to int8, activations float (dynamic-range quantisation)
    full_int8      weights and activations int8 (full-integer quantisation, calibrated on a representative
                   sample of the run's training images; float pixels in and probabilities out, quantised
                   at the edges, so it is called like the others)

Each takes float32 pixels ``[1, size, size, 3]`` in 0-255, already decoded, cropped and resized (TFLite's
built-in ops have no image decoder).
"""

from __future__ import annotations

import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np


def convert(float_saved_model: Path, variant: str, representative: np.ndarray | None = None) -> bytes:
    """The ``.tflite`` flatbuffer of one variant, from the float-pixels SavedModel (``write_float_saved_model``).

    ``representative``: float pixels ``[n, size, size, 3]`` that calibrate the activation ranges of
    ``full_int8`` (images of the training split; required for that variant only).
    """
    import tensorflow as tf

    converter = tf.lite.TFLiteConverter.from_saved_model(str(float_saved_model))
    if variant != "float32":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
    if variant == "float16":
        converter.target_spec.supported_types = [tf.float16]
    if variant == "full_int8":
        if representative is None or not len(representative):
            raise ValueError("full_int8 needs representative images to calibrate on")
        images = np.asarray(representative, np.float32)
        converter.representative_dataset = lambda: ([image[None]] for image in images)
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    return bytes(converter.convert())


class LiteModel:
    """A TFLite interpreter for batch-1 float pixels on one thread (as on a phone)."""

    def __init__(self, content: bytes, image_size: int) -> None:
        import tensorflow as tf

        with warnings.catch_warnings():  # tf.lite.Interpreter warns that it moves to ai_edge_litert
            warnings.simplefilter("ignore")
            self._interpreter = tf.lite.Interpreter(model_content=content, num_threads=1)
        self._input = self._interpreter.get_input_details()[0]["index"]
        self._interpreter.resize_tensor_input(self._input, [1, image_size, image_size, 3])
        self._interpreter.allocate_tensors()
        self._output = self._interpreter.get_output_details()[0]["index"]

    def predict(self, pixels: np.ndarray) -> np.ndarray:
        """Probabilities for ``[n, size, size, 3]`` float pixels, one invocation per image."""
        rows = []
        for image in np.asarray(pixels, np.float32):
            self._interpreter.set_tensor(self._input, image[None])
            self._interpreter.invoke()
            rows.append(self._interpreter.get_tensor(self._output)[0].copy())
        return np.stack(rows)


def median_ms(seconds: list[float]) -> float:
    """The median of timings in milliseconds (0 when there are none)."""
    return round(float(np.median(seconds)) * 1000, 4) if seconds else 0.0


def time_calls(call: Any, pixels: np.ndarray, runs: int) -> list[float]:
    """Seconds of ``runs`` single-image calls of ``call`` (cycling through ``pixels``), after one warm-up."""
    call(pixels[:1])
    seconds = []
    for i in range(runs):
        image = pixels[i % len(pixels)][None]
        started = time.perf_counter()
        call(image)
        seconds.append(time.perf_counter() - started)
    return seconds


def variant_report(
    name: str, content: bytes, probs: np.ndarray, labels: np.ndarray, keras_probs: np.ndarray, max_drop: float
) -> dict[str, Any]:
    """Accuracy against the labels and agreement with Keras; ``accepted`` unless the accuracy drop is too big."""
    keras_accuracy = float(np.mean(keras_probs.argmax(axis=1) == labels))
    accuracy = float(np.mean(probs.argmax(axis=1) == labels))
    drop = keras_accuracy - accuracy
    accepted = drop <= max_drop + 1e-12
    return {
        "variant": name,
        "bytes": len(content),
        "accuracy": round(accuracy, 6),
        "accuracy_drop": round(drop, 6),
        "top1_agreement": round(float(np.mean(probs.argmax(axis=1) == keras_probs.argmax(axis=1))), 6),
        "max_abs_diff": round(float(np.max(np.abs(probs - keras_probs))), 8),
        "accepted": bool(accepted),
        "reason": "" if accepted else f"accuracy drop {drop:.4f} is over export.max_accuracy_drop = {max_drop}",
    }
