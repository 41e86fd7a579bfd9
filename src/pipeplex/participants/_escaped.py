"""Processes a member started that left its process group, found by their environment.

A daemon that calls ``setsid``, or a job of an interactive shell (job control gives each
job its own group), is out of the member's process group: stopping the group misses it.
Every member runs with ``PIPEPLEX_RUN_ID`` (the run's token) and ``PIPEPLEX_NAME`` in its
environment, and what it starts inherits both unless it drops them (``env -i``). One pass
over ``/proc`` finds them: before a restart (what the old run left must not hold the new
run's port) and when the cast ends (stopped the usual way, announced, rather than only by
the guardian as pipeplex exits). Each is then held through a pidfd, and its environment
read again once the pidfd holds it: a pid reused meanwhile is never signalled. A pass
holds at most ``limit`` pidfds (pipeplex's descriptors are for its members first).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Collection

__all__ = ("find_escaped",)


def find_escaped(run_id: str, names: Collection[str], limit: int = 256
                 ) -> tuple[dict[str, list[tuple[int, int]]], bool]:
    """Per member name, the live processes that carry ``run_id`` and that name in their
    environment, each as its pid and a pidfd (which the caller closes); and whether that
    is all of them (False: ``limit`` was reached, look again once these are gone)."""
    token = f"PIPEPLEX_RUN_ID={run_id}".encode()
    wanted = {f"PIPEPLEX_NAME={name}".encode(): name for name in names}
    me = os.getpid()
    found: dict[str, list[tuple[int, int]]] = {}
    held = 0
    with os.scandir("/proc") as entries:  # (closed also when the limit ends the pass)
        for entry in entries:
            if not entry.name.isdigit() or int(entry.name) == me:
                continue
            pid = int(entry.name)
            if _name_in(pid, token, wanted) is None:
                continue
            if held == limit:
                return found, False
            try:
                fd = os.pidfd_open(pid)
            except OSError:  # gone meanwhile (or no descriptor left)
                continue
            # Read again once the pidfd holds it: the pid may have gone to a stranger.
            name = _name_in(pid, token, wanted)
            if name is None or not _alive(pid):
                os.close(fd)
                continue
            found.setdefault(name, []).append((pid, fd))
            held += 1
    return found, True


def _name_in(pid: int, token: bytes, wanted: dict[bytes, str]) -> str | None:
    """The member name that ``pid``'s environment carries with ``token``, if any."""
    try:
        with open(f"/proc/{pid}/environ", "rb") as f:
            environ = f.read()
    except OSError:  # gone, or not ours to read
        return None
    if token not in environ:  # (most processes: no split needed)
        return None
    variables = environ.split(b"\0")
    if token not in variables:
        return None
    return next((wanted[v] for v in variables if v in wanted), None)


def _alive(pid: int) -> bool:
    """Not a zombie (its environment is then empty anyway, but say so)."""
    with contextlib.suppress(OSError):
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read()
        return stat[stat.rindex(b")") + 2:].split()[0] not in (b"Z", b"X")
    return False
