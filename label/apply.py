"""``make apply-labels``: turn a review's decisions (or the automatic policy) into a new data version.

    python -m label.apply [--config data/config.toml] [--decisions decisions.json] [--version latest|NAME|DIR]
                          [--set label.auto_threshold=0.9]

Reads ``{labels}/<version>/issues.parquet`` and the download manifest (never modified); writes
``{labels}/<version>/applied/``: manifest.parquet (the download manifest with the new labels, dropped images
as status ``dropped``, and a ``label_version`` column), changes.csv (one row per relabelled or dropped
image), decisions.json (the decisions applied), config.resolved.json. Train on it with
``make train SET=train.label_version=latest`` (or the version name).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from data.core.cli import run, stage_parser
from data.core.config import Config
from data.core.contracts import APPLIED, CHANGES, LABELS, MANIFEST, OK, label_version_dir
from data.core.errors import ConfigError, InputError
from data.core.io import staged_dir, write_json, write_parquet
from label.decisions import Decision, auto_decisions, check_decisions, read_decisions
from label.inputs import LATEST, read_manifest, read_version
from label.options import LabelOptions

DROPPED = "dropped"  # the manifest status of an image a data version leaves out
SCORE_COLUMNS = ["suggested_label", "suggested_prob", "quality_score", "knn_agreement"]  # copied from ISSUES


@dataclass(frozen=True)
class ApplyResult:
    """Where the data version went and what it changed."""

    out_dir: Path
    manifest: Path
    counts: dict[str, int]


def choose(
    table: pd.DataFrame, classes: list[str], version: str, decisions: Path | None, options: LabelOptions
) -> dict[str, Decision]:
    """The decisions to apply: the automatic policy (when ``auto_threshold`` > 0), then the file's, which win.

    Raises:
        ConfigError: neither a decisions file nor a threshold.
        InputError: a decisions file with unknown keys, labels or actions.
    """
    if decisions is None and options.auto_threshold <= 0:
        raise ConfigError(
            "nothing to apply: pass a review's decisions (make apply-labels DECISIONS=decisions.json) or the "
            "automatic policy (SET=label.auto_threshold=0.9)"
        )
    chosen = auto_decisions(table, options) if options.auto_threshold > 0 else {}
    if decisions is not None:
        known = set(classes) | set(table["label"])
        chosen.update(check_decisions(read_decisions(decisions), decisions, table["key"], known, version))
    return chosen


def new_version(
    rows: pd.DataFrame, table: pd.DataFrame, chosen: dict[str, Decision], version: str
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The new manifest (a copy of ``rows``, changed where decided) and the table of changes.

    Raises:
        InputError: a decided key the manifest no longer lists (it changed since ``make label``).
    """
    new = rows.copy()
    by_key = table.set_index("key")
    missing = sorted(set(chosen) - set(new["key"].astype(str)))
    if missing:
        raise InputError(
            f"{len(missing)} decided key(s) are not in the manifest any more ({missing[:5]}...): "
            "run `make label` again on the current manifest; nothing written"
        )
    changes = [_change(key, d, by_key) for key, d in chosen.items() if d.action != "keep"]
    changes = [c for c in changes if c["action"] == "drop" or c["new_label"] != c["old_label"]]
    keys = new["key"].astype(str)
    relabel = {c["key"]: c["new_label"] for c in changes if c["action"] == "relabel"}
    drop = {c["key"]: f"label {version}: {c['reason']}" for c in changes if c["action"] == "drop"}
    relabelled, dropped = keys.isin(relabel).to_numpy(), keys.isin(drop).to_numpy()
    new.loc[relabelled, "label"] = keys[relabelled].map(relabel).to_numpy()
    new.loc[dropped, "status"] = DROPPED
    new.loc[dropped, "reason"] = keys[dropped].map(drop).to_numpy()
    new["label_version"] = version
    return new, pd.DataFrame(changes, columns=list(CHANGES.columns))


def _change(key: str, decision: Decision, by_key: pd.DataFrame) -> dict[str, Any]:
    """One row of changes.csv."""
    return {
        "key": key,
        "path": by_key.at[key, "path"],
        "old_label": str(by_key.at[key, "label"]),
        "new_label": decision.label if decision.action == "relabel" else "",
        "action": decision.action,
        "reason": decision.reason or ("dropped in review" if decision.action == "drop" else "relabelled in review"),
        "source": decision.source,
        "issues": by_key.at[key, "issues"],
        **{c: by_key.at[key, c] for c in SCORE_COLUMNS},
    }


def apply_labels(
    version_dir: Path, manifest: Path, decisions: Path | None, options: LabelOptions, *, config: Config | None = None
) -> ApplyResult:
    """Write ``version_dir/applied/``: the new manifest, changes.csv and the decisions applied.

    Args:
        version_dir: a label version folder from ``make label``.
        manifest: the download manifest it was made from (read, never written).
        decisions: a review's decisions file, or None for the automatic policy alone.
        options: the ``[label]`` options (``auto_threshold``, ``auto_drop``).
        config: the resolved configuration, saved as config.resolved.json.

    Raises:
        ConfigError, InputError: nothing to apply, a bad decisions file, a manifest inside the target.
    """
    out_dir = version_dir / APPLIED
    if out_dir.resolve() in manifest.resolve().parents:
        raise InputError(
            f"{manifest} is inside {out_dir}, which this run would replace: point paths.manifest elsewhere"
        )
    table, summary = read_version(version_dir)
    chosen = choose(table, summary.get("classes", []), version_dir.name, decisions, options)
    rows = read_manifest(manifest)
    new, changes = new_version(rows, table, chosen, version_dir.name)
    if changes.empty and out_dir.exists():  # a no-op must not replace a version that changed something
        raise InputError(
            f"the decisions change no image, and {out_dir} already holds a data version: nothing written, it "
            f"stays (relabel or drop at least one image to replace it)"
        )
    counts = {"decisions": len(chosen), "relabel": int((changes["action"] == "relabel").sum())}
    counts.update(drop=int((changes["action"] == "drop").sum()), manifest_rows=len(new))
    counts["images_kept"] = int(new["status"].eq(OK).sum())
    doc = {
        "label_version": version_dir.name,
        "policy": {"auto_threshold": options.auto_threshold, "auto_drop": list(options.auto_drop)},
        "source": str(decisions) if decisions else "auto",
        "decisions": {k: {f: v for f, v in dataclasses.asdict(d).items() if v} for k, d in chosen.items()},
    }
    _write(out_dir, new, changes, doc, counts, config)
    return ApplyResult(out_dir, out_dir / MANIFEST.file_name, counts)


def _write(
    out_dir: Path, new: pd.DataFrame, changes: pd.DataFrame, doc: dict[str, Any], counts: dict, config: Config | None
) -> None:
    """Build the data version in a temporary folder beside ``out_dir``, then move it into place whole."""
    with staged_dir(out_dir, config) as tmp:
        write_parquet(tmp / MANIFEST.file_name, new)
        changes.to_csv(tmp / CHANGES.file_name, index=False)
        write_json(tmp / "decisions.json", doc)
        write_json(tmp / "apply.json", counts)


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point (``make apply-labels``)."""
    parser = stage_parser("label.apply", __doc__)
    parser.add_argument("--decisions", type=Path, default=None, help="decisions.json saved from review.html")
    parser.add_argument("--version", default=LATEST, help="label version: latest (default), a name or a folder")
    args = parser.parse_args(argv)

    def body() -> int:
        from data.core.config import config_from_args

        cfg = config_from_args(args)
        options = LabelOptions.from_config(cfg)
        version_dir = label_version_dir(cfg.path(LABELS), args.version)
        result = apply_labels(version_dir, MANIFEST.path(cfg), args.decisions, options, config=cfg)
        c = result.counts
        print(
            f"apply-labels: {c['decisions']} decisions -> {c['relabel']} relabelled, {c['drop']} dropped; "
            f"{c['images_kept']} images in the new version ({version_dir.name})"
        )
        print(f"outputs: {result.out_dir}  (manifest.parquet, changes.csv)")
        print(f"next: make train SET=train.label_version={version_dir.name}  (reads {result.manifest})")
        return 0

    return run(body)


if __name__ == "__main__":
    raise SystemExit(main())
