"""Behaviour unchanged: run two versions of the pipeline on the same real inputs and compare what they write.

The "before" tree is read out of git (``git archive <commit> | tar -x``) into the work folder; the repository,
its working tree and its worktrees are never touched. The "after" tree is the working tree (default) or
another commit, materialised the same way. Each tree runs through its own command-line entry points, as its
own Makefile calls them, with the same ``.venv`` Python, its own ``data/config.toml`` and the same overrides
(``paths.root`` = a fresh output folder, ``paths.raw`` = the input):

1. extract on the shared CSV sample and on the shared full category files: ``catalogue.parquet`` (row order
   included: download's shards and ``--limit`` follow it), ``dropped.parquet`` (sorted by source_file,
   source_row, reason: no stage reads it in order) and the report's counts;
2. download-images on the first ``--rows`` catalogue rows, every URL rewritten to a loopback server that
   serves the shared real photos (a photo fixed by a hash of the original URL) and a few fixed faults (404s,
   an HTML page, a truncated JPEG); the same rewritten catalogue goes to both trees through ``--input``.
   ``manifest.parquet`` is compared sorted by key, without its timing column ``elapsed_s``; the stored
   images byte by byte (relative path and sha256);
3. a seeded tiny training run on that download (``tiny`` backbone, ``weights = none``, 1 epoch, 32 px):
   the runs' ``split.csv`` must be identical.

    .venv/bin/python -m bench.compare_commits [--before 4b1e307] [--after WORKTREE|COMMIT] [--rows 600] [--work DIR]

Prints a markdown table (check | before | after | equal) and exits 1 when anything differs.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("SHARED_DATA", REPO.parent / "shared" / "data"))
INPUTS = {"sample": SHARED / "amazon-products-csv-sample", "full": SHARED / "amazon-products-csv-full"}
PHOTOS = SHARED / "amazon-products-images-sample"
PYTHON = REPO / ".venv" / "bin" / "python"
WORKTREE = "WORKTREE"
TIMING_COLUMNS = ("elapsed_s",)
DROPPED_ORDER = ("source_file", "source_row", "reason")
REPORT_COUNTS = (
    "files_read",
    "rows_read",
    "rows_kept",
    "rows_dropped",
    "accounting_ok",
    "dropped_by_reason",
    "unmapped_categories",
    "labels",
)
DOWNLOAD_COUNTS = (
    "input_rows",
    "duplicate_keys",
    "conflicting_keys",
    "urls",
    "ok",
    "failed",
    "retryable_failed",
    "by_status",
    "by_reason",
)
TRAIN_SET = (
    "train.backbone=tiny",
    "train.weights=none",
    "train.epochs=1",
    "train.fine_tune_epochs=0",
    "train.image_size=32",
    "train.batch_size=32",
    "train.seed=42",
)
RUN_ID = "compare"


@dataclass
class Row:
    """One line of the result table."""

    check: str
    before: str
    after: str
    equal: str

    @property
    def failed(self) -> bool:
        return not self.equal.startswith("yes")


@dataclass(frozen=True)
class Tree:
    """A version of the code: its name in the table, its root folder and where its outputs go."""

    name: str
    root: Path
    out: Path
    logs: Path

    def run(self, step: str, module: str, *args: str) -> tuple[int, str]:
        """``python -m module --config <root>/data/config.toml args`` in the tree; (exit code, log file)."""
        env = {
            **os.environ,
            "PYTHONPATH": str(self.root),
            "PYTHONPYCACHEPREFIX": str(self.logs.parent / "pycache"),
            "PYTHONUNBUFFERED": "1",
            "TF_CPP_MIN_LOG_LEVEL": "2",
            "TF_NUM_INTRAOP_THREADS": "2",
            "TF_NUM_INTEROP_THREADS": "1",
            "OMP_NUM_THREADS": "2",
        }
        env.pop("PC_SET", None)
        command = [str(PYTHON), "-m", module, "--config", str(self.root / "data" / "config.toml"), *args]
        log = self.logs / f"{self.name}-{step}.log"
        started = time.monotonic()
        with open(log, "w", encoding="utf-8") as out:
            out.write(" ".join(command) + "\n\n")
            out.flush()
            rc = subprocess.run(command, cwd=self.root, env=env, stdout=out, stderr=subprocess.STDOUT).returncode
        print(f"  {self.name:<6} {step:<16} exit {rc} in {time.monotonic() - started:5.1f} s   ({log})", flush=True)
        return rc, str(log)


# ------------------------------------------------------------------------------------------- the trees
def resolve(commit: str) -> str:
    """The full hash of a commit name (``git rev-parse``; reads the repository only)."""
    done = subprocess.run(
        ["git", "rev-parse", "--verify", f"{commit}^{{commit}}"], cwd=REPO, capture_output=True, text=True
    )
    if done.returncode:
        raise SystemExit(f"error: {commit!r} is not a commit of {REPO}: {done.stderr.strip()}")
    return done.stdout.strip()


def materialise(commit: str, target: Path) -> Path:
    """The files of ``commit`` in ``target`` (a fresh folder), from ``git archive``; read-only files."""
    if target.exists():
        for folder, _, _ in os.walk(target):
            os.chmod(folder, 0o755)
        shutil.rmtree(target)
    target.mkdir(parents=True)
    archive = subprocess.Popen(["git", "archive", "--format=tar", commit], cwd=REPO, stdout=subprocess.PIPE)
    subprocess.run(["tar", "-x", "-C", str(target)], stdin=archive.stdout, check=True)
    if archive.wait():
        raise SystemExit(f"error: git archive {commit} failed")
    for folder, _, files in os.walk(target):
        for name in files:
            os.chmod(Path(folder) / name, 0o444)
    return target


def trees(args: argparse.Namespace, work: Path) -> tuple[Tree, Tree, str, str]:
    """The before and after trees, and how the table names them."""
    logs = work / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    before_hash = resolve(args.before)
    before = Tree("before", materialise(before_hash, work / "trees" / "before"), work / "out" / "before", logs)
    if args.after == WORKTREE:
        after_root, after_name = REPO, f"working tree ({resolve('HEAD')[:7]} + uncommitted changes)"
    else:
        after_hash = resolve(args.after)
        after_root, after_name = materialise(after_hash, work / "trees" / "after"), after_hash[:7]
    after = Tree("after", after_root, work / "out" / "after", logs)
    return before, after, before_hash[:7], after_name


# -------------------------------------------------------------------------------------- comparisons
def decoded(table: pa.Table) -> pa.Table:
    """``table`` with dictionary columns as plain ones (for sorting and value-by-value comparison)."""
    columns = [c.cast(c.type.value_type) if pa.types.is_dictionary(c.type) else c for c in table.columns]
    return pa.table(columns, names=table.column_names)


def sort_by(table: pa.Table, keys: tuple[str, ...]) -> pa.Table:
    """``table`` ordered by ``keys`` (ascending, nulls last), original column types kept."""
    return table.take(pc.sort_indices(decoded(table), sort_keys=[(k, "ascending") for k in keys]))


def first_difference(a: pa.Table, b: pa.Table, key: str | None) -> str:
    """Where two tables first differ: the schema, the row count, or the first differing value."""
    if a.schema != b.schema:
        fields_a, fields_b = [str(f) for f in a.schema], [str(f) for f in b.schema]
        only_a = [f for f in fields_a if f not in fields_b]
        only_b = [f for f in fields_b if f not in fields_a]
        if only_a or only_b:
            return f"schema: before has {only_a or 'nothing else'}, after has {only_b or 'nothing else'}"
        return f"column order: {a.column_names} vs {b.column_names}"
    if a.num_rows != b.num_rows:
        return f"{a.num_rows} vs {b.num_rows} rows"
    plain_a, plain_b = decoded(a), decoded(b)
    for name in a.column_names:
        values_a, values_b = plain_a[name].to_pylist(), plain_b[name].to_pylist()
        for i, (va, vb) in enumerate(zip(values_a, values_b)):
            if va != vb and not (va != va and vb != vb):  # NaN == NaN here
                where = f"row {i}" + (f" (key {plain_a[key][i]})" if key and key in a.column_names else "")
                return f"column {name!r}, {where}: {va!r} vs {vb!r}"
    return "metadata only"


def compare_tables(
    check: str,
    a: pa.Table,
    b: pa.Table,
    order: tuple[str, ...] = (),
    key: str | None = None,
    describe: Callable[[pa.Table], str] | None = None,
) -> Row:
    """Equal with ``Table.equals`` (after sorting by ``order`` when given)."""
    if order and all(k in a.column_names for k in order) and all(k in b.column_names for k in order):
        a, b = sort_by(a, order), sort_by(b, order)
    describe = describe or (lambda t: f"{t.num_rows:,} rows x {t.num_columns} cols")
    equal = "yes" if a.equals(b) else f"no: {first_difference(a, b, key)}"
    return Row(check, describe(a), describe(b), equal)


def compare_counts(check: str, a: dict[str, Any], b: dict[str, Any], keys: tuple[str, ...], describe: str) -> Row:
    """The report entries ``keys`` of two JSON reports."""
    differing = [k for k in keys if a.get(k, "<absent>") != b.get(k, "<absent>")]
    equal = "yes" if not differing else f"no: {differing[0]}: {a.get(differing[0])!r} vs {b.get(differing[0])!r}"
    return Row(check, describe.format(**a), describe.format(**b), equal)


def file_hashes(folder: Path) -> dict[str, str]:
    """sha256 of every stored image below ``folder`` (its label folders; not the manifest, reports, shards)."""
    found = {}
    for path in sorted(folder.rglob("*")):
        rel = path.relative_to(folder)
        if path.is_file() and len(rel.parts) > 1 and not any(p.startswith(".") for p in rel.parts):
            found[rel.as_posix()] = hashlib.sha256(path.read_bytes()).hexdigest()
    return found


def compare_files(check: str, a: dict[str, str], b: dict[str, str]) -> Row:
    """Same relative paths with the same sha256."""

    def describe(files: dict[str, str]) -> str:
        digest = hashlib.sha256("\n".join(f"{k} {v}" for k, v in sorted(files.items())).encode()).hexdigest()
        return f"{len(files)} files, sha256 of the list {digest[:12]}"

    only_a, only_b = sorted(set(a) - set(b)), sorted(set(b) - set(a))
    changed = sorted(k for k in set(a) & set(b) if a[k] != b[k])
    if only_a or only_b or changed:
        first = (
            f"only before: {only_a[0]}"
            if only_a
            else f"only after: {only_b[0]}"
            if only_b
            else f"content of {changed[0]}"
        )
        equal = f"no: {len(only_a)} only before, {len(only_b)} only after, {len(changed)} differ; first: {first}"
    else:
        equal = "yes"
    return Row(check, describe(a), describe(b), equal)


def compare_text(check: str, a: Path, b: Path, describe: Callable[[Path], str]) -> Row:
    """Byte-identical files (the first differing line when not)."""
    lines_a, lines_b = a.read_text(encoding="utf-8").splitlines(), b.read_text(encoding="utf-8").splitlines()
    if a.read_bytes() == b.read_bytes():
        return Row(check, describe(a), describe(b), "yes")
    for i, (la, lb) in enumerate(zip(lines_a, lines_b)):
        if la != lb:
            return Row(check, describe(a), describe(b), f"no: line {i + 1}: {la!r} vs {lb!r}")
    return Row(check, describe(a), describe(b), f"no: {len(lines_a)} vs {len(lines_b)} lines")


# ---------------------------------------------------------------------------------------------- stages
def stage_args(root: Path, raw: Path) -> list[str]:
    """The overrides every run gets: its own output root, the input folder, data version v1."""
    return ["--set", f"paths.root={root}", "--set", f"paths.raw={raw}", "--set", "paths.version=v1"]


def ran(step: str, results: dict[str, tuple[int, str]]) -> Row | None:
    """A failing row when a step did not exit 0 in a tree (its log named), else None."""
    if all(rc == 0 for rc, _ in results.values()):
        return None
    cells = {name: f"exit {rc}" + (f" ({log})" if rc else "") for name, (rc, log) in results.items()}
    return Row(f"{step} ran", cells["before"], cells["after"], "no: a run failed (see its log)")


def read_json(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text(encoding="utf-8"))


def check_extract(before: Tree, after: Tree, name: str, raw: Path) -> list[Row]:
    """Extract ``raw`` in both trees; compare catalogue, dropped rows and the report's counts."""
    results = {
        t.name: t.run(f"extract-{name}", "data.extract", *stage_args(t.out / name, raw)) for t in (before, after)
    }
    failed = ran(f"extract {name}", results)
    if failed:
        return [failed]
    a, b = (t.out / name / "processed" / "v1" for t in (before, after))
    return [
        compare_tables(
            f"extract {name}: catalogue.parquet (row order kept)",
            pq.read_table(a / "catalogue.parquet"),
            pq.read_table(b / "catalogue.parquet"),
            key="key",
        ),
        compare_tables(
            f"extract {name}: dropped.parquet (sorted by {', '.join(DROPPED_ORDER)})",
            pq.read_table(a / "dropped.parquet"),
            pq.read_table(b / "dropped.parquet"),
            DROPPED_ORDER,
            describe=lambda t: f"{t.num_rows:,} rows",
        ),
        compare_counts(
            f"extract {name}: extract_report.json counts",
            read_json(a / "extract_report.json"),
            read_json(b / "extract_report.json"),
            REPORT_COUNTS,
            "{rows_read:,} read = {rows_kept:,} kept + {rows_dropped:,} dropped",
        ),
        compare_counts(
            f"extract {name}: extract_report.json per-file counts",
            per_file(a),
            per_file(b),
            ("files",),
            "{count} files",
        ),
    ]


def per_file(processed: Path) -> dict[str, Any]:
    """Each file's name, rows read, rows kept and drops by reason, from an extract report."""
    files = [
        {k: f.get(k) for k in ("file", "rows_read", "rows_kept", "dropped")}
        for f in read_json(processed / "extract_report.json")["files"]
    ]
    return {"files": files, "count": len(files)}


# ------------------------------------------------------------------------------ the loopback image server
def fault_plan(urls: list[str]) -> list[str]:
    """The route each URL gets, fixed by its hash: ~1/16 missing (404), then one HTML page, one corrupt JPEG."""
    kinds = ["missing" if int(hashlib.sha1(u.encode()).hexdigest()[:8], 16) % 16 == 0 else "photo" for u in urls]
    served = [i for i, k in enumerate(kinds) if k == "photo"]
    for index, kind in zip(served, ("page", "corrupt")):
        kinds[index] = kind
    return kinds


def image_app(photos: list[bytes]) -> Any:
    """``/<kind>/<sha1 of the original URL>.jpg``: a photo fixed by the hash, a 404, an HTML page, a bad JPEG."""
    from aiohttp import web

    async def handle(request: web.Request) -> web.Response:
        kind, digest = request.match_info["kind"], request.match_info["digest"]
        photo = photos[int(digest[:12], 16) % len(photos)]
        if kind == "photo":
            return web.Response(body=photo, content_type="image/jpeg")
        if kind == "page":
            return web.Response(text="<html><body>not an image</body></html>", content_type="text/html")
        if kind == "corrupt":  # a JPEG signature, then nothing a decoder can use
            return web.Response(body=photo[:20] + bytes(2000), content_type="image/jpeg")
        return web.Response(status=404, text="not found")

    app = web.Application()
    app.router.add_get("/{kind}/{digest}.jpg", handle)
    return app


def rewritten_catalogue(source: Path, rows: int, base_url: str, target: Path) -> dict[str, int]:
    """The first ``rows`` rows of ``source`` with every URL pointing at the loopback server; the fault counts."""
    table = pq.read_table(source).slice(0, rows)
    urls = table["url"].to_pylist()
    kinds = fault_plan(urls)
    rewritten = [f"{base_url}/{k}/{hashlib.sha1(u.encode()).hexdigest()}.jpg" for u, k in zip(urls, kinds)]
    table = table.set_column(table.column_names.index("url"), "url", pa.array(rewritten, pa.string()))
    target.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(table, target)
    return {k: kinds.count(k) for k in ("photo", "missing", "page", "corrupt")}


# --------------------------------------------------------------------------------- download and train
def manifest_table(images: Path) -> pa.Table:
    table = pq.read_table(images / "manifest.parquet")
    return table.drop_columns([c for c in TIMING_COLUMNS if c in table.column_names])


def describe_manifest(table: pa.Table) -> str:
    ok = pc.sum(pc.equal(table["status"], "ok")).as_py() or 0
    return f"{table.num_rows} rows, {ok} ok"


def check_download(before: Tree, after: Tree, catalogue: Path, raw: Path) -> list[Row]:
    """Download the rewritten catalogue in both trees; compare manifests, reports and stored images."""
    results = {
        t.name: t.run(
            "download", "data.download", *stage_args(t.out / "sample", raw), "--input", str(catalogue), "--no-progress"
        )
        for t in (before, after)
    }
    failed = ran("download-images", results)
    if failed:
        return [failed]
    a, b = (t.out / "sample" / "processed" / "v1" / "images" for t in (before, after))
    return [
        compare_tables(
            f"download: manifest.parquet (sorted by key; without {', '.join(TIMING_COLUMNS)})",
            manifest_table(a),
            manifest_table(b),
            ("key",),
            key="key",
            describe=describe_manifest,
        ),
        compare_counts(
            "download: download_report.json counts",
            read_json(a / "download_report.json"),
            read_json(b / "download_report.json"),
            DOWNLOAD_COUNTS,
            "{urls} URLs, {ok} ok, {failed} failed",
        ),
        compare_files("download: stored images (path + sha256)", file_hashes(a), file_hashes(b)),
    ]


def describe_split(path: Path) -> str:
    import pyarrow.csv as pcsv

    table = pcsv.read_csv(path)
    counts = {s: pc.sum(pc.equal(table["split"], s)).as_py() or 0 for s in ("train", "validation", "test")}
    return f"{table.num_rows} rows: " + "/".join(str(n) for n in counts.values()) + " train/val/test"


def check_train(before: Tree, after: Tree, raw: Path) -> list[Row]:
    """A seeded tiny training run in both trees on their own download; their split.csv must be identical."""
    sets = [arg for item in TRAIN_SET for arg in ("--set", item)]
    results = {
        t.name: t.run("train", "train.train", *stage_args(t.out / "sample", raw), *sets, "--run-id", RUN_ID)
        for t in (before, after)
    }
    failed = ran("train", results)
    if failed:
        return [failed]
    a, b = (t.out / "sample" / "runs" / RUN_ID / "split.csv" for t in (before, after))
    return [compare_text("train: split.csv (tiny, weights none, 1 epoch, seed 42)", a, b, describe_split)]


# ------------------------------------------------------------------------------------------------ main
def print_table(rows: list[Row], before_name: str, after_name: str) -> None:
    print(f"\nbefore = {before_name}, after = {after_name}\n")
    print("| check | before | after | equal |\n|---|---|---|---|")
    for row in rows:
        print(f"| {row.check} | {row.before} | {row.after} | {row.equal} |")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.compare_commits", description=__doc__.split("\n\n")[0])
    parser.add_argument("--before", default="4b1e307", help="commit before the change (default: 4b1e307)")
    parser.add_argument("--after", default=WORKTREE, help="WORKTREE (default: the working tree) or a commit")
    parser.add_argument("--rows", type=int, default=600, help="catalogue rows downloaded and trained on")
    parser.add_argument("--work", type=Path, default=REPO / "bench" / "results" / "compare", help="work folder")
    args = parser.parse_args(argv)
    work = args.work.resolve()
    shutil.rmtree(work / "out", ignore_errors=True)  # every run starts fresh (download resumes otherwise)
    before, after, before_name, after_name = trees(args, work)
    print(f"comparing {before_name} (before) with {after_name} (after) in {work}", flush=True)
    rows: list[Row] = []
    for name, raw in INPUTS.items():
        rows += check_extract(before, after, name, raw)
    from data.core.server import BackgroundServer

    photos = [p.read_bytes() for p in sorted(PHOTOS.rglob("*")) if p.suffix.lower() in (".jpg", ".jpeg")]
    sources = [t.out / "sample" / "processed" / "v1" / "catalogue.parquet" for t in (before, after)]
    source = next((path for path in sources if path.is_file()), None)  # the before tree's when it has one
    if source is None:
        rows.append(Row("download-images ran", "no catalogue", "no catalogue", "no: extract wrote no catalogue"))
    else:
        with BackgroundServer(lambda: image_app(photos)) as server:
            catalogue = work / "input" / "catalogue.parquet"
            faults = rewritten_catalogue(source, args.rows, server.base_url, catalogue)
            print(f"  download input: first {args.rows} rows of {source}, served as {faults}", flush=True)
            rows += check_download(before, after, catalogue, INPUTS["sample"])
    if not rows[-1].check.startswith("download-images ran"):
        rows += check_train(before, after, INPUTS["sample"])
    print_table(rows, before_name, after_name)
    return 1 if any(row.failed for row in rows) else 0


if __name__ == "__main__":
    raise SystemExit(main())
