"""Pseudo-terminal plumbing for members.

A program whose stdout is a terminal flushes each line; one writing into a pipe holds its
output in a block buffer (the reason tutorials reach for ``stdbuf -o0``). So by default a
member's stdout is the slave side of a pty in raw mode: no ``\\r\\n`` translation, no echo,
while stdin and stderr stay pipes.
"""

from __future__ import annotations

import fcntl
import os
import struct
import termios
import tty

__all__ = ("make_controlling_tty", "open_pty", "set_size")


_IUTF8 = getattr(termios, "IUTF8", 0o40000)
"""(Linux's value: Python's termios names it from 3.12 on.)"""


def open_pty(*, raw: bool, rows: int = 24, columns: int = 80) -> tuple[int, int]:
    """Open a pty pair and return ``(master, slave)``; both are non-inheritable."""
    master, slave = os.openpty()
    try:
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", rows, columns, 0, 0))
        if raw:
            tty.setraw(slave)
        else:  # a full terminal: erasing a character takes all of its UTF-8 bytes, as in
            attrs = termios.tcgetattr(slave)  # any terminal window (Linux's default lacks it)
            attrs[tty.IFLAG] |= _IUTF8
            termios.tcsetattr(slave, termios.TCSANOW, attrs)
        os.set_blocking(master, False)
    except BaseException:
        os.close(master)
        os.close(slave)
        raise
    return master, slave


def set_size(master: int, columns: int, rows: int) -> None:
    """Make the pty of ``master`` ``columns`` wide and ``rows`` high. The kernel then sends
    SIGWINCH to the foreground job of a terminal that is some session's own."""
    fcntl.ioctl(master, termios.TIOCSWINSZ, struct.pack("HHHH", rows, columns, 0, 0))


def make_controlling_tty() -> None:
    """In the child, after setsid(): make fd 0 (the pty slave) the controlling terminal.

    Then ``^C`` written to the master raises SIGINT in the child's foreground group, as
    in a real terminal.
    """
    fcntl.ioctl(0, termios.TIOCSCTTY, 0)
