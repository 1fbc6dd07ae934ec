"""The tables of ``bench/bench_label.py``: means with 95% intervals over seeds, and the targets checked."""

from __future__ import annotations

from typing import Any

import numpy as np


def interval(values: list[float]) -> tuple[float, float, float]:
    """Mean and the two ends of its 95% interval (Student's t over the seeds; one value: no width)."""
    from scipy import stats

    x = np.asarray(values, np.float64)
    mean = float(x.mean()) if len(x) else float("nan")
    if len(x) < 2:
        return mean, mean, mean
    half = float(stats.t.ppf(0.975, len(x) - 1) * x.std(ddof=1) / np.sqrt(len(x)))
    return mean, mean - half, mean + half


def _ci(values: list[float]) -> str:
    mean, low, high = interval(values)
    return f"{mean:.3f} [{low:.3f}, {high:.3f}]"


def _prf(rows: list[dict[str, Any]], method: str) -> str:
    return " / ".join(f"{interval([r[method][k] for r in rows])[0]:.2f}" for k in ("precision", "recall", "f1"))


def _verdicts(group: list[dict[str, Any]], ceiling: list[float]) -> list[str]:
    """Which targets this setting meets (F1 above cleanlab's, after above before with the intervals apart,
    half the noise's cost recovered)."""
    ours, theirs = [r["ours"]["f1"] for r in group], [r["cleanlab"]["f1"] for r in group]
    before, after = [r["test_before"] for r in group], [r["test_after"] for r in group]
    found = ["F1 above cleanlab" if np.mean(ours) > np.mean(theirs) else "F1 NOT above cleanlab"]
    if len(group) < 2:
        found.append("one seed: no interval")
    else:
        apart = interval(after)[1] > interval(before)[2]
        found.append("after > before, intervals apart" if apart else "after vs before: intervals overlap")
    if ceiling:
        share = (np.mean(after) - np.mean(before)) / max(np.mean(ceiling) - np.mean(before), 1e-9)
        found.append(f"recovers {share:.0%} of the noise's cost")
    found.append("ours: P >= 0.85 at R >= 0.80" if _meets(group) else "ours: NOT P >= 0.85 at R >= 0.80")
    return found


def _meets(group: list[dict[str, Any]]) -> bool:
    """Our mean precision at least 0.85 at a mean recall of at least 0.80 (the detection target)."""
    return bool(
        np.mean([r["ours"]["precision"] for r in group]) >= 0.85
        and np.mean([r["ours"]["recall"] for r in group]) >= 0.8
    )


def _row(setting: str, g: list[dict[str, Any]], ceiling: list[float]) -> str:
    """One table row: a noise setting over its seeds."""

    def mean(key: str) -> float:
        return float(np.mean([r[key] for r in g]))

    return (
        f"| {setting} | {len(g)} | {_prf(g, 'cleanlab')} | {_prf(g, 'ours')} | {_ci([r['ours']['f1'] for r in g])} "
        f"| {_ci([r['cleanlab']['f1'] for r in g])} | {_ci([r['test_before'] for r in g])} "
        f"| {_ci([r['test_after'] for r in g])} | {mean('relabelled'):.0f} ({mean('relabelled_right'):.0f}) "
        f"| {mean('dropped'):.0f} ({mean('dropped_flipped'):.0f}) | {'; '.join(_verdicts(g, ceiling))} |"
    )


def report(rows: list[dict[str, Any]], ceiling: dict[int, float], big: dict[str, Any] | None) -> str:
    """Markdown: one row per noise setting (means over seeds, 95% intervals), the ceiling, the scale run."""
    lines = []
    if rows:
        seeds = sorted({r["seed"] for r in rows})
        lines.append(
            f"Planted noise, grocery store photos (train + validation, {rows[0]['images']} images, 43 classes); "
            f"embeddings: {rows[0]['embedding']}; seeds {', '.join(map(str, seeds))} ({len(seeds)}; noise draw and "
            f"training); mean [95% interval]; policy {rows[0]['policy']}"
        )
        if ceiling:
            lines.append(f"Ceiling (trained on the true labels): {_ci(list(ceiling.values()))}")
        lines += [
            "",
            (
                "| noise | seeds | cleanlab defaults P / R / F1 | ours P / R / F1 | ours F1 | cleanlab F1 "
                "| test acc. before | test acc. after | relabelled (right) | dropped (flipped) | targets |"
            ),
            "|---|---:|---|---|---|---|---|---|---:|---:|---|",
        ]
    for setting in dict.fromkeys(r["setting"] for r in rows):
        g = [r for r in rows if r["setting"] == setting]
        lines.append(_row(setting, g, list(ceiling.values())))
    if big:
        sec = ", ".join(f"{k} {v:.1f} s" for k, v in big["seconds"].items())
        c, o = big["cleanlab"], big["ours"]
        lines.append("")
        lines.append(
            f"Scale: {big['n']:,} synthetic embeddings x {big['dims']} dims ({big['dtype']}), {big['classes']} "
            f"classes, 10% flipped: {big['total_s']:.0f} s ({sec}), peak RSS {big['peak_rss_mb']:.0f} MB; search "
            f"{big['search']}; F1 cleanlab {c['f1']:.2f}, ours {o['f1']:.2f}"
        )
    return "\n".join(lines)
