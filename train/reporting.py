"""Pictures and TensorBoard records of a run: confusion matrices, the highest-loss gallery, hyperparameters."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import numpy as np

from data.core.figures import figure_png

DPI = 100


def gallery_png(images: Sequence[np.ndarray], captions: Sequence[str], columns: int = 4) -> bytes:
    """A grid of RGB images with one caption each (e.g. the highest-loss test images)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    count = max(1, len(images))
    cols = min(columns, count)
    rows = (count + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(3.2 * cols, 3.4 * rows), squeeze=False)
    for ax in axes.ravel():
        ax.axis("off")
    for ax, image, caption in zip(axes.ravel(), images, captions):
        ax.imshow(image)
        ax.set_title(caption, fontsize=8)
    return figure_png(fig, DPI)


def log_png(log_dir: Path, tag: str, png: bytes, step: int) -> None:
    """Write a PNG into a TensorBoard event file (shown under the Images tab)."""
    import tensorflow as tf

    image = tf.image.decode_png(png, channels=4)[None]
    with tf.summary.create_file_writer(str(log_dir)).as_default():
        tf.summary.image(tag, image, step=step)


def log_hparams(log_dir: Path, run_id: str, hparams: dict[str, Any], results: dict[str, float]) -> None:
    """Record the run's hyperparameters and final results for TensorBoard's HParams tab."""
    import tensorflow as tf
    from tensorboard.plugins.hparams import api as hp

    clean = {k: v if isinstance(v, (bool, int, float, str)) else str(v) for k, v in hparams.items()}
    with tf.summary.create_file_writer(str(log_dir)).as_default():
        hp.hparams(clean, trial_id=run_id)
        for name, value in results.items():
            tf.summary.scalar(f"final/{name}", value, step=0)


def write_png(target: Path, png: bytes) -> None:
    """Save PNG bytes to a file (atomic)."""
    from data.core.io import atomic_write_bytes

    atomic_write_bytes(target, png)
