"""``data.core.cli.run``: how a stage's command line ends for Ctrl-C, including Ctrl-C inside TensorFlow."""

from __future__ import annotations

import asyncio
import gc
import logging
import os
import signal
import time

import pytest

from data.core.cli import run
from data.core.interrupt import run_event_loop
from data.core.io import staged_dir


def _ctrl_c_inside_a_c_extension() -> int:
    """What CPython raises when a C function returns while a KeyboardInterrupt is pending."""
    try:
        raise KeyboardInterrupt
    except KeyboardInterrupt as exc:
        raise SystemError("<built-in function __import__> returned a result with an exception set") from exc


def test_ctrl_c_is_130_with_one_line(capsys):
    def body() -> int:
        raise KeyboardInterrupt

    assert run(body) == 130
    assert capsys.readouterr().err.startswith("interrupted:")


def test_ctrl_c_that_surfaces_as_a_system_error_is_130_too(capsys):
    assert run(_ctrl_c_inside_a_c_extension) == 130
    err = capsys.readouterr().err
    assert err.startswith("interrupted:") and "Traceback" not in err


def test_any_other_system_error_keeps_its_traceback():
    def body() -> int:
        raise SystemError("a real bug")

    with pytest.raises(SystemError, match="a real bug"):
        run(body)


def test_a_real_sigint_that_tensorflow_turns_into_another_error_is_130(capsys):
    # pybind11 code (TensorFlow's nest.flatten, seen in an export's map_fn) can swallow the KeyboardInterrupt and
    # raise a bare TypeError with no cause: only the signal itself says the user pressed Ctrl-C
    def body() -> int:
        try:
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(5)  # the handler runs here
        except KeyboardInterrupt:
            pass
        raise TypeError

    assert run(body) == 130
    err = capsys.readouterr().err
    assert err.startswith("interrupted:") and "Traceback" not in err
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # put back

    def bug() -> int:
        raise TypeError("a real bug")

    with pytest.raises(TypeError, match="a real bug"):  # without Ctrl-C the same error is a bug, traceback kept
        run(bug)


def test_a_ctrl_c_swallowed_inside_the_work_still_stops_the_commit(tmp_path, capsys):
    # TensorFlow can swallow the KeyboardInterrupt outright and run on; the staged output must not be published
    target = tmp_path / "out"

    def body() -> int:
        with staged_dir(target) as tmp:
            (tmp / "model.bin").write_bytes(b"half")
            try:
                os.kill(os.getpid(), signal.SIGINT)
                time.sleep(5)
            except KeyboardInterrupt:
                pass  # swallowed
        return 0

    assert run(body) == 130
    assert list(tmp_path.iterdir()) == [] and "interrupted:" in capsys.readouterr().err
    assert run(lambda: 0) == 0  # the note does not outlive its command


def test_ctrl_c_inside_an_event_loop_cancels_it_and_ends_in_one_line(capsys, caplog):
    # the downloader's loop: Ctrl-C landing in one worker task must cancel the loop's main task as asyncio does
    # under Python's own handler, not raise inside that worker (the loop's shutdown then logged a traceback)
    ended: list[str] = []

    async def interrupted() -> None:
        os.kill(os.getpid(), signal.SIGINT)
        sum(range(10_000))  # the handler runs during this Python code, inside this task
        await asyncio.sleep(30)

    async def waiting() -> None:
        try:
            await asyncio.sleep(30)
        finally:
            ended.append("cleaned up")

    async def main() -> None:
        async with asyncio.TaskGroup() as group:
            group.create_task(waiting())
            group.create_task(interrupted())

    gc.collect()  # earlier tests' leftovers are logged now, not below
    started = time.monotonic()
    with caplog.at_level(logging.ERROR, logger="asyncio"):
        assert run(lambda: run_event_loop(main())) == 130
        gc.collect()  # a task that ended in an exception nobody retrieved is logged when it is collected
    assert time.monotonic() - started < 20 and ended == ["cleaned up"]
    assert capsys.readouterr().err.splitlines()[-1].startswith("interrupted:")
    ours = [r.getMessage() for r in caplog.records if "test_cli_run" in r.getMessage() or r.exc_info]
    assert not ours, ours
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
