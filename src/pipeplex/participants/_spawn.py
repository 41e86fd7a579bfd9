"""Starting a member's program: ``posix_spawn`` where it can, ``subprocess.Popen`` where not.

Both make the child with vfork and wait only for its ``exec``. ``Popen`` spends some 80 us
of Python a spawn on top (its error pipe, the environment encoded entry by entry): 8 ms of
CPU for a cast of 100 members, before the last one starts. ``posix_spawn`` does that work
in C, but it cannot close the descriptors a child must not inherit, nor change directory,
nor make a terminal the child's own. So ``Popen`` still starts a member that has a ``cwd``
or a full terminal, and every member of a process whose inherited descriptors were not all
marked close-on-exec first (:func:`close_inherited_on_exec`, which the command does; a
program using the Python API keeps its descriptors as they are).
"""

from __future__ import annotations

import os
import signal
import subprocess
from collections.abc import Callable, Mapping

__all__ = ("Child", "close_inherited_on_exec", "spawn")

_DEFAULTS = frozenset({signal.SIGPIPE, signal.SIGXFSZ})
"""Python ignores these itself; a child gets them back at their default (as ``Popen``'s
``restore_signals`` does)."""

_inherited_closed = False


def close_inherited_on_exec() -> None:
    """Mark every descriptor above stderr that this process inherited or opened so far
    close-on-exec, as Python opens its own: no child of this process inherits one unless
    it is given it on purpose. Call it early, in a process of one's own (the command)."""
    global _inherited_closed
    try:
        fds = [int(fd) for fd in os.listdir("/proc/self/fd")]
    except OSError:  # (no /proc: every spawn closes them, through Popen)
        return
    for fd in fds:
        if fd > 2:
            try:
                os.set_inheritable(fd, False)
            except OSError:  # (the listing's own descriptor, closed by now)
                pass
    _inherited_closed = True


class Child:
    """A child process: its pid, and its exit status once it has ended."""

    def __init__(self, pid: int, popen: subprocess.Popen[bytes] | None = None) -> None:
        self.pid = pid
        self._popen = popen  # (told the status, or it warns of a child still running)
        self.returncode: int | None = None

    def poll(self) -> int | None:
        """The exit status (negative: the signal that killed it), reaping it; None while
        it runs. 255 if someone else reaped it, its status lost (as asyncio reports it)."""
        if self.returncode is None:
            try:
                pid, status = os.waitpid(self.pid, os.WNOHANG)
            except ChildProcessError:
                self.returncode = 255
            else:
                if pid:
                    self.returncode = os.waitstatus_to_exitcode(status)
            if self._popen is not None:
                self._popen.returncode = self.returncode
        return self.returncode


def spawn(argv: list[str], *, executable: str | None, streams: tuple[int, int, int],
          env: Mapping[str, str], cwd: str | None,
          in_child: Callable[[], None] | None) -> Child:
    """Start ``argv`` in a session of its own with ``streams`` as its stdin, stdout and
    stderr, its signal mask empty, and no other descriptor of ours.

    ``executable``: the file to run (None: ``argv[0]``, looked up in ``env``'s PATH if it
    has no slash);
    ``in_child``: run in the child before its ``exec``.

    Raises:
        OSError: the program could not be started (the errno says why).
        ValueError: a NUL byte in an argument or the environment, or "=" in a name.
    """
    program = executable or (argv[0] if "/" in argv[0] else None)
    if _inherited_closed and program is not None and cwd is None and in_child is None:
        stdin, stdout, stderr = streams
        actions = [(os.POSIX_SPAWN_DUP2, stdin, 0), (os.POSIX_SPAWN_DUP2, stdout, 1),
                   (os.POSIX_SPAWN_DUP2, stderr, 2)]
        return Child(os.posix_spawn(program, argv, env, file_actions=actions, setsid=True,
                                    setsigmask=(), setsigdef=_DEFAULTS))
    popen = subprocess.Popen(argv, executable=executable, stdin=streams[0], stdout=streams[1],
                             stderr=streams[2], cwd=cwd, env=env, start_new_session=True,
                             preexec_fn=in_child)
    return Child(popen.pid, popen)
