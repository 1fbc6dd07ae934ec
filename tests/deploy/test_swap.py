"""Versions picked up while serving: readiness before the first, a swap under a client loop that sees no
error, a broken version skipped, a rollback when the newest version is removed."""

from __future__ import annotations

import json
import shutil
import threading

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.deploy.support import MODEL, call, copy_version, photo, serving, wait_until

pytestmark = pytest.mark.slow
BASE = f"/v1/models/{MODEL}"


def test_not_ready_until_a_version_is_loaded_and_warm(exported, tmp_path):
    model_dir = tmp_path / MODEL
    model_dir.mkdir()
    with serving(model_dir, wait=False) as server:
        status, headers, body = call(server.url("/readyz"))
        assert (status, body["code"], headers["Retry-After"]) == (503, "not_ready", "1")
        assert "no exported version" in body["error"]
        assert call(server.url("/predict"), photo(), "image/jpeg")[0] == 503
        assert call(server.url(BASE))[0] == 404
        assert call(server.url("/healthz"))[0] == 200  # alive all along

        copy_version(exported.version_dir, model_dir, 1)
        wait_until(lambda: call(server.url("/readyz"))[0] == 200, what="readiness")
        assert call(server.url("/predict"), photo(), "image/jpeg")[0] == 200


class ClientLoop(threading.Thread):
    """Sends /predict requests one after another until stopped; records (status, version) of each."""

    def __init__(self, url: str) -> None:
        super().__init__(daemon=True)
        self.url, self.seen, self.stop = url, [], threading.Event()

    def run(self) -> None:
        image = photo(40, 40, seed=11)
        while not self.stop.is_set():
            status, _, body = call(self.url, image, "image/jpeg")
            version = body["predictions"][0]["model_version"] if status == 200 else body
            self.seen.append((status, version))

    def versions(self) -> list[object]:
        return [version for _, version in self.seen]


def _failed_loads(server) -> float:
    families = text_string_to_metric_families(call(server.url("/metrics"))[2])
    samples = [s for f in families if f.name == "model_loads" for s in f.samples if s.name == "model_loads_total"]
    return sum(s.value for s in samples if s.labels["result"] == "failed")


def test_new_versions_swap_in_under_load_without_a_failed_request(exported, tmp_path):
    model_dir = tmp_path / MODEL
    model_dir.mkdir()
    copy_version(exported.version_dir, model_dir, 1)
    with serving(model_dir) as server:
        client = ClientLoop(server.url("/predict"))
        client.start()
        wait_until(lambda: len(client.seen) >= 5, what="requests on version 1")
        copy_version(exported.version_dir, model_dir, 2)
        wait_until(lambda: 2 in client.versions()[-3:], what="requests on version 2")

        broken = model_dir / ".incoming-3"  # a version that cannot load: garbage graph, valid card
        broken.mkdir()
        (broken / "saved_model.pb").write_bytes(b"not a protocol buffer")
        shutil.copy(exported.version_dir / "model_card.json", broken / "model_card.json")
        broken.rename(model_dir / "3")
        wait_until(lambda: _failed_loads(server) >= 1, what="the failed load of version 3")
        status = call(server.url(BASE))[2]["model_version_status"]
        assert [(s["version"], s["state"]) for s in status] == [("3", "END"), ("2", "AVAILABLE")]
        assert status[0]["status"]["error_message"]
        count = len(client.seen)
        wait_until(lambda: len(client.seen) >= count + 5, what="requests after the failed load")

        shutil.rmtree(model_dir / "3")
        shutil.rmtree(model_dir / "2")  # a rollback: the newest version removed
        wait_until(lambda: client.versions()[-3:] == [1, 1, 1], what="requests on version 1 again")
        client.stop.set()
        client.join(30)

    assert {status for status, _ in client.seen} == {200}, [s for s in client.seen if s[0] != 200][:3]
    versions = client.versions()
    first_two, last_two = versions.index(2), len(versions) - 1 - versions[::-1].index(2)
    assert set(versions[:first_two]) == {1} and set(versions[first_two : last_two + 1]) == {2}
    assert set(versions[last_two + 1 :]) == {1}  # each swap happens once: never back and forth


def test_the_card_names_the_classes_the_server_answers_with(exported, tmp_path):
    model_dir = tmp_path / MODEL
    model_dir.mkdir()
    folder = copy_version(exported.version_dir, model_dir, 5)
    card = json.loads((folder / "model_card.json").read_text())
    with serving(model_dir) as server:
        top = call(server.url(f"/predict?k={len(card['classes'])}"), photo(), "image/jpeg")[2]["predictions"][0]["top"]
        assert sorted(t["class"] for t in top) == sorted(card["classes"])
        assert call(server.url("/readyz"))[2]["version"] == 5
