"""What pipeplex tells its guardian of the cast, line by line, and keeps to tell again.

Apart from :mod:`.guardian`, which keeps a guardian process alive and fed (its pipe that
never blocks pipeplex, its death seen at once, a replacement, the close): here is what
goes down that pipe, and why each line lets the guardian find what would outlive a killed
pipeplex. The first net is the process groups: each one created (``+PGID``) and each one
gone (``-PGID``). What a guardian was told and not told gone, a replacement is told again.

Three more nets, used at EOF. A spawn's child exists while pipeplex waits for its exec: a
SIGKILL then leaves it unregistered. So before each spawn pipeplex tells the streams it gives
the member, as ``/proc`` names them with their mount, and the time
(``?TICKS MNT:pipe:[INO] MNT:/dev/pts/N ...``); the guardian signals the processes holding
one of them that started since, and their group when they lead one. It looks once, as
pipeplex ended, then follows them by pid and start time: a pty's number, freed, may go to a
stranger's terminal (ours reads ``/dev/pts/N (deleted)`` by then). ``!`` forgets a spawn
that made no child. The member's output pipes are told as the spawn is registered
(``>TICKS MNT:pipe:[INO] ...``) and taken back as pipeplex lets go of them (``<...``):
what holds one at pipeplex's death, started since, is the member's own even after its
group was let go (a ``setsid env -i`` child that a shell left holding them, orphaned before
pipeplex told of it); not after a clean end (``.``). And a member's child may leave its
process group (``setsid``): every member runs with ``PIPEPLEX_RUN_ID`` in its environment,
which its children inherit, and the guardian signals every process carrying that id. A
daemon may also write over its environment (redis and nginx do, to set their process
titles): where pipeplex is its members' subreaper, the orphans it adopts are told
(``@PID START``, ``~PID`` once reaped), and stopped with their groups. Nor can pipeplex
tell of those that come while it is stopped (SIGSTOP, Ctrl-Z, a debugger): so it says it
is the subreaper, with the children it had before (``*PID:START ...``), and the guardian
takes its other children for the cast's while it finds it stopped, looking once a second.

A member with a full terminal (``pty = true``) has it as its controlling terminal, which
pipeplex's death hangs up as the kernel closes the master: its shell dies of that SIGHUP
before the guardian looks below it, and what it started in a session of its own, without
the run's id, is lost. So the master itself goes to the guardian, on a socket beside the
pipe (``^PGID``, the descriptor passed with the line), and it holds it until the group is
let go (``_PGID``, on that socket too: the two streams are not read in step, so each
master's news keeps to one).

A console that makes pipeplex's terminal raw tells it (``TDEV SETTINGS NAME``, ``T`` once
set back): should pipeplex die first, the guardian sets the terminal back, rather than
leave the shell after it reading keys raw and echoing none.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterable, Mapping
from typing import Any

__all__ = ("GuardianNews",)

_CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
"""The unit of a process's start time in ``/proc/PID/stat``."""

_MOUNT_IDS: dict[int, str] = {}
"""Per device, the id of its mount (pipefs, a devpts): read once, as a spawn is told."""


def _mount_id(fd: int) -> str:
    device = os.fstat(fd).st_dev
    if device not in _MOUNT_IDS:
        with open(f"/proc/self/fdinfo/{fd}") as f:
            _MOUNT_IDS[device] = next(line.split()[1] for line in f if line.startswith("mnt_id:"))
    return _MOUNT_IDS[device]


def _named(fd: int) -> str | None:
    """Our descriptor ``fd`` as the guardian finds it in another process's ``/proc``: its
    mount and what ``/proc`` names it (``12:pipe:[4242]``); None without ``/proc``, where
    the guardian could not look either."""
    try:
        return f"{_mount_id(fd)}:{os.readlink(f'/proc/self/fd/{fd}')}"
    except (OSError, StopIteration):
        return None


class GuardianNews:
    """The cast as the guardian is told it: the base of :class:`~.guardian.Guardian`, which
    writes each line down its pipe (:meth:`_say`)."""

    def __init__(self) -> None:
        self._groups: set[int] = set()
        self._adopted: dict[int, int] = {}
        """What it was told and has not been told is gone: what a new guardian, started in
        place of one that was killed, is told again."""
        self._spawning = ""
        """The line of a spawn told and not yet registered (told again to a new one)."""
        self._terminal = ""
        """The line of a terminal to set back at pipeplex's death (told again to a new one)."""
        self._adopting = ""
        """The line that says pipeplex is the cast's subreaper (told again to a new one)."""
        self._spawned_at = 0
        """When the last spawn was told, in clock ticks after boot."""
        self._outputs: dict[int, tuple[str, int]] = {}
        """Members' output pipes that pipeplex still reads, by its read end: what holds one
        at pipeplex's death is a member's own (see :meth:`register`); with when each was
        spawned, as told."""
        self._masters: dict[int, int] = {}
        """Per group with a full terminal, a copy of its master (pipeplex's own may be
        closed before the group is let go), passed again to a new guardian."""

    def _say(self, line: str) -> None:
        """Tell the guardian ``line`` (one line or more), at once."""
        raise NotImplementedError

    def _hand(self, line: str, fd: int | None = None) -> None:
        """Tell the guardian ``line`` (one line) on its socket for terminals' masters,
        passing a copy of ``fd`` with it."""
        raise NotImplementedError

    def _masters_so_far(self) -> None:
        """Hand a guardian started in place of one that was killed the masters it holds."""
        for pgid, master in self._masters.items():
            self._hand(f"^{pgid}\n", master)

    def _cast_so_far(self) -> str:
        """What a guardian started in place of one that was killed is told after the run's
        token: the groups, adopted orphans and output pipes not told gone, and a spawn or
        a raw terminal under way."""
        return "".join([*(f"+{pgid}\n" for pgid in self._groups),
                        *(f"@{pid} {when}\n" for pid, when in self._adopted.items()),
                        *(f">{when} {told}\n" for told, when in self._outputs.values()),
                        self._spawning, self._terminal, self._adopting])

    def spawning(self, streams: Iterable[int]) -> None:
        """A member is about to be spawned with ``streams`` (its stdin, stdout, stderr): if
        pipeplex dies before :meth:`register` (while it waits for the child's exec), the
        guardian finds the child by them (as ``/proc`` names them, and their mount), started
        since now. Each must be the child's own (a pipe or pty made for it): a process
        started since then with any of them is taken for the child, so ``/dev/null`` here
        would name strangers."""
        told = [named for fd in streams if (named := _named(fd)) is not None]
        if told:
            now = self._spawned_at = int(time.clock_gettime(time.CLOCK_BOOTTIME) * _CLOCK_TICKS)
            self._spawning = f"?{now} {' '.join(told)}\n"
            self._say(self._spawning)

    def spawn_failed(self) -> None:
        """The spawn announced by :meth:`spawning` did not happen: forget its stdin (a pty's
        number, freed, may go to a stranger's terminal)."""
        self._spawning = ""
        self._say("!\n")

    def terminal(self, fd: int, settings: list[Any] | None) -> None:
        """The terminal ``fd`` was put in raw mode (a console): should pipeplex die without
        setting it back, the guardian sets it to ``settings`` (as ``termios.tcgetattr``
        gives them) and turns off what a console turns on (bracketed paste, a hidden
        cursor), rather than leave the shell after it typing blind. ``None``: pipeplex set
        it back itself. (The guardian opens it by its name, checked to be that device.)"""
        if settings is None:
            line = "T\n" if self._terminal else ""
        else:
            try:
                name, device = os.ttyname(fd), os.fstat(fd).st_rdev
            except OSError:
                return
            *flags, chars = settings
            raw = bytes(c if isinstance(c, int) else c[0] for c in chars)
            line = f"T{device} {' '.join(map(str, flags))} {raw.hex()} {name}\n"
        self._terminal = "" if settings is None else line
        if line:
            self._say(line)

    def adopting(self, before: Mapping[int, int]) -> None:
        """pipeplex is the cast's subreaper from now on, with ``before`` (pid: start time)
        its children from before the cast: while pipeplex is stopped, and cannot tell of the
        orphans that come to it, the guardian takes its other children for those."""
        self._adopting = f"*{' '.join(f'{pid}:{when}' for pid, when in before.items())}\n"
        self._say(self._adopting)

    def adopted(self, pid: int, started: int) -> None:
        """An orphan came to pipeplex, its subreaper (a daemon a member double-forked): it
        is stopped too if pipeplex dies, known by its start time (in clock ticks after boot:
        a pid, freed, may go to a stranger), even with its environment written over."""
        self._adopted[pid] = started
        self._say(f"@{pid} {started}\n")

    def reaped(self, pid: int) -> None:
        """An orphan ended (one told, or one the guardian found itself): its pid is free."""
        self._adopted.pop(pid, None)
        self._say(f"~{pid}\n")

    def register(self, pgid: int, outputs: Iterable[int] = (),
                 master: int | None = None) -> None:
        """A process group created (the spawn announced by :meth:`spawning` done).
        ``outputs``: pipeplex's read ends of the member's output pipes. Until
        :meth:`output_ended`, whatever holds one of those pipes at pipeplex's death is the
        member's: a child that left its group and dropped its environment (``setsid env
        -i``), orphaned before pipeplex told of its adoption (or under the Python API,
        with no subreaper to adopt it), still holds them when a shell started it. A pipe
        pipeplex reads is one no other pipe can be (its number is taken while it lives).
        ``master``: the master of the member's full terminal, which the guardian holds
        until the group is let go (see the module's docstring)."""
        self._groups.add(pgid)
        self._spawning = ""
        told = []
        for fd in outputs:
            named = _named(fd)
            if named is not None and ":pipe:" in named:  # (not a pty: its number goes to strangers)
                told.append(named)
                self._outputs[fd] = (named, self._spawned_at)
        if master is not None:  # (first: the line below wakes the guardian)
            self._forget_master(pgid)
            self._masters[pgid] = os.dup(master)
            self._hand(f"^{pgid}\n", self._masters[pgid])
        self._say(f"+{pgid}\n" + (f">{self._spawned_at} {' '.join(told)}\n" if told else ""))

    def _forget_master(self, pgid: int) -> bool:
        held = self._masters.pop(pgid, None)
        if held is not None:
            os.close(held)
        return held is not None

    def output_ended(self, fd: int) -> None:
        """pipeplex lets go of that output (read to its end, or no longer read): its pipe may
        be gone soon, and its number go to another."""
        told = self._outputs.pop(fd, None)
        if told is not None:
            self._say(f"<{told[0]}\n")

    def unregister(self, pgid: int) -> None:
        self._groups.discard(pgid)
        if self._forget_master(pgid):  # (first: the line below wakes the guardian)
            self._hand(f"_{pgid}\n")
        self._say(f"-{pgid}\n")
