"""The one exception type the training-data pipeline raises for bad user data."""

from __future__ import annotations


class DataError(ValueError):
    """A dataset folder, caption or image cannot be used; the message names it and says why."""
