"""The fast paths of extract: per-file cleaning in the reader threads, the lazily read merged file,
precomputed keys, and the mapping reader without pandas."""
from __future__ import annotations

import pandas as pd
import pyarrow as pa
import pytest

from data.config import REPO_ROOT
from data.extract import ExtractError, ExtractOptions, extract, load_mapping, url_key
from data.text import clean_str
from data.transform import url_keys

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
    write(raw, "Amazon-Products.csv", HEADER + row("https://img.test/1.jpg")
          + row(" https://img.test/2.jpg ", name='"  Kids\u2019\t  wear "', link=" https://x.test/q ")
          + row("https://img.test/3.jpg", main="Garden Gnomes") + row("https://img.test/2.jpg"))
    report = extract(ExtractOptions(raw_dir=raw, out_dir=tmp_path / "out", mapping=MAPPING))
    assert report["dropped_by_reason"] == {"merged_file_duplicate": 2, "unmapped_category": 1}
    catalogue = pd.read_parquet(tmp_path / "out" / "catalogue.parquet").set_index("url")
    own = catalogue.loc["https://img.test/2.jpg"]
    assert (own["name"], own["link"], own["key"]) == (clean_str("  Kids\u2019\t  wear "), "https://x.test/q",
                                                      url_key("https://img.test/2.jpg"))
    assert (own["source_file"], own["source_row"], own["discount_price"], own["label"]) == \
        ("Amazon-Products.csv", 2, 1299.0, "accessories")
    first = catalogue.loc["https://img.test/1.jpg"]
    assert (first["name"], first["source_file"], first["key"]) == ("Caf\u00e9's mug", "A.csv",
                                                                   url_key("https://img.test/1.jpg"))
    dropped = pd.read_parquet(tmp_path / "out" / "dropped.parquet").set_index("source_row")
    assert dropped.loc[1, "detail"] == "duplicate of A.csv:1"
    assert dropped.loc[4, "detail"] == "duplicate of Amazon-Products.csv:2"


def test_mapping_reader_handles_quotes_bom_and_blank_lines(tmp_path):
    path = tmp_path / "m.csv"
    path.write_text('\ufeffmain_category,label\n"TV,  Audio & Cameras ",Electronics\n\nMusic , other \n',
                    encoding="utf-8")
    assert load_mapping(path) == {"tv, audio & cameras": "Electronics", "music": "other"}


@pytest.mark.parametrize("text, message", [
    ("category,label\nmusic,other\n", "header"),
    ("", "header"),
    ("main_category,label\nmusic\n", "every row"),
    ("main_category,label\n ,other\n", "every row"),
    ("main_category,label\nmusic,other\nMusic,Fashion\nbooks,a\nBooks ,b\n", r"\['books', 'music'\]"),
])
def test_mapping_reader_rejects_bad_files(tmp_path, text, message):
    path = tmp_path / "m.csv"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ExtractError, match=message):
        load_mapping(path)
