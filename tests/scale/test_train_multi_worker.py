"""``make train`` under ``MultiWorkerMirroredStrategy``: two worker processes on 127.0.0.1 configured by
``TF_CONFIG`` train a tiny model to the same weights; killed after a checkpointed epoch and started again with
``--resume``, both continue from the chief's checkpoint and run only the epochs that were left."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from data.core.config import REPO_ROOT
from tests.helpers.train_data import make_download_output

pytestmark = pytest.mark.slow
WORKER = Path(__file__).with_name("train_worker.py")


def _free_ports(count: int) -> list[int]:
    sockets = [socket.socket() for _ in range(count)]
    for sock in sockets:
        sock.bind(("127.0.0.1", 0))
    ports = [sock.getsockname()[1] for sock in sockets]
    for sock in sockets:
        sock.close()
    return ports


def _run_workers(manifest: Path, runs: Path, prefix: Path, *extra: str) -> list[subprocess.CompletedProcess]:
    """Both workers of a fresh two-worker cluster, to the end; their results in task order."""
    cluster = {"worker": [f"127.0.0.1:{port}" for port in _free_ports(2)]}
    procs = []
    for index in range(2):
        env = {
            **os.environ,
            "TF_CONFIG": json.dumps({"cluster": cluster, "task": {"type": "worker", "index": index}}),
            "TF_CPP_MIN_LOG_LEVEL": "2",
            "CUDA_VISIBLE_DEVICES": "",
        }
        cmd = [sys.executable, str(WORKER), str(manifest), str(runs), "mw", f"{prefix}{index}", *extra]
        procs.append(subprocess.Popen(cmd, cwd=REPO_ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE))
    results = []
    for proc in procs:
        out, err = proc.communicate(timeout=240)
        results.append(subprocess.CompletedProcess(proc.args, proc.returncode, out.decode(), err.decode()))
    return results


def _weights(prefix: Path) -> list[np.ndarray]:
    with np.load(f"{prefix}.weights.npz") as saved:
        return [saved[name] for name in saved.files]


def test_two_workers_train_to_the_same_weights_and_resume_from_the_checkpoint(tmp_path):
    manifest = make_download_output(tmp_path / "processed", per_class=8, size=32)
    runs = tmp_path / "runs"

    first = _run_workers(manifest, runs, tmp_path / "first", "--die-after", "2")
    assert [r.returncode for r in first] == [3, 3], [r.stderr[-3000:] for r in first]
    work = runs / ".incomplete" / "mw"
    assert (work / "checkpoints" / "scratch_backup").is_dir() and not (work / "model.keras").exists()
    assert [json.loads(Path(f"{tmp_path / 'first'}{i}.epochs.json").read_text()) for i in range(2)] == [[1, 2]] * 2

    second = _run_workers(manifest, runs, tmp_path / "second", "--resume")
    assert [r.returncode for r in second] == [0, 0], [r.stderr[-3000:] for r in second]
    assert [json.loads(r.stdout.strip().splitlines()[-1])["chief"] for r in second] == [True, False]
    for i in range(2):  # each restarted worker ran only the epoch that was left
        assert json.loads(Path(f"{tmp_path / 'second'}{i}.epochs.json").read_text()) == [3]
    chief, other = _weights(tmp_path / "second0"), _weights(tmp_path / "second1")
    assert len(chief) == len(other) > 0
    for a, b in zip(chief, other):
        np.testing.assert_allclose(a, b, rtol=0, atol=1e-6)  # one model, all-reduced: the same numbers

    run = runs / "mw"  # the chief's finished run; the other worker wrote nothing that lasts
    assert (run / "model.keras").is_file() and not work.exists()
    metrics = json.loads((run / "metrics.json").read_text())
    assert [r["epoch"] for r in metrics["history"]] == [1, 2, 3]
    assert (runs / "latest").read_text().strip() == "mw"
