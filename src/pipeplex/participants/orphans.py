"""As a container's first process (PID 1), pipeplex is every orphan's parent: it reaps them.

The kernel gives each process whose parent died to PID 1, which must wait for it, or it
stays a zombie until the container ends. pipeplex waits for its own members through
pidfds; as PID 1 it also waits, on every SIGCHLD, for each other child that has exited
(a daemon a member double-forked, a grandchild whose parent died), as ``init`` or ``tini``
would.
"""

from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import Callable, Collection

__all__ = ("OrphanReaper", "children")


def children(pid: int | str = "self") -> list[int]:
    """The children of ``pid`` (zombies included), from /proc."""
    found: list[int] = []
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return found
    for task in tasks:
        try:
            with open(f"/proc/{pid}/task/{task}/children") as f:
                found += [int(child) for child in f.read().split()]
        except OSError:
            pass
    return found


class OrphanReaper:
    """Reaps this process's children that are not its own: ``ours()`` names those (the
    members, the guardian), which their owners wait for."""

    def __init__(self, loop: asyncio.AbstractEventLoop, ours: Callable[[], Collection[int]]):
        self._loop = loop
        self._ours = ours
        loop.add_signal_handler(signal.SIGCHLD, self.reap)

    def reap(self) -> int:
        """Reap every child that has exited and is not ours; how many there were."""
        ours = set(self._ours())
        reaped = 0
        for pid in children():
            if pid in ours:
                continue
            try:
                done, _ = os.waitpid(pid, os.WNOHANG)
            except ChildProcessError:
                continue
            reaped += done == pid
        return reaped

    def close(self) -> None:
        self._loop.remove_signal_handler(signal.SIGCHLD)
        self.reap()
