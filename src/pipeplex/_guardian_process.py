"""The guardian's start: loadable before asyncio and the rest.

What the guardian does, and how pipeplex talks to it, is told in
:mod:`pipeplex.participants.guardian` (each line it is told, in
:mod:`pipeplex.participants._guardian_news`); its program is :mod:`._guardian_main`. Its
start is here, away from that module's imports, so that ``pipeplex run`` can start it first
thing (:func:`start_early_guardian`, from the entry point): its interpreter, some 10-15 ms
of CPU, then starts on the core that pipeplex's own imports leave idle, rather than on the
cores the members' start needs.
"""

from __future__ import annotations

import os
import subprocess
import sys

__all__ = ("GUARDIAN", "INTERPRETER", "LABEL", "spawn_guardian", "start_early_guardian",
           "take_early_guardian")

GUARDIAN = os.path.join(os.path.dirname(os.path.abspath(__file__)), "_guardian_main.py")
"""The guardian's program, run on its own (see that file)."""

INTERPRETER = os.path.realpath(getattr(sys, "_base_executable", sys.executable))
"""The interpreter the guardian runs on: the one under a virtual environment (which the
``venv`` module names ``_base_executable``, a copy's too), whose path may name pipeplex
(pipx puts it in ``venvs/pipeplex``); the guardian needs nothing of it. (An interpreter
that itself lives below a folder named so, a conda environment called pipeplex, still
names it.)"""

LABEL = "cast-guardian"
"""The guardian's last word on its command line, for ``ps`` to show what it is.

Nothing there says "pipeplex": ``pkill -9 -f pipeplex`` must kill pipeplex and leave its
guardian, which then stops the cast. So the program is not named by its path but handed
over open, and run as ``/proc/self/fd/N``."""


def spawn_guardian() -> tuple[subprocess.Popen[bytes], int, int]:
    """A new guardian process, the write end of the pipe it reads, and our end of the
    socket its stdout is, on which it is handed full terminals' masters (a pipe cannot
    pass a descriptor; the lines stay on a pipe, which holds thousands of them where a
    socket holds a few hundred)."""
    import _socket  # (socket's own module: loading socket.py costs milliseconds here)

    ours, theirs = _socket.socketpair(_socket.AF_UNIX, _socket.SOCK_STREAM)
    hands, handed = ours.detach(), theirs.detach()
    try:
        read_end, write_end = os.pipe()
    except BaseException:
        os.close(hands)
        os.close(handed)
        raise
    try:
        program = os.open(GUARDIAN, os.O_RDONLY | os.O_CLOEXEC)
    except BaseException:
        for fd in (read_end, write_end, hands, handed):
            os.close(fd)
        raise
    # Without /proc (a chroot, a sandbox that hides it) the program is named by its path:
    # there the guardian still stops the cast's groups, though not what left them.
    named = f"/proc/self/fd/{program}" if os.path.isdir("/proc/self/fd") else GUARDIAN
    try:
        proc = subprocess.Popen(
            [INTERPRETER, "-I", "-S", named, LABEL],  # (-I: no PYTHON*)
            stdin=read_end,
            stdout=handed,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
            close_fds=True,
            pass_fds=(program,),
            # Not marked as a member's: when this pipeplex is itself a member (of an
            # outer run), the outer stop must not take its guardian for a process the
            # member left behind, and kill it before it has stopped our members.
            env={k: v for k, v in os.environ.items()
                 if k not in ("PIPEPLEX_RUN_ID", "PIPEPLEX_NAME")},
        )
    except BaseException:
        os.close(write_end)
        os.close(hands)
        raise
    finally:
        os.close(program)
        os.close(read_end)
        os.close(handed)
    return proc, write_end, hands


_early: tuple[subprocess.Popen[bytes], int, int] | None = None


def start_early_guardian() -> None:
    """Start the guardian of the run this process is about to make. Should the run never
    come (a usage error), the guardian reads EOF as pipeplex exits, finds nothing to stop
    and leaves."""
    global _early
    try:
        _early = spawn_guardian()
    except OSError:  # (the run tries again, and says what failed)
        _early = None


def take_early_guardian() -> tuple[subprocess.Popen[bytes], int, int] | None:
    """The guardian :func:`start_early_guardian` started, once; None if there is none."""
    global _early
    early, _early = _early, None
    return early
