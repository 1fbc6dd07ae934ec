"""make fetch-raw: the real kaggle client downloads a zip of CSVs from the stand-in server and unpacks it."""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path

import pytest

from data.kaggle.fetch import FetchError, count_rows, extract_zip
from tests.helpers.kaggle_stub import cli_env, run_cli, stub_fixture

DATASET = "lokeshparab/amazon-products-dataset"  # [fetch].dataset of data/config.toml
CSVS = {
    "Air Conditioners.csv": 'name,main_category,image\n"LG 1.5 Ton AC",appliances,http://x/1.jpg\n'
    '"Voltas\n2 Ton AC",appliances,http://x/2.jpg\n',
    "Amazon-Products.csv": "name,main_category,image\n" + "".join(f"p{i},stores,http://x/{i}.jpg\n" for i in range(5)),
}

stub = pytest.fixture(stub_fixture, name="stub")


def _zip(files: dict[str, str]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, text in files.items():
            zf.writestr(name, text)
    return buf.getvalue()


def _leftovers(parent: Path) -> list[str]:
    return [p.name for p in parent.iterdir() if p.name.startswith(".")] if parent.exists() else []


def test_fetch_downloads_and_unpacks_into_the_raw_folder(stub, tmp_path: Path):
    stub.archives[DATASET] = _zip(CSVS)
    args, env = ["--set", f"paths.root={tmp_path / 'data'}"], cli_env(tmp_path)
    result = run_cli("data.kaggle.fetch", args, env)
    assert result.returncode == 0, result.stderr
    raw = tmp_path / "data" / "raw" / "v1"
    for name, text in CSVS.items():
        assert (raw / name).read_text() == text
    report = json.loads((raw / "fetch_report.json").read_text())
    assert (report["files"], report["csv_files"], report["csv_rows"]) == (2, 2, 7)
    assert report["bytes"] == sum(len(t.encode()) for t in CSVS.values())
    assert (raw / "config.resolved.json").is_file() and not _leftovers(raw.parent)
    assert "2 files" in result.stdout and "7 rows" in result.stdout
    assert stub.calls == ["DownloadDataset"]

    again = run_cli("data.kaggle.fetch", args, env)  # already there: no download
    assert again.returncode == 0 and "already there" in again.stdout and stub.calls == ["DownloadDataset"]

    stub.archives[DATASET] = _zip({"Amazon-Products.csv": CSVS["Amazon-Products.csv"]})
    forced = run_cli("data.kaggle.fetch", [*args, "--force"], env)
    assert forced.returncode == 0, forced.stderr
    assert sorted(p.name for p in raw.iterdir() if p.suffix == ".csv") == ["Amazon-Products.csv"]
    assert not _leftovers(raw.parent)


@pytest.mark.parametrize(
    "served, expected",
    [
        (None, "HTTP 404"),  # the dataset id is wrong (or private)
        (b"<html>not a zip</html>", "not a valid zip archive"),
    ],
)
def test_a_failed_fetch_leaves_no_raw_folder(stub, tmp_path: Path, served, expected):
    if served is not None:
        stub.archives[DATASET] = served
    result = run_cli("data.kaggle.fetch", ["--set", f"paths.root={tmp_path / 'data'}"], cli_env(tmp_path))
    assert result.returncode != 0 and "Traceback" not in result.stderr
    assert expected in result.stderr
    assert not (tmp_path / "data" / "raw" / "v1").exists() and not _leftovers(tmp_path / "data" / "raw")


def test_fetch_without_credentials_says_what_to_set_up(tmp_path: Path):
    env = cli_env(tmp_path, username=None, key=None)
    result = run_cli("data.kaggle.fetch", ["--set", f"paths.root={tmp_path / 'data'}"], env)
    assert result.returncode != 0 and "Traceback" not in result.stderr
    for needed in (
        "no Kaggle credentials",
        "https://www.kaggle.com/settings",
        "KAGGLE_API_TOKEN",
        "KAGGLE_USERNAME",
        "KAGGLE_KEY",
        "~/.kaggle/kaggle.json",
    ):
        assert needed in result.stderr
    assert not (tmp_path / "data" / "raw").exists()


def test_unsafe_archive_members_are_refused(tmp_path: Path):
    archive = tmp_path / "evil.zip"
    archive.write_bytes(_zip({"ok.csv": "a\n1\n", "../escape.csv": "a\n1\n"}))
    with pytest.raises(FetchError, match="unsafe path"):
        extract_zip(archive, tmp_path / "out")
    assert not (tmp_path / "escape.csv").exists() and not (tmp_path / "out").exists()


def test_rows_count_quoted_newlines_once(tmp_path: Path):
    path = tmp_path / "a.csv"
    path.write_text(CSVS["Air Conditioners.csv"])
    assert count_rows(path) == 2
