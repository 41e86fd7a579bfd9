"""Which console pipeplex's own stdin gives: a prompt, lines, or none."""

from __future__ import annotations

import os
import subprocess
import sys

from pipeplex.inputs.stdin import console_mode


def _mode_on_a_terminal(term: str, *, own: bool = True) -> str:
    """console_mode() on a new pty, in a process of which it is the controlling terminal,
    in the foreground of it (as a shell's foreground job is); or (``own`` False) of which
    it is not, never a session's leader."""
    code = ("import fcntl, os, termios\n"
            "from pipeplex.inputs.stdin import console_mode\n"
            "master, slave = os.openpty()\n"
            + ("os.setsid()\nfcntl.ioctl(slave, termios.TIOCSCTTY, 0)\n" if own else "")
            + "print(console_mode(slave, slave))\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            env={**os.environ, "TERM": term}, timeout=30)
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


def test_a_terminal_gets_the_prompt() -> None:
    assert _mode_on_a_terminal("xterm-256color") == "prompt"


def test_a_dumb_terminal_gets_lines_without_a_prompt() -> None:
    """Emacs's shell, some CI consoles: a prompt drawn with cursor moves would show as
    escape codes around every line and key."""
    assert _mode_on_a_terminal("dumb") == "lines"


def test_a_terminal_that_is_not_ours_gets_lines_never_the_prompt() -> None:
    """``setsid pipeplex run`` on a terminal it inherited: the prompt's raw mode, set there,
    was left behind after the run (pipeplex undoes it only as the terminal's foreground job,
    which it cannot be of a terminal that is not its own), and the shell may read it too."""
    assert _mode_on_a_terminal("xterm-256color", own=False) == "lines"


def test_a_pipe_gets_lines_and_dev_null_nothing() -> None:
    r, w = os.pipe()
    null = os.open(os.devnull, os.O_RDONLY)
    try:
        assert console_mode(r, w) == "lines"
        assert console_mode(null, w) is None
    finally:
        for fd in (r, w, null):
            os.close(fd)
