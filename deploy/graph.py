"""The serving graph: encoded image bytes or uint8 pixels in, class probabilities and names out.

Preprocessing lives inside the SavedModel, so a real TF Serving, our server and any other client get the
same numbers as training's evaluation pipeline: decode (JPEG, PNG, GIF, BMP, WebP), centre square crop,
antialiased resize to the model's side, RGB 0-255 floats: :func:`data.core.images.model_pixels`, which
``train/pipeline.py``'s ``decode_square`` runs on each file's bytes. The backbone rescales inside the model.

Signatures:
    ``serving_default``: ``image_bytes`` (tf.string, shape [n]) -> ``probabilities`` [n, classes] float32,
        ``classes`` [n, classes] string (the class of each column). The input name ends the REST API's
        ``{"b64": ...}`` question: a DT_STRING input takes base64 in JSON.
    ``serving_pixels``: ``pixels`` (uint8, [n, height, width, 3], one size per call) -> the same outputs.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Sequence

import tensorflow as tf

from data.core.images import centre_square, model_pixels
from deploy.layout import BYTES_INPUT, BYTES_SIGNATURE, PIXELS_INPUT, PIXELS_SIGNATURE

if TYPE_CHECKING:
    import keras


def _outputs(model: "keras.Model", classes: Sequence[str], pixels: tf.Tensor) -> dict[str, tf.Tensor]:
    probabilities = model(pixels, training=False)
    names = tf.constant(list(classes), dtype=tf.string)
    return {"probabilities": probabilities, "classes": tf.tile(names[None, :], [tf.shape(probabilities)[0], 1])}


def write_saved_model(model: "keras.Model", classes: Sequence[str], target: Path) -> None:
    """Write the serving SavedModel of ``model`` (RGB 0-255 pixels in) into the new folder ``target``."""
    import keras

    size = int(model.input_shape[1])

    def from_bytes(image_bytes: tf.Tensor) -> dict[str, tf.Tensor]:
        pixels = tf.map_fn(
            lambda data: model_pixels(data, size),
            image_bytes,
            fn_output_signature=tf.TensorSpec([size, size, 3], tf.float32),
        )
        return _outputs(model, classes, pixels)

    def from_pixels(pixels: tf.Tensor) -> dict[str, tf.Tensor]:
        return _outputs(model, classes, centre_square(pixels, size))

    archive = keras.export.ExportArchive()
    archive.track(model)
    archive.add_endpoint(
        BYTES_SIGNATURE, from_bytes, input_signature=[tf.TensorSpec([None], tf.string, name=BYTES_INPUT)]
    )
    archive.add_endpoint(
        PIXELS_SIGNATURE,
        from_pixels,
        input_signature=[tf.TensorSpec([None, None, None, 3], tf.uint8, name=PIXELS_INPUT)],
    )
    archive.write_out(str(target), verbose=False)


def write_float_saved_model(model: "keras.Model", target: Path) -> None:
    """A SavedModel of the bare model (float 0-255 pixels of the model's size): what TFLite converts.

    TFLite has no image decoder among its built-in ops, so its variants take decoded, cropped, resized
    pixels; the model card says so.
    """
    import keras

    size = int(model.input_shape[1])
    archive = keras.export.ExportArchive()
    archive.track(model)
    archive.add_endpoint(
        BYTES_SIGNATURE,
        lambda pixels: {"probabilities": model(pixels, training=False)},
        input_signature=[tf.TensorSpec([None, size, size, 3], tf.float32, name=PIXELS_INPUT)],
    )
    archive.write_out(str(target), verbose=False)
