"""The one error the data modules raise for a user's data problem."""

from __future__ import annotations


class DatasetError(Exception):
    """A user-facing data problem; the message names the path and the fix."""
