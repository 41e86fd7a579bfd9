"""What pipeplex's own standard input can be: the console's source, decided before the
console itself is loaded (a run whose stdin is ``/dev/null`` never imports it).

- ``"prompt"``: stdin and the output are the terminal we are in the foreground of;
- ``"lines"``: a pipe, a file, or a terminal whose output goes elsewhere;
- ``None``: nothing usable (``/dev/null``, closed, a terminal we are in the background of).
"""

from __future__ import annotations

import os
import stat
from typing import Literal

__all__ = ("ConsoleMode", "console_mode")

ConsoleMode = Literal["prompt", "lines"]


def console_mode(stdin_fd: int = 0, output_fd: int = 1) -> ConsoleMode | None:
    """How to read the console from ``stdin_fd`` (see the module docstring)."""
    try:
        mode = os.fstat(stdin_fd).st_mode
    except OSError:
        return None
    if os.isatty(stdin_fd):
        if not _in_foreground(stdin_fd):
            return None  # reading would stop us with SIGTTIN
        return "prompt" if os.isatty(output_fd) else "lines"
    if stat.S_ISFIFO(mode) or stat.S_ISSOCK(mode) or stat.S_ISREG(mode):
        return "lines"
    return None  # /dev/null and other devices


def _in_foreground(fd: int) -> bool:
    try:
        return os.tcgetpgrp(fd) == os.getpgrp()
    except OSError:
        return True  # not our controlling terminal: reading it cannot stop us
