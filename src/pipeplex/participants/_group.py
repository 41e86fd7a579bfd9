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
from typing import Any

__all__ = ("live_in_group", "wait_group_gone")


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
        exited: list[asyncio.Future[None]] = []
        fds: list[int] = []
        all_exited: asyncio.Future[Any] = loop.create_future()
        try:
            for pid in pids:
                with contextlib.suppress(ProcessLookupError):
                    fd = os.pidfd_open(pid)
                    fds.append(fd)
                    done = loop.create_future()
                    exited.append(done)
                    loop.add_reader(fd, _settle, done)
            all_exited = asyncio.gather(*exited)
            waits: list[asyncio.Future[Any]] = [all_exited]
            if until is not None:
                waits.append(until)
            remaining = deadline - loop.time()
            if remaining <= 0:
                return False
            await asyncio.wait(waits, timeout=remaining, return_when=asyncio.FIRST_COMPLETED)
            if not all(f.done() for f in exited):
                return False
        finally:
            all_exited.cancel()
            for fd in fds:
                loop.remove_reader(fd)
                os.close(fd)
    return True


def _settle(done: asyncio.Future[None]) -> None:
    if not done.done():
        done.set_result(None)
