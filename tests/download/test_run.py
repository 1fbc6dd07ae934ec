"""The downloader against a real aiohttp server on 127.0.0.1: every failure, resumption, validation."""

from __future__ import annotations

import hashlib
import json
import uuid

import cv2
import pandas as pd
import pytest

from data.download.stage import download_images, validate_urls
from tests.helpers.image_server import FaultyImageServer, closed_port, decodes, fast_options, write_input


# key -> (route, label, expected status, expected attempts); attempts None = not checked
CASES = {
    "landscape": ("/img/landscape.jpg", "Fashion", "ok", 1),
    "portrait": ("/img/portrait.jpg", "Fashion", "ok", 1),
    "alpha": ("/img/alpha.png", "other", "ok", 1),
    "grey": ("/img/grey.png", "other", "ok", 1),
    "e404": ("/status/404", "other", "not_found", 1),
    "e403": ("/status/403", "other", "forbidden", 1),
    "e500then200": ("/flaky/500/1/{t}/landscape.jpg", "other", "ok", 2),
    "e429then200": ("/flaky/429/1/{t}/landscape.jpg", "other", "ok", 2),
    "retry_after_too_long": ("/retry-after/3600", "other", "rate_limited", 1),
    "redirect": ("/redirect/2/portrait.jpg", "stores", "ok", 1),
    "redirect_loop": ("/loop", "stores", "too_many_redirects", 1),
    "truncated_once": ("/truncate/1/{t}/landscape.jpg", "stores", "ok", 2),
    "truncated": ("/truncate/99/{t}/landscape.jpg", "stores", "truncated", 3),
    "html": ("/html", "stores", "not_image", 1),
    "html_as_octet": ("/img/html-as-octet", "stores", "not_image", 1),
    "corrupt": ("/img/corrupt.jpg", "stores", "decode_error", 1),
    "halfcut": ("/img/halfcut.jpg", "stores", "decode_error", 1),
    "hang": ("/hang", "stores", "timeout", 2),  # a timeout is retried once only
    "stall": ("/stall/landscape.jpg", "stores", "timeout", 2),
    "refused": ("REFUSED", "stores", "connection_error", 3),
    "big": ("/img/big.jpg", "stores", "too_many_pixels", 1),
    "too_large": ("/chunked-big", "stores", "too_large", 1),
    "ftp": ("ftp://127.0.0.1/x.jpg", "stores", "invalid_url", 0),
    "file": ("file:///etc/passwd", "stores", "invalid_url", 0),
}


def _url(image_server, route, token):
    if route == "REFUSED":
        return f"http://127.0.0.1:{closed_port()}/x.jpg"
    return route if "://" in route else image_server.url(route.format(t=token))


@pytest.fixture(scope="module")
def scenario(image_server, tmp_path_factory):
    """One run over every case (plus an unsafe key and a duplicate), shared by the tests below."""
    tmp = tmp_path_factory.mktemp("scenario")
    token = uuid.uuid4().hex
    rows = [(key, _url(image_server, route, token), label) for key, (route, label, _, _) in CASES.items()]
    rows += [("../escape", image_server.url("/img/landscape.jpg"), "other"), rows[0]]
    out = tmp / "images"
    summary = download_images(write_input(tmp / "catalogue.parquet", rows), out, fast_options(), progress=False)
    manifest = pd.read_parquet(out / "manifest.parquet").set_index("key")
    return out, manifest, summary, token


@pytest.mark.parametrize("key", list(CASES))
def test_each_case_ends_with_its_status(scenario, key):
    out, manifest, _, _ = scenario
    route, label, status, attempts = CASES[key]
    row = manifest.loc[key]
    assert row["status"] == status, row["reason"]
    assert row["attempts"] == attempts
    assert row["reason"] != "" or status == "ok"
    stored = out / label / f"{key}.jpg"
    assert stored.exists() is (status == "ok")
    if status == "ok":
        assert row["path"] == f"{label}/{key}.jpg" and decodes(stored)
        assert hashlib.sha256(stored.read_bytes()).hexdigest() == row["sha256"]
        assert min(row["width"], row["height"]) == 64 and row["bytes"] > 0


def test_manifest_has_one_row_per_unique_input_key_and_report_counts(scenario):
    out, manifest, summary, _ = scenario
    assert manifest.index.is_unique and len(manifest) == len(CASES) + 1
    assert manifest.loc["../escape", "status"] == "invalid_input"
    report = json.loads((out / "download_report.json").read_text())
    assert report == summary.report
    assert report["input_rows"] == len(CASES) + 2 and report["duplicate_keys"] == 1
    assert report["by_status"] == manifest["status"].value_counts().to_dict()
    assert report["ok"] + report["failed"] == report["urls"] == len(manifest)
    assert report["by_reason"]["not_found"] == {"HTTP 404": 1}


def test_nothing_but_complete_images_on_disk(scenario):
    out, manifest, _, _ = scenario
    stored = {p.relative_to(out).as_posix() for p in out.rglob("*.jpg")}
    assert stored == set(manifest.loc[manifest["status"] == "ok", "path"])
    assert not list(out.rglob("*.tmp")) and not (out.parent / "escape.jpg").exists()


def test_resized_images_keep_aspect_ratio_and_alpha_becomes_white(scenario):
    out, manifest, _, _ = scenario
    assert manifest.loc["landscape", ["orig_width", "orig_height", "width", "height"]].tolist() == [300, 200, 96, 64]
    assert manifest.loc["portrait", ["width", "height"]].tolist() == [64, 128]
    alpha = cv2.imread(str(out / "other" / "alpha.jpg"))
    assert alpha[5, 32].min() > 240  # the transparent top half
    assert cv2.imread(str(out / "other" / "grey.jpg")).shape == (64, 64, 3)


def test_retries_are_bounded_and_honour_retry_after(image_server, scenario):
    token = scenario[3]
    assert image_server.hits["/status/404"] == 1 and image_server.hits["/html"] == 1  # permanent: no retry
    assert image_server.hits[f"/truncate/99/{token}/landscape.jpg"] == 3  # 1 + retries
    first, second = image_server.times[f"/flaky/429/1/{token}/landscape.jpg"]
    assert second - first >= 0.95  # Retry-After: 1


def test_concurrency_bounds_requests_and_a_backoff_holds_no_request_slot(tmp_path):
    own = FaultyImageServer().start()  # its own server: the in-flight gauge must see this test's requests only
    try:
        token = uuid.uuid4().hex
        waiting = [f"/flaky/429/1/{token}{i}/portrait.jpg" for i in range(2)]  # 429 + Retry-After: 1, then ok
        slow = [f"/slow/100/landscape.jpg?{token}-{i}" for i in range(12)]
        rows = [(f"w{i}", own.url(p), "a") for i, p in enumerate(waiting)]
        rows += [(f"s{i}", own.url(p), "a") for i, p in enumerate(slow)]
        summary = download_images(
            write_input(tmp_path / "in.parquet", rows),
            tmp_path / "out",
            fast_options(concurrency=2, per_host=8),
            progress=False,
        )
        assert summary.report["by_status"] == {"ok": 14}
        assert own.max_active == 2  # never more than download.concurrency requests at once, and all used
        # the rate-limited URLs wait a second for their retry; the slow ones are fetched meanwhile
        last_slow = max(own.times["/slow/100/landscape.jpg"])
        assert all(last_slow < own.times[p][1] for p in waiting)
    finally:
        own.stop()


def test_rerun_skips_done_and_retries_only_transient_failures(image_server, tmp_path):
    token = uuid.uuid4().hex
    flaky = f"/flaky/503/4/{token}/landscape.jpg"  # fails 3 attempts of run 1, then 1 more, then serves
    rows = [
        ("good", image_server.url(f"/img/portrait.jpg?{token}"), "a"),
        ("gone", image_server.url(f"/status/410?{token}"), "a"),
        ("flaky", image_server.url(flaky), "a"),
    ]
    source = write_input(tmp_path / "in.parquet", rows)
    out = tmp_path / "out"
    first = download_images(source, out, fast_options(), progress=False)
    assert first.report["by_status"] == {"ok": 1, "not_found": 1, "server_error": 1}
    good_hits = image_server.hits["/img/portrait.jpg"]
    second = download_images(source, out, fast_options(shard_size=2), progress=False)  # another shard layout too
    assert second.report["this_run"]["processed"] == 1 and second.report["by_status"] == {"ok": 2, "not_found": 1}
    assert image_server.hits["/img/portrait.jpg"] == good_hits and image_server.hits["/status/410"] == 1
    assert image_server.hits[flaky] == 5
    (out / "a" / "good.jpg").unlink()  # a missing file is downloaded again
    stale = out / "a" / ".gone.jpg.4242.tmp"  # a temporary file left by a killed run is removed
    stale.write_bytes(b"partial")
    third = download_images(source, out, fast_options(), retry_failed=True, progress=False)
    assert third.report["this_run"]["processed"] == 2 and image_server.hits["/status/410"] == 2
    assert (out / "a" / "good.jpg").exists() and third.report["by_status"] == {"ok": 2, "not_found": 1}
    assert not stale.exists()


def test_a_new_label_moves_the_stored_image_without_fetching_it_again(image_server, tmp_path):
    token = uuid.uuid4().hex
    rows = [(f"k{i}", image_server.url(f"/img/landscape.jpg?{token}-{i}"), "Old") for i in range(4)]
    rows.append(("gone", image_server.url(f"/status/404?{token}"), "Old"))
    source, out = tmp_path / "in.parquet", tmp_path / "out"
    download_images(write_input(source, rows), out, fast_options(), progress=False)
    before = pd.read_parquet(out / "manifest.parquet").set_index("key")
    hits = image_server.hits["/img/landscape.jpg"], image_server.hits["/status/404"]
    (out / "New_label").mkdir()
    (out / "Old" / "k1.jpg").rename(out / "New_label" / "k1.jpg")  # as a run killed after its move leaves it
    for i in (0, 1, 4):
        rows[i] = (rows[i][0], rows[i][1], "New label")
    second = download_images(write_input(source, rows), out, fast_options(), progress=False)
    assert (image_server.hits["/img/landscape.jpg"], image_server.hits["/status/404"]) == hits  # nothing fetched again
    assert second.report["this_run"]["relabelled"] == 3 and second.report["this_run"]["processed"] == 0
    after = pd.read_parquet(out / "manifest.parquet").set_index("key")
    for key in ("k0", "k1"):
        assert after.loc[key, ["label", "path"]].tolist() == ["New label", f"New_label/{key}.jpg"]
        stored = hashlib.sha256((out / "New_label" / f"{key}.jpg").read_bytes()).hexdigest()
        assert stored == after.loc[key, "sha256"] == before.loc[key, "sha256"]
    assert after.loc["gone", ["label", "status"]].tolist() == ["New label", "not_found"]
    assert sorted(p.name for p in (out / "Old").iterdir()) == ["k2.jpg", "k3.jpg"]
    assert after.loc["k2", "path"] == "Old/k2.jpg"
    (out / "New_label" / "k0.jpg").unlink()  # a file that is gone is fetched again under its label
    rows[0] = ("k0", rows[0][1], "Old")
    third = download_images(write_input(source, rows), out, fast_options(), progress=False)
    assert third.report["this_run"]["processed"] == 1 and (out / "Old" / "k0.jpg").is_file()
    assert third.report["by_status"] == {"ok": 4, "not_found": 1}


def test_limit_takes_the_first_rows(image_server, tmp_path):
    rows = [(f"k{i}", image_server.url(f"/img/grey.png?{i}"), "a") for i in range(5)]
    summary = download_images(
        write_input(tmp_path / "in.csv", rows), tmp_path / "out", fast_options(), limit=2, progress=False
    )
    assert summary.report["urls"] == 2 and sorted(p.name for p in (tmp_path / "out" / "a").iterdir()) == [
        "k0.jpg",
        "k1.jpg",
    ]


def test_validate_only_checks_urls_without_storing(image_server, tmp_path):
    rows = [
        ("ok", image_server.url("/img/landscape.jpg"), "a"),
        ("head405", image_server.url("/head405/portrait.jpg"), "a"),
        ("gone", image_server.url("/status/404"), "a"),
        ("html", image_server.url("/html"), "a"),
        ("octet", image_server.url("/img/html-as-octet"), "a"),
        ("ftp", "ftp://x/y.jpg", "a"),
    ]
    result = tmp_path / "url_validation.parquet"
    summary = validate_urls(write_input(tmp_path / "in.parquet", rows), result, fast_options(), progress=False)
    got = pd.read_parquet(result).set_index("key")["status"].to_dict()
    assert got == {
        "ok": "ok",
        "head405": "ok",
        "gone": "not_found",
        "html": "not_image",
        "octet": "not_image",
        "ftp": "invalid_url",
    }
    assert summary.report_path == tmp_path / "url_validation.json" and summary.ok == 2
    assert not list(tmp_path.rglob("*.jpg"))
