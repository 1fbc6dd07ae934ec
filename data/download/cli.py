"""The command line of ``make download-images`` / ``make validate-urls`` (``python -m data.download``)."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path
from typing import Any

from data.core.cli import run, stage_parser
from data.core.config import config_from_args
from data.core.contracts import CATALOGUE, IMAGES
from data.core.errors import InputError
from data.download.records import DownloadOptions
from data.download.shards import Columns
from data.download.stage import download_images, moved_note, validate_urls

log = logging.getLogger("data.download")


def format_summary(report: dict[str, Any]) -> str:
    """A short, human-readable summary of a report: totals, this run, and counts by status and reason."""
    run = report["this_run"]
    share = report["ok"] / report["urls"] if report["urls"] else 0.0
    lines = [
        f"{report['stage']}: {report['urls']} URLs, {report['ok']} ok ({share:.1%}), "
        f"{report['failed']} failed ({report['retryable_failed']} retryable); "
        f"{report['duplicate_keys']} duplicate keys left out",
        f"this run: {run['processed']} processed, {run['already_done']} already done"
        f"{moved_note(run.get('relabelled', 0))}, {run['elapsed_s']} s, "
        f"{run['urls_per_s']} URLs/s, {run['ok_per_s']} ok/s",
    ]
    for status, reasons in report["by_reason"].items():
        for reason, count in reasons.items():
            lines.append(f"  {status:<20} {count:>8}  {reason}")
    return "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    """The command-line interface of ``python -m data.download``."""
    parser = stage_parser("data.download", __doc__)
    parser.add_argument(
        "--input", type=Path, help="Parquet or CSV list of URLs (default: {processed}/catalogue.parquet)"
    )
    parser.add_argument(
        "--out",
        type=Path,
        help="image folder (default: {processed}/images); with --validate-only "
        "the result file (default: {processed}/url_validation.parquet)",
    )
    parser.add_argument("--url-col", default="url", help="URL column (default: url)")
    parser.add_argument(
        "--key-col", default="key", help="key column, the file name (default: key; when absent, sha1(url)[:16])"
    )
    parser.add_argument("--label-col", default="label", help="label column, the folder name (default: label)")
    parser.add_argument("--retry-failed", action="store_true", help="also retry permanent failures of earlier runs")
    parser.add_argument("--validate-only", action="store_true", help="only check the URLs (HEAD / ranged GET)")
    parser.add_argument("--limit", type=int, help="only the first N input rows")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar (logs only)")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``python -m data.download``."""
    args = build_parser().parse_args(argv)

    def body() -> int:
        cfg = config_from_args(args)
        opts = DownloadOptions.from_config(cfg, cli=args)
        if args.limit is not None and args.limit < 0:
            raise InputError("--limit must be >= 0")
        columns = Columns(url=args.url_col, key=args.key_col, label=args.label_col)
        source = args.input or CATALOGUE.path(cfg)
        kwargs = dict(
            columns=columns, retry_failed=args.retry_failed, limit=args.limit, progress=not args.no_progress, config=cfg
        )
        try:
            if args.validate_only:
                target = args.out or cfg.path("processed") / "url_validation.parquet"
                summary = validate_urls(source, target, opts, **kwargs)
            else:
                summary = download_images(source, args.out or cfg.path(IMAGES), opts, **kwargs)
        except KeyboardInterrupt:
            log.warning(
                "interrupted: completed shards are saved and no partial image is left; "
                "run the same command again to resume"
            )
            return 130
        print(format_summary(summary.report))
        print(f"output: {summary.output}\nreport: {summary.report_path}")
        return 0

    return run(body)
