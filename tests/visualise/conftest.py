"""Real inputs for the report tests, built once per session by running the stages themselves:

* ``sample``: extract on the shared real CSV sample, then the real downloader fetching a class-stratified
  slice of its catalogue from an aiohttp server on 127.0.0.1 that serves the shared real product photos
  (with a 404, an HTML page, one photo served under two classes and one recompressed copy planted);
* ``demo``: the demo's generated catalogue (``develop.demo``) through extract and download, served by the
  demo's own image server, then two tiny real training runs and ``make evaluate`` on the first.
"""

from __future__ import annotations

import dataclasses
import shutil
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest
from aiohttp import web

from data.core.config import REPO_ROOT, load_config
from data.core.server import BackgroundServer
from data.download.stage import download_images
from data.extract.stage import ExtractOptions, extract
from tests.helpers.image_server import fast_options, write_input

SHARED = REPO_ROOT.parent / "shared" / "data"
SAMPLE_CSV = SHARED / "amazon-products-csv-sample"
PHOTOS = SHARED / "amazon-products-images-sample"
MAPPING = REPO_ROOT / "data" / "label_mapping.csv"
PER_CLASS = 8


def config_for(root: Path, processed: Path, *extra: str):
    """A real configuration whose [paths] point into a test folder."""
    return load_config(
        overrides=[
            f"paths.root={root}",
            f"paths.processed={processed}",
            f"paths.reports={root / 'reports'}",
            f"paths.runs={root / 'runs'}",
            f"paths.labels={root / 'labels'}",
            *extra,
        ]
    )


def _photos() -> dict[str, list[bytes]]:
    return {d.name: [p.read_bytes() for p in sorted(d.glob("*.jpg"))] for d in sorted(PHOTOS.iterdir()) if d.is_dir()}


def _recompressed(payload: bytes) -> bytes:
    """The same photo a little smaller and at a lower JPEG quality: a near duplicate, not an exact one."""
    image = cv2.imdecode(np.frombuffer(payload, np.uint8), cv2.IMREAD_COLOR)
    small = cv2.resize(image, (image.shape[1] * 9 // 10, image.shape[0] * 9 // 10), interpolation=cv2.INTER_AREA)
    return cv2.imencode(".jpg", small, [cv2.IMWRITE_JPEG_QUALITY, 55])[1].tobytes()


def photo_app() -> web.Application:
    """``/p/<class>/<n>.jpg``: shared photo n of that class; ``/near/...``: a recompressed copy; ``/html/x``."""
    photos = _photos()

    async def photo(request: web.Request) -> web.Response:
        body = photos[request.match_info["label"]][int(request.match_info["n"]) % 20]
        if request.match_info["kind"] == "near":
            body = _recompressed(body)
        return web.Response(body=body, content_type="image/jpeg")

    async def html(_: web.Request) -> web.Response:
        return web.Response(text="<html><body>robot check</body></html>", content_type="text/html")

    app = web.Application()
    app.router.add_get("/{kind:p|near}/{label}/{n}.jpg", photo)
    app.router.add_get("/html/{name}", html)
    return app


@dataclass(frozen=True)
class SampleCase:
    """The shared sample through extract and download, and what was planted in the download."""

    root: Path
    processed: Path
    exact_pair: tuple[str, str]  # keys of one photo stored under two classes
    near_pair: tuple[str, str]  # keys of a photo and its recompressed copy, in two classes
    missing: str
    html: str

    def config(self, *extra: str):
        return config_for(self.root, self.processed, *extra)


def _download_rows(catalogue: pd.DataFrame, base: str) -> tuple[list[tuple[str, str, str]], dict[str, str]]:
    """PER_CLASS catalogue rows per class with URLs on the local server, and the planted keys."""
    picked = catalogue.sort_values("key").groupby("label", sort=True).head(PER_CLASS)
    rows, planted = [], {}
    for label, group in picked.groupby("label", sort=True):
        for n, key in enumerate(group["key"]):
            rows.append([key, f"{base}/p/{label}/{n}.jpg", label])
    by_label = {label: [r for r in rows if r[2] == label] for label in sorted(set(picked["label"]))}
    fashion, electronics = by_label["Fashion"], by_label["Electronics_and_Appliances"]
    fashion[-1][1] = electronics[0][1]  # the very same photo under a second class
    planted.update(exact_a=electronics[0][0], exact_b=fashion[-1][0])
    stores, other = by_label["stores"], by_label["other"]
    stores[-1][1] = other[1][1].replace("/p/", "/near/")
    planted.update(near_a=other[1][0], near_b=stores[-1][0])
    accessories = by_label["accessories"]
    accessories[-1][1] = f"{base}/missing/404.jpg"  # no such route: a 404
    accessories[-2][1] = f"{base}/html/page.jpg"
    planted.update(missing=accessories[-1][0], html=accessories[-2][0])
    return [(key, url, label) for key, url, label in rows], planted


@pytest.fixture(scope="session")
def sample(tmp_path_factory) -> SampleCase:
    if not (SAMPLE_CSV.is_dir() and PHOTOS.is_dir()):
        pytest.skip("the shared sample (../shared/data) is not present")
    root = tmp_path_factory.mktemp("sample")
    processed = root / "processed"
    extract(ExtractOptions(raw_dir=SAMPLE_CSV, out_dir=processed, mapping=MAPPING))
    catalogue = pd.read_parquet(processed / "catalogue.parquet")
    with BackgroundServer(photo_app) as server:
        rows, planted = _download_rows(catalogue, server.base_url)
        source = write_input(root / "download-input.parquet", rows)
        download_images(
            source,
            processed / "images",
            fast_options(image_size=96, shard_size=16, max_pixels=5_000_000, max_bytes=5_000_000),
            progress=False,
        )
    return SampleCase(
        root,
        processed,
        (planted["exact_a"], planted["exact_b"]),
        (planted["near_a"], planted["near_b"]),
        planted["missing"],
        planted["html"],
    )


@dataclass(frozen=True)
class DemoCase:
    """The demo catalogue through extract and download (and, for ``demo_runs``, training and evaluate)."""

    root: Path
    processed: Path

    def config(self, *extra: str):
        return config_for(self.root, self.processed, *extra)


@dataclass(frozen=True)
class DemoRuns(DemoCase):
    """The demo plus two training runs; the first evaluated, the second compared on validation numbers."""

    run_dir: Path = Path()
    other_run: Path = Path()


def _train_two_runs(manifest: Path, runs: Path, cache: Path) -> tuple[Path, Path]:
    from train.evaluate import EvaluateOptions, evaluate
    from train.options import TrainOptions
    from train.train import train

    options = TrainOptions(
        augment="none",
        backbone="tiny",
        weights="none",
        image_size=32,
        batch_size=16,
        epochs=3,
        fine_tune_epochs=1,
        fine_tune_layers=10,
        learning_rate=1e-2,
        fine_tune_learning_rate=1e-3,
        patience=10,
        cache_dir=str(cache),
    )
    first = train(manifest, runs, options, run_id="20240101-000000-tiny").run_dir
    quick = dataclasses.replace(options, epochs=2, fine_tune_epochs=0, head="deep")
    second = train(manifest, runs, quick, run_id="20240101-000100-tiny").run_dir
    (runs / "latest").write_text(first.name + "\n", encoding="utf-8")
    evaluate(first, manifest.parent, EvaluateOptions())
    return first, second


@pytest.fixture(scope="session")
def demo(tmp_path_factory) -> DemoCase:
    from develop.demo import demo_server, write_demo_catalogue

    root = tmp_path_factory.mktemp("demo")
    processed = root / "processed"
    with demo_server(port=0) as server:
        write_demo_catalogue(root / "raw", server.base_url, per_class=16)
        extract(ExtractOptions(raw_dir=root / "raw", out_dir=processed, mapping=MAPPING))
        download_images(processed / "catalogue.parquet", processed / "images", fast_options(), progress=False)
    return DemoCase(root, processed)


@pytest.fixture(scope="session")
def demo_runs(demo) -> DemoRuns:
    first, second = _train_two_runs(
        demo.processed / "images" / "manifest.parquet", demo.root / "runs", demo.root / "cache"
    )
    return DemoRuns(demo.root, demo.processed, first, second)


def copy_tree(source: Path, target: Path) -> Path:
    """A copy of a folder (for tests that break an input)."""
    shutil.copytree(source, target)
    return target
