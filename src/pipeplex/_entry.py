"""The ``pipeplex`` command's entry point: it loads the CLI, which takes a moment.

A Ctrl-C in that moment ends the command as a Ctrl-C later does (status 130), without a
traceback from the middle of an import.

A standard stream that was closed (``pipeplex run >&-``) is first opened on /dev/null:
otherwise the next descriptor pipeplex opens (a member's pipe, the control socket) would
take its number and receive what was meant for the stream. Standard output is opened for
reading only, so writing to it fails as on the closed descriptor ("Bad file
descriptor"), and pipeplex says so.
"""

from __future__ import annotations

import io
import os
import sys

__all__ = ("main",)


def main() -> None:
    _open_closed_streams()
    try:
        from .cli import main as cli_main
    except KeyboardInterrupt:
        sys.exit(130)
    cli_main()


def _open_closed_streams() -> None:
    for fd, flags in ((0, os.O_RDONLY), (1, os.O_RDONLY), (2, os.O_WRONLY)):
        try:
            os.fstat(fd)
        except OSError:
            os.open(os.devnull, flags)  # the lowest free number: this one
    # (Python leaves a stream None when its descriptor was closed: print() to None would
    # quietly go nowhere, or to stdout.)
    if sys.stdin is None:
        sys.stdin = io.TextIOWrapper(io.FileIO(0, "r", closefd=False))
    if sys.stdout is None:
        sys.stdout = io.TextIOWrapper(io.FileIO(1, "w", closefd=False), line_buffering=True)
    if sys.stderr is None:
        sys.stderr = io.TextIOWrapper(io.FileIO(2, "w", closefd=False), line_buffering=True)
