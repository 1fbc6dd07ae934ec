"""The fast paths of extract: per-file cleaning in the reader threads, the lazily read merged file,
precomputed keys, and the mapping reader without pandas."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from data.core.config import REPO_ROOT
from data.core.errors import InputError
from data.core.mapping import clean_str, load_mapping
from data.extract.stage import ExtractOptions, extract, url_key
from data.extract.read import read_prepared, read_whole
from data.extract.write import build_catalogue, part_bounds
from data.extract.transform import classify, url_keys

MAPPING = REPO_ROOT / "data" / "label_mapping.csv"
HEADER = "name,main_category,sub_category,image,link,ratings,no_of_ratings,discount_price,actual_price\n"


def row(url: str, name: str = "Thing", main: str = "accessories", link: str = "https://x.test/p") -> str:
    return f'{name},{main},Watches,{url},{link},4.1,"2,255","₹1,299","₹2,000"\n'


def write(folder, name: str, text: str) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_text(text, encoding="utf-8")


def test_url_keys_match_the_documented_key():
    urls = ["https://img.test/1.jpg", "https://img.test/caf\u00e9.jpg", ""]
    assert url_keys(pa.array(urls, pa.string())).to_pylist() == [url_key(u) for u in urls]


def test_merged_file_rows_of_their_own_are_kept_whole_and_cleaned(tmp_path):
    """The merged file is only partly cleaned while read; a row of it that is kept must still come out whole."""
    raw = tmp_path / "raw"
    write(raw, "A.csv", HEADER + row("https://img.test/1.jpg", name='"  Caf\u00e9\u2019s   mug "'))
    write(
        raw,
        "Amazon-Products.csv",
        HEADER
        + row("https://img.test/1.jpg")
        + row(" https://img.test/2.jpg ", name='"  Kids\u2019\t  wear "', link=" https://x.test/q ")
        + row("https://img.test/3.jpg", main="Garden Gnomes")
        + row("https://img.test/2.jpg"),
    )
    report = extract(ExtractOptions(raw_dir=raw, out_dir=tmp_path / "out", mapping=MAPPING))
    assert report["dropped_by_reason"] == {"merged_file_duplicate": 2, "unmapped_category": 1}
    catalogue = pd.read_parquet(tmp_path / "out" / "catalogue.parquet").set_index("url")
    own = catalogue.loc["https://img.test/2.jpg"]
    assert (own["name"], own["link"], own["key"]) == (
        clean_str("  Kids\u2019\t  wear "),
        "https://x.test/q",
        url_key("https://img.test/2.jpg"),
    )
    assert (own["source_file"], own["source_row"], own["discount_price"], own["label"]) == (
        "Amazon-Products.csv",
        2,
        1299.0,
        "accessories",
    )
    first = catalogue.loc["https://img.test/1.jpg"]
    assert (first["name"], first["source_file"], first["key"]) == (
        "Caf\u00e9's mug",
        "A.csv",
        url_key("https://img.test/1.jpg"),
    )
    dropped = pd.read_parquet(tmp_path / "out" / "dropped.parquet").set_index("source_row")
    assert dropped.loc[1, "detail"] == "duplicate of A.csv:1"
    assert dropped.loc[4, "detail"] == "duplicate of Amazon-Products.csv:2"


def test_mapping_reader_handles_quotes_bom_and_blank_lines(tmp_path):
    path = tmp_path / "m.csv"
    path.write_text(
        '\ufeffmain_category,label\n"TV,  Audio & Cameras ",Electronics\n\nMusic , other \n', encoding="utf-8"
    )
    assert load_mapping(path) == {"tv, audio & cameras": "Electronics", "music": "other"}


@pytest.mark.parametrize(
    "text, message",
    [
        ("category,label\nmusic,other\n", "header"),
        ("", "header"),
        ("main_category,label\nmusic\n", "every row"),
        ("main_category,label\n ,other\n", "every row"),
        ("main_category,label\nmusic,other\nMusic,Fashion\nbooks,a\nBooks ,b\n", r"\['books', 'music'\]"),
    ],
)
def test_mapping_reader_rejects_bad_files(tmp_path, text, message):
    path = tmp_path / "m.csv"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(InputError, match=message):
        load_mapping(path)


def test_merged_file_with_bad_utf8_outside_its_lazy_columns_is_read_as_cp1252(tmp_path):
    """A partial read must not decide the encoding: a full read would meet the bad byte and use cp1252."""
    raw = tmp_path / "raw"
    write(raw, "A.csv", HEADER + row("https://img.test/1.jpg"))
    # The bad byte (cp1252 in a name) lies past the first block, which reading the header alone decodes.
    text = HEADER + row("https://img.test/1.jpg") * 300 + row("https://img.test/2.jpg", name="CafX")
    raw.joinpath("Amazon-Products.csv").write_bytes(text.encode().replace(b"CafX", b"Caf\xe9"))
    report = extract(ExtractOptions(raw_dir=raw, out_dir=tmp_path / "out", mapping=MAPPING))
    assert {f["file"]: f["encoding"] for f in report["files"]} == {"A.csv": "utf-8", "Amazon-Products.csv": "cp1252"}
    catalogue = pd.read_parquet(tmp_path / "out" / "catalogue.parquet").set_index("url")
    assert catalogue.loc["https://img.test/2.jpg", "name"] == "Caf\u00e9"


def test_a_merged_file_alone_is_read_whole(tmp_path):
    raw = tmp_path / "raw"
    write(raw, "Amazon-Products.csv", HEADER + row("https://img.test/1.jpg", name="Mug") * 2)
    report = extract(ExtractOptions(raw_dir=raw, out_dir=tmp_path / "out", mapping=MAPPING))
    catalogue = pd.read_parquet(tmp_path / "out" / "catalogue.parquet")
    expected = [["Mug", url_key("https://img.test/1.jpg"), 1299.0]]
    assert catalogue[["name", "key", "discount_price"]].values.tolist() == expected
    assert report["dropped_by_reason"] == {"merged_file_duplicate": 1}


def test_reading_whole_refuses_a_file_that_changed(tmp_path):
    path = tmp_path / "Amazon-Products.csv"
    write(tmp_path, path.name, HEADER + row("https://img.test/1.jpg"))
    lazy = read_prepared(path, path.name, lazy=True)
    assert lazy.table["name"].null_count == 1 and lazy.table["image"].to_pylist() == ["https://img.test/1.jpg"]
    assert read_whole(path, lazy).table["name"].to_pylist() == ["Thing"]
    write(tmp_path, path.name, HEADER + row("https://img.test/1.jpg") + row("https://img.test/2.jpg"))
    with pytest.raises(ValueError, match="changed"):
        read_whole(path, lazy)


def test_catalogue_written_in_parts_reads_back_as_the_whole(tmp_path):
    mapping = load_mapping(MAPPING)
    urls = [f"https://img.test/{i % 7}.jpg" for i in range(40)] + [None, "ftp://x/1.jpg"]
    n = len(urls)
    table = pa.table(
        {
            "image": pa.array(urls, pa.string()),
            "main_category": pa.array(["accessories"] * n),
            "key": pa.array([url_key(u or "") for u in urls]),
            "name": pa.array([f"n{i}" for i in range(n)]),
            "sub_category": pa.array([" Watches "] * n),
            "link": pa.array(["https://x.test/p"] * n),
            "ratings": pa.array(["4.1"] * n),
            "no_of_ratings": pa.array(["2,255"] * n),
            "discount_price": pa.array(["\u20b91,299"] * n),
            "actual_price": pa.array([None] * n, pa.string()),
            "source_file": pa.DictionaryArray.from_arrays(
                pa.array([0] * 20 + [1] * (n - 20), pa.int32()), pa.array(["A.csv", "B.csv"])
            ),
            "source_row": pa.array(range(1, n + 1), pa.int64()),
        }
    )
    split = classify(table, mapping, np.zeros(n, bool))
    assert part_bounds(split.keep, rows_per_part=2) == [0, 2, 4, n]  # 7 kept rows (the first of each URL)
    whole = build_catalogue(table, split, mapping, tmp_path / "one.parquet")
    parts = build_catalogue(table, split, mapping, tmp_path / "parts.parquet", rows_per_part=2)
    assert pq.ParquetFile(tmp_path / "parts.parquet").num_row_groups == 3
    assert pq.ParquetFile(tmp_path / "one.parquet").num_row_groups == 1
    assert parts.equals(whole)
    assert pq.read_table(tmp_path / "parts.parquet").equals(pq.read_table(tmp_path / "one.parquet"))
    assert whole["url"].to_pylist() == [f"https://img.test/{i}.jpg" for i in range(7)]
    assert build_catalogue(table, split, mapping, None, rows_per_part=2).equals(whole)
