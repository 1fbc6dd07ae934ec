"""Where the rows went: CSV rows -> kept -> each drop reason -> URLs -> stored -> each failure -> per class;
and the class balance before and after the 20 -> 7 reduction, with the mapping table."""

from __future__ import annotations

from typing import Any

import pandas as pd

from data.core.contracts import OK

UNMAPPED = "(unmapped: dropped)"


def _counts(values: pd.Series) -> dict[str, int]:
    """Value counts, largest first, ties by name (a stable order for the JSON)."""
    counts = values.astype(str).value_counts()
    return {str(k): int(v) for k, v in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))}


def _failure_reasons(tried: pd.DataFrame, top: int = 8) -> dict[str, dict[str, int]]:
    """For each failure status, its most common reasons (the rest summed as ``(other reasons)``)."""
    out: dict[str, dict[str, int]] = {}
    failed = tried[tried["status"] != OK]
    for status, group in failed.groupby("status", sort=True):
        reasons = _counts(group["reason"].fillna("").replace("", "(no reason)"))
        head = dict(list(reasons.items())[:top])
        rest = sum(reasons.values()) - sum(head.values())
        out[str(status)] = {**head, **({"(other reasons)": rest} if rest else {})}
    return out


def funnel(
    report: dict[str, Any], dropped_reasons: pd.Series, catalogue: pd.DataFrame, manifest: pd.DataFrame | None
) -> dict[str, Any]:
    """Every count of the funnel, and the checks that it adds up.

    Args:
        report: extract_report.json.
        dropped_reasons: the ``reason`` column of dropped.parquet.
        catalogue: catalogue.parquet (key, label).
        manifest: images/manifest.parquet (key, status, reason), or None before ``make download-images``.
    """
    dropped = {str(k): int(v) for k, v in report.get("dropped_by_reason", {}).items()}
    kept = int(len(catalogue))
    doc: dict[str, Any] = {"csv_rows": int(report.get("rows_read", 0)), "dropped": dropped, "kept": kept}
    labels = catalogue.set_index("key")["label"]
    per_class = pd.DataFrame({"kept": labels.value_counts()})
    checks = {
        "rows_read_equal_kept_plus_dropped": doc["csv_rows"] == kept + sum(dropped.values()),
        "catalogue_rows_equal_report": int(report.get("rows_kept", -1)) == kept,
        "dropped_file_matches_report": _counts(dropped_reasons)
        == dict(sorted(dropped.items(), key=lambda kv: (-kv[1], kv[0]))),
    }
    if manifest is not None:
        in_catalogue = manifest["key"].isin(labels.index)
        tried = manifest[in_catalogue].assign(label=lambda f: f["key"].map(labels))
        stored = tried[tried["status"] == OK]
        failed = _counts(tried.loc[tried["status"] != OK, "status"])
        doc.update(
            not_downloaded=kept - len(tried),
            urls=int(len(tried)),
            failed=failed,
            failure_reasons=_failure_reasons(tried),
            stored=int(len(stored)),
            manifest_rows_not_in_catalogue=int((~in_catalogue).sum()),
        )
        per_class["urls"] = tried["label"].value_counts()
        per_class["stored"] = stored["label"].value_counts()
        checks["kept_equal_not_downloaded_plus_urls"] = kept == doc["not_downloaded"] + doc["urls"]
        checks["urls_equal_stored_plus_failed"] = doc["urls"] == doc["stored"] + sum(failed.values())
    per_class = per_class.fillna(0).astype(int).sort_index()
    doc["per_class"] = {str(k): {c: int(v) for c, v in row.items()} for k, row in per_class.iterrows()}
    checks["classes_add_up"] = all(
        sum(row[c] for row in doc["per_class"].values()) == doc[c] for c in ("kept", "stored") if c in doc
    )
    doc["checks"] = checks
    doc["adds_up"] = all(checks.values())
    return doc


def funnel_steps(doc: dict[str, Any]) -> list[tuple[str, int, str]]:
    """The funnel as chart bars ``(label, count, kind)``, top to bottom."""
    steps = [("CSV rows read", doc["csv_rows"], "total")]
    steps += [(f"  dropped: {reason}", n, "drop") for reason, n in doc["dropped"].items()]
    steps.append(("kept (catalogue)", doc["kept"], "keep"))
    if "urls" in doc:
        steps.append(("  not downloaded (not in manifest)", doc["not_downloaded"], "idle"))
        steps.append(("URLs tried", doc["urls"], "total"))
        steps += [(f"  failed: {status}", n, "fail") for status, n in doc["failed"].items()]
        steps.append(("images stored", doc["stored"], "keep"))
        steps += [(f"  stored: {label}", row["stored"], "keep") for label, row in doc["per_class"].items()]
    return steps


def balance(
    catalogue: pd.DataFrame, stored_keys: pd.Index | None, mapping: dict[str, str], unmapped: dict[str, int]
) -> dict[str, Any]:
    """Class balance before (main_category) and after (label) the reduction, with the mapping table.

    Args:
        catalogue: key, main_category, label.
        stored_keys: keys of the stored images (None before the download).
        mapping: the reviewed main_category -> label mapping.
        unmapped: extract's ``unmapped_categories`` (rows dropped because the mapping lacks them).
    """
    stored = catalogue["key"].isin(stored_keys) if stored_keys is not None else None
    frame = catalogue.assign(stored=stored if stored is not None else False)
    by_main = frame.groupby("main_category", sort=True).agg(kept=("key", "size"), stored=("stored", "sum"))
    rows: list[dict[str, Any]] = []
    for main in sorted(set(mapping) | set(by_main.index.astype(str)) | set(unmapped)):
        label = mapping.get(main, UNMAPPED)
        row = {
            "main_category": main,
            "label": label,
            "kept": 0,
            "stored": 0,
            "dropped_unmapped": int(unmapped.get(main, 0)),
        }
        if main in by_main.index:
            row.update(kept=int(by_main.loc[main, "kept"]), stored=int(by_main.loc[main, "stored"]))
        rows.append(row)
    by_label = frame.groupby("label", sort=True).agg(kept=("key", "size"), stored=("stored", "sum"))
    after = {str(k): {"kept": int(r["kept"]), "stored": int(r["stored"])} for k, r in by_label.iterrows()}

    def ratio(values: list[int]) -> float | None:
        present = [v for v in values if v > 0]
        return round(max(present) / min(present), 3) if present else None

    doc = {
        "mapping": rows,
        "before": {r["main_category"]: r["kept"] for r in rows if r["kept"]},
        "after": after,
        "imbalance_before": ratio([r["kept"] for r in rows]),
        "imbalance_after": ratio([v["kept"] for v in after.values()]),
    }
    if stored is not None:
        doc["imbalance_stored"] = ratio([v["stored"] for v in after.values()])
    return doc
