"""The exceptions reasonrl raises. The Rust core raises these same classes.

``ReasonRLError`` is the base of all of them; each subclass also derives from the built-in
exception a user would expect (``ValueError`` for bad arguments), so ``except ValueError`` works.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager

__all__ = [
    "ConfigError",
    "InvalidInputError",
    "ReasonRLError",
    "RustPanicError",
    "ThreadPoolError",
    "TrainingError",
]


class ReasonRLError(Exception):
    """Base class of every error raised by reasonrl."""


class InvalidInputError(ReasonRLError, ValueError):
    """An argument has the wrong type, shape, length, dtype or value; the message names it."""


class ThreadPoolError(ReasonRLError, RuntimeError):
    """The worker thread pool could not be created."""


class RustPanicError(ReasonRLError, RuntimeError):
    """A bug inside the Rust core. The interpreter keeps running; please report the message."""


class ConfigError(ReasonRLError, ValueError):
    """A configuration file or ``--set`` override is wrong; the message names the key."""


class TrainingError(ReasonRLError, RuntimeError):
    """Training cannot go on (e.g. the loss was not finite several steps in a row)."""


@contextmanager
def named_by(names: dict[str, str]) -> Iterator[None]:
    """Re-raises an InvalidInputError about a parameter (``invalid `source`: …``) as a
    ConfigError named by the config key or command-line flag that set it (`names`: parameter
    → key or flag), so that a user reads ``data.train: …`` or ``--data: …``."""
    try:
        yield
    except InvalidInputError as error:
        named = re.match(r"invalid `(\w+)`: (.*)", str(error), re.DOTALL)
        if named is None or named[1] not in names:
            raise
        raise ConfigError(f"{names[named[1]]}: {named[2]}") from None
