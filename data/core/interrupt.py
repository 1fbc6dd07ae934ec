"""Ctrl-C, noted for the whole process: ``data.core.cli.run`` notes it, and a staged output is not committed after it.

TensorFlow's C++ code can swallow the KeyboardInterrupt a Ctrl-C raises (the work then runs on to its end); the
note outlives that, so the next commit point (:func:`data.core.io.staged_dir`, ``staged_files``) raises it again
instead of publishing an output the user asked to stop.
"""

from __future__ import annotations

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
