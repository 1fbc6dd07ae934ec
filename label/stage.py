"""``make label``: find mislabelled, duplicate and junk images with a training run's model.

    python -m label [--config data/config.toml] [--set label.key=value ...] [--run latest|RUN_ID|RUN_DIR]
                    [--version NAME]

Reads the download manifest (``[paths] manifest``) and the run's model and ``split.csv``; writes
``{labels}/<version>/``: issues.parquet (one row per stored image), summary.json, review.html with
thumbs/, left_out.csv (stored rows it could not use, with the reason), config.resolved.json; and points
``{labels}/latest`` at it. ``make apply-labels`` turns a
review's decisions into a new data version (label/apply.py).
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from data.core.cli import run, stage_parser
from data.core.config import Config
from data.core.contracts import APPLIED, CATALOGUE, IMAGES, ISSUES, LABELS, MANIFEST, RUNS
from data.core.errors import InputError
from data.core.io import staged_dir, write_json, write_parquet
from data.core.runs import add_run_argument, resolve_run
from label.duplicates import describe_clusters, exact_groups
from label.embed import choose_source
from label.health import class_imbalance, health
from label.inputs import check_version_name, class_difference, new_version, read_manifest, usable_images
from label.options import LabelOptions
from label.quality import measure_all, quality_flags
from label.table import issue_columns, label_columns, label_summary, order_for_review, summarise

log = logging.getLogger(__name__)

LEFT_OUT = "left_out.csv"  # stored rows the stage could not use, with the reason
_UNREADABLE_FILL = {"cluster": -1, "cluster_size": 1, "cluster_kind": "", "cluster_labels": "", "cross_class": False}
_UNREADABLE_FILL.update({"cross_split": False, "label_issue": False, "cleanlab_default": False, "knn_voters": 0})
_UNREADABLE_FILL.update({"outlier": False})


@dataclass(frozen=True)
class LabelResult:
    """Where the label version went and its summary."""

    out_dir: Path
    summary: dict[str, Any]


def _analyse(
    run_dir: Path, images: pd.DataFrame, files: Sequence[Path], hashes: np.ndarray, options: LabelOptions
) -> tuple[pd.DataFrame, dict]:
    """Embeddings, neighbours, duplicate clusters, outliers and label scores of the readable images."""
    from threadpoolctl import threadpool_limits

    from label.embed import embed, model_fingerprint, project, unit_rows
    from label.health import outliers
    from label.issues import score_labels
    from label.neighbours import clusters, near_radius
    from label.partition import search

    vectors, embedding = embed(run_dir, files, Path(options.cache_dir), options.batch_size, options.embeddings)
    classes = tuple(sorted(images["label"].unique()))
    labels = images["label"].map({c: i for i, c in enumerate(classes)}).to_numpy(np.int64)
    # BLAS and OpenMP threads beyond the free cores make these steps many times slower, not faster
    with threadpool_limits(options.threads or None):
        reduced = project(vectors, options.dims, options.seed)
        del vectors
        # the leading components carry the neighbourhoods; the search costs n^2 x its dimensions
        searched = reduced[:, : options.search_dims] if options.search_dims else reduced
        wanted = max(options.neighbours, options.similar)
        indices, sims, how = search(unit_rows(searched), wanted, options.exact_limit, options.probe, options.seed)
        radius = near_radius(sims, options.near_duplicate)
        cluster = clusters(indices, sims, radius, exact_groups(images["sha256"]), hashes, options.near_hash_bits)
        k = (indices[:, : options.neighbours], sims[:, : options.neighbours])
        scores = score_labels(reduced, labels, cluster, k, len(classes), options)
    outlier_score, outlier, outlier_distance = outliers(k[1], options.outlier_iqr)
    keys = images["key"].to_numpy()
    columns = pd.concat(
        [describe_clusters(images.reset_index(drop=True), cluster), label_columns(scores, labels, classes)], axis=1
    )
    columns["outlier"], columns["outlier_score"] = outlier, outlier_score.round(4)
    columns["similar_keys"] = ["|".join(row) for row in keys[indices[:, : options.similar]]]
    if indices.shape[1]:
        columns["nearest_key"], columns["nearest_similarity"] = keys[indices[:, 0]], sims[:, 0].round(4)
    columns.index = images.index
    info = {
        "classes": list(classes),
        "model_sha1": model_fingerprint(run_dir),
        "embedding": {
            **embedding,
            "dimensions": int(reduced.shape[1]),
            "search_dimensions": int(searched.shape[1]),
            "search": how,
        },
        "near_duplicate_radius": round(radius, 6),
        "outlier_distance": round(outlier_distance, 6),
        **label_summary(scores, labels, classes),
    }
    return columns, info


def find_issues(
    run_dir: Path,
    manifest: Path,
    images_dir: Path,
    out_dir: Path,
    options: LabelOptions,
    *,
    config: Config | None = None,
    catalogue: Path | None = None,
) -> LabelResult:
    """Write one label version: per-image issues, a summary and a review page.

    Args:
        run_dir: a finished training run (model.keras, classes.json, split.csv).
        manifest: the download manifest whose labels are checked (never modified).
        images_dir: the folder the manifest's ``path`` column is relative to.
        out_dir: ``{labels}/<version>``: built beside, then moved into place whole.
        options: the ``[label]`` options.
        config: the resolved configuration, saved as config.resolved.json.
        catalogue: ``{catalogue}``, whose titles give the ``title_disagrees`` opinion (label/title.py).

    Raises:
        InputError: no manifest or run, no stored image, a version folder that already holds a data version.
    """
    started = time.perf_counter()
    if (out_dir / APPLIED).exists():  # a data version a training run may use: never replaced
        raise InputError(f"{out_dir} already holds a data version ({APPLIED}/): choose another --version")
    rows = read_manifest(manifest)
    images, left_out = usable_images(rows, images_dir, run_dir)
    # pretrained or the run's own layer, settled (and a wrong choice refused) before any image is read
    options = dataclasses.replace(options, embeddings=choose_source(run_dir, options.embeddings))
    skipped = {"not_stored": len(rows) - len(images) - len(left_out), **left_out["reason"].value_counts().to_dict()}
    if images.empty:
        raise InputError(f"{manifest} lists no stored image (left out: {skipped}); run `make download-images`")
    log.info("%d stored images in %s (left out: %s)", len(images), manifest, skipped)
    if differ := class_difference(run_dir, images["label"]):
        log.warning(
            "run %s was trained on other classes than %s lists (%s): its label suggestions for these "
            "images are weaker; train on this manifest first (make train)",
            run_dir.name,
            manifest,
            differ,
        )
    table, info = _issue_table(run_dir, images, [images_dir / p for p in images["path"]], options)
    from label.title import with_titles

    table, info["titles"] = with_titles(table, catalogue, config)
    review = order_for_review(table)
    summary = {
        "version": out_dir.name,
        "run": run_dir.name,
        "run_dir": str(run_dir),
        "manifest": str(manifest),
        "manifest_rows_left_out": {**skipped, "listed_in": LEFT_OUT},
        **info,
        **summarise(table),
        "health": health(table),
        "review": {"rows": int(min(len(review), options.review_limit)), "flagged": len(review)},
        "seconds": round(time.perf_counter() - started, 2),
    }
    _write(out_dir, table, review.head(options.review_limit), left_out, summary, images_dir, options, config)
    from data.core.runs import mark_latest

    mark_latest(out_dir.parent, out_dir.name)
    return LabelResult(out_dir, summary)


def _issue_table(
    run_dir: Path, images: pd.DataFrame, files: list[Path], options: LabelOptions
) -> tuple[pd.DataFrame, dict[str, Any]]:
    """One row per image: quality measures and flags, the model's opinions, duplicates and the issue types."""
    measures = measure_all(files, options.workers)
    table = pd.concat([images, measures.drop(columns="unreadable")], axis=1)
    table = pd.concat([table, quality_flags(measures, images["orig_width"], images["orig_height"], options)], axis=1)
    table = table.join(class_imbalance(images["label"], options.imbalance))
    readable = ~table["unreadable"].to_numpy()
    kept = [f for f, ok in zip(files, readable) if ok]
    columns, info = _analyse(run_dir, images[readable], kept, table["dhash"].to_numpy()[readable], options)
    table = table.join(columns)
    table = table.fillna({k: v for k, v in _UNREADABLE_FILL.items() if k in table}).infer_objects()
    for column in ("suggested_label", "oof_label", "knn_label", "nearest_key", "similar_keys"):
        if column in table:
            table[column] = table[column].fillna("")
    return pd.concat([table, issue_columns(table, options)], axis=1), info


def _write(
    out_dir: Path,
    table: pd.DataFrame,
    review: pd.DataFrame,
    left_out: pd.DataFrame,
    summary: dict[str, Any],
    images_dir: Path,
    options: LabelOptions,
    config: Config | None,
) -> None:
    """Build every file in a temporary folder beside ``out_dir``, then move it into place whole."""
    from label.review import write_review

    with staged_dir(out_dir, config) as tmp:
        write_parquet(tmp / ISSUES.file_name, table[list(ISSUES.columns)])
        write_json(tmp / "summary.json", summary)
        left_out.to_csv(tmp / LEFT_OUT, index=False)
        write_review(tmp, review, images_dir, summary, options, table)


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point (``make label``)."""
    parser = stage_parser("label", __doc__)
    add_run_argument(parser, "label")
    parser.add_argument("--version", default=None, help="name of the label version (default: <UTC time>-<run id>)")
    args = parser.parse_args(argv)

    def body() -> int:
        from data.core.config import config_from_args

        cfg = config_from_args(args)
        options = LabelOptions.from_config(cfg, cli=args)
        run_dir = resolve_run(cfg.path(RUNS), options.run)
        version = check_version_name(options.version or new_version(run_dir))
        out_dir = cfg.path(LABELS) / version
        result = find_issues(
            run_dir, MANIFEST.path(cfg), cfg.path(IMAGES), out_dir, options, config=cfg, catalogue=CATALOGUE.path(cfg)
        )
        _print_summary(result)
        return 0

    return run(body)


def _print_summary(result: LabelResult) -> None:
    summary = result.summary
    counts = ", ".join(f"{k} {v}" for k, v in summary["counts"].items() if v) or "none"
    dup = summary["duplicates"]
    print(f"label: {summary['images']} images from run {summary['run']}: {summary['flagged']} flagged ({counts})")
    print(
        f"  label issues {summary['label_issues']['flagged']} (cleanlab defaults alone: "
        f"{summary['label_issues']['cleanlab_default']}); estimated noise rate "
        f"{summary['noise_matrix']['estimated_noise_rate']:.1%}; duplicate clusters {dup['clusters']} "
        f"({dup['cross_class_clusters']} across classes, {dup['cross_split_clusters']} across splits)"
    )
    left = {k: v for k, v in summary["manifest_rows_left_out"].items() if k not in ("not_stored", "listed_in") and v}
    print(f"  suggested: {summary['suggested_actions']}; {summary['seconds']} s")
    if left:
        print(f"  left out (stored rows it could not use): {left}; listed in {LEFT_OUT}")
    print(f"outputs: {result.out_dir}  (open {result.out_dir / 'review.html'} in a browser)")
    print("next: make apply-labels DECISIONS=decisions.json   (or SET=label.auto_threshold=0.9)")


if __name__ == "__main__":
    raise SystemExit(main())
