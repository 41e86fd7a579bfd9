"""Writing a command's results to standard output, which may refuse them.

A reader that leaves (``pipeplex replay T | head``) raises BrokenPipeError, which the
command line ends quietly on. Any other refusal (a full disk, ``> /dev/full``, ``>&-``)
becomes :class:`StdoutRefused`, which the command line says in one line on stderr: told
apart, where it happens, from the other errors a command may meet.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator

__all__ = ("StdoutRefused", "printing")


class StdoutRefused(Exception):
    """Standard output refused a write; ``error`` says why."""

    def __init__(self, error: OSError) -> None:
        super().__init__(error.strerror or str(error))
        self.error = error


@contextlib.contextmanager
def printing() -> Iterator[None]:
    """Around writes to stdout: flushed before the block ends, also when it ends by
    ``sys.exit`` (help and the version exit as they print); a refusal other than the reader
    leaving becomes :class:`StdoutRefused`."""
    try:
        try:
            yield
        finally:
            sys.stdout.flush()
    except BrokenPipeError:
        raise
    except OSError as exc:
        raise StdoutRefused(exc) from None
