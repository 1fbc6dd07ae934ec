"""One error base for every stage: a :class:`StageError` is an input or setting the user can fix.

The CLI runner (:func:`data.core.cli.run`) prints ``error: <message>`` and exits 2 for any of them, so a
stage raises one with a message that names the input and says what to do, and never prints itself.
"""

from __future__ import annotations


class StageError(Exception):
    """An input, setting or environment a stage cannot use; the message tells the user what to do."""

    exit_code = 2


class ConfigError(StageError, ValueError):
    """A configuration file, section key or override value that cannot be used."""


class InputError(StageError, ValueError):
    """An input file or folder that is missing, unreadable or in the wrong shape."""


class BusyError(StageError, RuntimeError):
    """Another run holds the output folder."""
