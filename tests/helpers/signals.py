"""Children that must see Ctrl-C: start them with SIGINT at its default disposition.

A shell without job control (a script that runs ``make test &``) starts background commands with SIGINT
ignored, and an ignored signal stays ignored across ``exec``: a child Python then never installs its
KeyboardInterrupt handler and a test's SIGINT does nothing. ``subprocess.Popen(..., preexec_fn=
default_sigint)`` restores it in the child before it runs.
"""

from __future__ import annotations

import signal


def default_sigint() -> None:
    """Restore SIGINT's default disposition (for ``preexec_fn``: runs in the child, before exec)."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)
