"""``make demo``: the whole pipeline, offline, on a generated SYNTHETIC catalogue.

It writes a small catalogue in the Kaggle schema (7 classes, procedurally drawn product pictures, a few
broken rows and URLs on purpose), serves the pictures from an aiohttp server on 127.0.0.1 for as long as
the demo runs, and then runs each stage's command line exactly as ``make <stage>`` would, under
``paths.root=data/demo`` so nothing touches real data.
"""

from __future__ import annotations

import csv
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path

from aiohttp import web

from data.core.server import BackgroundServer
from data.core.cli import run, stage_parser
from data.core.config import REPO_ROOT, Config, load_config, overrides_from_args
from data.core.contracts import RAW_COLUMNS, RUN_FILES, RUNS
from data.core.errors import InputError
from data.core.runs import LATEST, resolve_run
from develop.checks import check_outputs_inside, check_settings
from develop.synthetic import CLASSES, draw_product_image, encode_jpeg

BANNER = "*** SYNTHETIC DEMO DATA: generated pictures and products, not real Amazon data ***"
# One real main_category per class, so the demo goes through the reviewed label mapping.
DEMO_CATEGORIES = {
    "Electronics_and_Appliances": ("appliances", "Kitchen and Home Appliances"),
    "Fashion": ("men's clothing", "T-shirts and Polos"),
    "Household_Essentials": ("home & kitchen", "Home Storage"),
    "accessories": ("accessories", "Watches"),
    "other": ("toys & baby products", "STEM Toys Store"),
    "sports_fitness": ("sports & fitness", "Yoga"),
    "stores": ("stores", "The Designer Boutique"),
}
HEADER = list(RAW_COLUMNS)  # the Kaggle files' columns, as extract reads them
IMAGE_PX = 160


@dataclass(frozen=True)
class Stage:
    """One pipeline stage as the demo runs it: the make target's name and its command line."""

    target: str
    module: str
    args: tuple[str, ...] = ()
    photo_split: bool = False  # also --set train.split_file=<the newest photo run's split.csv>


# Each stage adds itself here once it exists; the demo runs them in order.
# Training flags keep the demo to a minute or two on a laptop CPU: the small "tiny" backbone, random
# initial weights (no download), so the from-scratch recipe; 64 px inputs.
DEMO_TRAIN = (
    "--set",
    "train.backbone=tiny",
    "--set",
    "train.weights=none",
    "--set",
    "train.image_size=64",
    "--set",
    "train.batch_size=16",
    "--set",
    "train.epochs=30",
    "--set",
    "train.learning_rate=3e-3",
    "--set",
    "train.warmup_epochs=2",
    "--set",
    "train.patience=8",
)
STAGES = (
    Stage("extract", "data.extract"),
    Stage("validate-urls", "data.download", ("--validate-only", "--no-progress")),
    Stage("download-images", "data.download", ("--set", "download.image_size=128")),
    Stage("publish-kaggle", "data.kaggle.publish", ("--dry-run",)),
    Stage("train", "train.train", DEMO_TRAIN),
    Stage("evaluate", "train.evaluate"),
    # titles: a text run on the photo run's split (so the fusion has validation titles it never saw), then the
    # fusion of the two; {runs}/latest stays the photo run, which the stages below read
    Stage("train-text", "train.train", ("--set", "train.modality=text"), photo_split=True),
    Stage("train-fusion", "train.train", ("--set", "train.modality=both")),
    Stage("evaluate", "train.evaluate", ("--run", "latest-fusion")),
    Stage("label", "label"),
    Stage("apply-labels", "label.apply", ("--set", "label.auto_threshold=0.9")),
    Stage("export", "deploy.export"),
    Stage("eda", "visualise.eda"),
    Stage("visualise", "visualise.report"),
)


def _image_path(label_index: int, number: int) -> str:
    return f"/images/I/demo-{label_index}-{number:04d}._AC_UL320_.jpg"


def _rows(base_url: str, per_class: int) -> dict[str, list[list[str]]]:
    """Catalogue rows per sub-category file, including a few deliberately bad ones."""
    files: dict[str, list[list[str]]] = {}
    for index, label in enumerate(CLASSES):
        main, sub = DEMO_CATEGORIES[label]
        rows = files.setdefault(f"{sub}.csv", [])
        for n in range(per_class):
            price = 199 + 37 * n + 11 * index
            rows.append(
                [
                    f"[SYNTHETIC DEMO] {label} product #{n}",
                    main,
                    sub,
                    base_url + _image_path(index, n),
                    f"https://example.invalid/demo/{index}/{n}",
                    f"{3 + (n % 20) / 10:.1f}",
                    f"{(n * 37) % 5000:,}",
                    f"₹{price:,}",
                    f"₹{price * 2:,}",
                ]
            )
    broken = files["Watches.csv"]
    broken.append(
        ["[SYNTHETIC DEMO] dead link", "accessories", "Watches", base_url + "/missing/gone.jpg", "", "", "", "", ""]
    )
    broken.append(
        ["[SYNTHETIC DEMO] not an image", "accessories", "Watches", base_url + "/html/page.jpg", "", "", "", "", ""]
    )
    broken.append(
        ["[SYNTHETIC DEMO] corrupt file", "accessories", "Watches", base_url + "/corrupt/c.jpg", "", "", "", "", ""]
    )
    broken.append(["[SYNTHETIC DEMO] no image", "accessories", "Watches", "", "", "", "", "", ""])
    broken.append(["[SYNTHETIC DEMO] duplicate", "accessories", "Watches", broken[0][3], "", "", "", "", ""])
    return files


def write_demo_catalogue(raw_dir: Path, base_url: str, per_class: int = 60) -> int:
    """Write the demo CSVs (one per sub-category plus the merged Amazon-Products.csv); returns rows written."""
    raw_dir.mkdir(parents=True, exist_ok=True)
    files = _rows(base_url, per_class)
    merged = [row for rows in files.values() for row in rows]
    files["Amazon-Products.csv"] = merged  # like Kaggle's: the merge of every other file
    for name, rows in files.items():
        with open(raw_dir / name, "w", newline="", encoding="utf-8") as fh:
            writer = csv.writer(fh)
            writer.writerow(HEADER)
            writer.writerows(rows)
    return sum(len(rows) for rows in files.values())


def make_app() -> web.Application:
    """The stand-in for Amazon's image CDN: synthetic JPEGs, a 404, an HTML page and a corrupt JPEG."""

    async def image(request: web.Request) -> web.Response:
        name = request.match_info["name"]
        try:
            _, label_index, number = name.split(".")[0].split("-")
            body = encode_jpeg(
                draw_product_image(int(label_index), seed=int(label_index) * 10_000 + int(number), size=IMAGE_PX)
            )
        except ValueError:
            raise web.HTTPNotFound()
        return web.Response(body=body, content_type="image/jpeg")

    async def html(_: web.Request) -> web.Response:
        return web.Response(
            text="<html><body>Sorry, we just need to make sure you're not a robot</body></html>",
            content_type="text/html",
        )

    async def corrupt(_: web.Request) -> web.Response:
        return web.Response(body=b"\xff\xd8\xff\xe0" + b"\x00garbage" * 64, content_type="image/jpeg")

    app = web.Application()
    app.router.add_get("/images/I/{name}", image)
    app.router.add_get("/html/{name}", html)
    app.router.add_get("/corrupt/{name}", corrupt)
    return app


def demo_server(port: int = 8765) -> BackgroundServer:
    """:func:`make_app` on 127.0.0.1 (``port`` when free, else any free port) for a ``with`` block."""
    return BackgroundServer(make_app, port=port if port and _port_free(port) else 0, shutdown_timeout=1.0)


def _port_free(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) != 0


OWNER_MARK = ".product-categorization-demo"  # the demo writes only into a folder that holds this file


def claim_root(root: Path) -> None:
    """Make ``root`` the demo's own folder, or refuse a folder that holds files the demo did not make.

    Raises:
        InputError: ``root`` is a file, or a non-empty folder without the demo's mark (nothing is touched).
    """
    if root.exists() and not root.is_dir():
        raise InputError(f"--root {root} is a file; choose a folder for the demo")
    if root.is_dir() and any(root.iterdir()) and not (root / OWNER_MARK).is_file():
        raise InputError(
            f"{root} already holds files the demo did not make; the demo writes only into an empty folder or "
            f"one it made itself: choose another --root (nothing was changed)"
        )
    root.mkdir(parents=True, exist_ok=True)
    (root / OWNER_MARK).write_text("made by `make demo`; delete this folder to start again\n", encoding="utf-8")


def stage_overrides() -> list[str]:
    """Every ``--set`` value the demo gives its stages (the user's come after them and win)."""
    return [arg for stage in STAGES for flag, arg in zip(stage.args, stage.args[1:]) if flag == "--set"]


def with_photo_split(stage: Stage, cfg: Config) -> Stage:
    """``stage`` with the newest photo run's split.csv as its ``train.split_file`` where it asks for it."""
    if not stage.photo_split:
        return stage
    split = resolve_run(cfg.path(RUNS), LATEST) / RUN_FILES["split"]
    return replace(stage, args=(*stage.args, "--set", f"train.split_file={split}"))


def run_stage(stage: Stage, config: Path, overrides: list[str]) -> int:
    """Run one stage's command line as ``make <target>`` would; returns its exit code.

    ``overrides`` (the demo's root first, then the user's ``--set`` values) come last, so they win over
    the demo's own settings.
    """
    command = [
        sys.executable,
        "-m",
        stage.module,
        "--config",
        str(config),
        *stage.args,
        *(arg for o in overrides for arg in ("--set", o)),
    ]
    print(f"\n==> make {stage.target}   ({' '.join(command[1:])})", flush=True)
    started = time.monotonic()
    code = subprocess.run(command, cwd=REPO_ROOT).returncode
    if code == 0:
        print(f"<== {stage.target} done in {time.monotonic() - started:.1f} s", flush=True)
    return code


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point (``make demo``)."""
    parser = stage_parser("develop.demo", __doc__)
    parser.add_argument("--root", default="data/demo", help="where the demo writes everything (paths.root)")
    parser.add_argument("--per-class", type=int, default=60, help="synthetic products per class")
    args = parser.parse_args(argv)

    def body() -> int:
        # The demo's root first, the user's overrides after it: paths.version and the rest apply to the
        # demo's own catalogue exactly as to the stages it runs.
        overrides = [f"paths.root={args.root}", *overrides_from_args(args)]
        config = Path(args.config).resolve()  # the stages run in the repository, maybe not from here
        root = load_config(config, overrides).path("root").resolve()
        overrides.append(f"paths.root={root}")  # the folder claimed below, wherever the stages run
        cfg = load_config(config, overrides)
        if args.per_class < 3:
            raise InputError("--per-class must be at least 3 (train, validation and test need an image each)")
        check_outputs_inside(cfg, root)
        check_settings(load_config(config, [*stage_overrides(), *overrides]))
        claim_root(root)
        print(BANNER)
        started = time.monotonic()
        with demo_server() as server:
            raw_dir = cfg.path("raw")
            rows = write_demo_catalogue(raw_dir, server.base_url, args.per_class)
            print(
                f"demo catalogue: {rows} rows in {raw_dir} ({len(CLASSES)} classes x {args.per_class} products, "
                f"plus the merged file and 5 broken rows); images served at {server.base_url}"
            )
            for stage in STAGES:
                code = run_stage(with_photo_split(stage, cfg), config, overrides)
                if code:  # the stage said why in its own one line; a second "error:" line would only repeat it
                    print(
                        f"demo stopped: make {stage.target} failed (exit {code}, see above); outputs so far "
                        f"are under {root}/",
                        file=sys.stderr,
                    )
                    return code
        print(f"\ndemo finished in {time.monotonic() - started:.0f} s; everything it wrote is under {root}/")
        print(BANNER)
        return 0

    return run(body)


if __name__ == "__main__":
    raise SystemExit(main())
