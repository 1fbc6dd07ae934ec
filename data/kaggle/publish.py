"""``make publish-kaggle``: publish the image dataset to Kaggle, as a new dataset or as a new version.

    python -m data.kaggle.publish --dry-run              # build + validate + list, upload nothing
    python -m data.kaggle.publish --version-notes "..."  # create it, or publish a new version if it exists

The folder (``{processed}/kaggle/dataset``: images.zip, manifest.csv, README.md, LICENSE.txt,
dataset-metadata.json) is built from the download stage's ``{processed}/images`` and its metadata is
checked locally before a single byte is sent. A real run checks credentials and the network first, before
any work; a dry run needs neither.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from data.core.errors import StageError
from data.core.cli import run, stage_parser
from data.core.config import Config, config_from_args
from data.core.options import StageOptions
from data.core.contracts import CATALOGUE, IMAGES, KAGGLE
from data.core.io import write_json
from data.kaggle.api import KaggleApiError, connect, explain, find_credentials, plain_errors, username
from data.kaggle.metadata import METADATA_FILE, validate_metadata
from data.kaggle.fetch import FetchOptions
from data.kaggle.package import DatasetSpec, StagedDataset, stage_dataset

log = logging.getLogger(__name__)

PLACEHOLDER_OWNER = "your-kaggle-user"


class PublishError(StageError):
    """The dataset cannot be published as asked; the message says why and what to do."""


@dataclass(frozen=True)
class PublishOptions(StageOptions):
    """Everything ``publish`` needs: the ``[publish]`` section, ``[paths]`` and the flags (``from_config``)."""

    SECTION = "publish"
    CLI = {"images": "images_dir", "out": "out_dir", "dry_run": "dry_run", "new": "new"}
    CLI |= {"version_notes": "version_notes"}
    PATHS = {"images_dir": IMAGES, "out_dir": KAGGLE, "catalogue": CATALOGUE.path_key}
    LOCAL = ("dry_run", "new", "version_notes", "source")

    images_dir: Path = Path(".")  # {processed}/images: <label>/<key>.jpg + manifest.parquet
    out_dir: Path = Path(".")  # {processed}/kaggle: the dataset folder and the report go here
    owner: str = ""
    slug: str = "amazon-products-images-7-classes"
    title: str = "Amazon Product Images, 7 Classes"
    subtitle: str = "Amazon India product photos labelled with 7 reduced categories"
    license: str = "CC0-1.0"
    private: bool = True
    keywords: tuple[str, ...] = ()
    dry_run: bool = False
    new: bool = False  # insist on creating a new dataset (fail if it exists)
    version_notes: str = ""  # default: counts and date
    catalogue: Path | None = None  # catalogue.parquet, for product names in manifest.csv
    source: str = DatasetSpec.source  # the Kaggle dataset the images come from ([fetch] dataset)

    def resolve(self, cfg: Config) -> "PublishOptions":
        return replace(self, source=FetchOptions.from_config(cfg).dataset)

    @property
    def spec(self) -> DatasetSpec:
        """What the published dataset is called and how it is licensed."""
        return DatasetSpec(
            owner=self.owner,
            slug=self.slug,
            title=self.title,
            subtitle=self.subtitle,
            license=self.license,
            keywords=self.keywords,
            source=self.source,
        )


def check_spec(spec: DatasetSpec) -> list[str]:
    """Problems with the id, title, subtitle or licence, found before any file is built."""
    skeleton = spec.metadata("-", [{"path": "-", "description": "-"}])
    return validate_metadata(skeleton)


def _invalid(problems: list[str]) -> PublishError:
    return PublishError(
        "the dataset metadata is not valid, nothing was uploaded:\n  - "
        + "\n  - ".join(problems)
        + "\nFix these in the [publish] section of data/config.toml (or with --set publish.KEY=...)."
    )


def dataset_exists(api: Any, ref: str) -> bool:
    """Whether ``owner/slug`` exists for these credentials (a 404 means no; other errors are reported)."""
    import requests

    try:
        api.dataset_status(ref)
    except requests.exceptions.HTTPError as exc:
        if exc.response is not None and exc.response.status_code == 404:
            return False
        raise KaggleApiError(explain(exc, f"checking whether {ref} exists")) from exc
    except (requests.exceptions.RequestException, ValueError) as exc:
        raise KaggleApiError(explain(exc, f"checking whether {ref} exists")) from exc
    return True


def _check_result(result: Any, ref: str) -> str:
    """The dataset URL from a create response, or a PublishError saying what Kaggle refused and what to do."""
    if result is None:
        raise PublishError(f"Kaggle returned no answer for {ref}; check the dataset page and run again")
    if result.invalid_tags:
        log.warning("Kaggle ignored these keywords (not existing tags): %s", ", ".join(result.invalid_tags))
    if str(result.status or "").lower() == "ok":
        return str(result.url or f"https://www.kaggle.com/datasets/{ref}")
    error = str(result.error or "no reason given")
    hint = "fix what it names and run again"
    if any(word in error.lower() for word in ("quota", "limit", "maximum", "exceed")):
        hint = (
            "you reached a Kaggle limit: delete an old private dataset or make it public, "
            "or publish this one publicly with --set publish.private=false"
        )
    elif "slug" in error.lower() and "use" in error.lower():
        hint = "the slug is taken: choose another [publish].slug, or drop --new to publish a new version"
    raise PublishError(f"Kaggle refused {ref}: {error}. What to do: {hint}.")


def _upload(api: Any, staged: StagedDataset, options: PublishOptions, ref: str, exists: bool) -> tuple[str, str]:
    folder = str(staged.folder)
    if exists:
        notes = options.version_notes or default_notes(staged)
        log.info("%s exists: publishing a new version (%s)", ref, notes)
        with plain_errors(f"publishing a new version of {ref}"):
            result = api.dataset_create_version(folder, notes, quiet=False, dir_mode="skip")
        return "version", _check_result(result, ref)
    log.info("creating %s %s", "private dataset" if options.private else "public dataset", ref)
    with plain_errors(f"creating {ref}"):
        result = api.dataset_create_new(folder, public=not options.private, quiet=False, dir_mode="skip")
    return "create", _check_result(result, ref)


def default_notes(staged: StagedDataset) -> str:
    """Version notes when none are given: what is in it and when it was built."""
    stamp = datetime.now(timezone.utc).strftime("%Y-%m-%d")
    return f"{staged.images} images in {len(staged.classes)} classes, built {stamp}"


def _owner(spec: DatasetSpec, api: Any) -> str:
    if spec.owner:
        return spec.owner
    if api is not None:
        return username(api)
    creds = find_credentials()
    return creds.username if creds and creds.username else PLACEHOLDER_OWNER


def _preflight(options: PublishOptions, api: Any) -> tuple[Any, DatasetSpec, bool]:
    """The checks before any work: names and licence; for a real run also the credentials, the network, the
    owner, and whether the dataset exists (which proves Kaggle accepts the credentials)."""
    problems = check_spec(replace(options.spec, owner=options.spec.owner or PLACEHOLDER_OWNER))
    if problems:
        raise _invalid(problems)
    if options.dry_run:
        return api, replace(options.spec, owner=_owner(options.spec, api)), False
    api = api or connect()
    spec = replace(options.spec, owner=_owner(options.spec, api))
    if not spec.owner or check_spec(spec):
        raise _invalid(check_spec(spec) or ["the credentials do not tell the user name: set [publish].owner"])
    ref = f"{spec.owner}/{spec.slug}"
    exists = dataset_exists(api, ref)
    if exists and options.new:
        raise PublishError(f"{ref} already exists: drop --new to publish a new version of it")
    return api, spec, exists


def publish(options: PublishOptions, api: Any = None) -> dict[str, Any]:
    """Build, validate and (unless a dry run) upload the dataset; returns the report also saved as JSON.

    Args:
        options: where the images are, where to build, what to call the dataset.
        api: an authenticated Kaggle client; ``None`` connects (real runs) or stays offline (dry runs).
    """
    api, spec, exists = _preflight(options, api)
    ref = f"{spec.owner}/{spec.slug}"
    staged = stage_dataset(options.images_dir, options.out_dir / "dataset", spec, options.catalogue)
    problems = validate_metadata(staged.metadata, staged.folder)
    if problems:
        raise _invalid(problems)
    mode, url = "dry-run", ""
    if not options.dry_run:
        mode, url = _upload(api, staged, options, ref, exists)
    report = {
        "ref": ref,
        "owner_known": spec.owner != PLACEHOLDER_OWNER,
        "mode": mode,
        "dry_run": options.dry_run,
        "private": options.private,
        "url": url,
        "folder": str(staged.folder),
        "files": staged.files,
        "upload_bytes": sum(staged.files.values()),
        "images": staged.images,
        "classes": staged.classes,
        "left_out": staged.skipped,
        "version_notes": options.version_notes or default_notes(staged),
    }
    write_json(options.out_dir / "publish_report.json", report)
    return report


def _size(n: float) -> str:
    for unit in ("B", "kB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return ""


def format_report(report: dict[str, Any], metadata: dict[str, Any] | None = None) -> str:
    """The summary printed at the end; for a dry run, the file list and the metadata too."""
    lines = []
    if report["dry_run"]:
        lines += [
            f"DRY RUN: nothing was uploaded. A real run would create {report['ref']} "
            f"({'private' if report['private'] else 'public'}), or publish a new version if it exists.",
            f"Folder {report['folder']}:",
        ]
        if not report["owner_known"]:
            lines.insert(
                1,
                f"  ({PLACEHOLDER_OWNER} stands for the owner: a real run uses [publish].owner, "
                "else the credentials' user name)",
            )
        lines += [f"  {name:<14} {_size(size):>10}" for name, size in report["files"].items()]
    else:
        action = "created" if report["mode"] == "create" else "new version published for"
        lines.append(f"Kaggle dataset {action} {report['ref']}: {report['url']}")
    classes = ", ".join(f"{k} {v}" for k, v in report["classes"].items())
    archive = _size(report["files"].get("images.zip", 0))
    lines.append(
        f"{report['images']} images ({classes}); left out: {report['left_out'] or 'none'}; "
        f"upload size {_size(report['upload_bytes'])} (archive {archive})"
    )
    if metadata is not None:
        shown = dict(metadata, description=f"<README.md, {len(metadata.get('description', ''))} characters>")
        lines += [f"{METADATA_FILE}:", json.dumps(shown, indent=2)]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Command line entry point (``make publish-kaggle``)."""
    parser = stage_parser("data.kaggle.publish", __doc__)
    parser.add_argument(
        "--dry-run",
        action="store_true",
        help="build and validate, list what would be uploaded, upload nothing (needs no credentials)",
    )
    parser.add_argument("--images", type=Path, help="images folder (default: {processed}/images)")
    parser.add_argument("--out", type=Path, help="where to build the dataset folder (default: {processed}/kaggle)")
    parser.add_argument("--version-notes", default="", help="notes for a new version (default: counts + date)")
    parser.add_argument(
        "--new",
        action="store_true",
        help="create a new dataset; fail if it already exists "
        "(default: create it, or publish a new version when it exists)",
    )
    args = parser.parse_args(argv)

    def body() -> int:
        cfg = config_from_args(args)
        options = PublishOptions.from_config(cfg, cli=args)
        report = publish(options)
        cfg.save(options.out_dir)
        metadata = json.loads((Path(report["folder"]) / METADATA_FILE).read_text(encoding="utf-8"))
        print(format_report(report, metadata if args.dry_run else None))
        return 0

    return run(body)


if __name__ == "__main__":
    raise SystemExit(main())
