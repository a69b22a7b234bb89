"""Errors that serotiny reports as one clear line instead of a traceback.

Every error a user can cause (a typo in a config, a missing file, a bad
manifest) is raised as a :class:`SerotinyError`. The CLI prints its message,
prefixed with ``error:``, and exits with its ``exit_code``: 2 for usage and
configuration errors, 1 for failures at run time.
"""

from __future__ import annotations


class SerotinyError(Exception):
    """A failure with a message meant for the user; ``hint`` says how to fix it."""

    exit_code = 1

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return f"{self.message} ({self.hint})" if self.hint else self.message

    def __reduce__(self) -> tuple:
        """Pickled whole, hint included: a job run in another process (joblib) sends its error back."""
        return type(self), (self.message, self.hint)


class ConfigError(SerotinyError):
    """The command line, a config file or a project layout is wrong."""

    exit_code = 2


class DataError(SerotinyError):
    """A manifest, a column or a file it points to cannot be used."""

    exit_code = 1


class TrackingError(SerotinyError):
    """The MLflow tracking server or store cannot be used."""

    exit_code = 1


class Interrupted(SerotinyError):
    """Ctrl-C or SIGTERM stopped a run; what was written is kept."""

    exit_code = 130


def one_line(error: BaseException) -> str:
    """The first line of an error, prefixed with its type: enough to act on."""
    text = str(error).strip().splitlines()
    return f"{type(error).__name__}: {text[0]}" if text else type(error).__name__

