"""The review page: one self-contained ``review.html`` (inline CSS and JavaScript, the data as inline JSON)
and small JPEG thumbnails in ``thumbs/`` beside it, so it opens offline from the file system.

The page (``label/review_template.html``) pages through the flagged images, filtered by issue type and label;
per image, per duplicate cluster or per group of look-alikes ("more like this": an image's nearest neighbours
in embedding space, flagged or not, with their thumbnails) the reviewer chooses keep, relabel (to the
suggested or any label) or drop, with keyboard shortcuts.
Decisions live in the browser's localStorage under the label version's name, so they survive paging and
reloads, and "save decisions" downloads them as ``decisions.json`` for ``make apply-labels``.
"""

from __future__ import annotations

import json
import math
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pandas as pd
from tqdm import tqdm

from data.core.images import thumbnail
from data.core.io import atomic_write_bytes
from label.options import LabelOptions

TEMPLATE = Path(__file__).with_name("review_template.html")
THUMBS = "thumbs"
JPEG_QUALITY = 80


def write_thumbnail(source: Path, target: Path, side: int) -> bool:
    """Write a JPEG of ``source`` whose longer side is at most ``side``; False when it cannot be read."""
    image = thumbnail(source, side, reduced=False, enlarge=False)
    if image is None:
        return False
    ok, payload = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
    if ok:
        atomic_write_bytes(target, payload.tobytes())
    return bool(ok)


def _number(value: Any, digits: int = 3) -> float | None:
    """A float for JSON, None for NaN (JSON has no NaN)."""
    return None if value is None or (isinstance(value, float) and math.isnan(value)) else round(float(value), digits)


def _item(row: Any, thumb: str | None, similar: list[dict[str, Any]]) -> dict[str, Any]:
    """One flagged image as the page's JavaScript reads it (short keys: the page may hold thousands)."""
    return {
        "sim": similar,
        "out": _number(getattr(row, "outlier_score", None)),
        "key": row.key,
        "thumb": thumb,
        "path": row.path,
        "label": row.label,
        "suggested": row.suggested_label,
        "sp": _number(row.suggested_prob),
        "gp": _number(row.given_prob),
        "q": _number(row.quality_score),
        "knn": row.knn_label,
        "ka": _number(row.knn_agreement),
        "issue": row.issue_type,
        "issues": [i for i in row.issues.split(",") if i],
        "action": row.action,
        "cluster": int(row.cluster),
        "cs": int(row.cluster_size),
        "ckind": row.cluster_kind,
        "clabels": row.cluster_labels,
        "split": row.split,
        "title": getattr(row, "title", "") or "",  # the product's name (label/title.py), "" when unknown
        "tl": getattr(row, "title_label", "") or "",
        "tp": _number(getattr(row, "title_prob", None)),
        "w": _number(row.width, 0),
        "h": _number(row.height, 0),
    }


def page_data(
    review: pd.DataFrame,
    thumbs: dict[str, str | None],
    summary: dict[str, Any],
    options: LabelOptions,
    lookup: pd.DataFrame | None = None,
) -> dict:
    """Everything the page shows: the version, the classes, the counts and one item per flagged image.

    Args:
        review: the flagged images, most urgent first.
        thumbs: the thumbnail of each key (None where the image could not be read).
        summary: the version's summary.json.
        options: page size and how many look-alikes an item lists.
        lookup: every image of the version by key (its label), for the look-alikes; default ``review``.
    """
    labels = (lookup if lookup is not None else review.set_index("key"))["label"]
    items = []
    for row in review.itertuples(index=False):
        similar = [
            {"k": k, "t": thumbs.get(k), "l": str(labels.get(k, ""))} for k in _similar_keys(row, options.similar)
        ]
        items.append(_item(row, thumbs.get(row.key), similar))
    return {
        "version": summary["version"],
        "run": summary["run"],
        "classes": summary["classes"],
        "counts": summary["counts"],
        "images": summary["images"],
        "flagged": summary["review"]["flagged"],
        "health": summary.get("health", {}).get("data_set"),
        "page_size": options.page_size,
        "items": items,
    }


def _similar_keys(row: Any, limit: int) -> list[str]:
    """An image's nearest neighbours (keys), at most ``limit``."""
    keys = getattr(row, "similar_keys", "") or ""
    return [k for k in str(keys).split("|") if k][:limit]


def render(data: dict[str, Any]) -> str:
    """The HTML page with ``data`` inlined as JSON (``</`` escaped so no value can close the script)."""
    payload = (
        json.dumps(data, ensure_ascii=False, separators=(",", ":")).replace("</", "<\\/").replace("<!--", "<\\!--")
    )
    title = f"label review: {data['version']}".replace("&", "&amp;").replace("<", "&lt;")
    return TEMPLATE.read_text(encoding="utf-8").replace("__TITLE__", title).replace("__DATA__", payload)


def write_review(
    out_dir: Path,
    review: pd.DataFrame,
    images_dir: Path,
    summary: dict[str, Any],
    options: LabelOptions,
    table: pd.DataFrame | None = None,
) -> Path:
    """Write ``review.html`` and ``thumbs/`` into ``out_dir``; returns the page's path.

    Thumbnails are made for the flagged images and for their look-alikes (``label.similar`` each), which
    ``table`` (every image of the version; default ``review``) locates.
    """
    lookup = (table if table is not None else review).drop_duplicates("key").set_index("key")
    wanted = list(
        dict.fromkeys(
            [*review["key"], *(k for row in review.itertuples() for k in _similar_keys(row, options.similar))]
        )
    )
    wanted = [k for k in wanted if k in lookup.index]
    names = [f"{i:06d}.jpg" for i in range(len(wanted))]
    sources = [images_dir / p for p in lookup.loc[wanted, "path"]]
    targets = [out_dir / THUMBS / n for n in names]
    (out_dir / THUMBS).mkdir(parents=True, exist_ok=True)
    with ThreadPoolExecutor(max_workers=options.workers) as pool:
        jobs = pool.map(lambda st: write_thumbnail(st[0], st[1], options.thumb_size), zip(sources, targets))
        made = list(tqdm(jobs, total=len(names), desc="thumbnails", unit="img", leave=False))
    thumbs = {k: (f"{THUMBS}/{n}" if ok else None) for k, n, ok in zip(wanted, names, np.asarray(made, bool))}
    page = out_dir / "review.html"
    atomic_write_bytes(page, render(page_data(review, thumbs, summary, options, lookup)).encode("utf-8"))
    return page
