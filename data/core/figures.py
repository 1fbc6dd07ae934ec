"""Matplotlib figures as PNG bytes: the one way every report and run draws a chart (matplotlib imported lazily)."""

from __future__ import annotations

import io
from typing import Any, Sequence

import numpy as np

CONFUSION_DPI = 100


def figure_png(fig: Any, dpi: int) -> bytes:
    """A figure as PNG bytes at ``dpi`` (tight bounding box, no software stamp), then closed.

    Without the stamp (which names the matplotlib version) the same figure gives the same bytes on every run.
    """
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, bbox_inches="tight", metadata={"Software": None})
    plt.close(fig)
    return buf.getvalue()


def confusion_png(cm: np.ndarray, classes: Sequence[str], title: str = "confusion matrix") -> bytes:
    """A confusion matrix as a PNG: colour = share of the true class, text = count."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = cm.sum(axis=1, keepdims=True)
    share = np.divide(cm, rows, out=np.zeros(cm.shape, dtype=float), where=rows > 0)
    size = 2.5 + 0.8 * len(classes)
    fig, ax = plt.subplots(figsize=(size, size))
    ax.imshow(share, cmap="Blues", vmin=0.0, vmax=1.0)
    ax.set_xticks(range(len(classes)), classes, rotation=45, ha="right")
    ax.set_yticks(range(len(classes)), classes)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title)
    for i in range(cm.shape[0]):
        for j in range(cm.shape[1]):
            ax.text(
                j,
                i,
                str(cm[i, j]),
                ha="center",
                va="center",
                color="white" if share[i, j] > 0.5 else "black",
                fontsize=9,
            )
    return figure_png(fig, CONFUSION_DPI)
