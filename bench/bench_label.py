"""Benchmark: ``make label`` on real photos with planted label noise, and the label core at scale.

1. **Planted noise.** The train and validation photos of the grocery store data set (43 classes) get 10% or
   20% of their labels flipped, uniformly (to any other class) or class-conditionally (class c to one
   fixed other class), seeded. For each setting: train a model on the noisy labels (the from-scratch
   recipe: no pretrained weights offline), run ``make label``, and score the flagged images against the
   flipped ones, for cleanlab's defaults on the out-of-fold probabilities and for our full method (kNN
   second opinion, ``label.filter_by``); then ``make apply-labels`` with the automatic policy, train again
   on the new version, and compare the accuracy of both models on the data set's own (clean) test photos.
2. **Scale.** 100k synthetic vectors (a Gaussian mixture with 10% flipped labels), in a fresh process:
   the neighbour search, clusters, out-of-fold probabilities and cleanlab, with time and peak memory.

    make bench-label     # or: .venv/bin/python -m bench.bench_label --noise 0.2 --kinds uniform --epochs 4
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import logging
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from data.core.config import REPO_ROOT

DATA = REPO_ROOT.parent / "shared" / "data" / "grocery-store-photos"
WORK = REPO_ROOT / "bench" / "results" / "label"


def build_manifest(data: Path, folders: tuple[str, ...], per_class: int) -> pd.DataFrame:
    """A download-stage manifest (status ok, paths relative to ``data``) of the photos in ``folders``."""
    rows = []
    for folder in folders:
        for class_dir in sorted((data / folder).iterdir()):
            for path in sorted(class_dir.glob("*.jpg"))[: per_class or None]:
                relative = path.relative_to(data).as_posix()
                payload = path.read_bytes()
                rows.append(
                    {
                        "key": hashlib.sha1(relative.encode("utf-8")).hexdigest()[:16],
                        "url": f"file:{relative}",
                        "label": class_dir.name,
                        "status": "ok",
                        "reason": "",
                        "sha256": hashlib.sha256(payload).hexdigest(),
                        "path": relative,
                    }
                )
    return pd.DataFrame(rows)


def flip(frame: pd.DataFrame, rate: float, kind: str, seed: int) -> tuple[pd.DataFrame, set[str]]:
    """``frame`` with ``rate`` of its labels flipped (``uniform`` or class-conditional ``class``); the keys flipped."""
    rng = np.random.default_rng(seed)
    classes = np.array(sorted(frame["label"].unique()))
    cycle = classes[rng.permutation(len(classes))]
    partner = dict(zip(cycle, np.roll(cycle, -1)))  # one step along a random cycle: never the class itself
    noisy = frame.copy()
    chosen = []
    for _, rows in frame.groupby("label"):
        take = rng.choice(rows.index.to_numpy(), round(rate * len(rows)), replace=False)
        chosen.extend(take.tolist())
    for i in chosen:
        given = frame.at[i, "label"]
        others = classes[classes != given]
        noisy.at[i, "label"] = partner[given] if kind == "class" else rng.choice(others)
    return noisy, set(frame.loc[chosen, "key"])


def scores(flagged: pd.Series, keys: pd.Series, flipped: set[str]) -> dict[str, float]:
    """Precision, recall and F1 of the flagged images against the flipped ones."""
    hit = keys.isin(flipped).to_numpy()
    flag = flagged.to_numpy(bool)
    tp = int((hit & flag).sum())
    precision = tp / max(int(flag.sum()), 1)
    recall = tp / max(int(hit.sum()), 1)
    return {
        "flagged": int(flag.sum()),
        "precision": precision,
        "recall": recall,
        "f1": 2 * precision * recall / max(precision + recall, 1e-12),
    }


TEST_IMAGES = "2,485"


def test_accuracy(run_dir: Path, data: Path) -> float:
    """Accuracy of a run's model on the data set's own clean ``test`` photos."""
    from train.predict import Predictor

    predictor = Predictor.load(run_dir)
    files = sorted((data / "test").glob("*/*.jpg"))
    truth = np.array([f.parent.name for f in files])
    known = np.isin(truth, predictor.classes)
    probs = predictor.predict_files([f for f, k in zip(files, known) if k])
    predicted = np.asarray(predictor.classes)[probs.argmax(axis=1)]
    return float((predicted == truth[known]).sum() / len(files))


def clean_accuracy(clean: pd.DataFrame, args: argparse.Namespace, train_options: Any) -> float:
    """Test accuracy of the same recipe trained on the true labels."""
    from train.train import train

    manifest = args.work / "clean" / "manifest.parquet"
    manifest.parent.mkdir(parents=True, exist_ok=True)
    clean.to_parquet(manifest, index=False)
    run_id = f"clean-seed{train_options.seed}"
    run = train(manifest, args.work / "runs", train_options, images_dir=args.data, run_id=run_id)
    return test_accuracy(run.run_dir, args.data)


def noise_setting(
    name: str, noisy: pd.DataFrame, flipped: set[str], args: argparse.Namespace, train_options: Any
) -> dict[str, Any]:
    """Train on ``noisy``, label, apply each automatic policy and train again: the numbers of one table row."""
    from label.options import LabelOptions
    from label.stage import find_issues
    from train.train import train

    work = args.work / f"{name}-seed{train_options.seed}"
    manifest = work / "manifest.parquet"
    manifest.parent.mkdir(parents=True, exist_ok=True)
    noisy.to_parquet(manifest, index=False)
    started = time.perf_counter()
    before = train(manifest, args.work / "runs", train_options, images_dir=args.data, run_id=f"{work.name}-noisy")
    train_s = time.perf_counter() - started
    options = LabelOptions(cache_dir=str(args.work / "cache"), workers=2)
    started = time.perf_counter()
    labelled = find_issues(before.run_dir, manifest, args.data, args.work / "labels" / work.name, options)
    label_s = time.perf_counter() - started
    table = pd.read_parquet(labelled.out_dir / "issues.parquet")
    clean = build_manifest(args.data, ("train", "validation"), args.per_class).set_index("key")["label"]
    policies = [
        after_policy(policy, before.run_dir, labelled.out_dir, manifest, clean, flipped, args, train_options)
        for policy in args.policies
    ]
    return {
        "setting": name,
        "train_seed": train_options.seed,
        "images": len(table),
        "flipped": len(flipped),
        "cleanlab": scores(table["cleanlab_default"], table["key"], flipped),
        "ours": scores(table["label_issue"], table["key"], flipped),
        "oof_accuracy": labelled.summary["label_issues"]["oof_accuracy"],
        "estimated_noise": labelled.summary["noise_matrix"]["estimated_noise_rate"],
        "test_before": test_accuracy(before.run_dir, args.data),
        "policies": policies,
        "train_s": train_s,
        "label_s": label_s,
    }


def after_policy(
    policy: str,
    before_run: Path,
    version_dir: Path,
    manifest: Path,
    clean: pd.Series,
    flipped: set[str],
    args: argparse.Namespace,
    train_options: Any,
) -> dict[str, Any]:
    """``make apply-labels`` with one automatic policy (``T``: relabel at threshold T; ``T+prune``: also drop
    the other label issues), a model trained on the new version, and its test accuracy."""
    from label.apply import apply_labels
    from label.options import LabelOptions
    from train.train import train

    threshold, _, prune = policy.partition("+")
    drop = LabelOptions().auto_drop + (("label",) if prune == "prune" else ())
    options = LabelOptions(auto_threshold=float(threshold), auto_drop=drop)
    applied = apply_labels(version_dir, manifest, None, options)
    run_id = f"{version_dir.name}-{policy.replace('+', '-')}"
    # the before run's train/validation assignment (train.split_file): only the labels differ between the two
    kept = dataclasses.replace(train_options, split_file=str(before_run / "split.csv"))
    after = train(applied.manifest, args.work / "runs", kept, images_dir=args.data, run_id=run_id)
    changes = pd.read_csv(applied.out_dir / "changes.csv")
    fixed, dropped = changes[changes["action"] == "relabel"], changes[changes["action"] == "drop"]
    return {
        "policy": policy,
        "relabelled": len(fixed),
        "relabelled_right": int((fixed["new_label"].to_numpy() == fixed["key"].map(clean).to_numpy()).sum()),
        "dropped": len(dropped),
        "dropped_flipped": int(dropped["key"].isin(flipped).sum()),
        "test_after": test_accuracy(after.run_dir, args.data),
    }


def peak_rss_mb() -> float:
    """This process's peak resident memory (VmHWM): unlike getrusage's ru_maxrss, it does not inherit the
    peak of the TensorFlow process that started this one."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def scale(n: int, dims: int, classes: int, seed: int) -> dict[str, Any]:
    """The label core on ``n`` synthetic vectors: seconds per step, peak memory, and flags vs planted flips."""
    from label.embed import project, unit_rows
    from label.issues import score_labels
    from label.neighbours import clusters, near_radius, nearest
    from label.options import LabelOptions

    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((classes, dims)).astype(np.float32) * 1.5
    truth = rng.integers(0, classes, n)
    vectors = centres[truth] + rng.standard_normal((n, dims)).astype(np.float32) * 3.0
    labels = truth.copy()
    flipped = rng.random(n) < 0.1
    labels[flipped] = (truth[flipped] + rng.integers(1, classes, flipped.sum())) % classes
    options, times = LabelOptions(), {}
    started = time.perf_counter()
    reduced = project(vectors, options.dims, seed)
    times["project"] = time.perf_counter() - started
    indices, sims = nearest(unit_rows(reduced[:, : options.search_dims]), options.neighbours, progress=False)
    times["neighbours"] = time.perf_counter() - started - sum(times.values())
    cluster = clusters(indices, sims, near_radius(sims, options.near_duplicate), np.full(n, -1))
    times["clusters"] = time.perf_counter() - started - sum(times.values())
    result = score_labels(reduced, labels, cluster, (indices, sims), classes, options)
    times["oof_knn_cleanlab"] = time.perf_counter() - started - sum(times.values())
    keys = pd.Series(np.arange(n).astype(str))
    planted = set(keys[flipped])
    return {
        "n": n,
        "dims": dims,
        "classes": classes,
        "seconds": times,
        "total_s": sum(times.values()),
        "peak_rss_mb": peak_rss_mb(),
        "cleanlab": scores(pd.Series(result.baseline_issue), keys, planted),
        "ours": scores(pd.Series(result.label_issue), keys, planted),
    }


def _mean(values: list[float]) -> float:
    return float(np.mean(values)) if values else float("nan")


def _prf(rows: list[dict[str, Any]], method: str) -> str:
    return " / ".join(f"{_mean([r[method][k] for r in rows]):.2f}" for k in ("precision", "recall", "f1"))


def _accs(values: list[float]) -> str:
    """The mean, and each seed's figure when there are several."""
    each = f" ({', '.join(f'{v:.3f}' for v in values)})" if len(values) > 1 else ""
    return f"{_mean(values):.3f}{each}"


def report(
    rows: list[dict[str, Any]], oracle: dict[int, float], big: dict[str, Any] | None, args: argparse.Namespace
) -> str:
    """The markdown tables: one row per noise setting and policy, means over the training seeds."""
    images = rows[0]["images"] if rows else 0
    seeds = ", ".join(str(s) for s in sorted({r.get("train_seed", "?") for r in rows} | set(oracle), key=str))
    lines = [
        f"Planted noise, grocery store photos (train + validation, {images} images, 43 classes); {args.backbone} "
        f"from scratch @ {args.image_size} px, {args.epochs} epochs; test accuracy on the {TEST_IMAGES} clean "
        f"test photos; means over training seeds {seeds} (each seed's figure in brackets)",
    ]
    if oracle:
        lines.append(f"Trained on the true labels (the most cleaning could give back): {_accs(list(oracle.values()))}")
    lines += [
        "",
        "| noise | cleanlab defaults P / R / F1 | ours P / R / F1 | test acc. before | policy "
        "| relabelled (right) | dropped (flipped) | test acc. after | after - before |",
        "|---|---|---|---:|---|---:|---:|---:|---:|",
    ]
    for setting in dict.fromkeys(r["setting"] for r in rows):
        group = [r for r in rows if r["setting"] == setting]
        before = [r["test_before"] for r in group]
        head = f"| {setting} | {_prf(group, 'cleanlab')} | {_prf(group, 'ours')} | {_accs(before)} "
        for i, policy in enumerate(p["policy"] for p in group[0]["policies"]):
            runs = [next(p for p in r["policies"] if p["policy"] == policy) for r in group]
            after = [p["test_after"] for p in runs]
            lead = head if i == 0 else "| | | | "
            lines.append(
                f"{lead}| {policy} | {_mean([p['relabelled'] for p in runs]):.0f} "
                f"({_mean([p['relabelled_right'] for p in runs]):.0f}) | {_mean([p['dropped'] for p in runs]):.0f} "
                f"({_mean([p['dropped_flipped'] for p in runs]):.0f}) | {_accs(after)} | "
                f"{_mean(after) - _mean(before):+.3f} |"
            )
    if big:
        sec = ", ".join(f"{k} {v:.1f} s" for k, v in big["seconds"].items())
        c, o = big["cleanlab"], big["ours"]
        lines += [
            "",
            f"Scale: {big['n']:,} synthetic vectors x {big['dims']} dims, {big['classes']} classes, 10% flipped: "
            f"{big['total_s']:.0f} s ({sec}), peak RSS {big['peak_rss_mb']:.0f} MB; F1 cleanlab {c['f1']:.2f}, "
            f"ours {o['f1']:.2f}",
        ]
    return "\n".join(lines)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m bench.bench_label", description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, default=DATA, help="folder with train/, validation/, test/ class folders")
    parser.add_argument("--noise", type=float, nargs="*", default=[0.1, 0.2], help="flip rates (none: skip part 1)")
    parser.add_argument("--kinds", nargs="+", default=["uniform", "class"], choices=["uniform", "class"])
    parser.add_argument("--per-class", type=int, default=0, help="at most this many photos per class (0: all)")
    parser.add_argument("--backbone", default="small_resnet", help="trained from scratch (train.recipe=scratch)")
    parser.add_argument("--image-size", type=int, default=64)
    parser.add_argument("--epochs", type=int, default=40, help="long enough to converge (15 stops underfit)")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument(
        "--policies",
        nargs="+",
        default=["0.5+prune"],
        help="automatic policies to apply and retrain: T (relabel at label.auto_threshold=T) or T+prune (also drop "
        "the other label issues: auto_drop += label)",
    )
    parser.add_argument("--scale-n", type=int, default=100_000, help="synthetic vectors for part 2 (0: skip)")
    parser.add_argument("--scale-dims", type=int, default=128)
    parser.add_argument("--scale-only", action="store_true", help=argparse.SUPPRESS)  # the fresh process of part 2
    parser.add_argument("--threads", type=int, default=1, help="BLAS/OpenMP threads in part 2 (label.threads)")
    parser.add_argument("--seed", type=int, default=0, help="the label flips' seed")
    parser.add_argument(
        "--train-seeds", type=int, nargs="+", default=[0, 1], help="training seeds: every setting once per seed"
    )
    parser.add_argument("--no-oracle", dest="oracle", action="store_false", help="skip the run on the true labels")
    parser.add_argument("--work", type=Path, default=WORK, help="scratch folder (runs, labels), emptied first")
    parser.add_argument(
        "--merge",
        type=Path,
        nargs="+",
        metavar="LOG",
        help="run nothing: print the tables of the JSON lines that earlier runs printed (several seeds, one table); "
        "give the other options as those runs had them",
    )
    return parser


def merge(logs: list[Path]) -> tuple[list[dict[str, Any]], dict[int, float], dict[str, Any] | None]:
    """The rows, oracle figures and scale result printed as JSON lines in ``logs`` (each run's output)."""
    rows, oracle, big = [], {}, None
    for log in logs:
        for line in log.read_text(encoding="utf-8").splitlines():
            if not line.startswith("{"):
                continue
            doc = json.loads(line)
            if "setting" in doc:
                rows.append(doc)
            elif "oracle_seed" in doc:
                oracle[doc["oracle_seed"]] = doc["test"]
            elif "total_s" in doc:
                big = doc
    return rows, oracle, big


def main(argv: list[str] | None = None) -> None:
    args = _parser().parse_args(argv)
    if args.merge:
        print(report(*merge(args.merge), args))
        return
    if args.scale_only:
        from threadpoolctl import threadpool_limits

        with threadpool_limits(args.threads or None):
            print(json.dumps(scale(args.scale_n, args.scale_dims, 20, args.seed)))
        return
    from data.core.cli import setup_logging
    from train.options import TrainOptions

    setup_logging(logging.WARNING)
    logging.getLogger("tensorflow").setLevel(logging.ERROR)
    shutil.rmtree(args.work, ignore_errors=True)
    options = TrainOptions(
        backbone=args.backbone,
        weights="none",
        recipe="scratch",
        image_size=args.image_size,
        batch_size=args.batch_size,
        epochs=args.epochs,
        patience=args.epochs,
        cache_dir=str(args.work / "cache"),
    )
    clean = build_manifest(args.data, ("train", "validation"), args.per_class)
    rows, oracle = [], {}
    for train_seed in args.train_seeds if args.noise else []:
        seeded = dataclasses.replace(options, seed=train_seed)
        if args.oracle:  # the same recipe on the true labels: the most cleaning could give back
            oracle[train_seed] = clean_accuracy(clean, args, seeded)
            print(json.dumps({"oracle_seed": train_seed, "test": oracle[train_seed]}), flush=True)
        for kind in args.kinds:
            for rate in args.noise:
                noisy, flipped = flip(clean, rate, kind, args.seed)
                rows.append(noise_setting(f"{kind}-{round(rate * 100)}pct", noisy, flipped, args, seeded))
                print(json.dumps(rows[-1]), flush=True)
    big = None
    if args.scale_n:
        cmd = [
            sys.executable,
            "-m",
            "bench.bench_label",
            "--scale-only",
            "--scale-n",
            str(args.scale_n),
            "--scale-dims",
            str(args.scale_dims),
            "--seed",
            str(args.seed),
            "--threads",
            str(args.threads),
        ]
        out = subprocess.run(cmd, cwd=REPO_ROOT, capture_output=True, text=True, check=True).stdout
        big = json.loads(out.strip().splitlines()[-1])
        print(json.dumps(big), flush=True)
    print(report(rows, oracle, big, args))


if __name__ == "__main__":
    main()
