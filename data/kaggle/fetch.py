"""``make fetch-raw``: download the Kaggle catalogue (``[fetch].dataset``) into ``{raw}`` and unpack it.

    python -m data.kaggle.fetch            # data/raw/v1 (paths.raw); skipped when it already holds files
    python -m data.kaggle.fetch --force    # download again and replace it

Credentials and the network are checked before anything is written. The archive is downloaded and unpacked
in a temporary folder beside ``{raw}`` and renamed into place, so a failed or interrupted download never
leaves a half-unpacked raw folder. The summary (files, bytes, CSV rows) is printed and saved as
``fetch_report.json`` beside the files.
"""

from __future__ import annotations

import csv
import logging
import tempfile
import zipfile
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path, PurePosixPath
from typing import Any

from data.core.errors import StageError
from data.core.cli import run, stage_parser
from data.core.config import config_from_args
from data.core.options import StageOptions
from data.core.io import staged_dir, write_json
from data.kaggle.api import connect, plain_errors

log = logging.getLogger(__name__)

REPORT = "fetch_report.json"
_OWN_FILES = {REPORT, "config.resolved.json"}  # written beside the data, not part of it


class FetchError(StageError):
    """The download cannot be used (not a zip, unsafe member names); the message says what happened."""


@dataclass(frozen=True, kw_only=True)
class FetchOptions(StageOptions):
    """What to download and where to put it: the ``[fetch]`` section, ``paths.raw`` and the flags."""

    SECTION = "fetch"
    CLI = {"dataset": "dataset", "out": "out_dir", "force": "force"}
    PATHS = {"out_dir": "raw"}
    LOCAL = ("force",)

    dataset: str = "lokeshparab/amazon-products-dataset"  # owner/slug on Kaggle
    out_dir: Path  # the raw folder, e.g. data/raw/v1
    force: bool = False  # replace an existing raw folder


def extract_zip(archive: Path, dest: Path) -> list[Path]:
    """Unpack ``archive`` into ``dest``, refusing members that would land outside it; returns the files."""
    try:
        with zipfile.ZipFile(archive) as zf:
            for name in zf.namelist():
                parts = PurePosixPath(name.replace("\\", "/")).parts
                if name.startswith(("/", "\\")) or ".." in parts or (parts and ":" in parts[0]):
                    raise FetchError(f"{archive.name} holds an unsafe path {name!r}: not unpacked")
            zf.extractall(dest)
    except zipfile.BadZipFile as exc:
        raise FetchError(f"the download {archive.name} is not a valid zip archive ({exc}): run again") from exc
    return sorted(p for p in dest.rglob("*") if p.is_file())


def count_rows(path: Path) -> int:
    """Data rows of a CSV file (quoted newlines count once), header excluded."""
    with path.open(newline="", encoding="utf-8", errors="replace") as fh:
        return max(sum(1 for _ in csv.reader(fh)) - 1, 0)


def summarise(folder: Path, dataset: str) -> dict[str, Any]:
    """Files, bytes and CSV rows of an unpacked raw folder."""
    files = sorted(p for p in folder.rglob("*") if p.is_file() and p.name not in _OWN_FILES)
    csvs = [p for p in files if p.suffix.lower() == ".csv"]
    return {
        "dataset": dataset,
        "folder": str(folder),
        "fetched_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "files": len(files),
        "bytes": sum(p.stat().st_size for p in files),
        "csv_files": len(csvs),
        "csv_rows": sum(count_rows(p) for p in csvs),
    }


def _download(api: Any, dataset: str, into: Path) -> Path:
    with plain_errors(f"downloading {dataset}"):
        api.dataset_download_files(dataset, path=str(into), force=True, quiet=False, unzip=False)
    archives = sorted(into.glob("*.zip"))
    if not archives:
        raise FetchError(f"Kaggle sent no archive for {dataset}: run again")
    return archives[0]


def fetch_raw(options: FetchOptions, api: Any = None) -> dict[str, Any]:
    """Download and unpack ``options.dataset`` into ``options.out_dir``; returns the summary.

    Args:
        options: the dataset and the target folder.
        api: an authenticated Kaggle client; ``None`` connects (checks credentials and network first).
    """
    if "/" not in options.dataset.strip("/"):
        raise FetchError(f"[fetch].dataset must look like owner/slug, it is {options.dataset!r}")
    out = options.out_dir
    if out.is_dir() and any(out.iterdir()) and not options.force:
        log.info("%s already holds files: kept (use --force to download again)", out)
        return dict(summarise(out, options.dataset), skipped=True)
    api = api or connect()
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=out.parent, prefix=f".{out.name}.download-") as zips, staged_dir(out) as work:
        archive = _download(api, options.dataset, Path(zips))  # the archive stays outside what replaces out
        files = extract_zip(archive, work)
        if not files:
            raise FetchError(f"the archive of {options.dataset} is empty")
        summary = summarise(work, options.dataset)
        write_json(work / REPORT, summary)
    return dict(summary, folder=str(out), skipped=False)


def main(argv: list[str] | None = None) -> int:
    """Command line entry point (``make fetch-raw``)."""
    parser = stage_parser("data.kaggle.fetch", __doc__)
    parser.add_argument("--dataset", help="Kaggle dataset owner/slug (default: [fetch].dataset)")
    parser.add_argument("--out", type=Path, help="target folder (default: paths.raw)")
    parser.add_argument("--force", action="store_true", help="download again and replace an existing folder")
    args = parser.parse_args(argv)

    def body() -> int:
        cfg = config_from_args(args)
        options = FetchOptions.from_config(cfg, cli=args)
        summary = fetch_raw(options)
        if not summary["skipped"]:
            cfg.save(options.out_dir)
        state = "already there" if summary["skipped"] else "downloaded"
        print(
            f"{options.dataset} {state}: {summary['files']} files, {summary['bytes'] / 1e6:.1f} MB, "
            f"{summary['csv_files']} CSV files with {summary['csv_rows']} rows in {summary['folder']}"
        )
        return 0

    return run(body)


if __name__ == "__main__":
    raise SystemExit(main())
