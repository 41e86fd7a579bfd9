"""The ``pipeplex`` command's entry point: it loads the CLI, which takes a moment.

A Ctrl-C in that moment ends the command as a Ctrl-C later does (status 130), without a
traceback from the middle of an import.
"""

from __future__ import annotations

import sys

__all__ = ("main",)


def main() -> None:
    try:
        from .cli import main as cli_main
    except KeyboardInterrupt:
        sys.exit(130)
    cli_main()
