"""The inter-stage contracts agree with what the stages really write, and with the default [paths]."""

from __future__ import annotations

import dataclasses

import pyarrow.parquet as pq
import pytest

from data.core.config import load_config
from data.core.contracts import CATALOGUE, DROPPED, MANIFEST, PATH_KEYS
from data.core.errors import InputError
from data.download.records import Record
from data.extract.stage import ExtractOptions, extract
from data.core.config import REPO_ROOT


def test_every_contract_path_is_in_the_default_config_with_its_file_name():
    cfg = load_config()
    for key in PATH_KEYS:
        cfg.path(key)  # raises ConfigError when [paths] lacks it
    for table in (CATALOGUE, DROPPED, MANIFEST):
        assert cfg.path(table.path_key).name == table.file_name


def test_download_records_are_the_manifest_contract():
    assert tuple(f.name for f in dataclasses.fields(Record)) == MANIFEST.columns


def test_extract_writes_what_download_reads(tmp_path):
    raw = tmp_path / "raw"
    raw.mkdir()
    (raw / "Watches.csv").write_text(
        "name,main_category,sub_category,image,link,ratings,no_of_ratings,discount_price,actual_price\n"
        'A,accessories,Watches,https://example.invalid/a.jpg,,4.1,"1,024",₹99,₹199\n'
        "B,accessories,Watches,,,,,,\n",
        encoding="utf-8",
    )
    out = tmp_path / "out"
    extract(ExtractOptions(raw_dir=raw, out_dir=out, mapping=REPO_ROOT / "data" / "label_mapping.csv"))
    catalogue = pq.read_schema(out / CATALOGUE.file_name).names
    dropped = pq.read_schema(out / DROPPED.file_name).names
    assert tuple(catalogue) == CATALOGUE.columns
    assert tuple(dropped) == DROPPED.columns
    CATALOGUE.check(catalogue, out)  # what download requires
    with pytest.raises(InputError, match="url"):
        CATALOGUE.check(["key", "label"], "x.parquet")
