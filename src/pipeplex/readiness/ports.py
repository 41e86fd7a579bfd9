"""Waiting for a member's ``ready_port``, and telling whose listeners are on a port.

A port is waited for by connecting to it on both loopback addresses; who listens there is
read from /proc/net and each process's descriptors (no privilege needed), so that a port
another process held before the member started proves nothing of the member's.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import Iterable, Iterator

from ..participants._proc import proc_is_ours

__all__ = ("LOOPBACK", "LOOPBACK_SAID", "PORT_POLL", "holders", "listeners", "port_accepts",
           "ports_of", "sockets_of")

PORT_POLL = 0.05

LOOPBACK = ("127.0.0.1", "::1")
"""Where a port is waited for: a server told to listen on ``localhost`` takes ``::1`` on
many systems (node from 17 on), others take 127.0.0.1."""
LOOPBACK_SAID = "127.0.0.1 or ::1"


def listeners(port: int) -> frozenset[int]:
    """The TCP sockets listening on ``port`` (on any address) now, by inode, whoever holds
    them: from /proc/net, no privilege needed."""
    return frozenset(inode for at, inode in _listening() if at == port)


def ports_of(pids: Iterable[int]) -> list[int]:
    """The TCP ports that processes ``pids`` listen on (their sockets, by inode, in
    /proc/net): where a member that never opened its ``ready_port`` listens instead."""
    inodes = sockets_of(pids)
    return sorted({port for port, inode in _listening() if inode in inodes})


def sockets_of(pids: Iterable[int]) -> set[int]:
    """The inodes of the sockets that processes ``pids`` hold (those still there, and
    ours to read; none where /proc is not this PID namespace's)."""
    inodes: set[int] = set()
    for pid in pids if proc_is_ours() else ():
        try:
            fds = os.listdir(f"/proc/{pid}/fd")
        except OSError:  # (gone, or not ours to read)
            continue
        for fd in fds:
            with contextlib.suppress(OSError, ValueError):
                target = os.readlink(f"/proc/{pid}/fd/{fd}")
                if target.startswith("socket:["):
                    inodes.add(int(target[8:-1]))
    return inodes


def holders(inodes: frozenset[int], most: int = 3) -> list[tuple[int, str]]:
    """Who holds the sockets ``inodes``: at most ``most`` of the processes this user may
    look into, each as its pid and command name (a pass over /proc: for a message, not a
    loop)."""
    found: list[tuple[int, str]] = []
    if not inodes or not proc_is_ours():
        return found
    try:
        entries = os.listdir("/proc")
    except OSError:  # (out of descriptors: the message goes without them)
        return found
    for entry in entries:
        if not entry.isdigit() or not sockets_of([int(entry)]) & inodes:
            continue
        try:
            with open(f"/proc/{entry}/comm", encoding="utf-8", errors="replace") as comm:
                found.append((int(entry), comm.read().strip()))
        except OSError:  # (gone since)
            continue
        if len(found) == most:
            break
    return found


def _listening() -> Iterator[tuple[int, int]]:
    """Every listening TCP socket (IPv4 and IPv6) as its port and inode, from /proc/net."""
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(table) as f:
                for line in f:
                    # "sl local_address rem_address st ... inode": LISTEN is st 0A.
                    fields = line.split()
                    if len(fields) > 9 and fields[3] == "0A" and fields[9].isdigit():
                        yield int(fields[1].rpartition(":")[2], 16), int(fields[9])
        except (OSError, ValueError):  # (no IPv6 here; the header's "local_address")
            continue


async def port_accepts(port: int, *, taken: frozenset[int] = frozenset()) -> None:
    """Return once a TCP connection to ``port`` on either loopback address succeeds (poll
    until cancelled). ``taken``: the listeners that held the port before the member started
    (a leftover server, another member): until one more listens there, a connection proves
    nothing of the member's."""
    while True:
        if taken and not listeners(port) - taken:
            await asyncio.sleep(PORT_POLL)
            continue
        for host in LOOPBACK:
            try:
                _, writer = await asyncio.open_connection(host, port)
            except OSError:  # (refused; or no IPv6 here)
                continue
            writer.close()
            try:
                await writer.wait_closed()
            except OSError:
                pass
            return
        await asyncio.sleep(PORT_POLL)
