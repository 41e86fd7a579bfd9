"""The process serving a run's control socket, as a client sees it: whether it is stopped.

A run stopped by SIGSTOP or Ctrl-Z in its terminal, or held by a debugger, answers nobody,
yet the kernel still takes a client's connection into the socket's listen backlog: without
a look at the process, a client would wait out its whole timeout for an answer that cannot
come until someone lets the run go on.

The client learns the process from the socket itself (``SO_PEERCRED``: who listens there),
and holds it by a pidfd. A pid alone may be a stranger's by now, so a stopped state counts
only for a process that holds the run folder's lock file open (a run holds its own for as
long as it lasts, and nothing else has it), read while the pidfd says that process lives:
a pid is not given to another while its process lives. A look that cannot be made, or
trusted, never says stopped: the client then waits, as it would without it.

Light, like the client: it loads none of the engine (``participants._proc`` reads
``/proc/PID/stat`` for the run itself, and loads the participants with it).
"""

from __future__ import annotations

import contextlib
import os
import select
import stat

from .inputs.rundir import LOCK_NAME

__all__ = ("STOPPED_STATES", "RunProcess")

STOPPED_STATES = ("T", "t")
"""The states of ``/proc/PID/stat`` of a process that runs no more until it is continued:
stopped by a signal (SIGSTOP, SIGTSTP), and held by a debugger (a tracing stop)."""


class RunProcess:
    """The process with ``pid``, held by ``pidfd`` (closed by :meth:`close`), which serves
    the run whose lock file is ``lock`` (its device and inode). Make it with :meth:`hold`."""

    def __init__(self, pid: int, pidfd: int, lock: tuple[int, int]) -> None:
        self.pid = pid
        self._pidfd: int | None = pidfd
        self._lock = lock

    def __repr__(self) -> str:
        state = "held" if self._pidfd is not None else "closed"
        return f"<RunProcess pid={self.pid} {state}>"

    @classmethod
    def hold(cls, pid: int, folder_fd: int) -> RunProcess | None:
        """The process ``pid`` (the run's, as the socket or the lock file names it), held,
        for the run folder open at ``folder_fd``; None where it cannot be looked at: no
        pid (0: another pid namespace's), no lock file of the user's, a process gone, or
        no pidfd (a kernel before 5.3, no descriptor left)."""
        if pid <= 0:
            return None
        try:
            st = os.stat(LOCK_NAME, dir_fd=folder_fd, follow_symlinks=False)
            if not stat.S_ISREG(st.st_mode) or st.st_uid != os.geteuid():
                return None
            pidfd = os.pidfd_open(pid)
        except OSError:
            return None
        return cls(pid, pidfd, (st.st_dev, st.st_ino))

    def stopped(self) -> str | None:
        """The run's state if it is stopped (one of :data:`STOPPED_STATES`), else None:
        it runs, it is gone, or the process is not the run's."""
        state = self._state()
        if state not in STOPPED_STATES or not self.is_the_run():
            return None
        return state

    def is_the_run(self) -> bool:
        """Whether the process is the run: it holds the run's lock file open, and still
        lives (so that what was read of its pid was its own)."""
        return self._holds_lock() and not self.exited()

    def close(self) -> None:
        if self._pidfd is not None:
            os.close(self._pidfd)
            self._pidfd = None

    def _state(self) -> str | None:
        """The state field of ``/proc/PID/stat``: after the last ``)``, as the command's
        name before it may hold spaces and parentheses of its own."""
        try:
            with open(f"/proc/{self.pid}/stat", "rb") as f:
                line = f.read()
        except OSError:
            return None
        fields = line[line.rfind(b")") + 1:].split(maxsplit=1)
        return fields[0].decode("ascii", "replace") if fields else None

    def _holds_lock(self) -> bool:
        """Whether the process has the run's lock file open: it is the run, not a
        stranger that took its pid."""
        with contextlib.suppress(OSError), os.scandir(f"/proc/{self.pid}/fd") as entries:
            for entry in entries:
                with contextlib.suppress(OSError):  # (a descriptor closed as it is looked at)
                    st = entry.stat()
                    if (st.st_dev, st.st_ino) == self._lock:
                        return True
        return False

    def exited(self, wait: float = 0.0) -> bool:
        """Whether the held process has exited (then what was read of its pid may be a
        stranger's), waiting up to ``wait`` seconds for it."""
        if self._pidfd is None:
            return True
        poller = select.poll()
        poller.register(self._pidfd, select.POLLIN)
        return bool(poller.poll(wait * 1000))
