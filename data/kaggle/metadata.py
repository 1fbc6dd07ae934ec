"""``dataset-metadata.json`` for Kaggle: build it, and check it locally before anything is uploaded.

Kaggle only checks most of these rules after a long upload (a slug with a space or an underscore is a
``400 Bad Request`` once every byte has been sent), so :func:`validate_metadata` checks them all first:
the id ``owner/slug``, the title (6-50 characters), the subtitle (20-80), exactly one known licence, and a
description for every file that will be uploaded.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

METADATA_FILE = "dataset-metadata.json"

# The licence names the Kaggle API accepts in dataset-metadata.json (Kaggle's datasets_metadata docs).
LICENSES = {
    "CC0-1.0": "https://creativecommons.org/publicdomain/zero/1.0/",
    "CC-BY-4.0": "https://creativecommons.org/licenses/by/4.0/",
    "CC-BY-SA-4.0": "https://creativecommons.org/licenses/by-sa/4.0/",
    "CC-BY-NC-4.0": "https://creativecommons.org/licenses/by-nc/4.0/",
    "CC-BY-NC-SA-4.0": "https://creativecommons.org/licenses/by-nc-sa/4.0/",
    "CC-BY-ND-4.0": "https://creativecommons.org/licenses/by-nd/4.0/",
    "CC-BY-NC-ND-4.0": "https://creativecommons.org/licenses/by-nc-nd/4.0/",
    "CC-BY-3.0": "https://creativecommons.org/licenses/by/3.0/",
    "CC-BY-SA-3.0": "https://creativecommons.org/licenses/by-sa/3.0/",
    "CC-BY-3.0-IGO": "https://creativecommons.org/licenses/by/3.0/igo/",
    "CC-BY-NC-SA-3.0-IGO": "https://creativecommons.org/licenses/by-nc-sa/3.0/igo/",
    "PDDL": "https://opendatacommons.org/licenses/pddl/1.0/",
    "ODC-BY-1.0": "https://opendatacommons.org/licenses/by/1-0/",
    "ODbL-1.0": "https://opendatacommons.org/licenses/odbl/1-0/",
    "DbCL-1.0": "https://opendatacommons.org/licenses/dbcl/1-0/",
    "CDLA-Permissive-1.0": "https://cdla.io/permissive-1-0/",
    "CDLA-Sharing-1.0": "https://cdla.io/sharing-1-0/",
    "GPL-2.0": "https://www.gnu.org/licenses/old-licenses/gpl-2.0.html",
    "GPL-3.0": "https://www.gnu.org/licenses/gpl-3.0.html",
    "LGPL-3.0": "https://www.gnu.org/licenses/lgpl-3.0.html",
    "AGPL-3.0": "https://www.gnu.org/licenses/agpl-3.0.html",
    "FDL-1.3": "https://www.gnu.org/licenses/fdl-1.3.html",
    "apache-2.0": "https://www.apache.org/licenses/LICENSE-2.0",
    "US-Government-Works": "https://www.usa.gov/government-works/",
    "EU-ODP-Legal-Notice": "https://ec.europa.eu/info/legal-notice_en",
    "copyright-authors": "",
    "other": "",
    "unknown": "",
}

_SLUG = re.compile(r"^[a-z0-9]+(?:-[a-z0-9]+)*$")
_OWNER = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]*$")


def suggest_slug(text: str) -> str:
    """A valid slug close to ``text``: lowercase letters and digits joined by single hyphens."""
    return "-".join(re.findall(r"[a-z0-9]+", text.lower()))[:50].strip("-")


def _check_length(problems: list[str], name: str, value: Any, low: int, high: int) -> None:
    if not isinstance(value, str) or not value.strip():
        problems.append(f"{name} is missing")
    elif not low <= len(value) <= high:
        problems.append(f"{name} must be {low}-{high} characters long, it has {len(value)}: {value!r}")


def _check_id(problems: list[str], ref: Any) -> None:
    if not isinstance(ref, str) or ref.count("/") != 1:
        problems.append(f"id must look like owner/slug, it is {ref!r}")
        return
    owner, slug = ref.split("/")
    if not owner or not _OWNER.match(owner):
        problems.append(
            f"id: the owner {owner!r} must be a Kaggle user or organisation name "
            "(set [publish].owner, or leave it empty to use the credentials' user name)"
        )
    if not 6 <= len(slug) <= 50:
        problems.append(f"id: the slug {slug!r} must be 6-50 characters long, it has {len(slug)}")
    if not _SLUG.match(slug):
        problems.append(
            f"id: the slug {slug!r} may hold only lowercase letters, digits and single hyphens "
            f"(no spaces or underscores); try [publish].slug = {suggest_slug(slug)!r}"
        )


def _check_licenses(problems: list[str], licenses: Any) -> None:
    if not isinstance(licenses, list) or len(licenses) != 1 or not isinstance(licenses[0], dict):
        problems.append(f'licenses must hold exactly one entry like [{{"name": "CC0-1.0"}}], it is {licenses!r}')
        return
    name = licenses[0].get("name")
    if name not in LICENSES:
        problems.append(f"licence {name!r} is not one Kaggle accepts; choose one of: {', '.join(LICENSES)}")


def _check_resources(problems: list[str], resources: Any, folder: Path | None) -> None:
    if not isinstance(resources, list) or not resources:
        problems.append("resources must describe every uploaded file (path and description)")
        return
    paths = []
    for item in resources:
        path = item.get("path") if isinstance(item, dict) else None
        if not isinstance(path, str) or not path:
            problems.append(f"resources: entry without a path: {item!r}")
            continue
        paths.append(path)
        if not str(item.get("description") or "").strip():
            problems.append(f"resources: {path} has no description")
        if folder is not None and not (folder / path).is_file():
            problems.append(f"resources: {path} is not a file in {folder}")
    duplicates = sorted({p for p in paths if paths.count(p) > 1})
    if duplicates:
        problems.append(f"resources: listed more than once: {', '.join(duplicates)}")
    if folder is not None:
        for entry in sorted(folder.iterdir()):
            if entry.name == METADATA_FILE:
                continue
            if entry.is_dir():
                problems.append(f"{entry.name}/ is a folder: the client would skip it; archive it first")
            elif entry.name not in paths:
                problems.append(f"resources: {entry.name} would be uploaded without a description")


def validate_metadata(meta: dict[str, Any], folder: Path | None = None) -> list[str]:
    """Every problem Kaggle would reject (or silently mangle) in ``meta``; an empty list means it is fine.

    Args:
        meta: the parsed ``dataset-metadata.json``.
        folder: the dataset folder; when given, the resources are checked against the files in it.
    """
    problems: list[str] = []
    _check_id(problems, meta.get("id"))
    _check_length(problems, "title", meta.get("title"), 6, 50)
    _check_length(problems, "subtitle", meta.get("subtitle"), 20, 80)
    _check_licenses(problems, meta.get("licenses"))
    if not str(meta.get("description") or "").strip():
        problems.append("description is missing")
    keywords = meta.get("keywords", [])
    if not isinstance(keywords, list) or not all(isinstance(k, str) for k in keywords):
        problems.append(f"keywords must be a list of strings, it is {keywords!r}")
    _check_resources(problems, meta.get("resources"), folder)
    return problems


def build_metadata(
    *,
    owner: str,
    slug: str,
    title: str,
    subtitle: str,
    license_name: str,
    description: str,
    resources: list[dict[str, Any]],
    keywords: list[str] | None = None,
) -> dict[str, Any]:
    """The ``dataset-metadata.json`` document (Kaggle's Data Package flavour)."""
    meta: dict[str, Any] = {
        "id": f"{owner}/{slug}",
        "title": title,
        "subtitle": subtitle,
        "description": description,
        "licenses": [{"name": license_name}],
        "resources": resources,
    }
    if keywords:
        meta["keywords"] = list(keywords)
    return meta
