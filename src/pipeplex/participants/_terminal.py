"""A member's terminal: the size of its ptys, and on a full terminal, its master and the job
in its foreground.

A full terminal is what a terminal window is to a shell: the member's stdin, stdout and
stderr at once, in the member's own session, whose shell runs each command in a process
group of its own (job control). What a person sends with a key (Ctrl-C, Ctrl-\\, Ctrl-Z)
goes to that foreground job, and a stop hangs it up as closing the window would. Its master
is kept open until the program exits, as a window is. Apart from ``process.py`` so that
the life of the process reads on its own; the process creates one per member and asks it
what a terminal does (:meth:`Terminal.to_job`, :meth:`Terminal.hang_up_job`,
:meth:`Terminal.resize`), and it asks of the process only what :class:`TerminalOwner` says.
"""

from __future__ import annotations

import contextlib
import os
import signal
from typing import TYPE_CHECKING, Protocol

from ._pty import set_size

if TYPE_CHECKING:
    from ..cast.spec import ProcSpec
    from ._output import OutputReaders

__all__ = ("Terminal", "TerminalOwner")

_KEYBOARD_SIGNALS = frozenset({signal.SIGINT, signal.SIGQUIT, signal.SIGTSTP})
"""What a terminal's keys send (Ctrl-C, Ctrl-\\, Ctrl-Z), to its foreground job."""


class TerminalOwner(Protocol):
    """What a member's terminal asks of its process: its kind of pty, its pid and whether it
    has exited, and the output side that reads the masters."""

    @property
    def spec(self) -> ProcSpec: ...
    @property
    def pid(self) -> int | None: ...
    @property
    def returncode(self) -> int | None: ...
    @property
    def output(self) -> OutputReaders: ...


class Terminal:
    """A member's ptys, run after run: their size, and a full terminal's master and its
    foreground job."""

    def __init__(self, process: TerminalOwner, columns: int, rows: int) -> None:
        self._process = process
        self.columns = columns
        self.rows = rows
        """The size its ptys are opened with (see :meth:`resize`)."""
        self._open_master: int | None = None
        """A full terminal's master whose reading ended before the program did (see
        :meth:`keep_open`)."""

    def keep_open(self, master: int) -> None:
        """The readers are done with the full terminal's ``master`` before the program
        exited: closing it would hang the terminal up, so it is kept until the exit."""
        self._open_master = master

    def close_kept(self) -> None:
        """The program has exited: the master kept open (:meth:`keep_open`) is closed."""
        if self._open_master is not None:
            os.close(self._open_master)
            self._open_master = None

    def master(self) -> int | None:
        """The master side of the member's full terminal, while it is open."""
        if self._process.spec.pty != "full":
            return None
        if self._open_master is not None:
            return self._open_master
        return next(iter(self._process.output.readers), None)

    def foreground_job(self) -> int | None:
        """The process group of the command a full terminal's shell runs in the foreground
        (job control), when it is not the member's own."""
        terminal = self.master()
        if terminal is None or self._process.returncode is not None:
            return None
        pid = self._process.pid
        try:
            job = os.tcgetpgrp(terminal)
            # A group of the member's session (the member leads it), which tcsetpgrp
            # allows, still there: the terminal keeps the number of a job that ended,
            # which may since be a stranger's.
            ours = job > 0 and job != pid and os.getsid(job) == pid
        except OSError:
            ours = False
        return job if ours else None

    def to_job(self, sig: int) -> bool:
        """Send INT, QUIT or TSTP where those keys would send them, to the full terminal's
        foreground job; False if ``sig`` is another, or there is no such job to take it."""
        if sig in _KEYBOARD_SIGNALS and (job := self.foreground_job()) is not None:
            try:
                os.killpg(job, sig)
                return True
            except (ProcessLookupError, PermissionError):  # (ended; or a setuid job)
                pass
        return False

    def hang_up_job(self) -> None:
        """SIGHUP (and SIGCONT) to the full terminal's foreground job, as closing a terminal
        window sends them."""
        if (job := self.foreground_job()) is not None:
            for sig in (signal.SIGHUP, signal.SIGCONT):
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(job, sig)

    def resize(self, columns: int, rows: int) -> None:
        """Make the member's pty ``columns`` wide and ``rows`` high, from now on and at its
        next start: pipeplex's terminal, less the name's column, as at the start."""
        self.columns, self.rows = columns, rows
        pty = self._process.spec.pty
        if pty == "full":
            master = self.master()
        elif pty == "stdout":
            master = next((fd for fd, stream in self._process.output.readers.items()
                           if stream == "stdout"), None)
        else:
            master = None
        if master is not None:
            try:
                set_size(master, columns, rows)
            except OSError:  # (its program is gone and took the pty's last slave with it)
                pass
