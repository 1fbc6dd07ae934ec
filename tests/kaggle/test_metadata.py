"""dataset-metadata.json is checked locally: every rule Kaggle would enforce only after the upload."""

from __future__ import annotations

from pathlib import Path

import pytest

from data.core.config import load_config
from data.kaggle.metadata import METADATA_FILE, build_metadata, suggest_slug, validate_metadata


def _meta(**changes):
    fields = dict(
        owner="tester",
        slug="amazon-products-images",
        title="Amazon Product Images",
        subtitle="Product photos labelled with 7 classes",
        license_name="CC0-1.0",
        description="# Amazon Product Images\n",
        resources=[{"path": "images.zip", "description": "photos"}],
    )
    fields.update(changes)
    return build_metadata(**fields)


def test_the_configured_defaults_are_valid():
    section = load_config().section("publish")
    meta = _meta(
        slug=section["slug"], title=section["title"], subtitle=section["subtitle"], license_name=section["license"]
    )
    assert validate_metadata(meta) == []
    assert meta["id"] == f"tester/{section['slug']}"
    assert meta["licenses"] == [{"name": "CC0-1.0"}]


@pytest.mark.parametrize(
    "changes, problem",
    [
        ({"slug": "amazon products"}, "only lowercase letters, digits and single hyphens"),
        ({"slug": "amazon_products"}, "no spaces or underscores"),
        ({"slug": "Amazon-Products"}, "only lowercase letters"),
        ({"slug": "short"}, "must be 6-50 characters long, it has 5"),
        ({"slug": "a" * 51}, "must be 6-50 characters long, it has 51"),
        ({"owner": ""}, "the owner ''"),
        ({"owner": "some one"}, "the owner 'some one'"),
        ({"title": "Imgs"}, "title must be 6-50 characters long, it has 4"),
        ({"title": "T" * 51}, "title must be 6-50 characters long, it has 51"),
        ({"subtitle": "too short subtitle"}, "subtitle must be 20-80 characters long, it has 18"),
        ({"subtitle": "s" * 81}, "subtitle must be 20-80 characters long, it has 81"),
        ({"subtitle": ""}, "subtitle is missing"),
        ({"license_name": "MIT"}, "licence 'MIT' is not one Kaggle accepts"),
        ({"description": " "}, "description is missing"),
        ({"resources": []}, "resources must describe every uploaded file"),
        ({"resources": [{"path": "images.zip", "description": ""}]}, "images.zip has no description"),
        (
            {"resources": [{"path": "a.csv", "description": "x"}, {"path": "a.csv", "description": "y"}]},
            "listed more than once: a.csv",
        ),
    ],
)
def test_each_rule_is_reported(changes, problem):
    problems = validate_metadata(_meta(**changes))
    assert any(problem in p for p in problems), problems


def test_exactly_one_licence_and_a_well_formed_id():
    meta = _meta()
    meta["licenses"] = [{"name": "CC0-1.0"}, {"name": "CC-BY-4.0"}]
    meta["id"] = "no-slash-here"
    problems = validate_metadata(meta)
    assert any("exactly one entry" in p for p in problems)
    assert any("id must look like owner/slug" in p for p in problems)


def test_a_bad_slug_comes_with_a_suggestion():
    problems = validate_metadata(_meta(slug="Amazon Products_Images 7"))
    assert any("'amazon-products-images-7'" in p for p in problems), problems
    assert suggest_slug("  Indian Herbs__Classification! ") == "indian-herbs-classification"


def test_the_folder_must_match_the_resources(tmp_path: Path):
    (tmp_path / "images.zip").write_bytes(b"zip")
    (tmp_path / "notes.txt").write_text("undocumented")
    (tmp_path / "images").mkdir()
    (tmp_path / METADATA_FILE).write_text("{}")
    meta = _meta(
        resources=[{"path": "images.zip", "description": "photos"}, {"path": "manifest.csv", "description": "rows"}]
    )
    problems = validate_metadata(meta, tmp_path)
    assert any("manifest.csv is not a file" in p for p in problems)
    assert any("notes.txt would be uploaded without a description" in p for p in problems)
    assert any("images/ is a folder" in p for p in problems)
    assert not any(METADATA_FILE in p for p in problems)
