"""The catalogue's columns: per-class distributions of price, discount, rating and number of ratings,
missing values, and the image sizes of the download manifest."""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import pandas as pd

QUANTILES = {"p05": 0.05, "p25": 0.25, "p50": 0.5, "p75": 0.75, "p95": 0.95}
NUMERIC = {
    "actual_price": "price (₹)",
    "discount_price": "discounted price (₹)",
    "discount_pct": "discount (%)",
    "ratings": "rating (stars)",
    "no_of_ratings": "number of ratings",
}
LOG_SCALE = ("actual_price", "discount_price", "no_of_ratings")
ALL = "(all classes)"


def _round(value: float) -> float:
    return float(round(float(value), 4))


def describe(values: pd.Series) -> dict[str, Any]:
    """Count, missing, mean, min, quantiles (linear interpolation, as pandas) and max of one column."""
    present = values.dropna().to_numpy(dtype=float)
    doc: dict[str, Any] = {"count": int(len(present)), "missing": int(len(values) - len(present))}
    if not len(present):
        return {**doc, "mean": None, "min": None, **{k: None for k in QUANTILES}, "max": None}
    qs = np.quantile(present, list(QUANTILES.values()))
    return {
        **doc,
        "mean": _round(present.mean()),
        "min": _round(present.min()),
        **{k: _round(q) for k, q in zip(QUANTILES, qs)},
        "max": _round(present.max()),
    }


def with_discount(catalogue: pd.DataFrame) -> pd.DataFrame:
    """The catalogue plus ``discount_pct``: 100 x (actual - discounted) / actual where both prices are known."""
    actual, discounted = catalogue["actual_price"], catalogue["discount_price"]
    usable = actual.notna() & discounted.notna() & (actual > 0)
    discount = (100.0 * (actual - discounted) / actual).where(usable)
    return catalogue.assign(discount_pct=discount)


def distributions(catalogue: pd.DataFrame, classes: Sequence[str]) -> dict[str, dict[str, Any]]:
    """``{column: {class: describe(...)}}`` for each numeric column, plus all classes together."""
    frame = with_discount(catalogue)
    groups = dict(tuple(frame.groupby("label", sort=True)))
    out: dict[str, dict[str, Any]] = {}
    for column in NUMERIC:
        if column not in frame:
            continue
        out[column] = {name: describe(groups[name][column]) for name in classes if name in groups}
        out[column][ALL] = describe(frame[column])
    return out


def _missing(series: pd.Series) -> pd.Series:
    """Null, or an empty string in a text column."""
    missing = series.isna()
    if not (pd.api.types.is_numeric_dtype(series) or pd.api.types.is_bool_dtype(series)):
        missing |= series.eq("").fillna(False).astype(bool)
    return missing


def missing_values(catalogue: pd.DataFrame, columns: Sequence[str]) -> dict[str, Any]:
    """Missing values (null or empty text) per column: in all and per class."""
    present = [c for c in columns if c in catalogue]
    flags = pd.DataFrame({c: _missing(catalogue[c]) for c in present})
    per_class = flags.groupby(catalogue["label"], sort=True).sum()
    return {
        "rows": int(len(catalogue)),
        "columns": {c: int(flags[c].sum()) for c in present},
        "per_class": {str(k): {c: int(v) for c, v in row.items()} for k, row in per_class.iterrows()},
        "class_rows": {str(k): int(v) for k, v in catalogue["label"].value_counts().sort_index().items()},
    }


def histogram(values: np.ndarray, edges: np.ndarray) -> dict[str, Any]:
    """Counts over ``edges``; values outside are counted in the first or last bin (the counts add up)."""
    clipped = np.clip(values, edges[0], edges[-1])
    counts, _ = np.histogram(clipped, edges)
    return {"edges": [_round(e) for e in edges], "counts": [int(c) for c in counts]}


def _log_edges(values: np.ndarray, bins: int, low: float = 1.0) -> np.ndarray:
    lo = max(low, float(values.min())) if len(values) else low
    hi = max(lo * 1.01, float(values.max())) if len(values) else low * 2
    return np.geomspace(lo, hi, bins + 1)


def image_sizes(stored: pd.DataFrame, bins: int) -> dict[str, Any]:
    """Histograms of the original longer side, the aspect ratio and the stored file size, and per-class medians.

    Args:
        stored: the manifest's stored rows (label, orig_width, orig_height, bytes).
        bins: histogram bins.
    """
    sizes = stored[["orig_width", "orig_height"]].astype(float)
    known = (sizes["orig_width"] > 0) & (sizes["orig_height"] > 0)
    sized = stored[known].assign(
        longer=sizes[known].max(axis=1), aspect=sizes.loc[known, "orig_width"] / sizes.loc[known, "orig_height"]
    )
    longer = sized["longer"].to_numpy(float)
    aspect = sized["aspect"].to_numpy(float)
    kb = stored["bytes"].astype(float).to_numpy() / 1000.0
    per_class = sized.groupby("label", sort=True).agg(
        images=("label", "size"),
        median_width=("orig_width", "median"),
        median_height=("orig_height", "median"),
        median_aspect=("aspect", "median"),
    )
    kb_per_class = (stored["bytes"].astype(float) / 1000.0).groupby(stored["label"], sort=True).median()
    return {
        "images": int(len(stored)),
        "unknown_size": int((~known).sum()),
        "longer_side_px": histogram(longer, _log_edges(longer, bins)),
        "aspect_w_over_h": histogram(aspect, np.geomspace(0.25, 4.0, bins + 1)),
        "stored_kb": histogram(kb, _log_edges(kb, bins, low=0.1)),
        "per_class": {
            str(k): {
                **{c: _round(v) for c, v in row.items() if c != "images"},
                "images": int(row["images"]),
                "median_kb": _round(kb_per_class.get(k, float("nan"))),
            }
            for k, row in per_class.iterrows()
        },
    }
