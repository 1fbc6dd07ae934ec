"""The ``make visualise`` page, drawn from :class:`RunReport` only."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from visualise import plots
from visualise.html import Page, check, esc, figure, kpis, note, table, tile, tiles
from visualise.options import VisualiseOptions
from visualise.output import footer


@dataclass
class RunReport:
    """What the page is drawn from: the JSON document, thumbnails, and the sample's features."""

    doc: dict[str, Any]
    thumbs: dict[str, bytes] = field(default_factory=dict)
    coords: dict[str, np.ndarray] = field(default_factory=dict)  # method -> (n, 2)
    features: np.ndarray = field(default_factory=lambda: np.zeros((0, 0)))
    sample: pd.DataFrame = field(default_factory=pd.DataFrame)


_EPOCH_COLUMNS = ("loss", "accuracy", "val_loss", "val_accuracy", "learning_rate", "seconds")


def _overview(page: Page, doc: dict[str, Any]) -> None:
    run, e, c = doc["run"], doc["evaluation"], doc["calibration"]
    cards = [
        (f"{e.get('split', 'test')} accuracy", e.get("accuracy")),
        ("macro-F1", e.get("macro_f1")),
        ("top-3 accuracy", e.get("top3_accuracy")),
        ("ECE", c["ece"]),
        (f"{e.get('split', 'test')} images", e.get("samples")),
        ("training seconds", run.get("seconds")),
    ]
    rows = [(k, run.get(k)) for k in ("run_id", "backbone", "recipe", "image_size")]
    rows.append(("classes", ", ".join(run["classes"])))
    parts = [kpis(cards)]
    sanity = e.get("sanity")
    if sanity:
        verdict = (
            f"beats the majority-class baseline (macro-F1 {sanity['macro_f1']} vs {sanity['constant_macro_f1']})"
            if sanity["passed"]
            else "not useful yet: " + "; ".join(sanity.get("findings", []))
        )
        parts.append(check(bool(sanity["passed"]), verdict))
    if e.get("sources"):  # a fusion run: each source on the same rows
        body = [(name, v["accuracy"], v["macro_f1"], v["loss"], v["samples"]) for name, v in e["sources"].items()]
        parts.append(table(["source", "accuracy", "macro-F1", "loss", "rows"], body, sortable=False))
    page.add("overview", "Overview", *parts, table(["", "value"], rows, sortable=False))


def _curves(page: Page, history: list[dict[str, Any]]) -> None:
    if not history:
        page.add("curves", "Training curves", note("the run's metrics.json has no history"))
        return
    columns = [c for c in _EPOCH_COLUMNS if any(c in r for r in history)]
    rows = [(r["phase"], r["epoch"], *(r.get(c) for c in columns)) for r in history]
    page.add(
        "curves",
        "Training curves",
        figure(plots.curves(history), "training curves", "solid: train, dashed: validation; dotted line: next phase"),
        table(["phase", "epoch", *columns], rows),
    )


def _confusion(page: Page, doc: dict[str, Any]) -> None:
    from data.core.figures import confusion_png

    e, classes = doc["evaluation"], doc["run"]["classes"]
    per_class = e.get("per_class", {})
    metrics = ("precision", "recall", "f1")
    bars = plots.grouped_bars(
        classes, {m: [per_class.get(c, {}).get(m, 0.0) for c in classes] for m in metrics}, "per class"
    )
    rows = [(c, *(per_class.get(c, {}).get(m) for m in (*metrics, "support"))) for c in classes]
    confused = [(p["true"], p["predicted"], p["count"], p["share_of_true"]) for p in e.get("most_confused", [])]
    page.add(
        "confusion",
        "Confusion matrix and per-class scores",
        figure(
            confusion_png(np.asarray(e["confusion_matrix"]), classes, f"{e.get('split')} confusion matrix"),
            "confusion matrix",
        ),
        figure(bars, "per-class precision, recall and F1"),
        table(["class", *metrics, "support"], rows),
        "<h3>Most confused pairs</h3>",
        table(["true", "predicted", "images", "share of true class"], confused),
    )


def _losses(page: Page, data: RunReport) -> None:
    worst = data.doc["top_losses"]
    text = note("highest cross-entropy first: the model is most sure these labels are wrong (or the input is odd)")
    if worst and not data.thumbs:  # a title run: the titles themselves
        rows = [(r["title"], r["label"], r["predicted"], r["confidence"], r["p_label"], r["loss"]) for r in worst]
        columns = ["title", "given", "predicted", "confidence", "p(given)", "loss"]
        page.add("losses", "Highest-loss titles", text, table(columns, rows))
        return
    items = [
        tile(
            data.thumbs[r["key"]],
            [
                *([r["title"][:80]] if r.get("title") else []),
                f"given: {r['label']}",
                f"predicted: {r['predicted']} ({r['confidence']:.2f})",
                f"p(given) {r['p_label']:.3f}, loss {r['loss']:.2f}",
            ],
            flagged=f"label issue: {r['issue']}" if r.get("issue") else "",
        )
        for r in worst
    ]
    page.add("losses", "Highest-loss images", text, tiles(items))


def _calibration(page: Page, c: dict[str, Any]) -> None:
    rows = [(f"{b['low']:.2f}-{b['high']:.2f}", b["count"], b["accuracy"], b["confidence"]) for b in c["bins"]]
    page.add(
        "calibration",
        "Calibration",
        kpis(
            [
                ("expected calibration error", c["ece"]),
                ("largest bin gap", c["mce"]),
                ("mean confidence", c["mean_confidence"]),
                ("accuracy", c["accuracy"]),
            ]
        ),
        figure(plots.reliability(c["bins"], c["ece"]), "reliability diagram"),
        table(["confidence bin", "images", "accuracy", "mean confidence"], rows),
    )


def _embedding(page: Page, data: RunReport) -> None:
    section = data.doc["embedding"]
    if section.get("skipped"):
        page.add("map", "Embedding map", note(f"no map: {section['skipped']}"))
        return
    parts = [
        note(
            f"{section['points']:,} images, up to {section['per_class']} per class (seeded), embedded by the "
            "run's model (penultimate layer)"
        )
    ]
    if data.coords:
        flagged = (data.sample["issue"] != "").to_numpy()
        for method, coords in data.coords.items():
            shares = ", ".join(f"{100 * v:.0f}%" for v in section["pca_variance_share"])
            title = method.upper() + (f" (variance explained: {shares})" if method == "pca" else "")
            parts.append(
                figure(
                    plots.scatter(coords, list(data.sample["label"]), data.doc["run"]["classes"], flagged, title),
                    f"{method} map",
                )
            )
        if section["flagged"]:
            parts.append(note(f"{section['flagged']:,} sampled images have a label issue (ringed)"))
        if "umap" not in data.coords:
            parts.append(note("UMAP: not installed (pip install umap-learn), PCA only"))
    if "projector" in data.doc:
        p = data.doc["projector"]
        parts.append(
            f"<p>TensorBoard projector export of the same {p['points']:,} images ({p['dimensions']} dimensions, sprite "
            f"{p['sprite_px']} px): the folder <code>{esc(p['folder'])}/</code> beside this file; open it with "
            f"<code>.venv/bin/tensorboard --logdir {esc(p['folder'])}</code> from here.</p>"
        )
    page.add("map", "Embedding map", *parts)


def _issues(page: Page, issues: dict[str, Any]) -> None:
    if not issues.get("source"):
        page.add("issues", "Label issues", note("no issues.parquet from make label yet: nothing is marked"))
        return
    rows = [(r["issue_type"], r["label"], r["count"]) for r in issues["by_type_and_class"]]
    page.add(
        "issues",
        "Label issues (make label)",
        kpis([("issue rows", issues["rows"]), ("images", issues["keys"]), ("not in this run", issues["not_in_run"])]),
        table(["issue", "given class", "images"], rows),
    )


def _comparison(page: Page, rows: list[dict[str, Any]], current: str) -> None:
    cols = ("backbone", "recipe", "image_size", "epochs", "scored_on", "accuracy", "macro_f1", "seconds")
    body = [
        ((r["run_id"] + (" (this run)" if r["run_id"] == current else "")), *(r.get(c) for c in cols)) for r in rows
    ]
    page.add(
        "runs",
        "Runs compared",
        table(["run", *cols], body),
        note("scored on the test split where make evaluate ran, else validation"),
    )


def render_report(data: RunReport, options: VisualiseOptions) -> bytes:
    """The run report page as bytes."""
    doc = data.doc
    page = Page(
        f"Run report: {doc['run']['run_id']}",
        "make visualise: how the model learned, what it confuses, which labels are suspect",
    )
    _overview(page, doc)
    _curves(page, doc["history"])
    _confusion(page, doc)
    _losses(page, data)
    _calibration(page, doc["calibration"])
    _embedding(page, data)
    _issues(page, doc["label_issues"])
    _comparison(page, doc["comparison"], doc["run"]["run_id"])
    sampling = [
        f"map of {doc['embedding']['points']:,} images ({doc['embedding']['per_class']} per class)",
        f"{len(doc['top_losses'])} highest-loss {'titles' if doc['run'].get('modality') == 'text' else 'images'}",
    ]
    return page.render(footer(options.max_report_mb, sampling, options.seed))
