"""The serving graph: encoded image bytes or uint8 pixels in, class probabilities and names out.

Preprocessing lives inside the SavedModel, so a real TF Serving, our server and any other client get the
same numbers as training's evaluation pipeline: decode (JPEG, PNG, GIF, BMP, WebP), centre square crop,
antialiased resize to the model's side, RGB 0-255 floats (``train/pipeline.py``'s ``decode_square``, here
fed bytes rather than a path). The backbone rescales inside the Keras model.

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

from deploy.layout import BYTES_INPUT, BYTES_SIGNATURE, PIXELS_INPUT, PIXELS_SIGNATURE

if TYPE_CHECKING:
    import keras


def square_resize(image: tf.Tensor, image_size: int) -> tf.Tensor:
    """Centre-crop ``[h, w, 3]`` or ``[n, h, w, 3]`` pixels to a square and resize (float 0-255)."""
    shape = tf.shape(image)
    height, width = shape[-3], shape[-2]
    side = tf.minimum(height, width)
    image = tf.image.crop_to_bounding_box(image, (height - side) // 2, (width - side) // 2, side, side)
    image = tf.image.resize(image, [image_size, image_size], antialias=True)
    return tf.clip_by_value(image, 0.0, 255.0)


def decode_bytes(data: tf.Tensor, image_size: int) -> tf.Tensor:
    """One encoded image (a scalar tf.string) as model input pixels."""
    return square_resize(tf.io.decode_image(data, channels=3, expand_animations=False), image_size)


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
            lambda data: decode_bytes(data, size),
            image_bytes,
            fn_output_signature=tf.TensorSpec([size, size, 3], tf.float32),
        )
        return _outputs(model, classes, pixels)

    def from_pixels(pixels: tf.Tensor) -> dict[str, tf.Tensor]:
        return _outputs(model, classes, square_resize(pixels, size))

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
