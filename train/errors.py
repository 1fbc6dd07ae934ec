"""The errors of the training stages, each a :class:`~data.core.errors.StageError` (one ``error:`` line)."""

from __future__ import annotations

from data.core.errors import InputError, StageError


class DataSetError(InputError):
    """Images that cannot be trained or scored on (no manifest, one class, too few images, an empty split)."""


class ModelNotUseful(StageError):
    """``strict = true`` and the model does not clearly beat a constant (majority-class) predictor."""

    exit_code = 3


class WeightsUnavailable(StageError):
    """The requested weights cannot be had (offline, no such file, no package), with what to do about it."""
