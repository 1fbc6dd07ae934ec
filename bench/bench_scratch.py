"""Benchmark: training from scratch on real photos, ``make train`` against keras-io's recipe, same budget.

Three contenders train on the grocery photos (43 classes, the data set's own train/validation/test
split) at the same image size, each with the same wall-clock budget, one after the other, each in its own
process (so CPU seconds and peak memory are its own), then score the test split:

- ``keras_io``: the recipe of the keras-io example "Image classification from scratch", written here from
  its description: images resized to the square size, batches of 32 (the example's 128 would need about
  four times the 3.3 GB measured at 32, too much for this shared machine: ``--keras-io-batch 128``; 32 also
  gives it four times the updates per epoch), random horizontal flip and rotation
  (factor 0.1) applied in tf.data, a small Xception-like network (a strided 128-filter entry convolution,
  three residual blocks of two separable convolutions with max pooling at 256/512/728 filters, a
  1024-filter separable convolution, global pooling, dropout 0.25), Adam at 3e-4, the last epoch's weights;
- ``ours``: ``make train`` with ``train.weights=none`` (the from-scratch recipe) and our ``small_resnet``,
  batch 32, AdamW peak 2e-3, patience 10, the cosine decay run over the budget (``train.epochs=1000``);
- ``floor``: ``make train`` as it behaved before the from-scratch recipe: ``train.weights=none`` with the
  transfer recipe (a head on a frozen random mobilenet_v3_small, then fine-tuning its top).

Training stops before the epoch that would end past the budget, and an epoch longer than the whole
budget is cut at the deadline (``train.time_budget_s``; the same callback for keras_io). Wall and CPU
seconds cover training (data checks and model building included), not the test scoring; peak RSS is the
contender process's. The machine's load average is sampled while each contender runs (the 2 cores are
shared).

    .venv/bin/python -m bench.bench_scratch --budget-s 420 --image-size 128    # the README's table
    .venv/bin/python -m bench.bench_scratch --budget-s 30 --image-size 64     # a quick check that it runs
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

from data.core.config import REPO_ROOT

GROCERY = REPO_ROOT.parent / "shared" / "data" / "grocery-store-photos"
WORK = REPO_ROOT / "bench" / "results" / "scratch"
CONTENDERS = ("keras_io", "ours", "floor")
TITLES = {
    "keras_io": "keras-io from-scratch recipe (small Xception, Adam 3e-4)",
    "ours": "ours: make train, weights=none (scratch, small_resnet)",
    "floor": "before: make train, weights=none (frozen random mobilenet_v3_small)",
}


def _cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _split_files(images: Path, split: str, classes: list[str]) -> tuple[list[str], list[int]]:
    files = sorted(images.glob(f"{split}/*/*.jpg"))
    return [str(f) for f in files], [classes.index(f.parent.name) for f in files]


def _keras_io_model(size: int, classes: int) -> Any:
    """The small Xception-like network of the keras-io example, as its text describes it."""
    import keras
    from keras import layers

    inputs = keras.Input((size, size, 3))
    x = layers.Rescaling(1.0 / 255)(inputs)
    x = layers.Activation("relu")(layers.BatchNormalization()(layers.Conv2D(128, 3, strides=2, padding="same")(x)))
    previous = x
    for width in (256, 512, 728):
        for _ in range(2):
            x = layers.BatchNormalization()(
                layers.SeparableConv2D(width, 3, padding="same")(layers.Activation("relu")(x))
            )
        x = layers.MaxPooling2D(3, strides=2, padding="same")(x)
        x = layers.add([x, layers.Conv2D(width, 1, strides=2, padding="same")(previous)])
        previous = x
    x = layers.Activation("relu")(layers.BatchNormalization()(layers.SeparableConv2D(1024, 3, padding="same")(x)))
    x = layers.Dropout(0.25)(layers.GlobalAveragePooling2D()(x))
    return keras.Model(inputs, layers.Dense(classes)(x))


def _keras_io_dataset(args: argparse.Namespace, split: str, classes: list[str], train: bool) -> Any:
    """The example's input: whole images resized to the square (image_dataset_from_directory's way, no
    crop), batched, and for training shuffled and augmented in tf.data (random flip, rotation 0.1)."""
    import keras
    import tensorflow as tf

    size = args.image_size

    def decode(path: tf.Tensor, label: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        return tf.image.resize(tf.io.decode_jpeg(tf.io.read_file(path), channels=3), (size, size)), label

    files, labels = _split_files(args.images, split, classes)
    ds = tf.data.Dataset.from_tensor_slices((files, labels))
    if train:
        ds = ds.shuffle(len(files), seed=1337)
    ds = ds.map(decode, num_parallel_calls=tf.data.AUTOTUNE).batch(args.keras_io_batch)
    if train:
        augment = keras.Sequential([keras.layers.RandomFlip("horizontal"), keras.layers.RandomRotation(0.1)])
        ds = ds.map(lambda x, y: (augment(x, training=True), y), num_parallel_calls=tf.data.AUTOTUNE)
    return ds.prefetch(tf.data.AUTOTUNE)


def keras_io(args: argparse.Namespace, started: float, cpu: float) -> dict[str, Any]:
    """Train the keras-io recipe within the budget; returns its test probabilities and labels."""
    import keras
    import tensorflow as tf

    from train.callbacks import TimeBudget

    classes = sorted(p.name for p in (args.images / "train").iterdir() if p.is_dir())
    keras.utils.set_random_seed(42)
    model = _keras_io_model(args.image_size, len(classes))
    model.compile(
        optimizer=keras.optimizers.Adam(3e-4),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )
    budget = TimeBudget(started + args.budget_s)
    history = model.fit(
        _keras_io_dataset(args, "train", classes, True),
        validation_data=_keras_io_dataset(args, "validation", classes, False),
        epochs=10_000,
        callbacks=[budget],
        verbose=2,
    )
    train_seconds, cpu_seconds = time.perf_counter() - started, _cpu_seconds() - cpu
    logits = model.predict(_keras_io_dataset(args, "test", classes, False), verbose=0)
    probs = tf.nn.softmax(logits).numpy()
    _, labels = _split_files(args.images, "test", classes)
    return {
        "epochs": len(history.epoch),
        "train_seconds": train_seconds,
        "cpu_seconds": cpu_seconds,
        "probs": probs,
        "labels": labels,
        "classes": classes,
    }


def make_train(args: argparse.Namespace, name: str, work: Path, started: float, cpu: float) -> dict[str, Any]:
    """``make train`` (through ``train.train.main``) with the contender's settings, then its test split."""
    sets = [
        f"paths.root={work / name}",
        f"train.images={args.images}",
        "train.weights=none",
        f"train.image_size={args.image_size}",
        f"train.time_budget_s={args.budget_s}",
        f"train.cache_dir='{work / name / 'cache'}'",
    ]
    if name == "ours":
        sets += ["train.backbone=small_resnet", f"train.batch_size={args.batch_size}", "train.epochs=1000"]
        sets += [f"train.learning_rate={args.learning_rate}", "train.patience=10"]
    else:  # the behaviour before the from-scratch recipe: the old defaults, frozen random backbone
        sets += ["train.recipe=transfer", "train.backbone=mobilenet_v3_small"]
    return train_and_score(sets, work / name, args.images, started, cpu)


def train_and_score(sets: list[str], root: Path, images: Path, started: float, cpu: float) -> dict[str, Any]:
    """``make train --set ...`` (``paths.root`` = ``root``), timed; then ``make evaluate`` on the test split."""
    from train import train as train_cli
    from train.evaluate import EvaluateOptions, evaluate

    argv = [arg for item in sets for arg in ("--set", item)]
    if train_cli.main(argv) != 0:
        raise SystemExit(f"{root.name}: make train failed")
    train_seconds, cpu_seconds = time.perf_counter() - started, _cpu_seconds() - cpu
    run_dir = next(p for p in (root / "runs").iterdir() if not p.name.startswith(".") and p.is_dir())
    metrics = json.loads((run_dir / "metrics.json").read_text())
    test = evaluate(run_dir, images, EvaluateOptions(gallery_size=8))
    history = metrics["history"]
    first = next(iter(metrics["phases"].values()))
    return {
        "epochs": len(history),
        "train_seconds": train_seconds,
        "cpu_seconds": cpu_seconds,
        "test": test,
        "images_per_second": [round(r.get("images_per_second", 0.0), 1) for r in history],
        "input_pipeline": first.get("input_pipeline"),
        "screen_seconds": metrics["data"].get("screen_seconds"),
        "phases": {k: {x: v.get(x) for x in ("epochs", "seconds", "best_epoch")} for k, v in metrics["phases"].items()},
    }


def child(args: argparse.Namespace) -> None:
    """One contender in this process; writes its numbers to ``args.out``."""
    from data.core.cli import setup_logging
    from train.metrics import classification_report

    setup_logging()
    started, cpu = time.perf_counter(), _cpu_seconds()
    if args.child == "keras_io":
        result = keras_io(args, started, cpu)
        report = classification_report(result.pop("labels"), result.pop("probs"), result.pop("classes"))
    else:
        result = make_train(args, args.child, args.work, started, cpu)
        report = result.pop("test")
    result.update(
        {
            "accuracy": report["accuracy"],
            "macro_f1": report["macro_f1"],
            "test_images": report["samples"],
            "sanity_passed": report.get("sanity", {}).get("passed"),
        }
    )
    args.out.write_text(json.dumps(result, default=float, indent=2))


def _run_child(args: argparse.Namespace, name: str) -> dict[str, Any]:
    """Run one contender in a subprocess; its numbers plus its peak RSS and the load seen meanwhile."""
    out = args.work / f"{name}.json"
    command = [sys.executable, "-m", "bench.bench_scratch", "--child", name, "--out", str(out)]
    command += ["--images", str(args.images), "--work", str(args.work), "--budget-s", str(args.budget_s)]
    command += ["--image-size", str(args.image_size), "--batch-size", str(args.batch_size)]
    command += ["--learning-rate", str(args.learning_rate), "--keras-io-batch", str(args.keras_io_batch)]
    return run_measured(command, out, name)


def run_measured(command: list[str], out: Path, name: str) -> dict[str, Any]:
    """Run a benchmark child process that writes its numbers as JSON to ``out``; adds its wall and CPU
    seconds, peak RSS and the load average seen meanwhile (sampled every 10 s)."""
    loads: list[float] = []
    done = threading.Event()

    def sample() -> None:
        while not done.wait(10.0):
            loads.append(os.getloadavg()[0])

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    wall = time.perf_counter()
    proc = subprocess.Popen(command, cwd=REPO_ROOT, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"})
    _, status, usage = os.wait4(proc.pid, 0)
    done.set()
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise SystemExit(f"contender {name} failed with exit code {proc.returncode}")
    result = json.loads(out.read_text())
    result.update(
        {
            "name": name,
            "process_wall": round(time.perf_counter() - wall, 1),
            "process_cpu": round(usage.ru_utime + usage.ru_stime, 1),
            "peak_rss_mb": round(usage.ru_maxrss / 1024),  # Linux: kilobytes
            "load": round(sum(loads) / len(loads), 2) if loads else os.getloadavg()[0],
        }
    )
    return result


def table(rows: list[dict[str, Any]], args: argparse.Namespace) -> str:
    """The markdown table and the notes under it."""
    lines = [
        f"grocery-store-photos, 43 classes (own split: 2,640 train / 296 validation / 2,485 test), "
        f"{args.image_size} px, budget {args.budget_s:.0f} s per contender, {os.cpu_count()} CPU cores (shared)",
        "",
        "| recipe | epochs | train wall (s) | train CPU (s) | peak RSS (MB) | test accuracy | test macro-F1 "
        "| load avg |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {TITLES[r['name']]} | {r['epochs']} | {r['train_seconds']:.0f} | {r['cpu_seconds']:.0f} | "
            f"{r['peak_rss_mb']} | {r['accuracy']:.3f} | {r['macro_f1']:.3f} | {r['load']:.1f} |"
        )
    for r in rows:
        if r.get("input_pipeline"):
            rates = [v for v in r["images_per_second"] if v]
            lines.append(
                f"\n{r['name']}: input pipeline alone {r['input_pipeline']['images_per_second']:.0f} images/s vs "
                f"training {min(rates):.0f}-{max(rates):.0f} images/s per epoch; decode pre-pass "
                f"{r['screen_seconds']} s for all images; gate passed on test: {r['sanity_passed']}"
            )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.bench_scratch", description=__doc__.split("\n")[0])
    parser.add_argument("--images", type=Path, default=GROCERY, help="<split>/<label>/<file> photos")
    parser.add_argument("--budget-s", type=float, default=420.0, help="wall-clock training budget per contender")
    parser.add_argument("--image-size", type=int, default=128)
    parser.add_argument("--batch-size", type=int, default=32, help="ours")
    parser.add_argument("--learning-rate", type=float, default=2e-3, help="ours: AdamW's peak")
    parser.add_argument("--keras-io-batch", type=int, default=32, help="keras_io (the example uses 128)")
    parser.add_argument("--contenders", default=",".join(CONTENDERS), help="comma-separated, in order")
    parser.add_argument("--work", type=Path, default=WORK, help="scratch folder (runs), emptied first")
    parser.add_argument("--keep", action="store_true", help="keep the scratch folder")
    parser.add_argument("--child", choices=CONTENDERS, help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        child(args)
        return 0
    shutil.rmtree(args.work, ignore_errors=True)
    args.work.mkdir(parents=True)
    rows = [_run_child(args, name) for name in args.contenders.split(",")]
    print(table(rows, args))
    (args.work.parent / "scratch.json").write_text(json.dumps(rows, indent=2))
    if not args.keep:
        shutil.rmtree(args.work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
