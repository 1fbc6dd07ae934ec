"""tf.data input pipelines: parallel decode, square crop, resize, augmentation (train only), prefetch.

Images leave the pipeline as RGB ``float32`` pixels in **0-255**: every backbone applies its own
preprocessing inside the model, exactly once (see ``train/backbones.py``). Nothing here rescales.

Augmentations (``augment``): ``none`` (evaluation: centre square), ``light`` (the transfer recipe: a random
square crop of 64-100 % of the area, flip, light brightness/contrast) and ``strong`` (the from-scratch
recipe: a random resized crop of 25-100 % of the area at aspect 3:4 to 4:3, flip, brightness, contrast and
saturation; no hue shift, which would turn a lemon into a lime).
"""

from __future__ import annotations

import time
from typing import Callable, Sequence

import numpy as np
import tensorflow as tf

from data.core.images import model_pixels, tf_decode

AUTOTUNE = tf.data.AUTOTUNE
AUGMENTATIONS = ("none", "light", "strong")


def _read(path: tf.Tensor) -> tf.Tensor:
    return tf_decode(tf.io.read_file(path))


def _resize(image: tf.Tensor, image_size: int) -> tf.Tensor:
    return tf.image.resize(image, [image_size, image_size], antialias=True)


def decode_square(path: tf.Tensor, image_size: int) -> tf.Tensor:
    """Read an image file, centre-crop it to a square and resize to ``image_size`` (RGB float 0-255), exactly
    as the serving graph does with the bytes it is sent (:func:`data.core.images.model_pixels`)."""
    return model_pixels(tf.io.read_file(path), image_size)


def decode_augmented(path: tf.Tensor, image_size: int) -> tf.Tensor:
    """Training-time view of an image: a random square crop (64-100% of the area), flip, light colour jitter."""
    image = _read(path)
    shape = tf.shape(image)
    shorter = tf.cast(tf.minimum(shape[0], shape[1]), tf.float32)
    side = tf.cast(shorter * tf.random.uniform([], 0.8, 1.0), tf.int32)
    image = tf.image.random_crop(image, tf.stack([side, side, 3]))
    image = tf.image.random_flip_left_right(_resize(image, image_size))
    image = tf.image.random_brightness(image, max_delta=0.1 * 255.0)
    image = tf.image.random_contrast(image, 0.9, 1.1)
    return tf.clip_by_value(image, 0.0, 255.0)


def decode_random_resized(path: tf.Tensor, image_size: int) -> tf.Tensor:
    """From-scratch view: random resized crop (Inception-style), flip, brightness, contrast, saturation."""
    image = _read(path)
    begin, size, _ = tf.image.sample_distorted_bounding_box(
        tf.shape(image),
        bounding_boxes=tf.constant([[[0.0, 0.0, 1.0, 1.0]]]),
        min_object_covered=0.0,
        aspect_ratio_range=(3 / 4, 4 / 3),
        area_range=(0.25, 1.0),
        max_attempts=10,
        use_image_if_no_bounding_boxes=True,
    )
    image = _resize(tf.slice(image, begin, size), image_size)
    image = tf.image.random_flip_left_right(image)
    image = tf.image.random_brightness(image, max_delta=0.15 * 255.0)
    image = tf.image.random_contrast(tf.clip_by_value(image, 0.0, 255.0), 0.8, 1.2)
    image = tf.image.random_saturation(tf.clip_by_value(image, 0.0, 255.0), 0.8, 1.2)
    return tf.clip_by_value(image, 0.0, 255.0)


DECODERS: dict[str, Callable[[tf.Tensor, int], tf.Tensor]] = {
    "none": decode_square,
    "light": decode_augmented,
    "strong": decode_random_resized,
}


def image_dataset(
    paths: Sequence[object],
    labels: np.ndarray | None,
    num_classes: int,
    image_size: int,
    batch_size: int,
    *,
    augment: str = "none",
    shuffle: bool = False,
    seed: int = 0,
) -> tf.data.Dataset:
    """Batches of ``(pixels, one-hot label)``, or of pixels alone when ``labels`` is None.

    Args:
        paths: image files, in the order wanted (kept unless ``shuffle``).
        labels: class indices aligned with ``paths``, or None for prediction-only pipelines.
        num_classes: width of the one-hot labels.
        image_size: output side in pixels.
        batch_size: global batch size.
        augment: one of :data:`AUGMENTATIONS` (anything but ``none`` for the training split only).
        shuffle: reshuffle the order each epoch (training split only).
        seed: shuffle seed.
    """
    if augment not in DECODERS:
        raise ValueError(f"unknown augmentation {augment!r}; choose one of {', '.join(AUGMENTATIONS)}")
    ds = tf.data.Dataset.from_tensor_slices([str(p) for p in paths])
    if labels is not None:
        onehot = tf.one_hot(np.asarray(labels, dtype=np.int32), num_classes)
        ds = tf.data.Dataset.zip(ds, tf.data.Dataset.from_tensor_slices(onehot))
    if shuffle:
        ds = ds.shuffle(max(1, len(paths)), seed=seed, reshuffle_each_iteration=True)
    decode = DECODERS[augment]
    if labels is None:
        ds = ds.map(lambda p: decode(p, image_size), num_parallel_calls=AUTOTUNE)
    else:
        ds = ds.map(lambda p, y: (decode(p, image_size), y), num_parallel_calls=AUTOTUNE)
    return ds.batch(batch_size).prefetch(AUTOTUNE)


def vector_dataset(
    vectors: np.ndarray, labels: np.ndarray, num_classes: int, batch_size: int, *, shuffle: bool = False, seed: int = 0
) -> tf.data.Dataset:
    """Batches of ``(cached embedding, one-hot label)`` for training a head on the embedding cache."""
    onehot = tf.one_hot(np.asarray(labels, dtype=np.int32), num_classes)
    ds = tf.data.Dataset.from_tensor_slices((vectors.astype(np.float32), onehot))
    if shuffle:
        ds = ds.shuffle(max(1, len(vectors)), seed=seed, reshuffle_each_iteration=True)
    return ds.batch(batch_size).prefetch(AUTOTUNE)


def pipeline_throughput(ds: tf.data.Dataset, batches: int = 20) -> dict[str, float]:
    """Images per second the input pipeline delivers on its own (no model), over up to ``batches`` batches.

    The first batch is left out of the timing (it pays the pipeline's start-up), so this is the steady
    rate that training's images per second can be compared with: much higher means tf.data is not the
    bottleneck.
    """
    iterator = iter(ds)
    next(iterator)
    images, started = 0, time.perf_counter()
    for _, batch in zip(range(batches), iterator):
        images += int(tf.shape(batch[0] if isinstance(batch, tuple) else batch)[0])
    seconds = time.perf_counter() - started
    return {
        "images": images,
        "seconds": round(seconds, 3),
        "images_per_second": round(images / seconds, 1) if seconds else 0.0,
    }
