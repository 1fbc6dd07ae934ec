"""``python -m deploy.serve`` as a user runs it: refused without an export, served until Ctrl-C."""

from __future__ import annotations

import os
import signal
import socket
import sys

import pytest

from data.core.config import REPO_ROOT
from deploy.serve import main
from tests.deploy.support import MODEL, call, photo, wait_served
from tests.helpers.signals import start_interruptible


def _config(tmp_path) -> str:
    path = tmp_path / "config.toml"
    path.write_text(f'[paths]\nroot = "{tmp_path}"\nexports = "{tmp_path}/exports"\n\n[serve]\npoll_interval = 0.2\n')
    return str(path)


def test_serve_refuses_without_an_export_or_with_a_bad_setting(tmp_path, capsys):
    config = _config(tmp_path)
    assert main(["--config", config]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: no exported version in ") and "make export" in err and str(tmp_path) in err
    assert main(["--config", config, "--set", "serve.max_batch_size=0"]) == 2
    assert "serve.max_batch_size must be at least 1" in capsys.readouterr().err
    assert main(["--config", config, "--set", "serve.batch_timeout='fast'"]) == 2
    assert "expected a number" in capsys.readouterr().err
    assert main(["--config", config, "--set", "serve.model_name='../up'"]) == 2
    assert "folder name" in capsys.readouterr().err


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.slow
def test_serve_runs_until_interrupted(exported, tmp_path):
    port = _free_port()
    command = [sys.executable, "-m", "deploy.serve", "--config", _config(tmp_path)]
    command += ["--model-dir", str(exported.version_dir.parent), "--port", str(port)]
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "PYTHONPATH": str(REPO_ROOT)}
    process = start_interruptible(command, env)
    try:
        url = f"http://127.0.0.1:{port}"
        wait_served(process, url, 120)
        status, _, body = call(url + "/predict", photo(), "image/jpeg")
        assert status == 200 and body["model"] == MODEL
        process.send_signal(signal.SIGINT)
        out, err = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == 0, err[-2000:]
    assert f"on http://127.0.0.1:{port}/" in out and "serve: stopped" in out
