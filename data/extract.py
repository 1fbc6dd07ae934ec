"""Stage 1, extract + transform: the raw Kaggle CSVs -> one clean, labelled Parquet manifest.

Every record read ends either in ``catalogue.parquet`` or in ``dropped.parquet`` with its reason, and
``extract_report.json`` proves it: rows read = rows kept + rows dropped, per file and in total.
"""
from __future__ import annotations

import argparse
import hashlib
import logging
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
from tqdm import tqdm

from data.common import atomic_write_with, fail, setup_logging, write_json
from data.config import add_config_args, config_from_args
from data.csv_reader import FileRead, read_catalogue_csv

log = logging.getLogger("extract")

MANIFEST_COLUMNS = ["key", "url", "name", "main_category", "sub_category", "label", "source_file",
                    "source_row", "link", "ratings", "no_of_ratings", "discount_price", "actual_price"]


class ExtractError(RuntimeError):
    """The stage cannot run (no input, a bad mapping, an unmapped category with fail_on_unmapped)."""


@dataclass(frozen=True)
class ExtractOptions:
    """Inputs and switches of :func:`extract`."""

    raw_dir: Path
    out_dir: Path
    mapping: Path
    merged_file: str = "Amazon-Products.csv"
    fail_on_unmapped: bool = False
    threads: int = 4


def normalise_text(values: pd.Series) -> pd.Series:
    """Unicode-normalise, straighten quotes, collapse whitespace; empty strings become missing."""
    text = values.astype("str").str.normalize("NFKC").str.replace("[\u2018\u2019]", "'", regex=True)
    text = text.str.replace(r"\s+", " ", regex=True).str.strip()
    return text.mask(text == "")


def normalise_category(values: pd.Series) -> pd.Series:
    """Category text as used as a mapping key: normalised and lower case."""
    return normalise_text(values).str.lower()


def parse_number(values: pd.Series) -> pd.Series:
    """'₹32,999' -> 32999.0, '2,255' -> 2255.0, '4.2' -> 4.2; anything without a number -> NaN."""
    digits = values.astype("str").str.replace(r"[^0-9.]", "", regex=True)
    return pd.to_numeric(digits.mask(digits == ""), errors="coerce").astype("float64")


def url_key(url: str) -> str:
    """The stable key of an image: the first 16 hex digits of the SHA-1 of its URL."""
    return hashlib.sha1(url.encode("utf-8")).hexdigest()[:16]


def load_mapping(path: Path) -> dict[str, str]:
    """Read the reviewed ``main_category,label`` mapping; keys are normalised like the data."""
    try:
        table = pd.read_csv(path, dtype="str", keep_default_na=False)
    except FileNotFoundError as exc:
        raise ExtractError(f"label mapping not found: {path}") from exc
    if list(table.columns[:2]) != ["main_category", "label"]:
        raise ExtractError(f"{path}: the header must be 'main_category,label'")
    keys = normalise_category(table["main_category"])
    labels = table["label"].str.strip()
    if keys.isna().any() or (labels == "").any():
        raise ExtractError(f"{path}: every row needs a main_category and a label")
    conflicts = table.assign(k=keys, l=labels).groupby("k")["l"].nunique()
    if (conflicts > 1).any():
        raise ExtractError(f"{path}: categories mapped to two labels: {sorted(conflicts[conflicts > 1].index)}")
    return dict(zip(keys, labels))


def list_csv_files(raw_dir: Path, merged_file: str) -> list[Path]:
    """Every CSV below ``raw_dir``, sorted, with the merged file last so per-category provenance wins."""
    files = sorted(raw_dir.rglob("*.csv"), key=lambda p: (p.name == merged_file, str(p).lower()))
    if not files:
        raise ExtractError(f"no CSV files in {raw_dir}: run `make fetch-raw` (needs Kaggle credentials) "
                           "or put the Kaggle CSV files there")
    return files


def _frame(read: FileRead) -> pd.DataFrame:
    frame = read.table.to_pandas()
    numbers = read.row_numbers if read.row_numbers is not None else range(1, read.table.num_rows + 1)
    frame["source_row"] = pd.Series(numbers, dtype="int64", index=frame.index)
    frame["source_file"] = read.file
    return frame


def _drops_for_unusable(reads: list[FileRead]) -> list[dict]:
    """Records lost before parsing: malformed ones, and every record of a file that cannot be used."""
    rows = []
    for read in reads:
        for number, problem in read.malformed:
            log.warning("%s: record %d is malformed: %s", read.file, number, problem)
            rows.append({"source_file": read.file, "source_row": number, "reason": "malformed_row",
                         "detail": problem})
        if read.error:
            log.error("%s: %s", read.file, read.error)
            lost = read.rows_read - len(read.malformed)
            rows.extend({"source_file": read.file, "source_row": n, "reason": "unusable_file",
                         "detail": read.error} for n in (read.row_numbers or range(1, lost + 1)))
    return rows


def _classify(frame: pd.DataFrame, mapping: dict[str, str], merged_file: str) -> pd.Series:
    """The drop reason of every row (missing = kept), checked in a fixed order."""
    reason = pd.Series(pd.NA, index=frame.index, dtype="object")
    url_ok = frame["url"].str.match(r"^https?://[^\s/]+", na=False)
    checks = [
        ("missing_image_url", frame["url"].isna()),
        ("invalid_image_url", frame["url"].notna() & ~url_ok),
        ("missing_main_category", frame["main_category"].isna()),
        ("unmapped_category", frame["main_category"].notna() & ~frame["main_category"].isin(list(mapping))),
    ]
    for name, mask in checks:
        reason = reason.mask(reason.isna() & mask, name)
    candidate = reason.isna()
    duplicate = candidate & frame["url"].where(candidate).duplicated(keep="first")
    from_merged = frame["source_file"].str.endswith(merged_file)
    reason = reason.mask(duplicate & from_merged, "merged_file_duplicate")
    return reason.mask(duplicate & ~from_merged, "duplicate_url")


def _drop_details(kept: pd.DataFrame, lost: pd.DataFrame) -> pd.Series:
    """For an unmapped row its category; for a duplicate, where the kept copy came from."""
    firsts = kept.set_index("url")
    origin = firsts["source_file"] + ":" + firsts["source_row"].astype("str")
    duplicate = lost["reason"].isin(["duplicate_url", "merged_file_duplicate"])
    detail = lost["main_category"].where(lost["reason"] == "unmapped_category")
    return detail.mask(duplicate, "duplicate of " + lost["url"].map(origin))


def _transform(frame: pd.DataFrame, mapping: dict[str, str]) -> pd.DataFrame:
    kept = frame.copy()
    kept["key"] = [url_key(u) for u in kept["url"]]
    if kept["key"].duplicated().any():
        raise ExtractError("two different URLs share a 16-digit key; widen url_key()")
    kept["label"] = kept["main_category"].map(mapping)
    for column in ("ratings", "discount_price", "actual_price"):
        kept[column] = parse_number(kept[column])
    kept["no_of_ratings"] = parse_number(kept["no_of_ratings"]).round().astype("Int64")
    return kept[MANIFEST_COLUMNS].reset_index(drop=True)


def _report(options: ExtractOptions, reads: list[FileRead], kept: pd.DataFrame, dropped: pd.DataFrame) -> dict:
    per_file = []
    kept_by_file = kept["source_file"].value_counts()
    for read in reads:
        drops = dropped.loc[dropped["source_file"] == read.file, "reason"].value_counts()
        per_file.append({"file": read.file, "rows_read": read.rows_read,
                         "rows_kept": int(kept_by_file.get(read.file, 0)),
                         "dropped": {k: int(v) for k, v in drops.items()}, "error": read.error,
                         "encoding": read.encoding, "malformed_rows": [n for n, _ in read.malformed][:50]})
    rows_read = sum(r.rows_read for r in reads)
    unmapped = dropped.loc[dropped["reason"] == "unmapped_category", "detail"].value_counts()
    return {
        "raw_dir": str(options.raw_dir), "files_read": len(reads),
        "files_failed": [{"file": r.file, "error": r.error} for r in reads if r.error],
        "rows_read": rows_read, "rows_kept": len(kept), "rows_dropped": len(dropped),
        "accounting_ok": rows_read == len(kept) + len(dropped),
        "dropped_by_reason": {k: int(v) for k, v in dropped["reason"].value_counts().items()},
        "unmapped_categories": {k: int(v) for k, v in unmapped.items()},
        "labels": {k: int(v) for k, v in kept["label"].value_counts().sort_index().items()},
        "files": per_file,
    }


def extract(options: ExtractOptions) -> dict:
    """Run extract + transform; write catalogue.parquet, dropped.parquet and extract_report.json.

    Returns:
        The report (also written to ``out_dir/extract_report.json``).
    """
    mapping = load_mapping(options.mapping)
    files = list_csv_files(options.raw_dir, options.merged_file)
    names = [str(p.relative_to(options.raw_dir)) for p in files]
    with ThreadPoolExecutor(options.threads) as pool:
        reads = list(tqdm(pool.map(read_catalogue_csv, files, names), total=len(files),
                          desc="reading CSV files", unit="file"))
    usable = [r for r in reads if r.error is None and r.table is not None]
    frame = pd.concat([_frame(r) for r in usable], ignore_index=True) if usable else \
        pd.DataFrame(columns=["name", "main_category", "sub_category", "image", "link", "ratings",
                              "no_of_ratings", "discount_price", "actual_price", "source_row", "source_file"])
    frame = frame.rename(columns={"image": "url"})
    for column in ("name", "sub_category", "link"):
        frame[column] = normalise_text(frame[column])
    frame["main_category"] = normalise_category(frame["main_category"])
    frame["url"] = normalise_text(frame["url"])
    reason = _classify(frame, mapping, options.merged_file)
    kept = _transform(frame[reason.isna()], mapping)
    lost = frame[reason.notna()].assign(reason=reason[reason.notna()])
    lost["detail"] = _drop_details(frame[reason.isna()], lost)
    dropped = pd.concat([lost[["source_file", "source_row", "reason", "detail", "url"]],
                         pd.DataFrame(_drops_for_unusable(reads))], ignore_index=True)
    dropped = dropped.astype({"source_row": "int64", "detail": "str", "url": "str"}) if len(dropped) else \
        pd.DataFrame({c: pd.Series(dtype="str") for c in ("source_file", "reason", "detail", "url")}
                     ).assign(source_row=pd.Series(dtype="int64"))
    report = _report(options, reads, kept, dropped)
    if report["unmapped_categories"]:
        log.warning("main categories missing from %s (rows dropped as 'unmapped_category'): %s; "
                    "add them to the mapping to keep those rows", options.mapping, report["unmapped_categories"])
        if options.fail_on_unmapped:
            write_json(options.out_dir / "extract_report.json", report)
            raise ExtractError(f"unmapped main categories: {sorted(report['unmapped_categories'])}")
    options.out_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_with(options.out_dir / "catalogue.parquet", lambda p: kept.to_parquet(p, index=False))
    atomic_write_with(options.out_dir / "dropped.parquet", lambda p: dropped.to_parquet(p, index=False))
    write_json(options.out_dir / "extract_report.json", report)
    return report


def format_summary(report: dict) -> str:
    """The end-of-stage summary printed to the user."""
    lines = [f"extract: {report['files_read']} files, {len(report['files_failed'])} unusable",
             f"  rows read {report['rows_read']:,} = kept {report['rows_kept']:,} + dropped "
             f"{report['rows_dropped']:,}  [{'OK' if report['accounting_ok'] else 'MISMATCH'}]"]
    lines += [f"    dropped {reason}: {n:,}" for reason, n in report["dropped_by_reason"].items()]
    lines += [f"  label {label}: {n:,}" for label, n in report["labels"].items()]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = add_config_args(argparse.ArgumentParser(prog="python -m data.extract", description=__doc__))
    parser.add_argument("--raw", type=Path, help="folder of Kaggle CSV files (default: paths.raw)")
    parser.add_argument("--out", type=Path, help="output folder (default: paths.processed)")
    args = parser.parse_args(argv)
    setup_logging()
    cfg = config_from_args(args)
    section = cfg.section("extract")
    options = ExtractOptions(raw_dir=args.raw or cfg.path("raw"), out_dir=args.out or cfg.path("processed"),
                             mapping=cfg.path("label_mapping"),
                             merged_file=section.get("merged_file", "Amazon-Products.csv"),
                             fail_on_unmapped=bool(section.get("fail_on_unmapped", False)))
    if not options.raw_dir.is_dir():
        fail(f"raw data folder {options.raw_dir} does not exist: run `make fetch-raw` (needs Kaggle "
             "credentials), or point at CSV files with SET=paths.raw=/path/to/csvs")
    try:
        report = extract(options)
    except ExtractError as exc:
        fail(str(exc))
    cfg.save(options.out_dir)
    print(format_summary(report))
    print(f"  wrote {options.out_dir / 'catalogue.parquet'} (+ dropped.parquet, extract_report.json)")
    return 0 if report["accounting_ok"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
