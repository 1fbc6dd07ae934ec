"""``data.core.cli.run``: how a stage's command line ends for Ctrl-C, including Ctrl-C inside TensorFlow."""

from __future__ import annotations

import pytest

from data.core.cli import run


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
