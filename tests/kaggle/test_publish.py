"""make publish-kaggle: the folder, the dry run, and the real kaggle client against a local stand-in server."""

from __future__ import annotations

import hashlib
import io
import json
import zipfile
from pathlib import Path

import pandas as pd
import pytest

from data.kaggle.metadata import METADATA_FILE, validate_metadata
from data.kaggle.package import DatasetSpec, stage_dataset
from data.kaggle.publish import PublishError, PublishOptions, publish
from develop.synthetic import CLASSES, draw_product_image, encode_jpeg
from tests.helpers.kaggle_stub import PortBusy, cli_env, port_free, port_lock, run_cli, stub_fixture

REF = "tester/amazon-products-images-7-classes"  # [publish].slug of data/config.toml, owner = the stub user
SPEC = DatasetSpec(
    owner="tester",
    slug="product-photos-test",
    title="Product Photos Test",
    subtitle="Seven classes of synthetic product photos",
)


def make_images(images: Path, per_class: int = 2) -> pd.DataFrame:
    """A download-stage images folder: per_class stored images per class, one failed URL, one lost file."""
    rows = []
    for i in range(per_class * len(CLASSES) + 2):
        label, url = CLASSES[i % len(CLASSES)], f"http://shop.test/img/{i}.jpg"
        key = hashlib.sha1(url.encode()).hexdigest()[:16]
        status, path = ("http_404", "") if i == 0 else ("ok", f"{label}/{key}.jpg")
        if status == "ok" and i != 1:  # row 1 says ok but its file is gone
            (images / label).mkdir(parents=True, exist_ok=True)
            (images / path).write_bytes(encode_jpeg(draw_product_image(i % len(CLASSES), i, 48)))
        rows.append(
            {
                "key": key,
                "url": url,
                "label": label,
                "status": status,
                "reason": "",
                "http_status": 200,
                "attempts": 1,
                "bytes": 1000,
                "orig_width": 96,
                "orig_height": 96,
                "width": 48,
                "height": 48,
                "sha256": "0" * 64,
                "elapsed_s": 0.01,
                "path": path,
            }
        )
    manifest = pd.DataFrame(rows)
    images.mkdir(parents=True, exist_ok=True)
    manifest.to_parquet(images / "manifest.parquet")
    return manifest


def _stored(manifest: pd.DataFrame) -> list[str]:
    return sorted(manifest["path"].iloc[2:])


@pytest.fixture
def demo_root(tmp_path: Path) -> Path:
    """paths.root of a small pipeline run: {root}/processed/v1/images as the download stage leaves it."""
    make_images(tmp_path / "data" / "processed" / "v1" / "images")
    return tmp_path / "data"


stub = pytest.fixture(stub_fixture, name="stub")


def _snapshot(folder: Path) -> dict[str, tuple[int, int]]:
    return {str(p.relative_to(folder)): (p.stat().st_size, p.stat().st_mtime_ns) for p in folder.rglob("*")}


def test_stage_packs_the_stored_images_only(tmp_path: Path):
    images = tmp_path / "images"
    manifest = make_images(images)
    before = _snapshot(images)
    staged = stage_dataset(images, tmp_path / "kaggle" / "dataset", SPEC)
    assert _snapshot(images) == before  # the images folder is only read
    assert sorted(p.name for p in staged.folder.iterdir()) == [
        "LICENSE.txt",
        "README.md",
        METADATA_FILE,
        "images.zip",
        "manifest.csv",
    ]
    with zipfile.ZipFile(staged.folder / "images.zip") as archive:
        assert sorted(archive.namelist()) == _stored(manifest)
        first = _stored(manifest)[0]
        assert archive.read(first) == (images / first).read_bytes()
    table = pd.read_csv(staged.folder / "manifest.csv")
    assert sorted(table["path"]) == ["images/" + p for p in _stored(manifest)]
    assert staged.images == 2 * len(CLASSES) and sum(staged.classes.values()) == staged.images
    assert staged.skipped == {"http_404": 1, "missing_file": 1}
    readme = (staged.folder / "README.md").read_text()
    assert "| Fashion | 2 |" in readme and "lokeshparab/amazon-products-dataset" in readme
    meta = json.loads((staged.folder / METADATA_FILE).read_text())
    assert meta["description"] == readme and validate_metadata(meta, staged.folder) == []
    assert not [p for p in staged.folder.parent.iterdir() if p.name.startswith(".")]  # no temp folder left


def test_product_names_join_from_the_catalogue(tmp_path: Path):
    manifest = make_images(tmp_path / "images")
    catalogue = manifest[["key", "url", "label"]].assign(name="Product " + manifest["key"], main_category="stores")
    catalogue.to_parquet(tmp_path / "catalogue.parquet")
    staged = stage_dataset(tmp_path / "images", tmp_path / "kaggle" / "dataset", SPEC, tmp_path / "catalogue.parquet")
    table = pd.read_csv(staged.folder / "manifest.csv")
    assert list(table.columns[:6]) == ["key", "label", "path", "url", "name", "main_category"]
    assert (table["name"] == "Product " + table["key"]).all()
    fields = json.loads((staged.folder / METADATA_FILE).read_text())["resources"][1]["schema"]["fields"]
    assert [f["name"] for f in fields] == list(table.columns)


def test_invalid_metadata_stops_before_building(tmp_path: Path):
    make_images(tmp_path / "images")
    bad = {"owner": "tester", "slug": "product_photos", "title": "Photos", "subtitle": "too short"}
    options = PublishOptions(images_dir=tmp_path / "images", out_dir=tmp_path / "kaggle", **bad, dry_run=True)
    with pytest.raises(PublishError) as err:
        publish(options)
    assert "no spaces or underscores" in str(err.value) and "subtitle must be 20-80" in str(err.value)
    assert not (tmp_path / "kaggle").exists()


def test_dry_run_needs_no_credentials_and_uploads_nothing(demo_root: Path, tmp_path: Path):
    env = cli_env(tmp_path, username=None, key=None, environment=None)
    env["HTTPS_PROXY"] = env["HTTP_PROXY"] = "http://127.0.0.1:9"  # any network use would fail
    result = run_cli("data.kaggle.publish", ["--set", f"paths.root={demo_root}", "--dry-run"], env)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "DRY RUN: nothing was uploaded" in out and "your-kaggle-user/amazon-products-images-7-classes" in out
    assert "images.zip" in out and "manifest.csv" in out and "archive" in out and '"CC0-1.0"' in out
    report = json.loads((demo_root / "processed/v1/kaggle/publish_report.json").read_text())
    assert report["dry_run"] and report["mode"] == "dry-run" and report["images"] == 2 * len(CLASSES)
    assert (demo_root / "processed/v1/kaggle/config.resolved.json").is_file()
    assert not (tmp_path / "home" / ".config" / "kaggle").exists()  # the kaggle client was never imported


def test_publish_without_credentials_stops_before_any_work(demo_root: Path, tmp_path: Path):
    env = cli_env(tmp_path, username=None, key=None)
    result = run_cli("data.kaggle.publish", ["--set", f"paths.root={demo_root}"], env)
    assert result.returncode != 0 and "Traceback" not in result.stderr
    for needed in ("no Kaggle credentials", "KAGGLE_API_TOKEN", "KAGGLE_USERNAME", "kaggle.json", "chmod 600"):
        assert needed in result.stderr
    assert not (demo_root / "processed/v1/kaggle").exists()


def test_publish_offline_stops_before_any_work(demo_root: Path, tmp_path: Path):
    try:
        with port_lock():
            if not port_free():
                pytest.skip("port 7777 is taken by another program")
            result = run_cli("data.kaggle.publish", ["--set", f"paths.root={demo_root}"], cli_env(tmp_path))
    except PortBusy as exc:
        pytest.skip(str(exc))
    assert result.returncode != 0 and "Traceback" not in result.stderr
    assert "cannot reach the Kaggle API at http://localhost:7777" in result.stderr
    assert not (demo_root / "processed/v1/kaggle").exists()


def test_publish_creates_then_versions_with_the_real_client(stub, demo_root: Path, tmp_path: Path):
    args = ["--set", f"paths.root={demo_root}"]
    first = run_cli("data.kaggle.publish", args, cli_env(tmp_path))
    assert first.returncode == 0, first.stderr
    assert f"created {REF}" in first.stdout
    created = stub.datasets[REF].create
    assert created["title"] == "Amazon Product Images, 7 Classes" and created["licenseName"] == "CC0-1.0"
    assert created["isPrivate"] is True and 20 <= len(created["subtitle"]) <= 80
    assert "| Fashion | 2 |" in created["description"]
    files = stub.uploaded(REF)
    assert sorted(files) == ["LICENSE.txt", "README.md", "images.zip", "manifest.csv"]
    stored = _stored(pd.read_parquet(demo_root / "processed/v1/images/manifest.parquet"))
    assert sorted(zipfile.ZipFile(io.BytesIO(files["images.zip"])).namelist()) == stored
    assert len(pd.read_csv(io.BytesIO(files["manifest.csv"]))) == len(stored)
    described = {stub.blobs[f["token"]]["name"]: f for f in created["files"]}
    assert [c["name"] for c in described["manifest.csv"]["columns"]][:3] == ["key", "label", "path"]

    # the dataset exists now: a new version, this time authenticated with an access token
    second = run_cli(
        "data.kaggle.publish",
        [*args, "--version-notes", "More photos"],
        cli_env(tmp_path, username=None, key=None, token="stub-token"),
    )
    assert second.returncode == 0, second.stderr
    assert len(stub.datasets[REF].versions) == 2 and stub.datasets[REF].versions[1]["notes"] == "More photos"
    assert "IntrospectToken" in stub.calls and sorted(stub.uploaded(REF)) == sorted(files)

    third = run_cli("data.kaggle.publish", [*args, "--new"], cli_env(tmp_path))
    assert third.returncode != 0 and "already exists: drop --new" in third.stderr
    assert len(stub.datasets[REF].versions) == 2


@pytest.mark.parametrize(
    "case, expected",
    [
        ("quota", ["quota of private datasets", "publish.private=false"]),
        ("not-owner", ["HTTP 403", "set [publish].owner to your own user name"]),
        ("wrong-key", ["HTTP 401", "credentials were not accepted"]),
    ],
)
def test_api_refusals_are_reported_in_plain_words(stub, demo_root: Path, tmp_path: Path, case, expected):
    args, env = ["--set", f"paths.root={demo_root}"], cli_env(tmp_path)
    if case == "quota":
        stub.create_answer = (200, {"status": "error", "error": "You have reached your quota of private datasets"})
    elif case == "not-owner":
        args += ["--set", "publish.owner=someone-else"]
    else:
        env = cli_env(tmp_path, key="revoked-key")
    result = run_cli("data.kaggle.publish", args, env)
    assert result.returncode != 0 and "Traceback" not in result.stderr
    for text in expected:
        assert text in result.stderr
    assert not stub.datasets


def test_an_interrupted_publish_resumes_its_uploads(stub, demo_root: Path, tmp_path: Path):
    args, env = ["--set", f"paths.root={demo_root}"], cli_env(tmp_path)
    stub.create_answer = (503, {"code": 503, "message": "backend unavailable"})
    failed = run_cli("data.kaggle.publish", args, env)
    assert failed.returncode != 0 and "Traceback" not in failed.stderr
    assert "HTTP 503" in failed.stderr and "run again" in failed.stderr
    assert stub.calls.count("StartBlobUpload") == 4
    archive = demo_root / "processed/v1/kaggle/dataset/images.zip"
    built = archive.stat().st_mtime_ns

    stub.create_answer = None
    resumed = run_cli("data.kaggle.publish", args, env)  # rebuilds the folder: unchanged files keep their times
    assert resumed.returncode == 0, resumed.stderr
    assert archive.stat().st_mtime_ns == built
    assert stub.calls.count("StartBlobUpload") == 4  # every file was already on the server: nothing sent again
    assert sorted(stub.uploaded(REF)) == ["LICENSE.txt", "README.md", "images.zip", "manifest.csv"]
