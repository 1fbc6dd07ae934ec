"""Matplotlib figures as PNG bytes: the one way every report and run draws a chart (matplotlib imported lazily)."""

from __future__ import annotations

import io
from typing import Any


def figure_png(fig: Any, dpi: int) -> bytes:
    """A figure as PNG bytes at ``dpi`` (tight bounding box, no software stamp), then closed.

    Without the stamp (which names the matplotlib version) the same figure gives the same bytes on every run.
    """
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, bbox_inches="tight", metadata={"Software": None})
    plt.close(fig)
    return buf.getvalue()
