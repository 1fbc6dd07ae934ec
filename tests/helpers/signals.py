"""Children that must see Ctrl-C: start them with SIGINT at its default disposition.

A shell without job control (a script that runs ``make test &``) starts background commands with SIGINT
ignored, and an ignored signal stays ignored across ``exec``: a child Python then never installs its
KeyboardInterrupt handler and a test's SIGINT does nothing. ``subprocess.Popen(..., preexec_fn=
default_sigint)`` restores it in the child before it runs.
"""

from __future__ import annotations

import signal
import subprocess

from data.core.config import REPO_ROOT


def default_sigint() -> None:
    """Restore SIGINT's default disposition (for ``preexec_fn``: runs in the child, before exec)."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def start_interruptible(command: list[str], env: dict[str, str]) -> subprocess.Popen:
    """``command`` started in the repository with its output piped (text) and SIGINT at its default."""
    return subprocess.Popen(
        command,
        cwd=REPO_ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=default_sigint,
    )
