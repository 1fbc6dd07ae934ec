"""Decisions for ``make apply-labels``: read and check a review's ``decisions.json``, or make them by policy.

The file the review page saves::

    {"label_version": "<version>", "decisions": {"<key>": {"action": "relabel", "label": "<class>"},
                                                  "<key>": {"action": "drop"}, "<key>": {"action": "keep"}}}

Every problem in a file is collected (unknown keys, unknown labels, unknown actions, another version) and
reported together, so one pass fixes them all; a file with any problem changes nothing.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Collection
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from data.core.errors import InputError
from label.options import LabelOptions
from label.table import ACTIONS

SHOWN = 20  # items named per kind of problem; the rest are counted


@dataclass(frozen=True)
class Decision:
    """What to do with one image: ``keep``, ``relabel`` (to ``label``) or ``drop``; who decided and why."""

    action: str
    label: str = ""
    source: str = "review"
    reason: str = ""


def read_decisions(path: Path) -> dict[str, Any]:
    """The decisions document in ``path``.

    Raises:
        InputError: the file is missing, is not JSON, or has no ``decisions`` object.
    """
    if path.is_dir():
        raise InputError(f"decisions file {path} is a folder: give the decisions.json saved from review.html")
    if path.exists() and not path.is_file():
        raise InputError(f"decisions file {path} is not a regular file: give the decisions.json saved from review.html")
    if not path.is_file():
        raise InputError(f"decisions file {path} does not exist (save it from review.html: 'save decisions')")
    repeated: list[str] = []
    try:  # utf-8-sig: a byte-order mark (as some editors save) is read, as extract reads such CSVs
        doc = json.loads(path.read_text(encoding="utf-8-sig"), object_pairs_hook=_noting_repeats(repeated))
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
        raise InputError(f"decisions file {path} is not valid JSON: {str(exc)[:200]}; nothing written") from exc
    if not isinstance(doc, dict) or not isinstance(doc.get("decisions"), dict):
        raise InputError(
            f'decisions file {path} must be {{"decisions": {{"<key>": {{"action": ...}}}}}}; nothing written'
        )
    if repeated:  # JSON keeps the last silently: a drop then a relabel of one image must be a choice, not luck
        raise InputError(
            f"decisions file {path} names the same key more than once: {_listed(sorted(set(repeated)))}; keep one "
            f"decision per key, nothing written"
        )
    return doc


def _noting_repeats(repeated: list[str]) -> Callable[[list[tuple[str, Any]]], dict[str, Any]]:
    """A ``json`` object hook that keeps every object as a dict and notes each key given twice in one object."""

    def hook(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        seen: dict[str, Any] = {}
        for key, value in pairs:
            if key in seen:
                repeated.append(key)
            seen[key] = value
        return seen

    return hook


def _listed(values: list[str]) -> str:
    shown = ", ".join(map(repr, values[:SHOWN]))
    return shown + (f" and {len(values) - SHOWN} more" if len(values) > SHOWN else "")


def check_decisions(
    doc: dict[str, Any], source: Path, keys: Collection[str], classes: Collection[str], version: str
) -> dict[str, Decision]:
    """The decisions of ``doc``, or ``InputError`` listing every unknown key, label and action.

    Args:
        doc: from :func:`read_decisions`.
        source: the file, for messages.
        keys: the keys of the label version's ``issues.parquet``.
        classes: the labels an image may be given.
        version: the label version being applied; a file saved for another one is refused.
    """
    problems: dict[str, list[str]] = {"unknown key(s)": [], "unknown label(s)": [], "unknown action(s)": []}
    saved_for = doc.get("label_version")
    if saved_for is not None and saved_for != version:
        problems["another label version"] = [str(saved_for)]
    decisions: dict[str, Decision] = {}
    keys, classes = set(keys), set(classes)
    for key, entry in doc["decisions"].items():
        action = entry.get("action") if isinstance(entry, dict) else None
        label = entry.get("label", "") if isinstance(entry, dict) else ""
        if key not in keys:
            problems["unknown key(s)"].append(key)
        if action not in ACTIONS:
            problems["unknown action(s)"].append(f"{key}: {action!r}")
        elif action == "relabel" and label not in classes:
            problems["unknown label(s)"].append(str(label))
        else:
            decisions[key] = Decision(str(action), str(label) if action == "relabel" else "", "review")
    found = {kind: sorted(set(values)) for kind, values in problems.items() if values}
    if found:
        detail = "; ".join(f"{kind}: {_listed(values)}" for kind, values in found.items())
        raise InputError(
            f"decisions file {source} cannot be applied to label version {version!r}, nothing written: {detail} "
            f"(labels known: {_listed(sorted(classes))})"
        )
    if not decisions:
        raise InputError(
            f"decisions file {source} holds no decisions: decide at least one image in review.html (or use "
            f"SET=label.auto_threshold=0.9 without DECISIONS); nothing written, the earlier version stays"
        )
    return decisions


def auto_decisions(table: pd.DataFrame, options: LabelOptions) -> dict[str, Decision]:
    """The automatic policy: relabel a label issue whose suggested label has at least
    ``label.auto_threshold`` probability, and drop every other image with an issue type in ``label.auto_drop``
    (unreadable, cross-class duplicate and low-information images by default; add ``label`` to drop the
    label issues it does not relabel, confident learning's "prune").
    """
    issues = table["issues"].fillna("").str.split(",")
    drop_types = issues.map(lambda kinds: [k for k in kinds if k in options.auto_drop])
    junk = drop_types.map(lambda kinds: any(k != "label" for k in kinds)).to_numpy(bool)
    relabel = (
        table["label_issue"].fillna(False).to_numpy(bool)
        & (table["suggested_prob"].fillna(0.0).to_numpy() >= options.auto_threshold)
        & (table["suggested_label"].fillna("").to_numpy() != "")
        & ~junk
    )
    drop = drop_types.map(bool).to_numpy() & ~relabel
    decisions: dict[str, Decision] = {}
    for i in np.flatnonzero(drop):
        decisions[table["key"].iat[i]] = Decision("drop", "", "auto", ",".join(drop_types.iat[i]))
    for i in np.flatnonzero(relabel):
        prob = float(table["suggested_prob"].iat[i])
        reason = f"label issue, suggested {prob:.2f} >= {options.auto_threshold:g}"
        decisions[table["key"].iat[i]] = Decision("relabel", str(table["suggested_label"].iat[i]), "auto", reason)
    return decisions
