"""Ctrl-C, noted for the whole process: ``data.core.cli.run`` notes it, and a staged output is not committed after it.

TensorFlow's C++ code can swallow the KeyboardInterrupt a Ctrl-C raises (the work then runs on to its end); the
note outlives that, so the next commit point (:func:`data.core.io.staged_dir`, ``staged_files``) raises it again
instead of publishing an output the user asked to stop.
"""

from __future__ import annotations

import asyncio
import signal
import threading
from typing import Any, Coroutine, TypeVar

T = TypeVar("T")

_pressed: list[bool] = []


def note_ctrl_c() -> None:
    """Record that the user pressed Ctrl-C."""
    _pressed.append(True)


def ctrl_c_pressed() -> bool:
    """Whether Ctrl-C was pressed since :func:`forget_ctrl_c`."""
    return bool(_pressed)


def forget_ctrl_c() -> None:
    """Start afresh (a command that returns, e.g. one of several called in one process)."""
    _pressed.clear()


def stop_if_ctrl_c() -> None:
    """Raise KeyboardInterrupt where Ctrl-C was pressed and swallowed: call it just before committing an output."""
    if _pressed:
        raise KeyboardInterrupt


def on_ctrl_c(signum: int, frame: object) -> None:
    """SIGINT handler: note Ctrl-C, then raise KeyboardInterrupt as Python's own handler does."""
    note_ctrl_c()
    raise KeyboardInterrupt


def run_event_loop(main: Coroutine[Any, Any, T]) -> T:
    """``asyncio.run(main)``, with Ctrl-C handled the way asyncio handles it under Python's own SIGINT handler.

    asyncio cancels its main task on the first Ctrl-C (and raises KeyboardInterrupt once the loop is shut down)
    only where SIGINT has Python's own handler; under :func:`on_ctrl_c` the KeyboardInterrupt would be raised in
    whichever task was running, and the loop's shutdown would log it with a traceback. So Python's handler is put
    back for the loop's lifetime and the Ctrl-C noted when it comes out.
    """
    ours = threading.current_thread() is threading.main_thread() and signal.getsignal(signal.SIGINT) is on_ctrl_c
    if not ours:
        return asyncio.run(main)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        return asyncio.run(main)
    except KeyboardInterrupt:
        note_ctrl_c()
        raise
    finally:
        signal.signal(signal.SIGINT, on_ctrl_c)
