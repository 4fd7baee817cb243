"""Exceptions with one-line messages; the CLI maps them to exit codes (2: usage/config/data, 1: run failure)."""


class LmbenchError(Exception):
    """Base class: the message is one line naming the file/key/value and what was expected."""


class ConfigError(LmbenchError):
    """A config file, key or value is wrong (exit status 2)."""


class DataError(LmbenchError):
    """Input data is missing, unreadable or malformed (exit status 2)."""


class NotFittedError(LmbenchError, RuntimeError):
    """A model was used before `fit` (or `load`)."""


class TrainingDiverged(LmbenchError):
    """Training produced a non-finite loss (a run failure, exit status 1): the model is never cached as finished."""

    def __init__(self, message: str, step: int):
        super().__init__(message)
        self.step = step


def first_line(error: BaseException, *, with_type: bool = False) -> str:
    """An exception's first message line (its type name when it has no message), for one-line reports."""
    text = str(error).strip()
    line = text.splitlines()[0] if text else ""
    if with_type or not line:
        return f"{type(error).__name__}: {line}" if line else type(error).__name__
    return line


class OutputError(LmbenchError, OSError):
    """An output cannot be written: the message names the file and the cause (disk full, permission denied,
    a directory or socket where a file was expected). Exit status 2; an ``OSError`` too, so code that goes on
    after a failed write (an error log) still catches it."""

    def __init__(self, message: str, errno_: int = 0):
        OSError.__init__(self, errno_, message)
        self.message = message

    def __str__(self) -> str:
        return self.message
