"""``make visualise``: one offline HTML report of a training run, plus ``report.json`` and a projector export.

    python -m visualise.report [--config data/config.toml] [--run latest|RUN_ID|RUN_DIR] [--out FOLDER]

Reads the run folder (metrics.json with its history, classes.json, split.csv, evaluation/ from ``make
evaluate``), the images, every other run under ``[paths] runs`` (the comparison) and ``make label``'s
issues.parquet when there is one; writes ``{reports}/<run id>/``: report.html (self-contained), report.json
(every number the page shows), projector/ (``tensorboard --logdir`` it) and config.resolved.json.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

import pandas as pd

from data.core.cli import run, stage_parser
from data.core.config import Config, ConfigError, config_from_args
from data.core.contracts import REPORTS
from data.core.io import atomic_write_bytes
from data.core.runs import add_run_argument, run_images_dir
from visualise.embedding import embed, pca_2d, stratified_sample, umap_2d, umap_available, write_projector
from visualise.images import encode, letterboxed
from visualise.inputs import RunInputs, label_issues
from visualise.options import VisualiseOptions
from visualise.report_page import RunReport, render_report
from visualise.output import MB, check_report_dir, json_bytes, write_report_dir
from visualise.run_stats import RunFiles, calibration, compare_runs, history, recipe, scores, top_losses

log = logging.getLogger(__name__)

HTML_FILE, JSON_FILE, PROJECTOR = "report.html", "report.json", "projector"


def _issues_section(issues: pd.DataFrame | None, source: str, labels: pd.Series) -> dict[str, Any]:
    if issues is None:
        return {"source": None}
    known = issues[issues["key"].isin(labels.index)]
    by_class = known.assign(label=known["key"].map(labels)).groupby(["issue_type", "label"]).size()
    return {
        "source": source,
        "rows": int(len(issues)),
        "keys": int(issues["key"].nunique()),
        "not_in_run": int((~issues["key"].isin(labels.index)).sum()),
        "by_type": {str(k): int(v) for k, v in issues["issue_type"].value_counts().sort_index().items()},
        "by_type_and_class": [{"issue_type": t, "label": c, "count": int(n)} for (t, c), n in by_class.items()],
    }


def _methods(options: VisualiseOptions) -> list[str]:
    if options.map_method == "umap" and not umap_available():
        raise ConfigError("visualise.map_method = 'umap' but umap-learn is not installed; use 'auto' or 'pca'")
    return ["pca"] + (
        ["umap"] if options.map_method == "umap" or (options.map_method == "auto" and umap_available()) else []
    )


def _embedding(
    data: RunReport, files: RunFiles, images_dir: Path, options: VisualiseOptions, flagged: dict[str, str]
) -> None:
    """The stratified sample, its features and 2-D maps; fills ``data`` and its ``embedding`` section."""
    sample = stratified_sample(files.split, images_dir, options.map_per_class, options.seed)
    sample = sample.assign(issue=[flagged.get(k, "") for k in sample["key"]])
    section: dict[str, Any] = {"per_class": options.map_per_class, "points": int(len(sample))}
    section["sample_per_class"] = {str(k): int(v) for k, v in sample["label"].value_counts().sort_index().items()}
    section["flagged"] = int((sample["issue"] != "").sum())
    if len(sample) >= 2:
        data.features = embed(files.run_dir, [images_dir / p for p in sample["path"]], options.batch_size)
        data.coords["pca"], section["pca_variance_share"] = pca_2d(data.features)
        for method in _methods(options)[1:]:
            data.coords[method] = umap_2d(data.features, options.seed)
        section["methods"] = list(data.coords)
        section["points_xy"] = {
            m: [[k, round(float(x), 4), round(float(y), 4)] for k, (x, y) in zip(sample["key"], c)]
            for m, c in data.coords.items()
        }
    data.sample = sample
    data.doc["embedding"] = section


def build_report(inputs: RunInputs, options: VisualiseOptions) -> RunReport:
    """Everything the run report shows except the projector files (reads; writes nothing).

    Raises:
        InputError: the run folder lacks a file (e.g. no evaluation yet).
    """
    run_dir, images_dir = inputs.run_dir, inputs.images
    files = RunFiles.load(run_dir)
    labels = files.split.set_index("key")["label"]
    issues, source = label_issues(inputs.labels, options.label_version)
    flagged = (
        issues.groupby("key")["issue_type"].agg(lambda s: ", ".join(sorted(set(s)))).to_dict()
        if issues is not None
        else {}
    )
    worst = top_losses(files.predictions, options.top_losses)
    for row in worst:
        row["issue"] = flagged.get(row["key"], "")
    doc: dict[str, Any] = {
        "run": {
            "run_id": run_dir.name,
            "backbone": files.metrics.get("backbone"),
            "recipe": recipe(files.options, files.metrics),
            "image_size": files.metrics.get("image_size"),
            "classes": list(files.classes),
            "data": files.metrics.get("data", {}),
            "seconds": files.metrics.get("seconds"),
            "validation": {k: files.metrics.get("validation", {}).get(k) for k in ("accuracy", "macro_f1", "loss")},
        },
        "options": options.to_dict(),
        "history": history(files.metrics),
        "evaluation": scores(files.evaluation),
        "calibration": calibration(files.predictions, options.calibration_bins),
        "top_losses": worst,
        "label_issues": _issues_section(issues, source, labels),
        "comparison": compare_runs(inputs.runs),
    }
    modality = str(files.metrics.get("modality", "image"))
    doc["run"]["modality"] = modality
    data = RunReport(doc)
    if modality == "text":  # titles, no photos: the highest losses are listed as titles, no map
        data.doc["embedding"] = _no_map("a title run has no photos to map")
        return data
    if modality == "both":  # the photos are the fused photo run's, and so is the map
        from train.predict import read_fusion

        images_dir = run_images_dir(Path(read_fusion(run_dir)["image_run"]), images_dir)
        data.doc["embedding"] = _no_map("the fusion's photo model is mapped in its photo run's report")
    for row in worst:
        data.thumbs[row["key"]] = encode(letterboxed(images_dir / row["path"], 154))
    if modality == "image":
        _embedding(data, files, images_dir, options, flagged)
    return data


def _no_map(why: str) -> dict[str, Any]:
    """The embedding section of a run that has no photo embedding of its own."""
    return {"per_class": 0, "points": 0, "flagged": 0, "skipped": why}


def visualise_run(
    inputs: RunInputs, out_dir: Path, options: VisualiseOptions, *, config: Config | None = None
) -> dict[str, Any]:
    """Build the report folder ``out_dir`` for ``inputs.run_dir`` (replaced whole, or left as it was).

    Args:
        inputs: the run folder, the images, the runs folder and the labels folder.
        out_dir: the report folder (``{reports}/<run id>``).
        options: the ``[visualise]`` options.
        config: the resolved configuration, saved beside the report.

    Returns:
        The report's JSON document.
    """
    check_report_dir(out_dir, JSON_FILE)  # before the embedding pass
    data = build_report(inputs, options)

    def fill(tmp: Path) -> None:
        if len(data.sample) >= 2:
            meta = data.sample[["key", "label", "split", "issue", "path"]]
            data.doc["projector"] = write_projector(
                tmp / PROJECTOR, data.features, meta, inputs.images, options.sprite_px
            )
        html = render_report(data, options)
        data.doc["budget"] = {"html_bytes": len(html), "limit_mb": options.max_report_mb}
        if len(html) > options.max_report_mb * MB:
            log.warning("report.html is %.1f MB, over the %.0f MB budget", len(html) / MB, options.max_report_mb)
        atomic_write_bytes(tmp / HTML_FILE, html)
        atomic_write_bytes(tmp / JSON_FILE, json_bytes(data.doc))

    write_report_dir(out_dir, JSON_FILE, fill, config)
    return data.doc


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point (``make visualise``)."""
    parser = stage_parser("visualise.report", __doc__)
    add_run_argument(parser, "visualise")
    parser.add_argument("--out", type=Path, help="report folder (default: {reports}/<run id>)")
    args = parser.parse_args(argv)

    def body() -> int:
        started = time.perf_counter()
        cfg = config_from_args(args)
        options = VisualiseOptions.from_config(cfg, cli=args)
        inputs = RunInputs.from_config(cfg, options.run)
        out_dir = args.out or cfg.path(REPORTS) / inputs.run_dir.name
        doc = visualise_run(inputs, out_dir, options, config=cfg)
        e, m = doc["evaluation"], doc["embedding"]
        mapped = (
            f"no map ({m['skipped']})"
            if m.get("skipped")
            else f"map of {m['points']} images ({m['flagged']} with label issues)"
        )
        print(
            f"visualise: run {inputs.run_dir.name}: {e.get('split')} accuracy {e.get('accuracy')}, "
            f"macro-F1 {e.get('macro_f1')}, ECE {doc['calibration']['ece']}; {mapped}; "
            f"{len(doc['comparison'])} runs compared"
        )
        projector = f", {PROJECTOR}/" if "projector" in doc else ""
        print(
            f"  wrote {out_dir / HTML_FILE} ({doc['budget']['html_bytes'] / MB:.1f} MB), {JSON_FILE}{projector} "
            f"in {time.perf_counter() - started:.1f} s"
        )
        if "projector" in doc:
            print(f"  projector: .venv/bin/tensorboard --logdir {out_dir / PROJECTOR}")
        return 0

    return run(body)


if __name__ == "__main__":
    raise SystemExit(main())
