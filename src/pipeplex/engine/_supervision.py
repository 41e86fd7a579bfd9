"""Each member's supervision: it waits for its turn, starts, waits to be ready, and after
each run asks the exit policy what follows, until nothing more will run of it.

A supervisor is a task of the run's task group per member (:meth:`Supervision.supervise`);
a restart or a start asked for from outside (:mod:`._member_requests`) wakes it or makes a
new one. Dependencies are waited for twice: a member's first start waits for the first
readiness of those it starts after, and every start (a restart's too) waits until they are
up, so that it starts with their current values.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Mapping
from typing import TYPE_CHECKING

from .._events import Note, Ready
from ..cast.slips import echo_warning_filled
from ..cast.spec import is_port
from ..errors import NotReady, PipeplexError, SpawnError, ours_in_tracebacks
from ..readiness.lines import RunWatch
from ..readiness.wait import ReadyWait, Unready, assignments
from ._cast_state import CastPart, CastState
from ._exit_policy import ExitPolicy
from .stopping import first

if TYPE_CHECKING:
    from ..participants import Process

__all__ = ("Supervision",)

__tracebackhide__ = ours_in_tracebacks  # (pytest: see there)


class Supervision(CastPart):
    """The supervisors of a cast's members (see the module's docstring)."""

    def __init__(self, state: CastState, policy: ExitPolicy, readying: ReadyWait) -> None:
        super().__init__(state)
        self._policy = policy
        self._readying = readying

    def supervise(self, member: Process, previous: Process | None = None) -> None:
        """Supervise ``member`` from now on, in a task of the run's task group, until nothing
        more will run of it; ``previous``: the ended member whose name it takes. The caller
        has counted it as keeping the cast going (:meth:`CastState.hold`, or the run's
        :meth:`CastState.begin`); the task lets go of that as it ends."""
        assert self._state.tg is not None
        # Supervised from now, not from when its task first runs: in between, the member
        # has not ended, and its name cannot be taken (two spawns of one name at once).
        seat = self._seats[member.name]
        seat.supervising = True
        seat.supervisor = self._state.tg.create_task(self._supervisor(member, previous),
                                                     name=f"supervise {member.name}")

    async def _supervisor(self, member: Process, previous: Process | None = None) -> None:
        """Start ``member`` and keep it going by its policy; ``previous``: the ended member
        whose name it takes, whose leftovers are stopped first, as before a restart."""
        seat = self._seats[member.name]
        self._state.down(member.name)
        again = False
        try:
            if previous is not None and previous.pid is not None:
                await self.stop_remains(previous)
            if await self._wait_for_dependencies(member):
                await self._run_member(member)
            # A restart asked for while this supervisor was past taking it (ending); not
            # for an added member that failed to get ready (its name is free again).
            again = (seat.restart_requested and not self._state.stopping
                     and not self._standing.failed_to_start(member.name))
        finally:
            seat.supervising = False
            if again:
                seat.restart_requested = False
                self._state.hold()
                self.supervise(member)
            else:
                self._state.set_up(member.name)  # nothing more will come of it: nobody waits
                for tell in self._state.when_over:
                    tell(member.name)
                seat.restart_requested = False
                asked, seat.restarted = seat.restarted, None
                because, seat.not_started_because = seat.not_started_because, None
                if asked is not None and not asked.done():  # a restart it will not have
                    why = because or ("it failed to start or to get ready"
                                      if self._standing.failed_to_start(member.name)
                                      else "the cast is stopping")
                    asked.set_exception(PipeplexError(f"{member.name} did not start again: {why}"))
                    asked.exception()  # (retrieved: its callers may have gone)
            self._state.release()

    async def _wait_for_dependencies(self, member: Process) -> bool:
        requested = self._seats[member.name].start_requested
        if requested is not None:
            # Waiting to be asked does not keep the cast alive.
            self._state.release()
            await first(requested, self._state.stop)
            self._state.hold()
        for i, dep in enumerate(member.spec.after):
            self._outcomes.waiting_for[member.name] = dep
            self._outcomes.waiting_among[member.name] = member.spec.after[i:]
            await self._wait_ready_of(dep)
            if self._state.stopping:
                return False
            if self._standing.failed_to_start(dep):
                held = self._outcomes.ended_for_good.get(dep)  # ("which was not started: ...")
                why = f"{dep} {held.removeprefix('which ')}" if held else (
                    f"{dep} did not become ready")
                self._bus.publish(Note(f"not started: {why}", name=member.name, level="error"))
                if self._seats[member.name].added:
                    # Whoever waits for this one (a spawn, a load, its own dependents)
                    # learns that it will not start either, and why.
                    reason = f"{member.name} was not started: it waits for {dep}, "
                    self._state.fail_start(member.name, NotReady(
                        member.name, reason + self._outcomes.why_not_ready(dep),
                        self._recent.describe(self._outcomes.first_failed(dep))))
                return False
        self._outcomes.waiting_for.pop(member.name, None)
        self._outcomes.waiting_among.pop(member.name, None)
        return not self._state.stopping

    async def _wait_ready_of(self, dep: str) -> None:
        """Wait until ``dep`` is ready (or the cast stops). While it waits, itself or through
        its own ``after``, for an ``autostart = false`` member that nobody has asked to
        start, the wait does not keep the cast alive: a run with nothing left that could
        start it ends on its own."""
        ready = self._state.ready(dep)
        while not ready.done() and not self._state.stopping:
            root = self._standing.unrequested(dep)
            if root is None:
                await first(ready, self._state.stop)
                return
            requested = self._seats[root].start_requested
            assert requested is not None  # (what makes it unrequested)
            self._state.release()
            try:
                await first(requested, ready, self._state.stop)
            finally:
                self._state.hold()

    async def _run_member(self, member: Process) -> None:
        try:
            await self._run_member_runs(member)
        finally:
            seat = self._seats[member.name]
            down, seat.down_after_failure = seat.down_after_failure, None
            if down is not None and self._state.stopping:  # stopped before its next run
                status, reason, at = down
                self._state.record_failure(member.name, status,
                                           f"{reason}, and the cast stopped before its restart", at)

    async def _run_member_runs(self, member: Process) -> None:
        spec, seat = member.spec, self._seats[member.name]
        attempt: int | None = 0
        while not self._state.stopping and attempt is not None:
            if member.pid is not None:
                # A restart: what the previous run left goes first (a worker still holding
                # the port, say), in its group or out of it, with the usual escalation.
                await self.stop_remains(member)
                if self._state.stopping:
                    return
            if not await self._wait_until_up(member):
                return
            # What the last run's leftovers still had to say is theirs, not the next run's:
            # it goes out before the new run's readiness is watched.
            member.release_output()
            run = RunWatch(member.name, spec.ready, self._bus,
                           functools.partial(self._ready_at_once, member))
            restarting = member.pid is not None
            seat.port_taken = frozenset()
            if spec.ready_port and is_port(spec.ready_port):  # (a {variable}: known later)
                self._readying.note_port_taken(member.name, seat, int(spec.ready_port),
                                               spec.key_sources.get("ready_port"))
            # A copy: what it starts with is one consistent set, whatever comes next; its
            # readiness checks use it too (a restart of a member it starts after may
            # capture other values meanwhile, for the next runs).
            started_with = dict(self._variables)
            try:
                await member.start(started_with)
            except SpawnError as exc:
                run.close()
                attempt = await self._policy.start_failed(member, exc, restarting, attempt)
                continue  # (None: no attempt follows, and the loop ends)
            if seat.restart_requested:  # a request met by this new run, which counts afresh
                seat.restart_requested = False
                attempt = 0
            self._started(member, restarting)
            seat.in_a_row, seat.started_with = attempt, started_with
            if not restarting and spec.input and spec.pty == "full" and (
                    echoed := echo_warning_filled(spec, started_with)) is not None:
                self._bus.publish(Note(echoed, name=member.name, level="warning"))
            if self._state.stopping and not member.stopping:
                await self._stopper.stop(member)
            try:
                ready_in_run = await self._wait_ready(member, run, started_with)
            finally:
                run.close()
            returncode = await member.wait_exited()
            attempt = await self._policy.after_exit(member, returncode, ready_in_run, attempt)

    def _ready_at_once(self, member: Process, captured: dict[str, str]) -> bool:
        """Its ready line matched: it is said ready now, right after its line (before its
        exit, say), unless a port or a health check is still to be waited for, or the run
        is being stopped (one found not ready, say). Whether it was."""
        spec = member.spec
        if spec.ready_port or spec.ready_cmd or member.stopping or self._state.stopping:
            return False
        self._now_ready(member, captured)
        return True

    def _started(self, member: Process, restarting: bool) -> None:
        """A run of the member is under way: counted, and what was said of its last run's
        end (down after failing, unable to start) is over."""
        seat = self._seats[member.name]
        if restarting:
            seat.restarts += 1  # counted once the new instance runs
        seat.down_after_failure = None
        self._outcomes.cannot_start.pop(member.name, None)
        self._outcomes.ended_for_good.pop(member.name, None)
        # From its exit on, members that (re)start after it wait for its next run; not
        # once its supervisor has ended (it may see the exit first): no run will come.
        seat.up_now = seat.ready_last = False
        seat.failed_end = None
        member.exit_future.add_done_callback(functools.partial(self._run_ended, member))
        restarted, seat.restarted = seat.restarted, None
        if restarted is not None and not restarted.done():
            assert member.pid is not None
            restarted.set_result(member.pid)

    async def _wait_ready(self, member: Process, run: RunWatch,
                          started_with: dict[str, str]) -> bool:
        """Wait for this run of the member to be ready (see :class:`ReadyWait`); on failure
        announce it and stop the cast. Once it is ready, what it captured replaces what its
        previous runs captured, for every start from then on (``run.said``: its ready line
        said so already). True if this run got ready."""
        exit_seen = member.exit_future
        waited = await self._readying.wait(member, self._seats[member.name], run, started_with)
        if isinstance(waited, Unready):
            await self._policy.not_ready(member, waited)
            return False
        if waited is None:
            return False
        if not run.said:  # (else it was, when its line matched)
            self._now_ready(member, waited)
        ready = self._state.ready(member.name)
        if not ready.done():
            ready.set_result(None)
        # A run that matched and exited is not up: its next is, if one follows. If none
        # does (a build step), it holds nothing back, even while a process it started
        # keeps its output open (which its supervisor waits out before it ends).
        if not exit_seen.done() or not (self._standing.will_restart(member.name)
                                        or self._seats[member.name].restart_requested):
            self._state.set_up(member.name)
        return True

    def _now_ready(self, member: Process, captured: dict[str, str]) -> None:
        seat = self._seats[member.name]
        captured_before = bool(seat.captured)
        self._capture(member.name, captured)
        seat.waiting_for = None
        if member.returncode is None:
            seat.up_now = True  # (before its Ready: a sink may stop the cast)
        else:  # (ready as it ended, or after: a build step's exit, a line read at the end)
            seat.failed_end = member.returncode != 0
        seat.ready_last = True
        if member.spec.waits_to_be_ready:
            self._bus.publish(Ready(member.name, tuple(sorted(captured.items()))))
        if captured_before:  # (a later run's values: members started with the old ones keep them)
            self._say_values_behind(member.name, captured)

    def _capture(self, name: str, captured: dict[str, str]) -> None:
        """``name``'s new values replace its old ones, all at once (nothing awaits here, so
        no member ever starts with half of them); a value it no longer captures is gone."""
        seat = self._seats[name]
        previous = seat.captured
        for key in previous.keys() - captured.keys():
            if self._variables.get(key) == previous[key]:
                del self._variables[key]
        self._variables.update(captured)
        seat.captured = dict(captured)

    def _say_values_behind(self, name: str, captured: Mapping[str, str]) -> None:
        """Members already running keep the values they started with: say so under the
        name of each one that uses a value ``name``'s new run changed (a client still
        calling the port a restarted server left), rather than let it fail in silence."""
        for other, member in self._members.items():
            if other == name or not member.running or member.stopping:
                continue
            started_with = self._seats[other].started_with
            behind = {key for key in captured.keys() & member.spec.referenced_variables()
                      if key in started_with and started_with[key] != captured[key]}
            if behind:
                self._bus.publish(Note(
                    f"runs with {assignments(started_with, behind)}, which {name}'s new run "
                    f"changed to {assignments(captured, behind)}: restart {other} to give it "
                    f"the new value{'s' if len(behind) > 1 else ''} (pipeplex restart {other})",
                    name=other, level="warning"))

    def _run_ended(self, member: Process, exit_seen: asyncio.Future[int]) -> None:
        """A run of ``member`` exited (``exit_seen``, that run's). Its supervisor may have
        started the next run already (woken by the stop, not the exit): then only its exit
        code is this run's to record."""
        if self._members.get(member.name) is member and not exit_seen.cancelled():
            seat = self._seats[member.name]
            seat.last_exit = exit_seen.result()
            if member.exit_future is not exit_seen:
                return
            seat.up_now = False
            seat.failed_end = seat.last_exit != 0 or not seat.ready_last
            # Down until its next run is up; only if one follows: a build step that ended
            # holds nothing back, also while a process it started keeps its output open.
            if self._standing.will_restart(member.name) or seat.restart_requested:
                self._state.down(member.name)
                seat.ready_last = False

    async def _wait_until_up(self, member: Process) -> bool:
        """Before each start, and a restart's too: wait until every member it starts after
        (directly or through others) is up, so that it starts with their current values.
        False if the cast began to stop first."""
        announced = False
        while not self._state.stopping:
            deps = self._standing.dependencies(member.name)
            held = self._standing.held_back_by(member.name)
            if held is not None:
                self._not_started_after(member, held)
                return False
            gates = {dep: gate for dep in deps
                     if (gate := self._state.up_gate(dep)) is not None and not gate.done()}
            down = sorted(gates)
            if not down:
                self._outcomes.waiting_for.pop(member.name, None)
                self._outcomes.waiting_among.pop(member.name, None)
                return True
            self._outcomes.waiting_for[member.name] = down[0]  # (its summary names it)
            self._outcomes.waiting_among[member.name] = tuple(down)
            if not announced:
                announced = True
                self._state.announce(member, f"waiting for {', '.join(down)} to be ready again")
            await first(*gates.values(), self._state.stop)
        return False

    def _not_started_after(self, member: Process, held: str) -> None:
        """``member`` starts after a member that ended for good (``held`` says which and
        how): its (re)start does not happen (not with the values of a run that is gone),
        and it says why. It may be (re)started by request once that member runs again."""
        gone = self._standing.gone_before(member.name)
        dep = gone[0]
        which = self._standing.ended_for_good(dep)
        assert which is not None
        again = " again" if member.pid is not None else ""
        self._outcomes.waiting_for[member.name] = dep
        self._outcomes.waiting_among[member.name] = (dep, *(d for d in gone if d != dep))
        self._outcomes.ended_for_good[dep] = which
        self._outcomes.ended_for_good[member.name] = f"which was not started{again}: it {held}"
        seat = self._seats[member.name]
        seat.not_started_because = f"it {held}"
        self._state.announce(member, f"not started{again}: it {held}", "warning")
        down, seat.down_after_failure = seat.down_after_failure, None
        if down is not None:  # it failed, and no restart follows: that is how it ended
            status, reason, at = down
            self._state.record_failure(member.name, status,
                                       f"{reason}, and was not started again: it {held}", at)
        self._state.fail_start(member.name,
                               PipeplexError(f"{member.name} was not started: it {held}"))

    async def stop_remains(self, member: Process) -> None:
        """What the ended ``member`` left: in its process group, then outside it."""
        await self._stopper.stop_leftovers(member)
        await self._stopper.outside.stop_escaped([member])
