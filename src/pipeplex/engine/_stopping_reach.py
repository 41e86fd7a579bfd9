"""How a stop reaches processes it follows by their pid and start time: the signals, the
waits, and the words for them.

What members started outside their process groups and what the cast orphaned are not
pipeplex's children to wait for, nor a group to signal: each is signalled through a pidfd
opened for it (a pid taken again by a stranger is left alone), and waited for through a
pidfd each, ESCAPED_AT_ONCE at a time, for pipeplex's descriptors are for its members
first. Running out of them is said once per member. Apart from ``_stopping_outside.py`` so
that the escalations there (who gets which signal when, and what is said of it) read on
their own, over these few means.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
from typing import TYPE_CHECKING

from .._events import Note
from ..participants._escaped import Escaped, OutOfDescriptors, hold, send, start_time
from ..participants._group import exits_within, pidfds_exit
from ..participants.orphans import descendants

if TYPE_CHECKING:
    from .._bus import Bus
    from ..participants import Process

__all__ = ("ESCAPED_AT_ONCE", "LEFTOVER_KILL_WAIT", "Reach", "it_or_them", "killpg_all",
           "processes_said")

LEFTOVER_KILL_WAIT = 1.0
"""How long processes may take to die of SIGKILL before we go on."""
ESCAPED_AT_ONCE = 256
"""Processes left outside their groups that are waited for at once (a pidfd each):
pipeplex's descriptors are for its members first. Once those are gone, it looks again."""
FREEZE_PASSES = 5
"""Passes below frozen processes at most (see :meth:`Reach.frozen_below`): a few suffice."""


class Reach:
    """Signals to followed processes, and waits for them, for one cast's stops; says once
    when pipeplex ran out of descriptors for them."""

    def __init__(self, bus: Bus) -> None:
        self._bus = bus
        self._short_of_descriptors = False

    async def alive_after(self, member: Process | None, processes: list[Escaped],
                          deadline: float,
                          until: asyncio.Future[None] | None = None) -> list[Escaped]:
        """Those of ``processes`` still alive at ``deadline`` (or once ``until``), watched
        ESCAPED_AT_ONCE at a time (a pidfd each): once those are gone, the next ones."""
        loop = asyncio.get_running_loop()
        waiting = processes
        while waiting:
            remaining = deadline - loop.time()
            try:
                held, rest = hold(waiting, ESCAPED_AT_ONCE)
            except OutOfDescriptors:  # not to be watched: wait out the time, then say so
                self.out_of_descriptors(member)
                if remaining > 0:
                    sleeper = asyncio.ensure_future(asyncio.sleep(remaining))
                    try:
                        await asyncio.wait([sleeper, *([until] if until is not None else [])],
                                           return_when=asyncio.FIRST_COMPLETED)
                    finally:
                        sleeper.cancel()
                return waiting
            fds = [fd for _, fd in held]
            try:
                if remaining > 0 and await pidfds_exit(fds, remaining, until):
                    waiting = rest
                    continue
                return [process for process, fd in held if not _exited(fd)] + rest
            finally:
                for fd in fds:
                    os.close(fd)
        return []

    def signal(self, member: Process | None, processes: list[Escaped],
               signals: tuple[int, ...]) -> list[Escaped]:
        """Send ``signals`` to each of ``processes`` still alive (``member``'s, or None: the
        cast's orphans); those reached."""
        reached, complete = send(processes, signals)
        if not complete:
            self.out_of_descriptors(member)
        return reached

    def frozen_below(self, roots: list[int]) -> list[Escaped]:
        """The processes below ``roots`` (the cast's orphans, frozen by SIGSTOP), each
        frozen as it is found, pass by pass until a pass finds none new: a child forked in
        the instant before its parent stopped may have forked in turn."""
        frozen: list[Escaped] = []
        for _ in range(FREEZE_PASSES):
            known = {pid for pid, _ in frozen}
            new = [(pid, started) for pid in descendants(roots) if pid not in known
                   and (started := start_time(pid)) is not None]
            if not new:
                break
            frozen += self.signal(None, new, (signal.SIGSTOP,))
        return frozen

    def out_of_descriptors(self, member: Process | None) -> None:
        """Said once, for the first member it befalls (None: the cast's orphans): a stop of
        a big cast short of descriptors would say it for every member."""
        if self._short_of_descriptors:
            return
        self._short_of_descriptors = True
        what = ("it may have left outside its process group" if member is not None
                else "the cast may have left without a member")
        self._bus.publish(Note(f"could not look for (or reach) the processes {what}: pipeplex "
                               "is out of file descriptors (raise the open-files limit: ulimit "
                               "-n); said once, for whichever members it befalls",
                               name=member.name if member else None, level="error"))


def killpg_all(groups: list[int], signals: tuple[int, ...]) -> None:
    """Send ``signals`` to each of ``groups``."""
    for group in groups:
        for sig in signals:
            # (Empty by now; or all its processes run as another user, said by the caller.)
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(group, sig)


def processes_said(processes: list[Escaped]) -> str:
    """``1 process (pid 42)``, ``3 processes (pid 42, 43, 44)`` (ten pids, then ``...``)."""
    pids = ", ".join(str(pid) for pid, _ in processes[:10])
    more = ", ..." if len(processes) > 10 else ""
    return f"{len(processes)} process{'es' if len(processes) != 1 else ''} (pid {pids}{more})"


def it_or_them(processes: list[Escaped]) -> str:
    """``it`` or ``them``, for a message about ``processes``."""
    return "it" if len(processes) == 1 else "them"


def _exited(pidfd: int) -> bool:
    return exits_within(pidfd, 0)
