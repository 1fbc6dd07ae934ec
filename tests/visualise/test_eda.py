"""``make eda`` on the shared real sample (extract + a real download from 127.0.0.1) and on the demo:
every number of eda.json checked against the files it was built from."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from data.core.config import REPO_ROOT
from data.core.errors import InputError
from data.core.mapping import load_mapping
from visualise.eda import EdaInputs, eda, main
from data.core.images import file_dhash
from visualise.options import VisualiseOptions
from visualise.tabular import ALL, NUMERIC, QUANTILES


@pytest.fixture(scope="module")
def eda_built(sample, tmp_path_factory):
    out = tmp_path_factory.mktemp("eda") / "eda"
    result = eda(EdaInputs.from_config(sample.config()), out, VisualiseOptions(), config=sample.config())
    return result, json.loads((out / "eda.json").read_text())


def _inputs(sample):
    processed = sample.processed
    return (
        json.loads((processed / "extract_report.json").read_text()),
        pd.read_parquet(processed / "catalogue.parquet"),
        pd.read_parquet(processed / "dropped.parquet"),
        pd.read_parquet(processed / "images" / "manifest.parquet"),
    )


def test_the_funnel_adds_up_and_every_count_matches_the_files(sample, eda_built):
    _, doc = eda_built
    report, catalogue, dropped, manifest = _inputs(sample)
    f = doc["funnel"]
    assert f["adds_up"] and all(f["checks"].values())
    assert f["csv_rows"] == report["rows_read"] == f["kept"] + sum(f["dropped"].values())
    assert f["kept"] == len(catalogue)
    assert f["dropped"] == dropped["reason"].value_counts().to_dict()
    assert f["urls"] == len(manifest) and f["not_downloaded"] == len(catalogue) - len(manifest)
    assert f["stored"] == int((manifest["status"] == "ok").sum())
    assert f["failed"] == manifest.loc[manifest["status"] != "ok", "status"].value_counts().to_dict()
    assert f["failed"] == {"not_found": 1, "not_image": 1}  # the planted 404 and HTML page
    assert f["urls"] == f["stored"] + sum(f["failed"].values())
    merged = manifest.merge(catalogue[["key", "label"]], on="key", suffixes=("_m", ""))
    for label, row in f["per_class"].items():
        assert row["kept"] == int((catalogue["label"] == label).sum())
        assert row["urls"] == int((merged["label"] == label).sum())
        assert row["stored"] == int(((merged["label"] == label) & (merged["status"] == "ok")).sum())
    assert sum(r["stored"] for r in f["per_class"].values()) == f["stored"]
    assert f["failure_reasons"]["not_found"] == {"HTTP 404": 1}


def test_class_balance_and_mapping_match_the_catalogue(eda_built):
    result, doc = eda_built
    catalogue = pd.read_parquet(Path(doc["inputs"]["catalogue"]))
    b = doc["balance"]
    assert b["before"] == catalogue["main_category"].value_counts().to_dict()
    assert {k: v["kept"] for k, v in b["after"].items()} == catalogue["label"].value_counts().to_dict()
    mapping = load_mapping(REPO_ROOT / "data" / "label_mapping.csv")
    assert {r["main_category"]: r["label"] for r in b["mapping"]} == mapping
    assert sum(r["kept"] for r in b["mapping"]) == len(catalogue)
    for row in b["mapping"]:
        assert row["kept"] == int((catalogue["main_category"] == row["main_category"]).sum())
    kept = catalogue["label"].value_counts()
    assert b["imbalance_after"] == round(kept.max() / kept.min(), 3)
    assert sum(v["stored"] for v in b["after"].values()) == doc["funnel"]["stored"]


def test_distributions_and_missing_values_match_pandas(eda_built):
    _, doc = eda_built
    catalogue = pd.read_parquet(Path(doc["inputs"]["catalogue"]))
    both = catalogue["actual_price"].notna() & catalogue["discount_price"].notna() & (catalogue["actual_price"] > 0)
    catalogue["discount_pct"] = (
        100 * (catalogue["actual_price"] - catalogue["discount_price"]) / catalogue["actual_price"]
    ).where(both)
    assert set(doc["distributions"]) == set(NUMERIC)
    for column, per_class in doc["distributions"].items():
        for label, stats in per_class.items():
            values = catalogue[column] if label == ALL else catalogue.loc[catalogue["label"] == label, column]
            assert stats["count"] == values.notna().sum() and stats["missing"] == values.isna().sum()
            for name, q in QUANTILES.items():
                assert stats[name] == pytest.approx(values.quantile(q), abs=1e-4), (column, label, name)
            assert stats["mean"] == pytest.approx(values.mean(), abs=1e-4)
    missing = doc["missing"]
    for column, count in missing["columns"].items():
        assert count == int(catalogue[column].isna().sum() + (catalogue[column].astype(str) == "").sum())
        for label, row in missing["per_class"].items():
            part = catalogue.loc[catalogue["label"] == label, column]
            assert row[column] == int(part.isna().sum() + (part.astype(str) == "").sum())
    assert missing["columns"]["ratings"] > 0  # the real sample does have gaps


def test_image_sizes_samples_and_duplicates(sample, eda_built):
    _, doc = eda_built
    manifest = pd.read_parquet(sample.processed / "images" / "manifest.parquet")
    stored = manifest[manifest["status"] == "ok"]
    sizes = doc["image_sizes"]
    for name in ("longer_side_px", "aspect_w_over_h", "stored_kb"):
        assert sum(sizes[name]["counts"]) == len(stored)
    assert (
        sizes["per_class"]["Fashion"]["median_height"]
        == stored.loc[stored["label"] == "Fashion", "orig_height"].median()
    )
    keys = doc["samples"]["keys"]
    assert all(set(k) <= set(stored.loc[stored["label"] == label, "key"]) for label, k in keys.items())
    assert all(len(k) == min(12, int((stored["label"] == label).sum())) for label, k in keys.items())

    exact = doc["duplicates"]["exact"]
    by_sha = stored.groupby("sha256")["key"].agg(list)
    groups = by_sha[by_sha.map(len) > 1]
    assert exact["groups"] == len(groups) and exact["images"] == sum(map(len, groups))
    assert sorted(sample.exact_pair) in [sorted(g["keys"]) for g in exact["examples"]]
    assert exact["cross_class_groups"] >= 1

    near = doc["duplicates"]["near"]
    distinct = stored.sort_values("key").drop_duplicates("sha256")
    hashes = np.array([file_dhash(sample.processed / "images" / p) for p in distinct["path"]], np.uint64)
    bits = np.bitwise_count(hashes[:, None] ^ hashes[None, :])
    assert near["pairs"] == int((np.triu(bits <= 4, 1)).sum())  # the banded search misses no pair
    assert near["hashed"] == near["distinct_files"] == len(distinct)
    planted = [g for g in near["examples"] if set(sample.near_pair) <= set(g["keys"])]
    assert planted and len(set(planted[0]["labels"])) == 2 and near["cross_class_groups"] >= 1


def test_same_inputs_give_byte_identical_files_within_the_budget(sample, eda_built, tmp_path):
    result, doc = eda_built
    again = eda(EdaInputs.from_config(sample.config()), tmp_path / "again", VisualiseOptions())
    for name in ("eda.html", "eda.json"):
        assert (result.out_dir / name).read_bytes() == (again.out_dir / name).read_bytes(), name
    html = (result.out_dir / "eda.html").read_bytes()
    assert doc["budget"]["html_bytes"] == len(html) < 25_000_000
    assert f"{len(html):,}".encode() in html  # the footer states the file's own size
    few = [
        eda(
            EdaInputs.from_config(sample.config()),
            tmp_path / f"seed{s}",
            VisualiseOptions(seed=s, thumbnails_per_class=3),
        )
        for s in (0, 1)
    ]
    assert few[0].doc["samples"]["keys"] != few[1].doc["samples"]["keys"]  # the seed does choose the sample
    assert (result.out_dir / "config.resolved.json").is_file()


def test_the_demo_shows_its_planted_failures(demo, tmp_path):
    result = eda(EdaInputs.from_config(demo.config()), tmp_path / "eda", VisualiseOptions())
    f = result.doc["funnel"]
    assert f["adds_up"]
    manifest = pd.read_parquet(demo.processed / "images" / "manifest.parquet")
    assert f["failed"] == manifest.loc[manifest["status"] != "ok", "status"].value_counts().to_dict()
    assert {"not_found", "not_image", "decode_error"} <= set(f["failed"])  # dead link, HTML, corrupt file
    assert {"missing_image_url", "duplicate_url", "merged_file_duplicate"} <= set(f["dropped"])
    assert f["not_downloaded"] == 0 and f["stored"] == len(manifest) - sum(f["failed"].values())


def test_before_the_download_the_report_covers_the_catalogue(sample, tmp_path):
    cfg = sample.config(f"paths.manifest={tmp_path / 'none' / 'manifest.parquet'}")
    result = eda(EdaInputs.from_config(cfg), tmp_path / "eda", VisualiseOptions())
    f = result.doc["funnel"]
    assert "urls" not in f and f["adds_up"] and "duplicates" not in result.doc
    assert "images stored" not in (tmp_path / "eda" / "eda.html").read_text()


def test_a_failed_run_leaves_the_earlier_report_and_a_foreign_folder_is_refused(sample, eda_built, tmp_path):
    result, _ = eda_built
    before = {p.name: p.read_bytes() for p in result.out_dir.iterdir()}
    broken = sample.config(f"paths.catalogue={tmp_path / 'missing.parquet'}")
    with pytest.raises(InputError, match="make extract"):
        eda(EdaInputs.from_config(broken), result.out_dir, VisualiseOptions())
    assert {p.name: p.read_bytes() for p in result.out_dir.iterdir()} == before
    assert not [p for p in result.out_dir.parent.iterdir() if p.name.startswith(".")]  # no temporary left
    foreign = tmp_path / "mine"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("keep me")
    with pytest.raises(InputError, match="not a report folder"):
        eda(EdaInputs.from_config(sample.config()), foreign, VisualiseOptions())
    assert [p.name for p in foreign.iterdir()] == ["notes.txt"]


def test_command_line_errors_are_one_line(sample, tmp_path, capsys):
    root = ["--set", f"paths.processed={sample.processed}", "--set", f"paths.reports={tmp_path}"]
    assert main([*root, "--set", f"paths.catalogue={tmp_path / 'x.parquet'}"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "make extract" in err and "Traceback" not in err
    assert main([*root, "--set", "visualise.bogus=1"]) == 2
    assert "unknown key(s) bogus" in capsys.readouterr().err
    (tmp_path / "bad.parquet").write_bytes(b"not parquet")
    assert main([*root, "--set", f"paths.catalogue={tmp_path / 'bad.parquet'}"]) == 2
    assert "not a readable Parquet file" in capsys.readouterr().err
    assert main([*root, "--out", str(tmp_path / "eda")]) == 0
    assert "adds up" in capsys.readouterr().out and (tmp_path / "eda" / "eda.html").is_file()
