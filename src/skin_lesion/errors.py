"""The errors a user can fix: bad input, missing files, refused overwrites.

``skin_lesion.cli`` shows these as one line that says what to do (exit code 2); every other exception
is a bug and keeps its traceback. Each class also derives from the built-in error it refines,
so callers may catch ``ValueError`` or ``FileNotFoundError`` as usual.
"""
from __future__ import annotations


class UserError(Exception):
    """A problem with the user's input, files or settings; the message says what to do."""


class ConfigError(UserError, ValueError):
    """A flag, a setting or a combination of them that cannot work."""


class DatasetError(UserError, ValueError):
    """A dataset on disk that cannot be used as it is."""


class MissingFileError(UserError, FileNotFoundError):
    """A file or folder that a step needs and that an earlier step (or the user) provides."""


class OverwriteError(UserError, FileExistsError):
    """Raised instead of replacing an earlier result that the user did not ask to replace."""
