"""Processes a member started that left its process group, found by their environment.

A daemon that calls ``setsid``, or a job of an interactive shell (job control gives each
job its own group), is out of the member's process group: stopping the group misses it.
Every member runs with ``PIPEPLEX_RUN_ID`` (the run's token) and ``PIPEPLEX_NAME`` in its
environment, and what it starts inherits both unless it drops them (``env -i``). A pass
over ``/proc`` finds them: before a restart (what the old run left must not hold the new
run's port) and when the cast ends (stopped the usual way, announced, rather than only by
the guardian as pipeplex exits). Each is reached through a pidfd, and its environment
read again once the pidfd holds it: a pid reused meanwhile is never signalled.
"""

from __future__ import annotations

import contextlib
import os
import signal
from collections.abc import Collection, Iterable, Iterator

__all__ = ("hold_escaped", "signal_escaped")


def signal_escaped(run_id: str, names: Collection[str], signals: Iterable[int]
                   ) -> tuple[dict[str, list[int]], dict[str, int]]:
    """Send ``signals`` to every such process of ``names``, each through a pidfd held only
    meanwhile (so there is no limit on how many). Per name: the pids reached, and how many
    could not be (no descriptor left)."""
    signals = tuple(signals)
    reached: dict[str, list[int]] = {}
    missed: dict[str, int] = {}
    for name, pid in _candidates(run_id, names):
        try:
            held = _hold(pid, run_id, names)
        except OSError:
            missed[name] = missed.get(name, 0) + 1
            continue
        if held is None:
            continue
        name, fd = held
        try:
            for sig in signals:
                with contextlib.suppress(ProcessLookupError):  # gone already
                    signal.pidfd_send_signal(fd, sig)
        finally:
            os.close(fd)
        reached.setdefault(name, []).append(pid)
    return reached, missed


def hold_escaped(run_id: str, name: str, limit: int) -> tuple[list[int], bool]:
    """Pidfds (the caller closes them) of at most ``limit`` such processes of ``name``, to
    wait for; and whether that is all of them (False: look again once these are gone)."""
    fds: list[int] = []
    for _, pid in _candidates(run_id, [name]):
        if len(fds) == limit:
            return fds, False
        try:
            held = _hold(pid, run_id, [name])
        except OSError:  # no descriptor left: these are all that can be watched now
            return fds, False
        if held is not None:
            fds.append(held[1])
    return fds, True


def _candidates(run_id: str, names: Collection[str]) -> Iterator[tuple[str, int]]:
    """(name, pid) of each process whose environment carries ``run_id`` and one of
    ``names``, as ``/proc`` lists them now."""
    token, wanted = _markers(run_id, names)
    me = os.getpid()
    with os.scandir("/proc") as entries:  # (closed also when the caller stops early)
        for entry in entries:
            if entry.name.isdigit() and int(entry.name) != me:
                name = _name_in(int(entry.name), token, wanted)
                if name is not None:
                    yield name, int(entry.name)


def _hold(pid: int, run_id: str, names: Collection[str]) -> tuple[str, int] | None:
    """(name, pidfd) of ``pid`` if it is still ours once the pidfd holds it; None if it is
    gone or was a stranger by then.

    Raises:
        OSError: no pidfd could be opened (out of descriptors).
    """
    try:
        fd = os.pidfd_open(pid)
    except ProcessLookupError:
        return None
    token, wanted = _markers(run_id, names)
    name = _name_in(pid, token, wanted)  # the pid may have gone to a stranger meanwhile
    if name is None or not _alive(pid):
        os.close(fd)
        return None
    return name, fd


def _markers(run_id: str, names: Collection[str]) -> tuple[bytes, dict[bytes, str]]:
    token = f"PIPEPLEX_RUN_ID={run_id}".encode()
    return token, {f"PIPEPLEX_NAME={name}".encode(): name for name in names}


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
