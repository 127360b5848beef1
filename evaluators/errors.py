"""The error family of vgrc.

Library code raises these with a message that names the bad value and says what to
do; the command-line layer prints the message as one red line and exits with code 2
(a traceback only with ``--debug``). Nothing in vgrc uses ``assert`` on user input.
"""

from __future__ import annotations

__all__ = ["VgrcError", "InvalidInputError", "DatasetFolderError", "OutputError", "ModelUnavailableError", "VgrcWarning", "warn"]


class VgrcError(Exception):
    """Base class of every error vgrc reports to a user as one line."""


class InvalidInputError(VgrcError, ValueError):
    """A user-supplied value (option, vocabulary name, file entry) is not valid."""


class DatasetFolderError(VgrcError):
    """A folder is not a vgrc dataset, holds a different one, or is damaged."""


class OutputError(VgrcError, OSError):
    """An output location cannot be created or written."""


class ModelUnavailableError(VgrcError):
    """Weights cannot be loaded (offline and not cached, or a bad checkpoint)."""


class VgrcWarning(UserWarning):
    """Something a user should know that does not stop the command (a damaged cache shard
    set aside, an option that does nothing in this configuration, skipped inputs): the
    command-line layer prints each as one ``warning:`` line."""


def warn(message: str) -> None:
    """Issue a :class:`VgrcWarning` (one ``warning:`` line in the terminal)."""
    import warnings

    warnings.warn(message, VgrcWarning, stacklevel=2)
