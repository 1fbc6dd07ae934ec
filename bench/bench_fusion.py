"""The fusion part of ``make bench-text``: the demo's generated photo-title pairs with noise in either source.

No real data set here pairs titles with photos, so this is all fusion is measured on. Photos are the demo's
procedural ones (``develop/synthetic.py``), titles the demo's ``[SYNTHETIC DEMO] <label> product #<n>``
(``develop/demo.py``). A tiny photo model is trained from scratch and the title model on the training split;
then, per setting, a seeded share of validation and test rows get noise in the photo, the title or both
(independently): ``swapped``, another class's photo or title (a confident contradiction), or ``degraded``, a
faded, blurred, grainy photo or the title without its class word (the source loses its information). The
fusion weight is chosen on the noisy validation split; the table is the noisy test split, averaged over noise
seeds, with how many seeds the fusion was at least the better source, beside the unguarded rule (any mix that
beats the better source on validation, by however few rows) as the baseline.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import cv2
import numpy as np

from develop.synthetic import CLASSES, draw_product_image, encode_jpeg
from train.fusion import WEIGHTS, choose_weight, compare, fuse

PER_CLASS = {"train": 60, "validation": 20, "test": 20}
SETTINGS = ((0.0, 0.0), (0.3, 0.0), (0.6, 0.0), (0.0, 0.3), (0.0, 0.6), (0.3, 0.1), (0.1, 0.3), (0.3, 0.3), (0.5, 0.5))
SEEDS = tuple(range(30))
KINDS = ("swapped", "degraded")  # another class's photo / title; a poor photo / a title without its class word
HEADER = (
    "| noise | photo noise | title noise | photo weight | photo acc / F1 | title acc / F1 | fused acc / F1 "
    "| fused - better acc | fused >= better (seeds) | unguarded: fused - better, seeds |"
)


def demo_title(label: str, n: int) -> str:
    """A title as the demo catalogue writes it (develop/demo.py)."""
    return f"[SYNTHETIC DEMO] {label} product #{n}"


def degrade(image: np.ndarray, seed: int) -> np.ndarray:
    """A poor photo of the same product: washed out, blurred and grainy (the class is hard to see)."""
    rng = np.random.default_rng(seed)
    grey = np.full_like(image, 200)
    faded = cv2.addWeighted(image, 0.25, grey, 0.75, 0)
    blurred = cv2.GaussianBlur(faded, (9, 9), 0).astype(np.float32)
    return np.clip(blurred + rng.normal(0, 40, image.shape), 0, 255).astype(np.uint8)


def _pairs(work: Path) -> dict[str, dict[str, Any]]:
    """Per split: photo files, wrong-photo files, titles, wrong titles, labels (written once)."""
    rng = np.random.default_rng(0)
    out: dict[str, dict[str, Any]] = {}
    n = 0
    for split, count in PER_CLASS.items():
        doc: dict[str, Any] = {k: [] for k in ("files", "wrong_files", "poor_files", "titles", "wrong_titles", "y")}
        for c, label in enumerate(CLASSES):
            for _ in range(count):
                n += 1
                other = (c + int(rng.integers(1, len(CLASSES)))) % len(CLASSES)
                for key, cls, folder in (
                    ("files", c, f"images/{split}/{label}"),
                    ("wrong_files", other, f"wrong/{split}"),
                ):
                    path = work / folder / f"{n}.jpg"
                    if not path.is_file():
                        path.parent.mkdir(parents=True, exist_ok=True)
                        path.write_bytes(encode_jpeg(draw_product_image(cls, seed=n * 7 + cls, size=64)))
                    doc[key].append(path)
                poor = work / "poor" / split / f"{n}.jpg"
                if not poor.is_file():
                    poor.parent.mkdir(parents=True, exist_ok=True)
                    poor.write_bytes(encode_jpeg(degrade(draw_product_image(c, seed=n * 7 + c, size=64), n)))
                doc["poor_files"].append(poor)
                doc["titles"].append(demo_title(label, n))
                doc["wrong_titles"].append(demo_title(CLASSES[other], n))
                doc["y"].append(c)
        doc["y"] = np.asarray(doc["y"])
        out[split] = doc
    return out


def unguarded_weight(y: np.ndarray, image: np.ndarray, text: np.ndarray) -> float:
    """The baseline (this project's first rule): the most accurate grid weight on ``y``, by however few rows,
    a single source on a tie."""
    accuracy = {w: float((fuse(image, text, w).argmax(axis=1) == y).mean()) for w in WEIGHTS}
    return max(WEIGHTS, key=lambda w: (accuracy[w], w in (0.0, 1.0)))


def _models(work: Path, pairs: dict[str, dict[str, Any]]) -> tuple[Any, Any]:
    """A tiny photo model (scratch, 32 px) and a title model, both on the training split."""
    from train.options import TrainOptions
    from train.predict import Predictor
    from train.text import TextModel, TextOptions
    from train.train import train

    options = TrainOptions(
        backbone="tiny",
        weights="none",
        recipe="scratch",
        images=str(work / "images"),
        image_size=32,
        batch_size=32,
        epochs=15,
        patience=15,
        learning_rate=3e-3,
        augment="none",
        split=(0.6, 0.2, 0.2),
    )
    run = train(None, work / "runs", options).run_dir
    text = TextModel(CLASSES, TextOptions(hash_bits=16)).fit(pairs["train"]["titles"], pairs["train"]["y"])
    text.calibrate(pairs["validation"]["titles"], pairs["validation"]["y"])
    return Predictor.load(run), text


def fusion_table(work: Path) -> list[str]:
    """The fusion table's lines (Markdown)."""
    pairs = _pairs(work)
    predictor, text = _models(work, pairs)
    probs = {}
    for split in ("validation", "test"):
        p = pairs[split]
        probs[split] = {
            "image": predictor.predict_files(p["files"]),
            "wrong_image": predictor.predict_files(p["wrong_files"]),
            "text": text.predict_proba(p["titles"]),
            "wrong_text": text.predict_proba(p["wrong_titles"]),
            "poor_image": predictor.predict_files(p["poor_files"]),
            "poor_text": text.predict_proba([f"[SYNTHETIC DEMO] product #{i}" for i in range(len(p["y"]))]),
        }
    lines = [
        (
            "Fusion, the demo's generated pairs (test split, 140 rows; swapped = another class's photo / title, "
            f"degraded = a faded, blurred, grainy photo / the title without its class word; means over noise seeds "
            f"0-{len(SEEDS) - 1})"
        ),
        "",
        HEADER,
        "|---|---:|---:|---:|---|---|---|---:|---:|---:|",
    ]
    notes: list[str] = []
    for kind, (image_noise, text_noise) in [(k, s) for k in KINDS for s in SETTINGS[1:]] + [("none", SETTINGS[0])]:
        runs = [_setting(probs, pairs, image_noise, text_noise, seed, kind) for seed in SEEDS]
        mean = {k: np.mean([r[k] for r in runs], axis=0) for k in runs[0]}
        margins = [r["fusion"][0] - max(r["image"][0], r["text"][0]) for r in runs]
        wins = sum(m >= 0 for m in margins)
        loose = [r["unguarded"] - max(r["image"][0], r["text"][0]) for r in runs]
        cells = [f"{mean[k][0]:.3f} / {mean[k][1]:.3f}" for k in ("image", "text", "fusion")]
        lines.append(
            f"| {kind} | {image_noise:.0%} | {text_noise:.0%} | {float(mean['weight']):.2f} | {' | '.join(cells)} | "
            f"{np.mean(margins):+.3f} | {wins}/{len(SEEDS)} | {np.mean(loose):+.3f}, "
            f"{sum(m >= 0 for m in loose)}/{len(SEEDS)} |"
        )
        if kind == "swapped" and image_noise == text_noise:
            gap = np.mean([abs(r["image"][0] - r["text"][0]) / 2 for r in runs])
            notes.append(
                f"swapped {image_noise:.0%} / {text_noise:.0%}: the better source on test is known only afterwards; "
                f"any rule that cannot tell them apart falls short of it by half their gap, {gap:.3f} on average"
            )
    return lines + [""] + notes


def _setting(probs: dict, pairs: dict, image_noise: float, text_noise: float, seed: int, kind: str) -> dict[str, Any]:
    rng = np.random.default_rng(seed)
    noisy = {}
    for split in ("validation", "test"):
        p, n = probs[split], len(pairs[split]["y"])
        bad_image, bad_text = rng.random(n) < image_noise, rng.random(n) < text_noise
        prefix = "wrong" if kind == "swapped" else "poor"
        image = np.where(bad_image[:, None], p[f"{prefix}_image"], p["image"])
        titles = np.where(bad_text[:, None], p[f"{prefix}_text"], p["text"])
        noisy[split] = (pairs[split]["y"], image, titles)
    weight = choose_weight(*noisy["validation"])
    scores = compare(*noisy["test"], weight, CLASSES)
    out: dict[str, Any] = {k: (v["accuracy"], v["macro_f1"]) for k, v in scores.items()}
    out["weight"] = weight
    unguarded = unguarded_weight(*noisy["validation"])
    out["unguarded"] = compare(*noisy["test"], unguarded, CLASSES)["fusion"]["accuracy"]
    return out
