"""Stopping what the cast's members started outside their process groups.

A member's stop (:class:`~.stopping.Stopper`) reaches its process group; a daemon's
``setsid``, an interactive shell's jobs, leave it. Those are found by the environment
pipeplex gave the member (``PIPEPLEX_RUN_ID``, through a look over ``/proc``) and get the
same escalation with their member's stop: its signal (SIGTERM, or its ``stop_signal``: they
are parts of the same program) to each and to the groups they lead,
the grace, SIGKILL to what is left, each step announced. At the end of the cast, what it
orphaned with neither group nor environment (``setsid env -i``) comes to pipeplex as its
subreaper, and is stopped so too (see ``participants.orphans``). A process is followed by
its pid and start time, so that a pid taken again by a stranger is never signalled: how it
is signalled and waited for so is ``_stopping_reach.py``'s.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
from collections.abc import Callable, Collection, Iterable, Sequence
from typing import NamedTuple

from .._bus import Bus
from .._events import Level, Note
from .._seconds import seconds_said
from .._signals import signal_name
from ..participants import Process, _escaped
from ..participants._escaped import Escaped, OutOfDescriptors
from ..participants._group import live_in_groups, owner, wait_groups_gone
from ..participants._proc import START_TIME, exited, stat_fields
from ._stopping_reach import (
    LEFTOVER_KILL_WAIT,
    Reach,
    it_or_them,
    killpg_all,
    processes_said,
)

__all__ = ("OutsideStopper",)

_Escalation = tuple[Process, list[Escaped], list[int], asyncio.Future[bool]]
"""A member, the processes it left outside its group that one stop escalates, the groups
they lead, and whether that escalation ran to its end (:meth:`OutsideStopper._take`)."""

STRAY_ROUNDS = 3
"""Looks for the cast's orphans at the end: each that dies may orphan processes of its own
(a daemon's workers), which come to us in turn; a process forking as fast as it is
killed is not chased for ever."""
CHASE_FOR = 1.0
"""Seconds the cast's orphans left after ``STRAY_ROUNDS`` are frozen and killed over and
over (see :meth:`OutsideStopper.chase_strays`)."""
CHASE_QUIET = 0.05
"""Seconds of looks that find none, after which none is left: one look may miss a process
listed an instant before it forked anew."""
LOOK_AGAIN_AFTER = 0.002
"""Seconds between two looks for the cast's orphans while one ends as it is read (see
:class:`_Caught`): the reaper, which runs in the loop, reaps it meanwhile."""


class _Caught(NamedTuple):
    """What one look for the cast's orphans found and signalled."""

    reached: list[Escaped]
    """Those signalled (held from then on: not to be reaped)."""
    groups: list[int]
    """Their process groups, signalled too."""
    ended: bool
    """Whether a child it listed had ended (or was reaped) by the time it was read. Such a
    child's children come to pipeplex as it ends, not before: a look in that instant sees
    neither them nor it, so the next look, once it is reaped, is the one to believe (an
    orphan that forks anew as fast as it can is often caught so)."""


class OutsideStopper:
    """Stops what members started outside their process groups, and the cast's orphans
    (see the module's docstring); a member's :class:`~.stopping.Stopper` holds one."""

    def __init__(self, bus: Bus, *, grace: float, run_id: str | None = None,
                 checks: Collection[int] = ()) -> None:
        self.bus = bus
        self.grace = grace
        """Seconds from SIGTERM to SIGKILL, unless a member's ``stop_timeout`` says."""
        self.run_id = run_id
        """The run's PIPEPLEX_RUN_ID, by which what members started outside their process
        groups is found (None: it is not looked for)."""
        self.checks = checks
        """The runs of members' ``ready_cmd`` and ``stop_cmd`` under way, each leading its
        group (the caller's, kept up to date): they carry their member's environment, yet
        are not processes it left (they end with their wait)."""
        self._force: asyncio.Future[None] | None = None
        self._reach = Reach(bus)
        """How the processes it follows are signalled and waited for."""
        self._escaping: dict[Escaped, asyncio.Future[bool]] = {}
        """Processes left outside a group whose escalation is under way, and its end."""
        self._foreign: set[Escaped] = set()
        """The cast's orphans that run as another user, which pipeplex may not signal: said
        once, and left alone from then on."""
        self.held_strays: set[int] = set()
        """Orphans of the cast that lead groups the stop is still signalling: not to be
        reaped until then (see :meth:`stop_strays`)."""
        self._signalled_strays: set[Escaped] = set()
        """The cast's orphans the stop has signalled: their ends are its own doing."""
        self._look: asyncio.Task[dict[str, list[Escaped]] | None] | None = None
        """The cast's stop's one look through ``/proc`` for what its members started
        outside their process groups, shared by their stops (None: each stop looks for its
        own member's; the look's result is None when pipeplex ran out of descriptors)."""

    def begin(self, force: asyncio.Future[None]) -> None:
        """The stopper has begun: ``force``, once done, skips every grace left."""
        self._force = force

    @property
    def looking(self) -> bool:
        """Whether the cast's stop's one look (:meth:`look`) is under way or done."""
        return self._look is not None

    def look(self, members: Iterable[Process]) -> None:
        """The cast stops: one look through ``/proc`` for what ``members`` started outside
        their process groups, which each member's stop then shares (a look of its own for
        each would cost a pass over ``/proc`` per member)."""
        if self.run_id is not None:
            names: list[str] = []
            inside = set(self.checks)
            for member in members:
                if member.pid is not None:
                    names.append(member.name)
                    if member.running:
                        inside.add(member.pid)
            look = self._look_for(self.run_id, names, inside)
            self._look = asyncio.ensure_future(look)

    def end_look(self) -> None:
        """The cast's stop is over: a look still under way is not needed."""
        if self._look is not None:
            self._look.cancel()
            self._look = None

    async def stop_escaped(self, members: Sequence[Process],
                           found: dict[str, list[Escaped]] | None = None) -> None:
        """What ``members`` started outside their process groups (a daemon's ``setsid``, an
        interactive shell's jobs), found by their environment (or given: ``found``), gets
        the same escalation: SIGTERM to all of them at once, and to the process groups they
        lead (a daemon's workers, even those forked since the look), the grace (from then),
        SIGKILL to what is left; announced. Those signalled are followed by pid and start
        time from then on."""
        if self.run_id is None or not members:
            return
        by_name = {member.name: member for member in members}
        if found is None:
            # And by their output, for those that ended while it is still open: what
            # dropped its environment too (setsid env -i, a daemon writing over it for its
            # process title) but writes there, such as a database's busy backend. Its ends
            # are held meanwhile: a pty's number, freed, would go to a stranger's terminal.
            held = [(member.name, list(member.output.readers), member.spawned_at)
                    for member in members if not member.running
                    and member.spawned_at is not None and member.output.output_held()]
            with _escaped.holding_ends(held) as ends:
                found = await self._look_for(self.run_id, by_name, set(self.checks), ends)
        if found is None:
            self._reach.out_of_descriptors(members[0])
            return
        started = asyncio.get_running_loop().time()
        ours: list[_Escalation] = []
        theirs: list[tuple[Process, Escaped, asyncio.Future[bool]]] = []
        fresh: dict[str, list[Escaped]] = {}
        for name, processes in found.items():
            # Those another stop is escalating: wait for it (and take over if it gives up).
            theirs.extend((by_name[name], p, self._escaping[p]) for p in processes
                          if p in self._escaping)
            fresh[name] = [p for p in processes if p not in self._escaping]
        # A process that leads a group of its own (a daemon's setsid) gets its SIGTERM
        # through that group, and so do the workers it forked there, even since the look;
        # the others each their own. Once each: to many a program a second SIGTERM means
        # "now". The groups are read while their leaders live; those with a process in
        # them besides its leader are worth a word.
        split = {name: _by_group(processes) for name, processes in fresh.items()}
        crowded = _crowded([group for _, grouped in split.values() for group in grouped])
        for name, (alone, grouped) in split.items():
            member = by_name[name]
            asked = member.spec.stop_signal
            termed = self._reach.signal(member, alone, (asked, signal.SIGCONT))
            groups = list(grouped)
            killpg_all(groups, (asked, signal.SIGCONT))
            termed += [process for group in groups for process in grouped[group]]
            if termed:
                said = _led(termed, [group for group in groups if group in crowded])
                self._announce(member, f"left {processes_said(termed)} outside its process group; "
                                       f"sent {it_or_them(termed)} {signal_name(asked)}{said}",
                               "warning")
                ours.append((member, termed, groups, self._take(termed)))
        await self._escalate_all(ours, started, theirs)

    async def stop_with(self, member: Process) -> None:
        """What ``member`` started outside its process group, found by the cast's stop's
        look (or by one of its own), gets the escalation with its member's stop."""
        if self.run_id is None or member.pid is None:
            return
        group = member.pid
        look = self._look
        found: dict[str, list[Escaped]] | None = None
        if look is not None:
            try:
                found = await asyncio.shield(look)
            except asyncio.CancelledError:
                task = asyncio.current_task()
                if not look.cancelled() or (task is not None and task.cancelling()):
                    raise  # (this stop was cancelled, not only the cast's look)
                look = None  # the cast's stop ended first: a look of its own
        if look is None:
            found = await self._look_for(self.run_id, [member.name],
                                         {*self.checks, *([group] if member.running else [])})
        if found is None:
            self._reach.out_of_descriptors(member)
            return
        outside = [p for p in found.get(member.name, ()) if _outside(p, group)]
        if outside:
            await self.stop_escaped([member], {member.name: outside})

    @staticmethod
    async def _look_for(run_id: str, names: Collection[str], inside: Collection[int] = (),
                        ends: _escaped.Ends | None = None) -> dict[str, list[Escaped]] | None:
        """:func:`_escaped.find_escaped` over all of ``/proc`` (through
        :func:`_escaped.look_through`), and :func:`_escaped.find_holding` of ``ends`` in
        the first pass; None if pipeplex ran out of descriptors."""
        found: dict[str, list[Escaped]] = {}

        def look(pids: list[int], before: _escaped.Unsettled | None) -> _escaped.Unsettled:
            part, in_exec = _escaped.find_escaped(run_id, names, pids, inside, before=before)
            if ends and before is None:
                for name, processes in _escaped.find_holding(ends, pids, inside).items():
                    part.setdefault(name, [])
                    part[name] += [p for p in processes if p not in part[name]]
            for name, processes in part.items():
                known = found.setdefault(name, [])
                known += [p for p in processes if p not in known]
            return in_exec

        try:
            await _escaped.look_through(_escaped.proc_pids(), look)
        except OutOfDescriptors:
            return None
        return found

    async def stop_strays(self, strays: Callable[[], Collection[int]],
                          protected: Callable[[], Collection[int]]) -> None:
        """The cast's orphans that nothing else finds (they left their member's process
        group *and* dropped its environment: ``setsid env -i``): ``strays()`` names them
        (this process's children that are neither members, the guardian, nor its own from
        before). SIGTERM to each and to its process group (a daemon's workers, even when
        the daemon does not lead it), the grace, SIGKILL to what is left of both; announced
        for the cast. Then a look for the orphans of those; what is left after
        ``STRAY_ROUNDS`` looks is said. ``protected()``: groups never signalled so (ours,
        the members', those of the children from before). A look that finds none alive,
        but one that ended as it was read, is made again (see :class:`_Caught`).

        The orphans are not reaped until their groups have been dealt with
        (``held_strays``): an unreaped process keeps its group's id from being reused."""
        assert self._force is not None
        loop = asyncio.get_running_loop()
        rounds = 0
        ending_since: float | None = None
        while rounds < STRAY_ROUNDS:
            termed, groups, ended = self._catch_strays(strays, protected,
                                                       (signal.SIGTERM, signal.SIGCONT))
            if not termed:
                if not ended:
                    return
                # Looks that find only such ones for CHASE_QUIET are the chase's to end.
                now = loop.time()
                ending_since = now if ending_since is None else ending_since
                if now - ending_since >= CHASE_QUIET:
                    break
                await asyncio.sleep(LOOK_AGAIN_AFTER)
                continue
            rounds += 1
            ending_since = None
            try:
                self.bus.publish(Note(
                    f"the cast left {processes_said(termed)} outside its members' process groups "
                    f"and without their environment; sent {it_or_them(termed)} SIGTERM"
                    + _and_groups(termed, groups), level="warning"))
                deadline = loop.time() + self.grace
                left = await self._reach.alive_after(None, termed, deadline, self._force)
                held = await wait_groups_gone(groups, max(deadline - loop.time(), 0.0),
                                              self._force)
                killed = self._reach.signal(None, left, (signal.SIGKILL,))
                killpg_all(held, (signal.SIGKILL,))
                if killed or held:
                    self.bus.publish(Note(_strays_killed(killed, held, termed, self.grace,
                                                         forced=self._force.done()),
                                          level="warning"))
                    await self._reach.alive_after(None, killed, loop.time() + LEFTOVER_KILL_WAIT)
                    await wait_groups_gone(held, LEFTOVER_KILL_WAIT)
            finally:
                self.held_strays.difference_update(pid for pid, _ in termed)
        if await self.chase_strays(strays, protected):
            return
        left_over = [pid for pid in strays() if _escaped.start_time(pid) is not None]
        if left_over:
            self.bus.publish(Note(
                f"{processes_said([(pid, 0) for pid in left_over])} the cast left appeared as "
                f"fast as they were stopped; pipeplex leaves them after {STRAY_ROUNDS} rounds",
                level="error"))

    async def chase_strays(self, strays: Callable[[], Collection[int]],
                           protected: Callable[[], Collection[int]]) -> bool:
        """SIGSTOP, then SIGKILL, to the cast's orphans, their groups and what they forked,
        over and over until looks find none for :data:`CHASE_QUIET` (:data:`CHASE_FOR` at
        most); whether none is left. A process that forks anew in a session of its own as
        fast as it can, its parent exiting at once, is a new orphan by the time a round's
        SIGTERM and grace are over, and a SIGKILL to the one listed misses the child it has
        just forked: frozen first, it forks no more, and what it forked before is found
        below it and frozen in turn. A look that lists one that ended as it was read does
        not count as finding none (see :class:`_Caught`)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + CHASE_FOR
        seen = loop.time()
        killed: dict[Escaped, None] = {}
        try:
            while (now := loop.time()) < deadline:
                frozen, _, ended = self._catch_strays(strays, protected, (signal.SIGSTOP,))
                if frozen:
                    below = self._reach.frozen_below([pid for pid, _ in frozen])
                    self.kill_strays(strays, protected, also=[*frozen, *below])
                    self.held_strays.difference_update(pid for pid, _ in frozen)
                    killed.update(dict.fromkeys([*frozen, *below]))
                if frozen or ended:
                    seen = now
                elif now - seen >= CHASE_QUIET:
                    return True
                # (the SIGCHLDs of those killed, and of those that ended, are reaped then)
                await asyncio.sleep(LOOK_AGAIN_AFTER)
            return False
        finally:
            if killed:
                chased = list(killed)
                they, were = ("they", "were") if len(chased) != 1 else ("it", "was")
                self.bus.publish(Note(
                    f"{processes_said(chased)} the cast left forked anew as fast as {they} "
                    f"{were} stopped; froze {it_or_them(chased)} (SIGSTOP), with what {they} "
                    "had forked, and sent SIGKILL", level="warning"))

    def kill_strays(self, strays: Callable[[], Collection[int]],
                    protected: Callable[[], Collection[int]], *,
                    also: Sequence[Escaped] = ()) -> None:
        """Last resort on the way out (a crash, a cancel): SIGKILL to the cast's orphans and
        their groups, at once; ``also`` to the members' descendants seen before the members
        were killed (orphans from this moment)."""
        killed = self._catch_strays(strays, protected, (signal.SIGKILL,), also=also).reached
        self.held_strays.difference_update(pid for pid, _ in killed)

    def _catch_strays(self, strays: Callable[[], Collection[int]],
                      protected: Callable[[], Collection[int]], signals: tuple[int, ...], *,
                      also: Sequence[Escaped] = ()) -> _Caught:
        """Send ``signals`` to the orphans (and ``also``) and to their groups."""
        try:
            listed = strays()
            found, ended, died = self._alive(listed)
            if died:
                # One it had signalled died after the listing, and what it forked in
                # between came to us as it died, before it was read dead: listed now.
                more, ended_more, _ = self._alive(set(strays()).difference(listed))
                found, ended = found + more, ended or ended_more
        except OSError:  # out of descriptors (the only error stat_fields lets through)
            self._reach.out_of_descriptors(None)
            return _Caught([], [], ended=False)
        found += [process for process in also if process not in found]
        found = [process for process in found if process not in self._foreign]
        # Their groups, read while they live (a live member keeps a group's id taken).
        spare = set(protected())
        group_of: dict[Escaped, int] = {}
        for process in found:
            with contextlib.suppress(OSError):
                if (group := os.getpgid(process[0])) not in spare:
                    group_of[process] = group
        reached = self._reach.signal(None, found, signals)
        foreign = [process for process in found if process not in reached
                   and _escaped.start_time(process[0]) == process[1]]
        if foreign:
            self._foreign.update(foreign)
            pids = [pid for pid, _ in foreign]
            one = len(foreign) == 1
            self.bus.publish(Note(
                f"the cast left {processes_said(foreign)} outside its members' process groups "
                f"that {'runs' if one else 'run'} as {owner(pids)}, which pipeplex may not "
                f"signal; {'it runs' if one else 'they run'} on (stop {it_or_them(foreign)} as "
                f"that user: sudo kill {' '.join(map(str, pids))})", level="error"))
        # One read alive that the signal no longer reached has ended since: what it forked
        # as it went is ours now, unlisted, so the next look is the one to believe (a
        # process that forks anew as fast as it can, read in its last instant, was taken
        # for none left, and its child outlived the cast).
        vanished = any(process not in reached and process not in foreign for process in found)
        groups = list(dict.fromkeys(group for process, group in group_of.items()
                                    if process not in foreign))
        # Each held from here on: an orphan is our child, and its pid, so its group's id,
        # stays its own until we reap it (the reaper runs in this loop).
        self.held_strays.update(pid for pid, _ in reached)
        self._signalled_strays.update(reached)
        killpg_all(groups, signals)
        return _Caught(reached, groups, ended or vanished)

    def _alive(self, listed: Iterable[int]) -> tuple[list[Escaped], bool, bool]:
        """Those of the cast's orphans ``listed`` alive; whether one of the others ended
        unbeknown to the stop (see :class:`_Caught`); and whether one the stop signalled
        had died when it was read. That death is no news, but its children came to us as it
        died: before it was read dead (the kernel hands them over first), perhaps after the
        listing, which a look then takes again (a process that forks anew as fast as it
        can, caught between its fork and its exit).

        Raises:
            OSError: out of descriptors.
        """
        alive: list[Escaped] = []
        ended = died = False
        for pid in listed:
            fields = stat_fields(pid, strict=True)
            if fields is None:  # (reaped as it was read)
                ended = True
                continue
            process = (pid, int(fields[START_TIME]))
            if not exited(pid, fields):
                alive.append(process)
            elif process not in self._signalled_strays:
                ended = True
            else:
                died = True
        return alive, ended, died

    async def _escalate_all(self, ours: list[_Escalation], started: float,
                            theirs: list[tuple[Process, Escaped, asyncio.Future[bool]]]) -> None:
        try:
            await asyncio.gather(*(self._escalate_escaped(member, processes, led, started, done)
                                   for member, processes, led, done in ours),
                                 *(asyncio.shield(done) for _, _, done in theirs))
        finally:
            for _, processes, _, done in ours:  # (one cancelled before it began)
                self._let_go(processes, done, finished=False)
        given_up: dict[str, tuple[Process, list[Escaped]]] = {}
        for member, process, done in theirs:
            if not done.result() and process not in self._escaping:
                given_up.setdefault(member.name, (member, []))[1].append(process)
        if given_up:  # another stop was cancelled, or failed, before its SIGKILL: ours now
            now = asyncio.get_running_loop().time()
            await self._escalate_all([(member, processes, [], self._take(processes))
                                      for member, processes in given_up.values()], now, [])

    def _take(self, processes: list[Escaped]) -> asyncio.Future[bool]:
        """Mark ``processes`` as escalated by the caller; the future says, once it is over,
        whether that escalation ran to its end (False: another stop must take them over)."""
        done: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self._escaping.update(dict.fromkeys(processes, done))
        return done

    def _let_go(self, processes: list[Escaped], done: asyncio.Future[bool], *,
                finished: bool) -> None:
        for process in processes:
            if self._escaping.get(process) is done:
                del self._escaping[process]
        if not done.done():
            done.set_result(finished)

    async def _escalate_escaped(self, member: Process, processes: list[Escaped],
                                led: list[int], started: float,
                                done: asyncio.Future[bool]) -> None:
        """SIGKILL to those of ``processes`` (SIGTERMed at ``started``), and of the groups
        they ``led``, alive after the grace; ``done`` then (False if it did not get to its
        end)."""
        finished = False
        try:
            await self._escalate(member, processes, led, started)
            finished = True
        finally:
            self._let_go(processes, done, finished=finished)

    async def _escalate(self, member: Process, processes: list[Escaped], led: list[int],
                        started: float) -> None:
        assert self._force is not None
        loop = asyncio.get_running_loop()
        grace = member.spec.stop_timeout or self.grace
        left = await self._reach.alive_after(member, processes, started + grace, self._force)
        # A group is signalled only while someone is in it (its id is theirs till then).
        held = await wait_groups_gone(led, max(started + grace - loop.time(), 0.0),
                                      self._force) if led else []
        crowded = _crowded(held)
        killed = self._reach.signal(member, left, (signal.SIGKILL,))
        killpg_all(held, (signal.SIGKILL,))
        if not killed and not held:
            return
        if killed:
            what = f"{processes_said(killed)} it left outside its process group"
            them = it_or_them(killed)
            said = [group for group in held if group in crowded]
            leaders = {pid for pid, _ in killed}
            also = _led(killed, said) if leaders.issuperset(said) else (
                f", and to the process group{'s' if len(said) > 1 else ''} of pid "
                + ", ".join(map(str, said)))  # (led by one that is gone: its worker is not)
        else:  # their leaders are gone; processes in their groups are not
            what = f"processes in the groups of {processes_said(processes)} it left outside its " \
                   "process group"
            them, also = "them", ""
        asked = signal_name(member.spec.stop_signal)
        if self._force.done():
            self._announce(member, f"sent SIGKILL to {what}{also}", "warning")
        elif killed:
            self._announce(member, f"{what} ignored {asked} for {seconds_said(grace)} s; sent "
                                   f"{them} SIGKILL{also}", "warning")
        else:  # (one forked since the group's signal never had it: they still ran, is all)
            self._announce(member, f"{what} still ran {seconds_said(grace)} s after the {asked} "
                                   "to those groups; sent them SIGKILL", "warning")
        await self._reach.alive_after(member, killed, loop.time() + LEFTOVER_KILL_WAIT)
        await wait_groups_gone(held, LEFTOVER_KILL_WAIT)

    def _announce(self, member: Process, text: str, level: Level = "info") -> None:
        self.bus.publish(Note(text, name=member.name, level=level))


def _and_groups(processes: list[Escaped], groups: list[int]) -> str:
    if not groups:
        return ""
    return ", and to its process group" if len(processes) == 1 else (
        ", and to their process groups")


def _strays_killed(killed: list[Escaped], groups: list[int], termed: list[Escaped],
                   grace: float, *, forced: bool) -> str:
    """What a SIGKILL to the cast's orphans reached: some of them, their groups."""
    if killed:
        what, them = f"{processes_said(killed)} the cast left", it_or_them(killed)
        also = _and_groups(killed, groups)
    else:
        what, them = f"processes in the groups of {processes_said(termed)} the cast left", "them"
        also = ""
    if forced:
        return f"sent SIGKILL to {what}{also}"
    return f"{what} ignored SIGTERM for {seconds_said(grace)} s; sent {them} SIGKILL{also}"


def _by_group(processes: list[Escaped]) -> tuple[list[Escaped], dict[int, list[Escaped]]]:
    """Those of ``processes`` still alive that are not in a group one of them leads; and per
    group one of them leads (a daemon's ``setsid``, with the workers it forks), those in it.
    Only led groups: a group's leader being ours, so is everyone in it (a process joins a
    group only within its own session, and a session holds only its leader's descendants)."""
    group_of: dict[Escaped, int] = {}
    for process in processes:
        pid, started = process
        try:
            group = os.getpgid(pid)
            if _escaped.start_time(pid) == started:  # (not a stranger that took its pid)
                group_of[process] = group
        except OSError:  # gone; or out of descriptors: sent its own signal, as it can be
            group_of[process] = 0
    led = {pid for (pid, _), group in group_of.items() if pid == group}
    alone = [process for process, group in group_of.items() if group not in led]
    grouped: dict[int, list[Escaped]] = {}
    for process, group in group_of.items():
        if group in led:
            grouped.setdefault(group, []).append(process)
    return alone, grouped


def _crowded(groups: list[int]) -> set[int]:
    """Those of ``groups`` with a live process in them besides their leader (one pass over
    ``/proc``, and none for no groups)."""
    if not groups:
        return set()
    return {group for group, pids in live_in_groups(set(groups)).items()
            if any(pid != group for pid in pids)}


def _led(processes: list[Escaped], groups: list[int]) -> str:
    """``, and to the process group it leads``, for a message about ``processes``."""
    if not groups:
        return ""
    if len(processes) == 1:
        return ", and to the process group it leads"
    return ", and to the process group one of them leads" if len(groups) == 1 else (
        ", and to the process groups they lead")


def _outside(process: Escaped, group: int) -> bool:
    """Whether ``process`` runs outside the process group ``group`` (False: gone)."""
    try:
        return os.getpgid(process[0]) != group
    except OSError:
        return False
