"""The stop of the whole cast: every member in the reverse order of the start, then what
the members started outside their process groups, then what the cast orphaned; and, on a
crash, SIGKILL to all of it at once.

Each member's own stop (stdin closed, SIGTERM, the grace, SIGKILL, each step said) is the
stopper's (:mod:`.stopping`); here is the order, and which of this process's children are
the cast's to stop or reap.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
from typing import TYPE_CHECKING

from ..cast.order import stop_order
from ..errors import SignalRefused
from ..participants._escaped import start_time
from ..participants.orphans import Adoption, children, descendants
from ._cast_state import CastPart, CastState
from .stopping import first

if TYPE_CHECKING:
    from ..participants import Guardian

__all__ = ("CastStop",)


class CastStop(CastPart):
    """How the cast stops (see the module's docstring). ``adoption``: this process is the
    cast's subreaper; ``checks``: the runs of ready_cmd under way (children of this
    process too)."""

    def __init__(self, state: CastState, *, adoption: Adoption | None,
                 guardian: Guardian | None, checks: set[int]) -> None:
        super().__init__(state)
        self._adoption = adoption
        self._guardian = guardian
        self._checks = checks

    async def run(self) -> None:
        """Wait until the cast stops (asked for, or everything ended by itself), then stop
        every member in the reverse order of the start and what they left, inside their
        process groups and outside them; return once every supervisor has ended."""
        await first(self._state.stop, self._state.all_done)
        if not self._state.stopping:
            # Everything ended by itself; members still waiting to be started never will.
            self._state.request_stop()
            await asyncio.gather(*(self._stopper.stop_leftovers(m) for m in self._members.values()
                                   if m.pid is not None and not m.running))
        else:
            order = self.order()
            self._stopper.close_inputs(self._members[n] for names in order for n in names)
            # What they started outside their groups, looked for once: each member's is
            # stopped with it, in its wave.
            self._stopper.outside.look(self._members.values())
            try:
                for names in order:
                    # (a member removed meanwhile, which its removal stopped, is gone here)
                    wave = [m for m in map(self._members.get, names) if m is not None]
                    self._stopper.take(wave)
                    await asyncio.gather(*(self._stopper.stop(m) for m in wave))
                # A member whose start raced with the stop request is caught here.
                await asyncio.gather(*(self._stopper.stop(m) for m in self._members.values()))
            finally:
                self._stopper.outside.end_look()
        # What members started outside their groups since: one more look for all of them.
        await self._stopper.outside.stop_escaped(
            [m for m in self._members.values() if m.pid is not None])
        if self._adoption is not None:  # and what kept neither group nor environment
            await self._stopper.outside.stop_strays(self._strays, self._protected_groups)
        await self._state.all_done

    def order(self) -> list[list[str]]:
        """The members in groups, each stopped once those before it are: the start's
        waves backwards, members added later first (see :func:`~.cast.order.stop_order`)."""
        return stop_order(self._state.start_waves(), self._standing.graph())

    def own_children(self) -> set[int]:
        """This process's children that are not to be reaped by whoever reaps orphans:
        members not yet reaped and the guardian (their owners wait for them), the orphans
        whose groups the stop still signals (a zombie keeps its group's id), and the
        children the process had before the cast (a program's own)."""
        spared = self._adoption.spared if self._adoption is not None else frozenset()
        return self._waited() | spared

    def _waited(self) -> set[int]:
        own = {m.pid for m in self._members.values() if m.pid is not None and m.returncode is None}
        if self._guardian is not None:
            own.add(self._guardian.pid)
        return own | self._checks | self._stopper.outside.held_strays

    def _strays(self) -> list[int]:
        assert self._adoption is not None
        waited = self._waited()
        return [pid for pid in children()
                if pid not in waited and not self._adoption.theirs(pid)]

    def _protected_groups(self) -> set[int]:
        """Groups that stopping the cast's orphans never signals: this process's own, the
        members' (each leads its own), those of the children it had before."""
        assert self._adoption is not None
        groups = {os.getpgrp(), *(m.pid for m in self._members.values() if m.pid is not None)}
        for pid in self._adoption.before:
            with contextlib.suppress(OSError):
                groups.add(os.getpgid(pid))
        return groups

    def kill_everything(self) -> None:
        """Last resort on the way out (a crash, a cancel): no process group survives us,
        nor what the cast orphaned."""
        below: list[tuple[int, int]] = []
        if self._adoption is not None:  # their orphans-to-be too, seen before they are
            alive = [m.pid for m in self._members.values()
                     if m.pid is not None and m.returncode is None]
            below = [(pid, started) for pid in descendants(alive)
                     if (started := start_time(pid)) is not None]
        for member in self._members.values():
            if member.pid is not None:
                if member.returncode is None:
                    member.begin_stop()  # (its end is the stop's, unless it came to it first)
                with contextlib.suppress(SignalRefused):  # (as another user: nothing to do)
                    member.signal_to_stop(signal.SIGKILL)
        if self._adoption is not None:
            self._stopper.outside.kill_strays(self._strays, self._protected_groups, also=below)
