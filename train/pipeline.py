"""tf.data input pipelines: parallel decode, square crop, resize, augmentation (train only), prefetch.

Images leave the pipeline as RGB ``float32`` pixels in **0-255**: every backbone applies its own
preprocessing inside the model, exactly once (see ``train/backbones.py``). Nothing here rescales.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import tensorflow as tf

AUTOTUNE = tf.data.AUTOTUNE


def decode_square(path: tf.Tensor, image_size: int) -> tf.Tensor:
    """Read an image file, centre-crop it to a square and resize to ``image_size`` (RGB float 0-255)."""
    image = tf.io.decode_image(tf.io.read_file(path), channels=3, expand_animations=False)
    shape = tf.shape(image)
    side = tf.minimum(shape[0], shape[1])
    image = tf.image.crop_to_bounding_box(image, (shape[0] - side) // 2, (shape[1] - side) // 2, side, side)
    image = tf.image.resize(image, [image_size, image_size], antialias=True)
    return tf.clip_by_value(image, 0.0, 255.0)


def decode_augmented(path: tf.Tensor, image_size: int) -> tf.Tensor:
    """Training-time view of an image: a random square crop (64-100% of the area), flip, light colour jitter."""
    image = tf.io.decode_image(tf.io.read_file(path), channels=3, expand_animations=False)
    shape = tf.shape(image)
    shorter = tf.cast(tf.minimum(shape[0], shape[1]), tf.float32)
    side = tf.cast(shorter * tf.random.uniform([], 0.8, 1.0), tf.int32)
    image = tf.image.random_crop(image, tf.stack([side, side, 3]))
    image = tf.image.resize(image, [image_size, image_size], antialias=True)
    image = tf.image.random_flip_left_right(image)
    image = tf.image.random_brightness(image, max_delta=0.1 * 255.0)
    image = tf.image.random_contrast(image, 0.9, 1.1)
    return tf.clip_by_value(image, 0.0, 255.0)


def image_dataset(
    paths: Sequence[str],
    labels: np.ndarray | None,
    num_classes: int,
    image_size: int,
    batch_size: int,
    *,
    augment: bool = False,
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
        augment: random crop/flip/colour (use for the training split only).
        shuffle: reshuffle the order each epoch (training split only).
        seed: shuffle seed.
    """
    ds = tf.data.Dataset.from_tensor_slices(list(map(str, paths)))
    if labels is not None:
        onehot = tf.one_hot(np.asarray(labels, dtype=np.int32), num_classes)
        ds = tf.data.Dataset.zip(ds, tf.data.Dataset.from_tensor_slices(onehot))
    if shuffle:
        ds = ds.shuffle(max(1, len(paths)), seed=seed, reshuffle_each_iteration=True)
    decode = decode_augmented if augment else decode_square
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
