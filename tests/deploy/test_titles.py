"""make serve with titles: /predict (multipart and JSON) and :predict instances, and their bad inputs."""

from __future__ import annotations

import base64
import urllib.request
from contextlib import contextmanager

import pytest

from data.core.server import BackgroundServer
from deploy.app import build_app
from deploy.options import ServeOptions
from deploy.service import SERVICE
from deploy.title import TitleModel
from tests.deploy.support import MODEL, call, photo, wait_until
from tests.train.test_text import toy_titles, write_catalogue
from train.options import TrainOptions
from train.text import TextModel, TextOptions
from train.text_run import train_text

pytestmark = pytest.mark.slow
BOUNDARY = "titletestboundary9x"


@pytest.fixture(scope="module")
def titles(tmp_path_factory) -> TitleModel:
    work = tmp_path_factory.mktemp("serve-titles")
    catalogue = write_catalogue(work / "catalogue.parquet", *toy_titles())
    run = train_text(catalogue, work / "runs", TrainOptions(), TextOptions(hash_bits=14)).run_dir
    return TitleModel(TextModel.load(run), run.name)


@contextmanager
def _serve(exported, titles):
    apps = []

    def factory():
        options = ServeOptions(model_name=MODEL, poll_interval=0.1, max_body_bytes=3_000_000)
        apps.append(build_app(exported.version_dir.parent, options, titles))
        return apps[-1]

    with BackgroundServer(factory) as running:
        wait_until(lambda: apps[0][SERVICE].watcher.current is not None, what="a version to be served")
        yield running


@pytest.fixture(scope="module")
def titles_server(exported, titles):
    with _serve(exported, titles) as running:
        yield running


def form(title: bytes | None, files: list[bytes] = ()) -> tuple[bytes, str]:
    """A multipart body with a ``title`` field (raw bytes, as a browser sends them) and image files."""
    chunks = []
    if title is not None:
        head = f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="title"\r\n\r\n'.encode()
        chunks.append(head + title + b"\r\n")
    for i, data in enumerate(files):
        head = f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="files"; filename="{i}.jpg"\r\n'
        chunks.append(head.encode() + b"Content-Type: image/jpeg\r\n\r\n" + data + b"\r\n")
    return b"".join(chunks) + f"--{BOUNDARY}--\r\n".encode(), f"multipart/form-data; boundary={BOUNDARY}"


def _b64(data: bytes) -> dict[str, str]:
    return {"b64": base64.b64encode(data).decode("ascii")}


def test_a_title_a_photo_or_both_each_answered_by_its_model(titles_server):
    status, _, body = call(titles_server.url("/predict"), *form(b"premium cricket set for men"))
    assert status == 200, body
    row = body["predictions"][0]
    assert row["source"] == "text" and row["top"][0]["class"] == "sports_fitness" and row["text_run"]

    status, _, body = call(titles_server.url("/predict"), *form("yoga mat ☺".encode(), [photo(seed=3)]))
    assert status == 200 and body["predictions"][0]["source"] == "fusion"
    assert body["predictions"][0]["model_version"] == 1 and body["predictions"][0]["fusion_run"] == "equal-weights"

    status, _, body = call(titles_server.url("/predict"), photo(seed=1), "image/jpeg")
    assert status == 200 and body["predictions"][0]["source"] == "image"

    for doc, source in (
        ({"title": "slim fit jeans"}, "text"),
        ({"image": _b64(photo(seed=2))}, "image"),
        ({"title": "slim fit jeans", "image": _b64(photo(seed=2))}, "fusion"),
    ):
        status, _, body = call(titles_server.url("/predict?k=2"), doc)
        assert status == 200 and body["predictions"][0]["source"] == source, body
        assert len(body["predictions"][0]["top"]) == 2

    instances = [{"title": "laptop charger"}, {"title": "saree", "image_bytes": _b64(photo(seed=4))}]
    status, _, body = call(titles_server.url(f"/v1/models/{MODEL}:predict"), {"instances": instances})
    assert status == 200, body
    assert [p["source"] for p in body["predictions"]] == ["text", "fusion"]
    text = body["predictions"][0]
    assert text["classes"][max(range(len(text["classes"])), key=text["probabilities"].__getitem__)] == (
        "Electronics_and_Appliances"
    )
    # /metrics counts the answers with a title by source: 3 title-only, 3 fused (photo-only ones are not titles)
    metrics = urllib.request.urlopen(titles_server.url("/metrics"), timeout=30).read().decode()
    assert 'title_predictions_total{source="text"} 3.0' in metrics
    assert 'title_predictions_total{source="fusion"} 3.0' in metrics


@pytest.mark.parametrize(
    "body, kind, status, code",
    [
        (form(b"   "), None, 400, "empty_title"),
        (form(b"x" * 1_000_000), None, 413, "title_too_long"),
        (form(b"caf\xe9 \xff\xfe shoes"), None, 400, "invalid_title_encoding"),
        (form(b"a", [b"not an image"]), None, 415, None),
        ({"title": ""}, None, 400, "empty_title"),
        ({"title": "x" * 1_000_000}, None, 413, "title_too_long"),
        ({"title": 42}, None, 400, "invalid_title"),
        ({"name": "shoes"}, None, 400, "invalid_request"),
        (b'{"title": "caf\xe9"}', "application/json", 400, "invalid_json"),
    ],
)
def test_bad_titles_get_a_typed_4xx(titles_server, body, kind, status, code):
    if isinstance(body, tuple):
        body, kind = body
    got, _, answer = call(titles_server.url("/predict"), body, kind)
    assert got == status if code else 400 <= got < 500, answer
    if code:
        assert answer["code"] == code and answer["error"]


def test_bad_title_instances_and_a_server_without_a_title_model(titles_server, exported):
    url = titles_server.url(f"/v1/models/{MODEL}:predict")
    assert call(url, {"instances": [{"title": " "}]})[2]["code"] == "empty_title"
    assert call(url, {"instances": [{"title": "a", "colour": "red"}]})[2]["code"] == "invalid_request"
    with _serve(exported, None) as bare:
        status, _, answer = call(bare.url("/predict"), {"title": "shoes"})
        assert status == 404 and answer["code"] == "no_text_model"
        assert call(bare.url("/predict"), photo(seed=1), "image/jpeg")[0] == 200
