"""The credential check finds what the kaggle client would use, offline; API errors read as plain words."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import requests

from data.kaggle.api import KaggleApiError, explain, find_credentials, kaggle_config_dir, plain_errors


def _write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    path.chmod(0o600)
    return path


def test_no_credentials_anywhere(tmp_path: Path):
    assert find_credentials({"HOME": str(tmp_path)}) is None
    assert find_credentials({"HOME": str(tmp_path), "KAGGLE_USERNAME": "only-a-name"}) is None


def test_environment_key(tmp_path: Path):
    creds = find_credentials({"HOME": str(tmp_path), "KAGGLE_USERNAME": "ann", "KAGGLE_KEY": "k"})
    assert (creds.kind, creds.source, creds.username) == ("key", "KAGGLE_USERNAME/KAGGLE_KEY", "ann")


def test_kaggle_json_in_the_config_folder(tmp_path: Path):
    config = _write(tmp_path / "cfg" / "kaggle.json", json.dumps({"username": "bob", "key": "k"}))
    env = {"HOME": str(tmp_path), "KAGGLE_CONFIG_DIR": str(tmp_path / "cfg")}
    creds = find_credentials(env)
    assert (creds.kind, creds.source, creds.username) == ("key", str(config), "bob")
    # without KAGGLE_CONFIG_DIR the client looks in ~/.kaggle, else in $XDG_CONFIG_HOME/kaggle
    assert kaggle_config_dir({"HOME": str(tmp_path), "XDG_CONFIG_HOME": str(tmp_path / "x")}) == tmp_path / "x/kaggle"
    _write(tmp_path / ".kaggle" / "kaggle.json", json.dumps({"username": "cy", "key": "k"}))
    assert find_credentials({"HOME": str(tmp_path)}).username == "cy"


def test_a_broken_kaggle_json_is_no_credentials(tmp_path: Path):
    _write(tmp_path / ".kaggle" / "kaggle.json", "{not json")
    assert find_credentials({"HOME": str(tmp_path)}) is None


def test_access_tokens_come_first(tmp_path: Path):
    _write(tmp_path / ".kaggle" / "kaggle.json", json.dumps({"username": "bob", "key": "k"}))
    env = {"HOME": str(tmp_path), "KAGGLE_API_TOKEN": "KGAT_abc"}
    assert find_credentials(env).source == "KAGGLE_API_TOKEN"
    _write(tmp_path / ".kaggle" / "access_token", "KGAT_def\n")
    assert find_credentials({"HOME": str(tmp_path)}).source == "~/.kaggle/access_token"


def test_oauth_login(tmp_path: Path):
    _write(tmp_path / ".kaggle" / "credentials.json", json.dumps({"refresh_token": "r", "username": "dee"}))
    creds = find_credentials({"HOME": str(tmp_path)})
    assert (creds.kind, creds.username) == ("oauth", "dee")


def _http_error(status: int, body: dict) -> requests.exceptions.HTTPError:
    response = requests.models.Response()
    response.status_code = status
    response.headers["Content-Type"] = "application/json"
    response._content = json.dumps(body).encode()
    return requests.exceptions.HTTPError(body.get("message", ""), response=response)


@pytest.mark.parametrize(
    "status, words",
    [
        (400, ["HTTP 400", "Slug can only contain", "--dry-run"]),
        (401, ["HTTP 401", "expired or revoked"]),
        (403, ["HTTP 403", "accept its terms"]),
        (404, ["HTTP 404", "check the dataset id"]),
        (429, ["HTTP 429", "wait a few minutes"]),
        (503, ["HTTP 503", "server-side problem"]),
    ],
)
def test_http_errors_say_what_to_do(status, words):
    text = explain(
        _http_error(status, {"code": status, "message": 'Slug can only contain alphanumeric or "-"'}), "creating x/y"
    )
    assert text.startswith("creating x/y failed: Kaggle answered")
    for word in words:
        assert word in text


def test_plain_errors_wraps_network_and_client_failures():
    with pytest.raises(KaggleApiError, match="connection to Kaggle broke"):
        with plain_errors("downloading a/b"):
            raise requests.exceptions.ConnectionError("refused")
    with pytest.raises(KaggleApiError, match="Upload unsuccessful: images.zip"):
        with plain_errors("creating a/b"):
            raise ValueError("Upload unsuccessful: images.zip")
    with pytest.raises(KeyError):  # an unexpected failure is not hidden
        with plain_errors("creating a/b"):
            raise KeyError("bug")
