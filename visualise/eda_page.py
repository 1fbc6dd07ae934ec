"""The ``make eda`` page, drawn from :class:`EdaData` only (every number comes from its JSON)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from visualise import plots
from visualise.duplicates import Group
from visualise.funnel import funnel_steps
from visualise.html import Page, check, esc, figure, kpis, note, pct, table, tile, tiles
from visualise.options import VisualiseOptions
from visualise.output import footer
from visualise.tabular import LOG_SCALE, NUMERIC, QUANTILES


@dataclass
class EdaData:
    """What the page is drawn from: the JSON document and the pictures it embeds (not in the JSON)."""

    doc: dict[str, Any]
    samples: dict[str, bytes] = field(default_factory=dict)  # class -> contact sheet JPEG
    thumbs: dict[str, bytes] = field(default_factory=dict)  # key -> thumbnail JPEG (duplicate examples)
    exact_groups: list[Group] = field(default_factory=list)
    near_groups: list[Group] = field(default_factory=list)


def _funnel(page: Page, f: dict[str, Any]) -> None:
    steps = funnel_steps(f)
    checks = "".join(check(ok, name.replace("_", " ")) for name, ok in f["checks"].items())
    parts = [figure(plots.funnel(steps), "funnel", "each row's fate, from the CSV files to the stored images")]
    parts.append(
        table(["step", "count", "share of CSV rows"], [(s.strip(), n, pct(n, f["csv_rows"])) for s, n, _ in steps])
    )
    parts.append(checks)
    if f.get("failure_reasons"):
        rows = [
            (status, reason, n) for status, reasons in f["failure_reasons"].items() for reason, n in reasons.items()
        ]
        parts += ["<h3>Why downloads failed</h3>", table(["status", "reason", "URLs"], rows)]
    cols = ["kept", "urls", "stored"] if "urls" in f else ["kept"]
    per_class: list[tuple[Any, ...]] = [
        (label, *(row.get(c, 0) for c in cols)) for label, row in f["per_class"].items()
    ]
    if "urls" in f:
        per_class = [(*r, pct(r[3], r[2])) for r in per_class]
    parts += ["<h3>Per class</h3>", table(["class", *cols, *(["stored / tried"] if "urls" in f else [])], per_class)]
    if f.get("manifest_rows_not_in_catalogue"):
        parts.append(
            note(f"{f['manifest_rows_not_in_catalogue']:,} manifest rows have keys the catalogue no longer has")
        )
    page.add("funnel", "Where the rows went", *parts)


def _balance(page: Page, b: dict[str, Any], classes: list[str]) -> None:
    colours = plots.class_colours(classes)
    before = sorted(b["before"].items(), key=lambda kv: -kv[1])
    mapped = {r["main_category"]: r["label"] for r in b["mapping"]}
    plot_before = plots.grouped_bars(
        [k for k, _ in before],
        {"kept rows": [v for _, v in before]},
        "before: main_category (kept rows), coloured by the class it maps to",
        category_colours=[colours.get(mapped.get(k, ""), "#9aa5b1") for k, _ in before],
    )
    series = {"kept rows": [b["after"][c]["kept"] for c in classes]}
    if "imbalance_stored" in b:
        series["stored images"] = [b["after"][c]["stored"] for c in classes]
    shares = {name: [100.0 * v / (sum(values) or 1) for v in values] for name, values in series.items()}
    plot_after = plots.grouped_bars(
        classes, shares, "after: share of each reduced class (%)", colours=["#1f6fb2", "#2e8b57"]
    )
    ratios = [("largest / smallest, before", b["imbalance_before"]), ("after (kept)", b["imbalance_after"])]
    if "imbalance_stored" in b:
        ratios.append(("after (stored)", b["imbalance_stored"]))
    rows = [(r["main_category"], r["label"], r["kept"], r["stored"], r["dropped_unmapped"]) for r in b["mapping"]]
    page.add(
        "balance",
        "Class balance before and after the reduction",
        kpis(ratios),
        figure(
            plot_before,
            "before the reduction",
            f"{len(before)} main categories; colours: {len(set(mapped.values()))} labels",
        ),
        figure(plot_after, "after the reduction"),
        "<h3>Mapping (data/label_mapping.csv)</h3>",
        table(["main_category", "label", "kept rows", "stored images", "dropped (unmapped)"], rows),
    )


def _distributions(page: Page, dist: dict[str, Any]) -> None:
    parts = [
        figure(
            plots.boxes(dist, NUMERIC, LOG_SCALE), "distributions", "boxes: p25-p75 and median; whiskers: p05 and p95"
        )
    ]
    for column, per_class in dist.items():
        rows = [
            (name, s["count"], s["missing"], s["mean"], *(s[q] for q in QUANTILES), s["min"], s["max"])
            for name, s in per_class.items()
        ]
        parts += [
            f"<h3>{esc(NUMERIC[column])}</h3>",
            table(["class", "count", "missing", "mean", *QUANTILES, "min", "max"], rows),
        ]
    page.add("distributions", "Price, discount and ratings per class", *parts)


def _missing(page: Page, m: dict[str, Any]) -> None:
    columns = list(m["columns"])
    classes = list(m["per_class"])
    share = np.array([[m["per_class"][c][col] / max(1, m["class_rows"][c]) for col in columns] for c in classes])
    rows = [(col, m["columns"][col], pct(m["columns"][col], m["rows"])) for col in columns]
    page.add(
        "missing",
        "Missing values",
        figure(plots.heatmap(share, classes, columns, "share missing per class"), "missing values"),
        table(["column", "missing rows", "share"], rows),
        note("missing = null, or an empty text; prices, counts and ratings that could not be parsed are null"),
    )


def _images(page: Page, data: EdaData, classes: list[str]) -> None:
    sizes = data.doc["image_sizes"]
    panels = [
        ("original longer side (px)", sizes["longer_side_px"], True),
        ("aspect ratio (width / height)", sizes["aspect_w_over_h"], True),
        ("stored file size (KB)", sizes["stored_kb"], True),
    ]
    chart = plots.histograms([(t, h["edges"], h["counts"], log) for t, h, log in panels])
    cols = ["images", "median_width", "median_height", "median_aspect", "median_kb"]
    rows = [(label, *(row[c] for c in cols)) for label, row in sizes["per_class"].items()]
    page.add(
        "images",
        "Image sizes",
        figure(
            chart,
            "image size histograms",
            f"{sizes['images']:,} stored images; {sizes['unknown_size']:,} without a recorded size",
        ),
        table(["class", *cols], rows),
    )
    parts = [note(f"{data.doc['samples']['per_class']} random stored photos per class (seeded)")]
    for label in classes:
        if label in data.samples:
            parts += [
                f"<h3>{esc(label)}</h3>",
                figure(data.samples[label], f"sample photos of {label}", mime="image/jpeg"),
            ]
    page.add("samples", "Sample photos per class", *parts)


def _group_tiles(groups: list[Group], thumbs: dict[str, bytes]) -> str:
    blocks = []
    for group in groups:
        items = [tile(thumbs[k], [label, k]) for k, label in zip(group.keys, group.labels) if k in thumbs]
        more = f" (+{len(group.keys) - len(items)} more)" if len(group.keys) > len(items) else ""
        title = f"{len(group.keys)} images, {'ACROSS CLASSES' if group.cross_class else 'one class'}{more}"
        blocks.append(f"<h3>{esc(title)}</h3>{tiles(items)}")
    return "".join(blocks)


def _duplicates(page: Page, data: EdaData) -> None:
    d = data.doc["duplicates"]
    exact, near = d["exact"], d["near"]
    page.add(
        "duplicates",
        "Exact and near duplicates",
        "<h3>Exact: the same file bytes under several keys (sha256)</h3>",
        kpis(
            [
                ("groups", exact["groups"]),
                ("images in them", exact["images"]),
                ("groups across classes", exact["cross_class_groups"]),
            ]
        ),
        _group_tiles(data.exact_groups, data.thumbs),
        f"<h3>Near: difference hashes within {near['distance_bits']} of 64 bits</h3>",
        kpis(
            [
                ("groups", near["groups"]),
                ("images in them", near["images"]),
                ("groups across classes", near["cross_class_groups"]),
                ("pairs", near["pairs"]),
            ]
        ),
        note(
            f"{near['hashed']:,} of {near['distinct_files']:,} distinct files hashed; {near['unreadable']:,} unreadable"
        ),
        _group_tiles(data.near_groups, data.thumbs),
    )


def render_eda(data: EdaData, options: VisualiseOptions) -> bytes:
    """The EDA page as bytes."""
    doc = data.doc
    f = doc["funnel"]
    page = Page(
        "Data report: catalogue and images", "make eda: from the Kaggle CSV files to the stored, labelled photos"
    )
    headline = [("CSV rows", f["csv_rows"]), ("kept products", f["kept"]), ("classes", len(doc["classes"]))]
    if "stored" in f:
        headline += [("URLs tried", f["urls"]), ("images stored", f["stored"])]
    page.add(
        "overview", "Overview", kpis(headline), check(f["adds_up"], "the funnel adds up (every row is accounted for)")
    )
    _funnel(page, f)
    _balance(page, doc["balance"], doc["classes"])
    _distributions(page, doc["distributions"])
    _missing(page, doc["missing"])
    sampling = ["no images yet (run make download-images)"]
    if "image_sizes" in doc:
        _images(page, data, doc["classes"])
        _duplicates(page, data)
        near = doc["duplicates"]["near"]
        sampling = [
            f"{options.thumbnails_per_class} photos per class",
            f"{near['hashed']:,} of {near['distinct_files']:,} distinct files hashed for near duplicates",
        ]
    return page.render(footer(options.max_report_mb, sampling, options.seed))
