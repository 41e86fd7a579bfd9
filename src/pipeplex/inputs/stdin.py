"""What pipeplex's own standard input can be: the console's source, decided before the
console itself is loaded (a run whose stdin is ``/dev/null`` never imports it).

- ``"prompt"``: stdin and the output are the terminal we are in the foreground of (unless
  ``TERM=dumb``);
- ``"lines"``: a pipe, a file, a terminal whose output goes elsewhere, or a dumb one;
- ``None``: nothing usable (``/dev/null``, closed, a terminal we are in the background of).

A terminal that is not our controlling terminal (``setsid pipeplex ...`` on an inherited
one) gets lines, never the prompt: its raw mode could not be undone there with the checks
that keep a shell's terminal safe (which job has it), and would outlive the run.
"""

from __future__ import annotations

import errno
import os
import stat
import termios
from typing import Literal

__all__ = ("ConsoleMode", "console_mode", "hung_up", "why_no_console")

ConsoleMode = Literal["prompt", "lines"]


def console_mode(stdin_fd: int = 0, output_fd: int = 1) -> ConsoleMode | None:
    """How to read the console from ``stdin_fd`` (see the module docstring)."""
    try:
        mode = os.fstat(stdin_fd).st_mode
    except OSError:
        return None
    if os.isatty(stdin_fd):
        try:
            foreground = os.tcgetpgrp(stdin_fd) == os.getpgrp()
        except OSError:  # not our controlling terminal: reading it cannot stop us
            return "lines"
        if not foreground:
            return None  # reading would stop us with SIGTTIN
        # (a dumb terminal, Emacs's shell say, gets lines: no prompt drawn with cursor moves)
        return ("prompt" if os.isatty(output_fd) and os.environ.get("TERM") != "dumb"
                else "lines")
    if stat.S_ISFIFO(mode) or stat.S_ISSOCK(mode) or stat.S_ISREG(mode):
        return "lines"
    return None  # /dev/null and other devices


def why_no_console(stdin_fd: int = 0) -> str | None:
    """Why a terminal on ``stdin_fd`` gets no console (:func:`console_mode` is None), to be
    said: else the keys typed for it would wait, unread, for the shell. None when it is no
    terminal."""
    if not os.isatty(stdin_fd):
        return None
    return ("no console: pipeplex was started in the background of its terminal (fg does "
            "not bring one); send input with pipeplex send or NAME.in")


def hung_up(fd: int) -> bool:
    """Whether ``fd`` is a terminal that has hung up (its window closed, its ssh dropped).

    The kernel then points every open description of the terminal at operations that
    read EOF and fail everything else with EIO, the attribute query included; on a pipe,
    a file or a live terminal the query succeeds or fails otherwise.
    """
    try:
        termios.tcgetattr(fd)
    except termios.error as exc:
        return bool(exc.args[0] == errno.EIO)
    return False
