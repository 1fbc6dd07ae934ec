"""The one way a stage's ``main`` runs: logging beside progress bars, ``error: ...`` and exit 2 on a
:class:`~data.core.errors.StageError`, exit 130 on Ctrl-C, never a traceback for an input the user can fix.
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import logging
import signal
import sys
import threading
from typing import Callable, Iterator, NoReturn

from tqdm import tqdm

from data.core.config import add_config_args
from data.core.errors import StageError
from data.core.interrupt import ctrl_c_pressed, forget_ctrl_c, on_ctrl_c

# OS errors that mean "this path cannot be used", not a bug: shown as one line, like a StageError.
_USER_OS_ERRORS = {
    errno.ENOSPC: "the disk is full",
    errno.EACCES: "permission denied",
    errno.EROFS: "the file system is read-only",
    errno.ENOTDIR: "a path component is a file",
    errno.EISDIR: "a folder is in the way",
    errno.EDQUOT: "the disk quota is exceeded",
    errno.EEXIST: "a file is in the way",
    errno.EPERM: "operation not permitted",
}


MAX_ERROR_CHARS = 1000  # an error line longer than this has its middle cut


class TqdmHandler(logging.Handler):
    """A logging handler that writes through ``tqdm.write`` so log lines do not break progress bars."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            tqdm.write(self.format(record), file=sys.stderr)
        except Exception:  # logging must never raise into the caller
            self.handleError(record)


def setup_logging(level: int = logging.INFO) -> None:
    """Configure the root logger once, for command-line entry points (never at import time)."""
    root = logging.getLogger()
    if any(isinstance(h, TqdmHandler) for h in root.handlers):
        return
    handler = TqdmHandler()
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)-7s %(name)s: %(message)s", "%H:%M:%S"))
    root.addHandler(handler)
    root.setLevel(level)


class StageArgumentParser(argparse.ArgumentParser):
    """An argument parser whose usage errors read like every other refusal: one ``error:`` line, exit 2."""

    def error(self, message: str) -> NoReturn:
        fail(f"{message} (see `{self.prog} --help`)")


def stage_parser(prog: str, doc: str | None) -> argparse.ArgumentParser:
    """An argument parser for ``python -m prog`` with ``--config`` and ``--set``; its description is the
    first line of the module docstring."""
    parser = StageArgumentParser(prog=f"python -m {prog}", description=(doc or "").strip().split("\n")[0])
    return add_config_args(parser)


def one_line(message: str, limit: int = MAX_ERROR_CHARS) -> str:
    """``message`` on one line, its middle cut when it is longer than ``limit`` (a 20,000-character value
    echoed whole would hide the advice at the end): the start names the input, the end says what to do."""
    message = " ".join(message.splitlines())
    if len(message) <= limit:
        return message
    cut = f" [... {len(message) - limit + 200:,} of {len(message):,} characters left out ...] "
    return message[: limit - 400] + cut + message[-200:]


def fail(message: str, code: int = 2) -> NoReturn:
    """Print a one-paragraph error for the user and exit without a stack trace."""
    print(f"error: {one_line(message)}", file=sys.stderr)
    raise SystemExit(code)


def run(body: Callable[[], int | None]) -> int:
    """Run a stage's command-line body; the exit code for ``raise SystemExit(run(...))``.

    Returns the body's code (0 for None). A :class:`StageError`, or an OS error that names an unusable
    path (full disk, read-only, a file where a folder should be), ends as one ``error:`` line and 2.
    Ctrl-C ends as 130 with one line, also where it lands inside TensorFlow's C++ code and surfaces as another
    exception (a ``SystemError`` or ``TypeError`` raised while the interrupt was pending). Anything else is a
    bug and keeps its traceback.
    """
    setup_logging()
    with _noting_ctrl_c() as pressed:
        try:
            code = body()
        except StageError as exc:
            print(f"error: {one_line(str(exc))}", file=sys.stderr)
            return exc.exit_code
        except OSError as exc:
            if pressed() or _caused_by_ctrl_c(exc):
                return _interrupted()
            if exc.errno not in _USER_OS_ERRORS:
                raise
            where = f": {exc.filename}" if exc.filename else ""
            print(
                f"error: {_USER_OS_ERRORS[exc.errno]}{where} ({exc.strerror}); free space or choose "
                f"another output folder, then run again",
                file=sys.stderr,
            )
            return 2
        except KeyboardInterrupt:
            return _interrupted()
        except Exception as exc:
            if not (pressed() or _caused_by_ctrl_c(exc)):
                raise
            return _interrupted()
    return int(code or 0)


@contextlib.contextmanager
def _noting_ctrl_c() -> Iterator[Callable[[], bool]]:
    """Note Ctrl-C (``data.core.interrupt``; then raise KeyboardInterrupt as Python does) for the block; yields
    "was it pressed?". Only where SIGINT has Python's own handler in the main thread: an ignored SIGINT (a
    background job) and a caller's own handler are left alone."""
    forget_ctrl_c()
    if threading.current_thread() is not threading.main_thread() or (
        signal.getsignal(signal.SIGINT) is not signal.default_int_handler
    ):
        yield ctrl_c_pressed
        return

    signal.signal(signal.SIGINT, on_ctrl_c)
    try:
        yield ctrl_c_pressed
    finally:
        signal.signal(signal.SIGINT, signal.default_int_handler)
        forget_ctrl_c()


def _interrupted() -> int:
    print("interrupted: outputs written so far are complete; run the same command again to resume", file=sys.stderr)
    return 130


def _caused_by_ctrl_c(exc: BaseException) -> bool:
    """Ctrl-C that lands while TensorFlow's C++ code is running can surface as ``SystemError: ... returned a
    result with an exception set`` whose cause is the KeyboardInterrupt (seen on an export's SavedModel)."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, KeyboardInterrupt):
            return True
        seen = seen.__cause__ or seen.__context__
    return False
