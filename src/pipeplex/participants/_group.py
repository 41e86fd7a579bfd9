"""What is left in a process group once its leader exited, and waiting for it to go.

A member's descendants may outlive it (a daemon it forked, a pipeline's other end). Their
pids are not ours to know, so they are read from ``/proc`` (only when ``killpg(pgid, 0)``
says someone is left, which is rare), and each is watched through a pidfd: waiting costs
no polling, and a pidfd names that process only, even if its pid is reused.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import Callable
from typing import Any

__all__ = ("GroupWatch", "live_in_group", "wait_group_gone")


def live_in_group(pgid: int) -> list[int]:
    """Pids in process group ``pgid`` that have not exited (zombies do not count)."""
    pids = []
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/stat", "rb") as f:
                stat = f.read()
        except OSError:  # gone meanwhile
            continue
        # "pid (comm) state ppid pgrp ...": comm may hold spaces and parentheses.
        fields = stat[stat.rindex(b")") + 2:].split()
        if int(fields[2]) == pgid and fields[0] not in (b"Z", b"X"):
            pids.append(int(entry.name))
    return pids


async def wait_group_gone(pgid: int, within: float,
                          until: asyncio.Future[Any] | None = None) -> bool:
    """Wait until nothing lives in group ``pgid``; False after ``within`` s or once ``until``.

    A process may fork into the group while we wait, so the group is read again each time
    those we watched have all exited.
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while pids := live_in_group(pgid):
        remaining = deadline - loop.time()
        if remaining <= 0 or not await _all_exit(pids, remaining, until):
            return False
    return True


async def _all_exit(pids: list[int], within: float, until: asyncio.Future[Any] | None) -> bool:
    """Whether every process in ``pids`` exits within ``within`` s (and before ``until``)."""
    loop = asyncio.get_running_loop()
    all_exited: asyncio.Future[None] = loop.create_future()
    watched: set[int] = set()

    def exited(fd: int) -> None:
        loop.remove_reader(fd)
        watched.discard(fd)
        if not watched and not all_exited.done():
            all_exited.set_result(None)

    fds = []
    try:
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                fds.append(os.pidfd_open(pid))
        if not fds:
            return True  # all gone meanwhile
        for fd in fds:
            watched.add(fd)
            loop.add_reader(fd, exited, fd)
        waits: list[asyncio.Future[Any]] = [all_exited]
        if until is not None:
            waits.append(until)
        await asyncio.wait(waits, timeout=within, return_when=asyncio.FIRST_COMPLETED)
        return all_exited.done()
    finally:
        for fd in fds:
            loop.remove_reader(fd)
            os.close(fd)


class GroupWatch:
    """Calls ``on_empty`` once nothing that has not exited is left in group ``pgid``.

    A group's id stays taken while any process is in it, and is free for a stranger's
    ``setsid`` once it is empty: whoever would signal the group later must know it is gone.
    The processes in it are found in ``/proc`` and each is watched through a pidfd; when
    those have all exited the group is read again (one may have forked meanwhile). Zombies
    do not count: they cannot be signalled, and their id is not free until reaped.
    """

    def __init__(self, pgid: int, on_empty: Callable[[int], None]) -> None:
        self.pgid = pgid
        self._on_empty = on_empty
        self._loop = asyncio.get_running_loop()
        self._fds: set[int] = set()
        self._look()

    def __repr__(self) -> str:
        return f"<GroupWatch pgid={self.pgid} watching={len(self._fds)}>"

    @property
    def watching(self) -> bool:
        """False once the group was found empty (``on_empty`` has been called)."""
        return bool(self._fds)

    def _look(self) -> None:
        for pid in live_in_group(self.pgid):
            try:
                fd = os.pidfd_open(pid)
            except ProcessLookupError:  # gone meanwhile
                continue
            self._fds.add(fd)
            self._loop.add_reader(fd, self._exited, fd)
        if not self._fds:
            self._on_empty(self.pgid)

    def _exited(self, fd: int) -> None:
        self._loop.remove_reader(fd)
        os.close(fd)
        self._fds.discard(fd)
        if not self._fds:
            self._look()

    def close(self) -> None:
        """Stop watching (the cast is over)."""
        for fd in self._fds:
            if not self._loop.is_closed():
                self._loop.remove_reader(fd)
            os.close(fd)
        self._fds.clear()
