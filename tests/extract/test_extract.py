"""Extract + transform on the shared real CSV sample and on small malformed files written here."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from data.core.config import REPO_ROOT
from data.core.errors import InputError
from data.core.mapping import clean_str, load_mapping
from data.extract.stage import ExtractError, ExtractOptions, extract, url_key
from data.extract.text import to_number

SAMPLE = REPO_ROOT.parent / "shared" / "data" / "amazon-products-csv-sample"
MAPPING = REPO_ROOT / "data" / "label_mapping.csv"
HEADER = "name,main_category,sub_category,image,link,ratings,no_of_ratings,discount_price,actual_price\n"


def run(raw: Path, out: Path, **kw) -> dict:
    return extract(ExtractOptions(raw_dir=raw, out_dir=out, mapping=MAPPING, **kw))


def row(url: str, main: str = "accessories", name: str = "Thing", price: str = '"₹1,299"') -> str:
    return f'{name},{main},Watches,{url},https://x.test/p,4.1,"2,255",{price},"₹2,000"\n'


def write(folder: Path, name: str, text: str, encoding: str = "utf-8") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_text(text, encoding=encoding)
    return folder / name


@pytest.mark.skipif(not SAMPLE.is_dir(), reason="shared sample not present")
def test_shared_sample_accounting_and_merged_file_not_doubled(tmp_path):
    report = run(SAMPLE, tmp_path)
    raw = [pd.read_csv(p) for p in sorted(SAMPLE.glob("*.csv"))]
    assert report["rows_read"] == sum(len(f) for f in raw)
    assert report["accounting_ok"] and report["rows_read"] == report["rows_kept"] + report["rows_dropped"]
    unique_urls = pd.concat([f["image"] for f in raw]).dropna().nunique()
    catalogue = pd.read_parquet(tmp_path / "catalogue.parquet")
    assert len(catalogue) == unique_urls == report["rows_kept"]
    assert catalogue["url"].is_unique and catalogue["key"].is_unique
    # The merged file only repeats rows already read from the category files.
    assert "Amazon-Products.csv" not in set(catalogue["source_file"])
    assert report["dropped_by_reason"]["merged_file_duplicate"] == len(pd.read_csv(SAMPLE / "Amazon-Products.csv"))
    assert set(catalogue["label"]) == {
        "Electronics_and_Appliances",
        "Fashion",
        "Household_Essentials",
        "accessories",
        "other",
        "sports_fitness",
        "stores",
    }
    dropped = pd.read_parquet(tmp_path / "dropped.parquet")
    assert len(dropped) == report["rows_dropped"]
    assert json.loads((tmp_path / "extract_report.json").read_text())["rows_kept"] == len(catalogue)


@pytest.mark.skipif(not SAMPLE.is_dir(), reason="shared sample not present")
def test_provenance_points_at_the_source_record(tmp_path):
    run(SAMPLE, tmp_path)
    catalogue = pd.read_parquet(tmp_path / "catalogue.parquet").sample(25, random_state=0)
    for item in catalogue.itertuples():
        source = pd.read_csv(SAMPLE / item.source_file)
        assert source.iloc[item.source_row - 1]["image"].strip() == item.url


def test_prices_counts_and_ratings_are_parsed():
    parsed = [to_number(v) for v in ["₹32,999", "2,255", "4.2", "Get", None, "₹99.50", ""]]
    assert parsed == [32999.0, 2255.0, 4.2, None, None, 99.5, None]


def test_vectorised_text_cleaning_matches_the_scalar_rule():
    import pyarrow as pa

    from data.extract.text import clean_text_column

    values = ["  A\u00a0 b\t c ", "Kids\u2019  wear", "", None, "ﬁne", "x"]
    assert clean_text_column(pa.array(values, pa.string())).to_pylist() == [clean_str(v) for v in values]
    assert [clean_str(v) for v in values] == ["A b c", "Kids' wear", None, None, "fine", "x"]


def test_duplicates_keep_first_and_merged_file_last(tmp_path):
    raw = tmp_path / "raw"
    write(raw, "B.csv", HEADER + row("https://img.test/1.jpg") + row("https://img.test/2.jpg"))
    write(raw, "A.csv", HEADER + row("https://img.test/2.jpg") + row("https://img.test/2.jpg"))
    write(raw, "Amazon-Products.csv", HEADER + row("https://img.test/1.jpg") + row("https://img.test/3.jpg"))
    report = run(raw, tmp_path / "out")
    catalogue = pd.read_parquet(tmp_path / "out" / "catalogue.parquet").set_index("url")
    assert report["rows_read"] == 6 and report["rows_kept"] == 3
    assert report["dropped_by_reason"] == {"duplicate_url": 2, "merged_file_duplicate": 1}
    assert catalogue.loc["https://img.test/2.jpg", "source_file"] == "A.csv"  # files read in name order
    assert catalogue.loc["https://img.test/3.jpg", "source_file"] == "Amazon-Products.csv"
    assert catalogue.loc["https://img.test/1.jpg", "key"] == url_key("https://img.test/1.jpg")
    first = catalogue.loc["https://img.test/1.jpg"]
    assert (first["discount_price"], first["no_of_ratings"], first["ratings"]) == (1299.0, 2255, 4.1)


def test_unmapped_category_is_reported_not_hidden(tmp_path, caplog):
    raw = tmp_path / "raw"
    write(raw, "x.csv", HEADER + row("https://img.test/1.jpg", main="Garden Gnomes") + row("https://img.test/2.jpg"))
    report = run(raw, tmp_path / "out")
    assert report["unmapped_categories"] == {"garden gnomes": 1}
    assert report["dropped_by_reason"] == {"unmapped_category": 1}
    assert "garden gnomes" in caplog.text
    catalogue = pd.read_parquet(tmp_path / "out" / "catalogue.parquet")
    assert catalogue["label"].tolist() == ["accessories"]  # never silently put in "other"
    with pytest.raises(ExtractError, match="garden gnomes"):
        run(raw, tmp_path / "out2", fail_on_unmapped=True)


def test_text_is_normalised_and_categories_match_mapping(tmp_path):
    raw = tmp_path / "raw"
    write(raw, "x.csv", HEADER + row("  https://img.test/1.jpg ", main="  Kids\u2019   Fashion ", name='"  A   b "'))
    run(raw, tmp_path / "out")
    item = pd.read_parquet(tmp_path / "out" / "catalogue.parquet").iloc[0]
    assert (item["url"], item["main_category"], item["label"], item["name"]) == (
        "https://img.test/1.jpg",
        "kids' fashion",
        "Fashion",
        "A b",
    )


def test_bad_input_is_reported_and_the_rest_processed(tmp_path, caplog):
    raw = tmp_path / "raw"
    write(
        raw,
        "good.csv",
        HEADER
        + row("https://img.test/1.jpg")
        + row("")
        + row("ftp://img.test/x.jpg")
        + row("https://img.test/9.jpg", main=""),
    )
    write(
        raw,
        "malformed.csv",
        HEADER
        + row("https://img.test/2.jpg")
        + "too,few,fields\n"
        + row("https://img.test/3.jpg")
        + "a,b,c,d,e,f,g,h,i,j,k\n",
    )
    write(raw, "nocol.csv", "name,main_category,link\nx,accessories,l\ny,accessories,l\n")
    write(raw, "empty.csv", "")
    write(
        raw,
        "latin.csv",
        HEADER
        + (
            "".join(row(f"https://img.test/4{i}.jpg") for i in range(2000))
            + row("https://img.test/4.jpg", name="Caf\xe9")
        ).replace("₹", ""),
        encoding="cp1252",
    )
    report = run(raw, tmp_path / "out")
    assert report["accounting_ok"]
    assert report["rows_read"] == 4 + 4 + 2 + 0 + 2001
    assert report["rows_kept"] == 2004  # 1.jpg, 2.jpg, 3.jpg, 4.jpg, 40.jpg ... 41999.jpg
    assert report["dropped_by_reason"] == {
        "missing_image_url": 1,
        "invalid_image_url": 1,
        "missing_main_category": 1,
        "malformed_row": 2,
        "unusable_file": 2,
    }
    files = {f["file"]: f for f in report["files"]}
    assert files["malformed.csv"]["malformed_rows"] == [2, 4]
    assert "missing required column(s): sub_category, image" in files["nocol.csv"]["error"]
    assert files["empty.csv"]["error"].startswith("empty file")
    assert files["latin.csv"]["encoding"] == "cp1252"  # the odd byte is far past the first read buffer
    assert "malformed.csv: record 2 is malformed" in caplog.text
    catalogue = pd.read_parquet(tmp_path / "out" / "catalogue.parquet").set_index("url")
    assert catalogue.loc["https://img.test/3.jpg", "source_row"] == 3  # record numbers survive the skip
    assert catalogue.loc["https://img.test/4.jpg", "name"] == "Café"
    dropped = pd.read_parquet(tmp_path / "out" / "dropped.parquet")
    expected = {("malformed.csv", 2), ("nocol.csv", 1), ("nocol.csv", 2), ("good.csv", 2)}
    assert set(zip(dropped["source_file"], dropped["source_row"])) >= expected


def test_mapping_file_is_validated(tmp_path):
    assert load_mapping(MAPPING)["tv, audio & cameras"] == "Electronics_and_Appliances"
    bad = write(tmp_path, "m.csv", "main_category,label\nmusic,other\nMusic,Fashion\n")
    with pytest.raises(InputError, match="two labels"):
        load_mapping(bad)


def test_cli_without_raw_data_gives_a_clear_message(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "data.extract", "--set", f"paths.root={tmp_path}"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 2
    assert "make fetch-raw" in proc.stderr and "Traceback" not in proc.stderr


def test_cli_saves_resolved_config_and_prints_accounting(tmp_path):
    raw = tmp_path / "raw"
    write(raw, "x.csv", HEADER + row("https://img.test/1.jpg") + row("https://img.test/1.jpg"))
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "data.extract",
            "--set",
            f"paths.raw={raw}",
            "--set",
            f"paths.processed={tmp_path / 'out'}",
        ],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stderr
    assert "rows read 2 = kept 1 + dropped 1  [OK]" in proc.stdout
    resolved = json.loads((tmp_path / "out" / "config.resolved.json").read_text())
    assert resolved["config"]["paths"]["raw"] == str(raw)
