"""Every chart of both reports, drawn with matplotlib (Agg, imported lazily) from numbers already in the JSON.

Each function takes the numbers the report's JSON holds (quantiles, histogram counts, bins) and returns
PNG bytes, so what the page shows is exactly what the JSON says. PNGs carry no date or software stamp:
the same numbers give the same bytes.
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import numpy as np

from data.core.figures import figure_png

DPI = 90
KIND_COLOURS = {"total": "#1f6fb2", "keep": "#2e8b57", "drop": "#c0504d", "fail": "#e07b39", "idle": "#9aa5b1"}


def pyplot() -> Any:
    """matplotlib's pyplot on the Agg backend, with settings that keep output byte-identical."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    plt.rcParams.update({"svg.hashsalt": "visualise", "font.size": 9, "axes.titlesize": 10, "figure.dpi": DPI})
    return plt


def class_colours(classes: Sequence[str]) -> dict[str, Any]:
    """One fixed colour per class (tab10 in sorted-class order)."""
    cmap = pyplot().get_cmap("tab10")
    return {name: cmap(i % 10) for i, name in enumerate(classes)}


def funnel(steps: Sequence[tuple[str, int, str]]) -> bytes:
    """Horizontal bars, top to bottom: ``(label, count, kind)`` with kind a key of ``KIND_COLOURS``."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(9, 0.32 * len(steps) + 0.8))
    y = np.arange(len(steps))
    counts = [c for _, c, _ in steps]
    ax.barh(y, counts, color=[KIND_COLOURS[k] for _, _, k in steps])
    ax.set_yticks(y, [label for label, _, _ in steps])
    ax.invert_yaxis()
    top = max(counts, default=0) or 1
    smallest = min((c for c in counts if c > 0), default=1)
    log = top / smallest > 50  # a partial download or rare drop reasons would be invisible on a linear axis
    for yi, count in zip(y, counts):
        ax.text(count * 1.08 if log else count + top * 0.01, yi, f"{count:,}", va="center", fontsize=8)
    if log:
        ax.set_xscale("log")
        ax.set_xlim(0.8, top * 3)
    else:
        ax.set_xlim(0, top * 1.15)
    ax.set_xlabel("rows / URLs" + (" (log scale)" if log else ""))
    ax.spines[["top", "right"]].set_visible(False)
    return figure_png(fig, DPI)


def grouped_bars(
    categories: Sequence[str],
    series: Mapping[str, Sequence[float]],
    title: str,
    *,
    colours: Sequence[Any] = (),
    category_colours: Sequence[Any] = (),
) -> bytes:
    """Bars per category, one bar per series side by side (e.g. kept rows and stored images per class)."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(max(6, 0.45 * len(categories) * max(1, len(series)) + 2), 3.6))
    width = 0.8 / max(1, len(series))
    x = np.arange(len(categories))
    for i, (name, values) in enumerate(series.items()):
        colour: Any = colours[i] if i < len(colours) else None
        if len(series) == 1 and category_colours:
            colour = list(category_colours)
        ax.bar(x + (i - (len(series) - 1) / 2) * width, values, width, label=name, color=colour)
    ax.set_xticks(x, categories, rotation=40, ha="right")
    ax.set_title(title)
    if len(series) > 1:
        ax.legend(frameon=False)
    ax.spines[["top", "right"]].set_visible(False)
    return figure_png(fig, DPI)


def boxes(stats: Mapping[str, Mapping[str, Mapping[str, Any]]], titles: Mapping[str, str], log: Sequence[str]) -> bytes:
    """One box plot panel per column, one box per class, drawn from quantiles (whiskers at p05 / p95)."""
    plt = pyplot()
    columns = list(stats)
    cols = 2
    rows = (len(columns) + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(12, 3.4 * rows), squeeze=False, layout="constrained")
    for ax in axes.ravel()[len(columns) :]:
        ax.axis("off")
    for ax, column in zip(axes.ravel(), columns):
        per_class = {k: v for k, v in stats[column].items() if v["count"]}
        boxes_ = [
            {"label": k, "whislo": v["p05"], "q1": v["p25"], "med": v["p50"], "q3": v["p75"], "whishi": v["p95"]}
            for k, v in per_class.items()
        ]
        if boxes_:
            ax.bxp(boxes_, showfliers=False, orientation="horizontal")
        if column in log and all(v["p05"] > 0 for v in per_class.values()):
            ax.set_xscale("log")
        ax.set_title(titles.get(column, column))
        ax.invert_yaxis()
    return figure_png(fig, DPI)


def heatmap(matrix: np.ndarray, rows: Sequence[str], columns: Sequence[str], title: str, fmt: str = "{:.0%}") -> bytes:
    """A matrix of shares 0..1 with each cell's value written in it."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(1.0 + 0.9 * len(columns), 0.9 + 0.38 * len(rows)))
    ax.imshow(matrix, cmap="Reds", vmin=0.0, vmax=1.0, aspect="auto")
    ax.set_xticks(range(len(columns)), columns, rotation=40, ha="right")
    ax.set_yticks(range(len(rows)), rows)
    for i in range(matrix.shape[0]):
        for j in range(matrix.shape[1]):
            ax.text(
                j,
                i,
                fmt.format(matrix[i, j]),
                ha="center",
                va="center",
                fontsize=7,
                color="white" if matrix[i, j] > 0.5 else "black",
            )
    ax.set_title(title)
    return figure_png(fig, DPI)


def histograms(panels: Sequence[tuple[str, Sequence[float], Sequence[int], bool]]) -> bytes:
    """Histograms from their bin edges and counts: ``(title, edges, counts, log_x)`` per panel."""
    plt = pyplot()
    from matplotlib import ticker

    fig, axes = plt.subplots(1, len(panels), figsize=(3.8 * len(panels), 3.0), squeeze=False)
    for ax, (title, edges, counts, log_x) in zip(axes.ravel(), panels):
        ax.stairs(counts, edges, fill=True, color="#1f6fb2", alpha=0.8)
        if log_x:
            ax.set_xscale("log")
            ax.xaxis.set_major_formatter(ticker.FuncFormatter(lambda v, _: f"{v:g}"))
            ax.xaxis.set_minor_formatter(ticker.NullFormatter())
        ax.set_title(title)
        ax.spines[["top", "right"]].set_visible(False)
    return figure_png(fig, DPI)


def curves(history: Sequence[Mapping[str, Any]]) -> bytes:
    """Training curves per metric (train and validation), with a line where the fine-tuning phase starts."""
    plt = pyplot()
    from matplotlib import ticker

    metrics = sorted({k for r in history for k in r if not k.startswith("val_")} - {"phase", "epoch", "seconds"})
    metrics = [m for m in metrics if m != "learning_rate"] + (["learning_rate"] if "learning_rate" in metrics else [])
    fig, axes = plt.subplots(1, max(1, len(metrics)), figsize=(3.6 * max(1, len(metrics)), 3.0), squeeze=False)
    epochs = [r["epoch"] for r in history]
    switches = [b["epoch"] for a, b in zip(history, history[1:]) if a["phase"] != b["phase"]]
    for ax, metric in zip(axes.ravel(), metrics):
        for key, style in ((metric, "-"), (f"val_{metric}", "--")):
            points = [(e, r[key]) for e, r in zip(epochs, history) if r.get(key) is not None]
            if points:
                ax.plot(*zip(*points), style, marker=".", label="validation" if key.startswith("val_") else "train")
        for epoch in switches:
            ax.axvline(epoch - 0.5, color="grey", lw=0.8, ls=":")
        ax.set_title(metric)
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(ticker.MaxNLocator(integer=True))
        ax.legend(frameon=False, fontsize=7)
    return figure_png(fig, DPI)


def reliability(bins: Sequence[Mapping[str, Any]], ece: float) -> bytes:
    """Reliability diagram (accuracy against confidence per bin) beside the confidence histogram."""
    plt = pyplot()
    fig, (ax, hist) = plt.subplots(1, 2, figsize=(8, 3.4))
    lows = np.array([b["low"] for b in bins])
    widths = np.array([b["high"] - b["low"] for b in bins])
    acc = np.array([b["accuracy"] if b["count"] else 0.0 for b in bins])
    conf = np.array([b["confidence"] if b["count"] else 0.0 for b in bins])
    ax.bar(lows, acc, widths, align="edge", color="#1f6fb2", edgecolor="white", label="accuracy")
    ax.bar(
        lows,
        conf - acc,
        widths,
        bottom=acc,
        align="edge",
        color="none",
        edgecolor="#c0504d",
        hatch="//",
        label="gap to confidence",
    )
    ax.plot([0, 1], [0, 1], color="grey", ls=":")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_xlabel("confidence")
    ax.set_ylabel("accuracy")
    ax.set_title(f"reliability (ECE {ece:.3f})")
    ax.legend(frameon=False, fontsize=7, loc="upper left")
    hist.bar(lows, [b["count"] for b in bins], widths, align="edge", color="#9aa5b1", edgecolor="white")
    hist.set_xlim(0, 1)
    hist.set_xlabel("confidence")
    hist.set_title("images per bin")
    return figure_png(fig, DPI)


def scatter(
    coords: np.ndarray, labels: Sequence[str], classes: Sequence[str], flagged: np.ndarray, title: str
) -> bytes:
    """A 2-D map coloured by class; ``flagged`` points (label issues) ringed in black."""
    plt = pyplot()
    colours = class_colours(classes)
    fig, ax = plt.subplots(figsize=(7.5, 6))
    labels_ = np.asarray(labels)
    for name in classes:
        mask = labels_ == name
        if mask.any():
            ax.scatter(coords[mask, 0], coords[mask, 1], s=9, color=colours[name], label=name, alpha=0.8, linewidths=0)
    if flagged.any():
        ax.scatter(
            coords[flagged, 0],
            coords[flagged, 1],
            s=40,
            facecolors="none",
            edgecolors="black",
            linewidths=0.8,
            label="label issue",
        )
    ax.set_title(title)
    ax.set_xticks([])
    ax.set_yticks([])
    ax.legend(frameon=False, fontsize=7, loc="center left", bbox_to_anchor=(1.0, 0.5))
    return figure_png(fig, DPI)
