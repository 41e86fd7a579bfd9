"""The run folder's ways in for one engine: ``NAME.in`` per member, ``all.in``, ``control.sock``.

``pipeplex run`` and the Python API's ``Plex(run_dir=...)`` share it: the first knows its
members up front, the second adds each as it is spawned, so a FIFO is added per member
(before the member starts, so nothing written to it is lost).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import os
import signal
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TYPE_CHECKING

from .._events import Note
from ..errors import RunDirError
from .control import ControlServer
from .fifo import FifoChannel
from .router import ALL, Router
from .rundir import RunDir

if TYPE_CHECKING:
    from ..engine.engine import Engine
    from ..participants.guardian import Guardian

__all__ = ("FolderInputs",)


class FolderInputs:
    """Opens the run folder at ``path`` for ``engine`` with ``all.in`` and the control socket
    (``given_as``: how the caller gives another folder, for the messages: ``--run-dir``,
    ``run_dir=``), recording the run's ``guardian`` there for the next run, should this one
    die (every guardian process that takes over too, until :meth:`close`).

    Then :meth:`add` each member, run :meth:`serve` as a task, call :meth:`finish` once the
    run ended, and :meth:`close` (also after a failure).

    Raises:
        RunDirError: the folder cannot be used; nothing is left open.
    """

    def __init__(self, engine: Engine, path: Path | str, *, given_as: str,
                 guardian: Guardian | None = None) -> None:
        self._engine = engine
        self._fifos: dict[str, FifoChannel] = {}
        self._control: ControlServer | None = None
        self._closed = False
        self._guardian = guardian
        # Before any member starts: what the next run finds that this one left, it finds
        # with this run's guardian, which it waits for only while that guardian lives.
        self.run_dir = RunDir.open(path, engine.stopper.outside.run_id, given_as=given_as,
                                   guardian=guardian.identity if guardian else None)
        self._stale_run_id: str | None = None
        try:
            if guardian is not None:
                guardian.on_started = self._record_guardian
            if self.run_dir.stale_pid is not None:
                engine.bus.publish(Note(f"cleaned up after an earlier run (pid "
                                        f"{self.run_dir.stale_pid}) that ended without "
                                        "removing its pipes"))
                self._stale_run_id = self.run_dir.stale_run_id
            self.add(ALL)
            self._control = ControlServer(engine, self.run_dir)
            engine.router.before_close = self._take_waiting
        except BaseException:
            self.close()
            raise

    def _record_guardian(self, guardian: tuple[int, int] | None) -> None:
        """A guardian started in place of one gone: recorded for the next run, should this
        one be killed; if that cannot be done (its file system is full), said, and the run
        goes on."""
        try:
            self.run_dir.record_guardian(guardian)
        except RunDirError as exc:
            self._engine.bus.publish(Note(str(exc), level="warning"))

    async def name_what_was_left(self) -> None:
        """Say what the earlier run found here (killed, see :class:`RunDir`) left running,
        once its guardian, if it lives, has had its time to stop it: before the members
        start (a port still taken is why a start fails); the loop goes on meanwhile."""
        run_id, self._stale_run_id = self._stale_run_id, None
        if run_id is not None:
            await _left_running(self._engine, run_id, self.run_dir.stale_guardian)

    def __repr__(self) -> str:
        return f"<FolderInputs {str(self.run_dir.path)!r} fifos={len(self._fifos)}>"

    @property
    def path(self) -> Path:
        return self.run_dir.path

    def add(self, name: str) -> None:
        """Create and open ``NAME.in`` for member ``name`` (once; it stays for a restart)."""
        if name in self._fifos:
            return
        engine = self._engine
        router = engine.router
        fifo = FifoChannel(self.run_dir, f"{name}.in", functools.partial(_send, router, name),
                           engine.bus, on_crash=engine.crash,
                           full=functools.partial(_full, router, name))
        fifo.open()
        self._fifos[name] = fifo

    def _take_waiting(self, target: str) -> None:
        """What the pipes that feed ``target`` hold, handed over before its stdin closes."""
        fifos = (self._fifos.values() if target == ALL else
                 [f for n, f in self._fifos.items() if n in (target, ALL)])
        for fifo in list(fifos):
            fifo.take_waiting()

    def remove(self, name: str) -> None:
        """Close and remove ``NAME.in`` of member ``name``, which has left the cast."""
        fifo = self._fifos.pop(name, None)
        if fifo is not None:
            try:  # the file before the read end, as in _give_up_folder
                self.run_dir.remove(f"{name}.in")
            finally:
                fifo.close()

    async def serve(self) -> None:
        """Serve the control socket until cancelled."""
        assert self._control is not None
        await self._control.serve()

    async def finish(self, status: int) -> None:
        """The run has ended with ``status``: give the folder up, then tell attached clients
        and stop accepting.

        In that order, so that whoever hears of the end (``pipeplex stop`` returning) finds
        the folder free: a next run may take it at once. The connections already made go on
        without the socket's file.
        """
        self._give_up_folder()
        if self._control is not None:
            await self._control.finish(status)

    def close(self) -> None:
        """Close the pipes and the socket and remove them (idempotent)."""
        if self._closed:
            return
        self._closed = True
        if self._guardian is not None:
            self._guardian.on_started = None
        self._engine.router.before_close = lambda target: None
        self._give_up_folder()
        if self._control is not None:
            self._control.close()
            self._control = None

    def _give_up_folder(self) -> None:
        # The pipes' files go before their read ends: a writer opening NAME.in in between
        # would wait for a reader for ever (its folder gone, nobody could free it).
        self.run_dir.close()
        for fifo in self._fifos.values():
            fifo.close()
        self._fifos.clear()


def _send(router: Router, target: str, data: bytes) -> None:
    router.send(target, data)


def _full(router: Router, target: str, resume: Callable[[], None]) -> bool:
    """Whether a member ``target`` names has as much input waiting as it may (``all.in``
    waits for the slowest); ``resume`` is then called once that one has room."""
    for member in router.resolve(target):
        if member.input_full:
            member.stdin.when_input_room(resume)
            return True
    return False


GUARDIAN_AT_WORK = 2.0
"""Seconds a dead run's guardian may still take to stop what that run left (SIGTERM, 0.5 s,
then SIGKILL until nothing is left: a second at most); no more than it lives."""
SECOND_LOOK = 0.2
"""Seconds after which what a dead run left is looked at again, its guardian gone too:
what has ended by then (a member's passing child) is not named."""


async def _left_running(engine: Engine, run_id: str, guardian: tuple[int, int] | None) -> None:
    """What the dead run left running, once its guardian (``guardian``: its pid and start
    time, None if that run did not record it), if it lives, has had its time to stop it (a
    run started right after a SIGKILL finds the old members still going). What outlives
    that was left by a guardian that could not act: killed with its run (an OOM kill,
    ``kill -9`` of a list of pids), or stopped. Said, with how to stop it, not stopped: it
    was not this run's (a member's port still taken is why a start fails)."""
    from ..participants._escaped import (
        OutOfDescriptors,
        Unsettled,
        carrying,
        hold,
        look_through,
        proc_pids,
    )

    left: list[tuple[int, str]] = []

    def look(pids: list[int], before: Unsettled | None) -> Unsettled:
        part, in_exec = carrying(run_id, pids, before=before)
        left.extend(part)
        return in_exec

    try:
        await look_through(proc_pids(), look)
    except OutOfDescriptors:
        return
    if not left:
        return
    try:  # (a pidfd once the start time is read again: never a stranger's reused pid)
        at_work, _ = hold([guardian] if guardian is not None else [], 1)
    except OutOfDescriptors:  # (whether it lives is not known: as if it were not recorded)
        at_work, guardian = [], None
    try:
        # (One gone stopped what it could: a second look only, so that a process that
        # ended meanwhile, a member's passing child, is not named: its pid may be reused.)
        still = await _outliving(
            (pid for pid, _ in left), GUARDIAN_AT_WORK if guardian is None or at_work
            else SECOND_LOOK, until=at_work[0][1] if at_work else None)
        left = [(pid, name) for pid, name in left if pid in still]
    finally:
        for _, fd in at_work:
            os.close(fd)
    if left:
        said = ", ".join(f"{pid}{f' ({name})' if name else ''}" for pid, name in left[:10])
        more = f" and {len(left) - 10} more" if len(left) > 10 else ""
        them = "them" if len(left) != 1 else "it"
        why = (f"its guardian (pid {guardian[0]}), which would have stopped {them}, is gone "
               "too" if guardian is not None and not at_work else
               f"its guardian, which would have stopped {them}, was killed with it or is "
               "stopped")
        engine.bus.publish(Note(
            f"that run left {len(left)} process{'es' if len(left) != 1 else ''} running: "
            f"{said}{more} ({why}); {_how_to_stop([pid for pid, _ in left])}",
            level="warning"))


def _how_to_stop(pids: list[int]) -> str:
    """The command that stops ``pids``: SIGTERM, but for those that ignore it (a member
    that trapped it, and what it started since)."""
    from ..participants._proc import signal_ignored

    deaf = [pid for pid in pids if signal_ignored(pid, signal.SIGTERM)]
    hearing = [pid for pid in pids if pid not in deaf]
    them = "them" if len(hearing) != 1 else "it"
    said = [f"kill -TERM {' '.join(map(str, hearing))} stops {them}"] if hearing else []
    if deaf:
        which = "they ignore" if len(deaf) != 1 else "it ignores"
        said.append(f"kill -KILL {' '.join(map(str, deaf))} ({which} SIGTERM)")
    return "; ".join(said)


async def _outliving(pids: Iterable[int], seconds: float = GUARDIAN_AT_WORK,
                     until: int | None = None) -> set[int]:
    """Those of ``pids`` still running after ``seconds`` (or at once, should none end), or
    once the process behind ``until`` (a pidfd: the guardian's) has exited, whichever comes
    first: a guardian exits once it has stopped what it could."""
    loop = asyncio.get_running_loop()
    watched: dict[int, int] = {}
    running: dict[int, int] = {}
    none_left = loop.create_future()
    readers: set[int] = set()

    def ended(fd: int) -> None:
        loop.remove_reader(fd)
        readers.discard(fd)
        running.pop(fd, None)
        if (not running or fd == until) and not none_left.done():
            none_left.set_result(None)

    try:
        for pid in pids:
            try:
                watched[os.pidfd_open(pid)] = pid
            except ProcessLookupError:  # (gone already)
                pass
            except OSError:  # (out of descriptors: taken as running)
                return set(watched.values()) | {pid} | set(pids)
        running.update(watched)
        if running:
            for fd in (*watched, *(() if until is None else (until,))):
                loop.add_reader(fd, ended, fd)
                readers.add(fd)
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(seconds):
                    await none_left
        return set(running.values())
    finally:
        for fd in readers:
            loop.remove_reader(fd)
        for fd in watched:
            os.close(fd)
