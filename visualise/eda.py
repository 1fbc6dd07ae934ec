"""``make eda``: one offline HTML report of the catalogue and the downloaded images, plus ``eda.json``.

    python -m visualise.eda [--config data/config.toml] [--set visualise.seed=1 ...] [--out FOLDER]

Reads extract's catalogue.parquet, dropped.parquet and extract_report.json and, once ``make
download-images`` has run, images/manifest.parquet and the images; writes ``{reports}/eda/``: eda.html
(self-contained), eda.json (every number the page shows) and config.resolved.json.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from data.core.cli import run, stage_parser
from data.core.config import Config, config_from_args
from data.core.contracts import CATALOGUE, DROPPED, MANIFEST, OK, REPORTS
from data.core.errors import InputError
from data.core.io import atomic_write_bytes
from data.core.mapping import load_mapping
from visualise.duplicates import find_duplicates
from visualise.eda_page import EdaData, render_eda
from visualise.funnel import balance, funnel
from visualise.images import encode, letterboxed, sheet
from data.core.contracts import read_json
from visualise.inputs import EdaInputs
from visualise.options import VisualiseOptions
from visualise.output import MB, check_report_dir, json_bytes, write_report_dir
from visualise.tabular import distributions, image_sizes, missing_values

log = logging.getLogger(__name__)

HTML_FILE, JSON_FILE = "eda.html", "eda.json"
_NUMERIC = ("ratings", "no_of_ratings", "discount_price", "actual_price")
_MANIFEST_COLUMNS = ("key", "label", "status", "reason", "orig_width", "orig_height", "bytes", "sha256", "path")


def sample_keys(stored: pd.DataFrame, per_class: int, seed: int) -> dict[str, list[str]]:
    """A seeded sample of stored keys per class; independent of the manifest's row order."""
    rng = np.random.default_rng(seed)
    out = {}
    for label, group in stored.sort_values("key", kind="stable").groupby("label", sort=True):
        take = min(per_class, len(group))
        picked = np.sort(rng.choice(len(group), take, replace=False))
        out[str(label)] = [str(k) for k in group["key"].to_numpy()[picked]]
    return out


def _check_counts(report: dict[str, Any], path: Path) -> None:
    """The report's counts are whole numbers (a hand-edited ``NaN`` or text would fail inside the funnel)."""
    by_reason = report.get("dropped_by_reason", {})
    counts: dict[str, Any] = {k: report[k] for k in ("rows_read", "rows_kept") if k in report}
    counts.update(by_reason if isinstance(by_reason, dict) else {"dropped_by_reason": by_reason})
    bad = [f"{k} = {v!r}"[:60] for k, v in counts.items() if isinstance(v, bool) or not isinstance(v, int)]
    if bad:
        raise InputError(
            f"{path} has counts that are not whole numbers ({', '.join(bad[:3])}); run `make extract` again"
        )


def _read_inputs(inputs: EdaInputs) -> tuple[dict[str, Any], pd.Series, pd.DataFrame, pd.DataFrame | None]:
    report = read_json(inputs.extract_report, "make extract")
    catalogue = CATALOGUE.read(inputs.catalogue, "make extract", CATALOGUE.columns)
    missing = [c for c in ("main_category", *_NUMERIC) if c not in catalogue]
    if missing:  # beyond what every reader needs: the page's balance and distributions read them
        raise InputError(
            f"{inputs.catalogue} lacks the column(s) {', '.join(missing)} that make eda shows; run `make extract` again"
        )
    if catalogue.empty:  # an empty chart fails deep in matplotlib: say it here
        raise InputError(f"{inputs.catalogue} has no rows: nothing to report; run `make extract` on CSVs with rows")
    _check_counts(report, inputs.extract_report)
    dropped = DROPPED.read(inputs.dropped, "make extract", ("reason",))["reason"]
    manifest = None
    if inputs.manifest.exists() and not inputs.manifest.is_file():  # a folder is a mistake, not "no download"
        raise InputError(
            f"{inputs.manifest} is not a file: move it away and run make download-images, or point "
            f"paths.images at the download's output"
        )
    if inputs.manifest.is_file():
        manifest = MANIFEST.read(inputs.manifest, "make download-images", _MANIFEST_COLUMNS)
    else:
        log.info("no %s yet: the report covers the catalogue only (run make download-images)", inputs.manifest)
    return report, dropped, catalogue, manifest


def _image_sections(
    data: EdaData, stored: pd.DataFrame, inputs: EdaInputs, options: VisualiseOptions
) -> dict[str, Any]:
    """Image sizes, sample photos per class and duplicates (needs the manifest and the images)."""
    doc: dict[str, Any] = {"image_sizes": image_sizes(stored, options.histogram_bins)}
    keys = sample_keys(stored, options.thumbnails_per_class, options.seed)
    paths = stored.set_index("key")["path"]
    side = options.thumbnail_px
    for label, chosen in keys.items():
        data.samples[label] = encode(sheet([letterboxed(inputs.images / paths[k], side) for k in chosen], columns=12))
    doc["samples"] = {"per_class": options.thumbnails_per_class, "keys": keys}
    dups, data.exact_groups, data.near_groups = find_duplicates(
        stored,
        inputs.images,
        distance=options.duplicate_distance,
        max_images=options.max_hash_images,
        examples=options.duplicate_examples,
        seed=options.seed,
    )
    for group in data.exact_groups + data.near_groups:
        for key, path in list(zip(group.keys, group.paths))[:4]:
            data.thumbs[key] = encode(letterboxed(inputs.images / path, side))
    doc["duplicates"] = dups
    return doc


def build_eda(inputs: EdaInputs, options: VisualiseOptions) -> EdaData:
    """Compute everything the EDA page shows (reads the inputs; writes nothing).

    Raises:
        InputError: an input is missing or malformed.
    """
    report, dropped, catalogue, manifest = _read_inputs(inputs)
    log.info(
        "catalogue: %s rows; manifest: %s",
        f"{len(catalogue):,}",
        "none" if manifest is None else f"{len(manifest):,} rows",
    )
    classes = sorted(catalogue["label"].astype(str).unique())
    stored = None
    if manifest is not None:
        ok = manifest[(manifest["status"] == OK) & manifest["key"].isin(catalogue["key"])]
        stored = ok.drop(columns="label").merge(catalogue[["key", "label"]], on="key", how="left")
    doc: dict[str, Any] = {
        "inputs": {k: str(v) for k, v in vars(inputs).items()},
        "options": options.to_dict(),
        "classes": classes,
        "funnel": funnel(report, dropped, catalogue[["key", "label"]], manifest),
        "balance": balance(
            catalogue[["key", "main_category", "label"]],
            pd.Index(stored["key"]) if stored is not None else None,
            load_mapping(inputs.mapping),
            {str(k): int(v) for k, v in report.get("unmapped_categories", {}).items()},
        ),
        "distributions": distributions(catalogue[["label", *_NUMERIC]], classes),
        "missing": missing_values(catalogue, [c for c in CATALOGUE.columns if c not in ("key", "label")]),
    }
    data = EdaData(doc)
    if stored is not None:
        doc.update(_image_sections(data, stored, inputs, options))
    return data


@dataclass(frozen=True)
class EdaResult:
    """Where the report went and its JSON document."""

    out_dir: Path
    doc: dict[str, Any]

    @property
    def html(self) -> Path:
        """The HTML report."""
        return self.out_dir / HTML_FILE


def eda(inputs: EdaInputs, out_dir: Path, options: VisualiseOptions, *, config: Config | None = None) -> EdaResult:
    """Build ``out_dir/eda.html`` and ``eda.json`` (the folder is replaced whole, or left as it was).

    Args:
        inputs: extract's and download's outputs.
        out_dir: the report folder (``{reports}/eda``).
        options: the ``[visualise]`` options.
        config: the resolved configuration, saved beside the report.
    """
    check_report_dir(out_dir, JSON_FILE)  # before reading a single image
    data = build_eda(inputs, options)
    html = render_eda(data, options)
    data.doc["budget"] = {"html_bytes": len(html), "limit_mb": options.max_report_mb}
    if len(html) > options.max_report_mb * MB:
        log.warning("eda.html is %.1f MB, over the %.0f MB budget", len(html) / MB, options.max_report_mb)

    def fill(tmp: Path) -> None:
        atomic_write_bytes(tmp / HTML_FILE, html)
        atomic_write_bytes(tmp / JSON_FILE, json_bytes(data.doc))

    write_report_dir(out_dir, JSON_FILE, fill, config)
    return EdaResult(out_dir, data.doc)


def summary(result: EdaResult, seconds: float) -> str:
    """The lines printed at the end of ``make eda``."""
    f = result.doc["funnel"]
    lines = [
        f"eda: {f['csv_rows']:,} CSV rows -> {f['kept']:,} kept"
        + (f" -> {f['urls']:,} URLs -> {f['stored']:,} images stored" if "urls" in f else " (no download yet)")
        + f"  [{'adds up' if f['adds_up'] else 'DOES NOT ADD UP: see the report'}]",
    ]
    if "duplicates" in result.doc:
        d = result.doc["duplicates"]
        lines.append(
            f"  duplicates: {d['exact']['groups']:,} exact groups ({d['exact']['cross_class_groups']:,} across "
            f"classes), {d['near']['groups']:,} near groups ({d['near']['cross_class_groups']:,} across classes)"
        )
    size = result.doc["budget"]["html_bytes"]
    lines.append(f"  wrote {result.html} ({size / MB:.1f} MB) and {JSON_FILE} in {seconds:.1f} s")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point (``make eda``)."""
    parser = stage_parser("visualise.eda", __doc__)
    parser.add_argument("--out", type=Path, help="report folder (default: {reports}/eda)")
    args = parser.parse_args(argv)

    def body() -> int:
        started = time.perf_counter()
        cfg = config_from_args(args)
        options = VisualiseOptions.from_config(cfg, cli=args)
        result = eda(EdaInputs.from_config(cfg), args.out or cfg.path(REPORTS) / "eda", options, config=cfg)
        print(summary(result, time.perf_counter() - started))
        return 0

    return run(body)


if __name__ == "__main__":
    raise SystemExit(main())
