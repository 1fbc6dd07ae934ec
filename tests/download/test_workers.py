"""The image worker processes: how they start, and what happens when one of them dies."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import threading

import pytest

from data.core.config import REPO_ROOT
from data.download.image import ImageParams
from data.download.records import DECODE_ERROR, OK
from data.download.workers import ImageWorkers, WorkerCrashError, WorkerPool, worker_pool
from develop.synthetic import draw_product_image, encode_jpeg
from tests.helpers.image_server import crash_on_marker, decodes


def test_workers_are_forked_without_threads_and_come_from_a_forkserver_with_them(tmp_path):
    script = (
        "from data.download.workers import worker_pool\n"
        "with worker_pool(2, 10**8) as pool:\n"
        "    print(pool.executor._mp_context.get_start_method(), pool.executor.submit(sum, [1, 2]).result())\n"
    )
    alone = subprocess.run([sys.executable, "-c", script], cwd=REPO_ROOT, capture_output=True, text=True, timeout=60)
    assert alone.stdout.split() == ["fork", "3"], alone.stderr
    stop = threading.Event()
    other = threading.Thread(target=stop.wait, daemon=True)
    other.start()
    try:
        with worker_pool(1, 10**8) as pool:
            assert pool.executor._mp_context.get_start_method() == "forkserver"
            assert pool.executor.submit(sum, [1, 2]).result() == 3
    finally:
        stop.set()


def _bodies(count: int) -> list[bytes]:
    return [encode_jpeg(draw_product_image(i % 7, seed=i, size=48)) for i in range(count)]


async def _process_all(pool: WorkerPool, items: list[tuple[bytes, str]]) -> list:
    workers = ImageWorkers(pool, ImageParams(size=32), job=crash_on_marker)
    return await asyncio.gather(*(workers.process(data, target) for data, target in items))


def test_a_body_that_kills_its_worker_fails_alone_and_the_others_are_stored(tmp_path):
    items = [(body, str(tmp_path / "ok" / f"{i}.jpg")) for i, body in enumerate(_bodies(24))]
    items.insert(10, (b"CRASH", str(tmp_path / "bad" / "crash.jpg")))
    with worker_pool(2, 10**8) as pool:
        results = asyncio.run(_process_all(pool, items))
        assert pool.restarts == 1
    crashed = results.pop(10)
    assert crashed.status == DECODE_ERROR and "died" in crashed.reason
    assert [r.status for r in results] == [OK] * 24
    assert all(decodes(tmp_path / "ok" / f"{i}.jpg") for i in range(24))
    assert not (tmp_path / "bad").exists()


def test_workers_that_keep_dying_end_the_run_with_a_clear_error(tmp_path):
    async def one_by_one(pool: WorkerPool) -> None:
        workers = ImageWorkers(pool, ImageParams(size=32), job=crash_on_marker)
        for i in range(5):
            result = await workers.process(b"CRASH", str(tmp_path / f"{i}.jpg"))
            assert result.status == DECODE_ERROR

    pool = WorkerPool(1, 10**8, max_restarts=2)
    try:
        with pytest.raises(WorkerCrashError, match="died 3 times.*download.workers"):
            asyncio.run(one_by_one(pool))
    finally:
        pool.shutdown()
