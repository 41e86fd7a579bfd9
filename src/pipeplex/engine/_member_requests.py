"""What the outside asks of one member of a running cast: restart it, start it (an
``autostart = false`` member), add a member or remove one (the Python API's spawn), and
wait until it is ready, up again or ended.

Each request reaches into the member's supervision (:mod:`._supervision`): it wakes the
supervisor, makes a new one, or waits for what it does; requests that come together share
one restart. The engine answers to its callers with these; they are apart from it because
each must hold against every state a member's life can be in, and says why when it cannot.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from .._events import Note
from .._signals import describe_returncode
from ..cast.spec import ProcSpec
from ..errors import PipeplexError, ours_in_tracebacks
from ..inputs.router import ALL, Router
from ..readiness.wait import finished
from ._cast_state import CastPart, CastState
from ._supervision import Supervision
from .seat import Seat
from .stopping import first

if TYPE_CHECKING:
    from ..participants import Process

__all__ = ("MemberRequests",)

__tracebackhide__ = ours_in_tracebacks  # (pytest: see there)


class MemberRequests(CastPart):
    """Requests about one member, by name (see the module's docstring). ``new_member``
    makes the process of a member added to the cast."""

    def __init__(self, state: CastState, supervision: Supervision, router: Router,
                 new_member: Callable[[ProcSpec], Process]) -> None:
        super().__init__(state)
        self._supervision = supervision
        self._router = router
        self._new_member = new_member

    async def restart(self, name: str, *, stdin_first: bool = False) -> int:
        """Stop member ``name`` (the usual escalation) and start it again. ``stdin_first``:
        it gets :data:`EOF_GRACE` to end at EOF first (a console's restart: the lines sent
        just before get their answers).

        Works on a running member and on one that has ended while the cast goes on; the
        member's on_exit policy does not apply to this stop. Returns the new instance's pid
        once it runs (it may have exited since). A request that comes while the member is
        being restarted shares that restart. If the new instance cannot start, the cast
        stops as when a member cannot start at first, unless its policy for a failure
        (``on_failure``, else ``on_exit``) is "ignore" and it was ready before: then it
        stays down.

        Raises:
            UnknownMember: no such member.
            SpawnError: the new instance could not start.
            PipeplexError: the cast is stopping (or began to before the member started
                again), or the member has not started yet.
        """
        member = self._router.resolve(name)[0]
        seat = self._seats[name]
        if self._state.tg is None or self._state.stopping:
            raise PipeplexError("the cast is stopping; nothing can be restarted")
        if seat.removing:
            raise PipeplexError(f"{name} is being removed; it is not restarted")
        if member.state == "pending" and seat.supervising:
            requested = seat.start_requested
            if requested is not None and not requested.done():
                why = f"autostart = false: start it with pipeplex start {name}, :start {name}"
                why += " or a start step"
            else:
                why = f"it waits for {', '.join(member.spec.after) or 'its turn'}"
            raise PipeplexError(f"{name} has not started yet ({why})")
        if seat.let_go_on_failure and self._standing.failed_to_start(name):
            # Its spawn failed (NotReady, SpawnError) and its name is free for a new one.
            raise PipeplexError(f"{name} did not start again: it failed to start or to get ready")
        restarted = seat.restarted
        held = self._standing.held_back_by(name)
        if held is not None and (restarted is None or restarted.done()):  # (left as it is)
            raise PipeplexError(f"{name} {held}")
        never_ran = member.pid is None
        if (never_ran and not seat.supervising) or self._standing.failed_to_start(name):
            # Held back before it ever ran (a member it starts after ended for good), never
            # started (one failed), or a loaded member that did not get ready: started now,
            # as at first.
            self._restart_anew(name)
        if restarted is None or restarted.done():
            restarted = seat.restarted = asyncio.get_running_loop().create_future()
            self._bus.publish(Note("starting on request (it had not run yet)" if never_ran
                                   else "restarting on request", name=name))
            # Down from now until its new run is ready, whatever it is doing: a member
            # started after it meanwhile (during its stop's grace, say) would otherwise start
            # with the values of a run going away.
            self._state.down(name)
            if member.running:
                seat.restart_requested = True
                await self._state.to_the_end(self._stopper.stop(member, stdin_first=stdin_first),
                                             or_cast_stop=True)
            elif seat.supervising:
                # It has exited and its supervisor is not done with it (its output still
                # drains, or it waits out a restart's backoff): that supervisor starts it
                # again, at once; or, if it is past taking it, starts a new one.
                seat.restart_requested = True
                wake = seat.backoff
                if wake is not None and not wake.done():
                    wake.set_result(None)
            else:
                self._state.hold()
                self._supervision.supervise(member)
        # else: a restart is under way and its new instance starts after this request too:
        # requests that come together make one restart, never instances side by side.
        await first(restarted, self._state.stop)
        if not restarted.done():
            raise PipeplexError(f"{name} did not start again: the cast is stopping")
        return restarted.result()  # SpawnError: the new instance could not start

    async def restart_until_ready(self, name: str, *, stdin_first: bool = False) -> int:
        """:meth:`restart`, then wait until the new run is ready, as a start waits for the
        first: ``pipeplex restart db && ./migrate`` finds db ready, as ``systemctl
        restart`` does. A member that ``on_exit = "restart"`` starts again is waited for
        through those restarts, and so is a later restart asked for meanwhile. Returns the
        pid of the run that is ready.

        Raises:
            PipeplexError: as :meth:`restart`; or the new run ended before it was ready,
                or the cast began to stop first (:meth:`why_not_up_again`).
        """
        await self.restart(name, stdin_first=stdin_first)
        if not await self.wait_up_again(name):
            raise PipeplexError(self.why_not_up_again(name))
        # The run that is ready: a later restart (asked for, or its policy's) may have
        # replaced the one this request started.
        pid = self._members[name].pid
        assert pid is not None
        return pid

    def why_not_up_again(self, name: str) -> str:
        """Why ``name``'s new run (a restart's) did not get ready: how it ended, or why the
        cast stopped first; then its last output."""
        seat = self._seats.get(name)
        if name not in self._members or seat is None or seat.removing:  # (the API's remove)
            return f"{name} did not get ready again: it was removed"
        code = self._members[name].returncode
        own = self._state.own_failure(name) if code is None else None
        if own is not None:
            said = f"{name} did not get ready again: {own}"
        else:
            how = f" ({name} {describe_returncode(code)})" if code is not None else ""
            said = f"{name} did not get ready again{how}"
            if self._state.stopping and self._state.stopped_by == name:  # (its end stops the cast)
                gave_up = self._outcomes.gave_up.get(name)
                said += (f"; it {gave_up}" if gave_up else "") + ": the cast stops"
            elif self._state.stopping and self._state.stop_cause:
                said += f" (the cast was stopping: {self._state.stop_cause})"
        return f"{said}\n{self._recent.describe(name)}"

    async def start(self, name: str, restart_with: str | None = None) -> None:
        """Start a member declared with ``autostart = false``; return once it is ready.
        ``restart_with``: how the asker restarts a member, for refusals that suggest it
        (``pipeplex restart NAME`` unless given: ``:restart NAME``, ``member.restart()``).

        Raises:
            UnknownMember: no such member.
            PipeplexError: it starts by itself, or was already started.
        """
        self._router.resolve(name)  # raises UnknownMember
        seat = self._seats[name]
        if seat.removing:
            raise PipeplexError(f"{name} is being removed; it is not started")
        if self._state.stopping and seat.start_requested is not None and (
                not seat.start_requested.done()):
            # (Refused as it would be once asked: but not asked, as its summary then says.)
            why = f" ({self._state.stop_cause})" if self._state.stop_cause else ""
            raise PipeplexError(f"{name} did not start: the cast began to stop{why}")
        requested = seat.start_requested
        member = self._members[name]
        restart = restart_with or f"pipeplex restart {name}"
        if requested is None:
            held = self._standing.held_back_by(name)
            if member.pid is None and not seat.supervising and (
                    held is not None or name in self._outcomes.ended_for_good):
                # (One that starts by itself and was held back: a restart starts it.)
                then = (f"it {held}, then {restart}" if held is not None
                        else f"it was held back; {restart} starts it")
                raise PipeplexError(f"{name} starts by itself, but was not started: {then}")
            raise PipeplexError(f"{name} starts by itself (only autostart = false members "
                                "are started on request)")
        again = requested.done() and member.pid is None and not seat.supervising
        # A start under way (asked for a moment ago, waiting for a member it starts after,
        # or for its readiness): this request waits for it too, as requests that come
        # together share one restart.
        joining = (requested.done() and not again and seat.supervising
                   and not self._state.ready(name).done())
        if requested.done() and not again and not joining:
            if finished(member):
                raise PipeplexError(f"{name} was already started, and its step is done (it "
                                    f"exited with code 0): {restart} runs it again")
            if member.returncode is not None and not member.running:
                raise PipeplexError(f"{name} was already started, and has ended "
                                    f"({describe_returncode(member.returncode)}): "
                                    f"{restart} runs it again")
            raise PipeplexError(f"{name} was already started")
        blocked_by = next((found for dep in member.spec.after
                           if (found := self._standing.unrequested(dep)) is not None), None)
        if blocked_by is not None:  # it would wait for ever: say for whom (and start nothing)
            raise PipeplexError(f"{name} starts after {blocked_by}, which has autostart = "
                                f"false and was not started: start {blocked_by} first")
        held = None if joining else self._standing.held_back_by(name)
        if held is not None:
            raise PipeplexError(f"{name} {held}")
        if again:  # it was held back before: asked again, it starts now
            self._restart_anew(name)
            self._state.hold()
            self._supervision.supervise(member)
        elif not joining:
            requested.set_result(None)
        await first(self._state.ready(name), self._state.stop)
        if not self._state.ready(name).done():
            member = self._members[name]
            if member.returncode is not None:
                raise PipeplexError(f"{name} {describe_returncode(member.returncode)} before it "
                                    f"was ready\n{self._recent.describe(name)}")
            own = self._state.own_failure(name)
            if own is not None:
                raise PipeplexError(f"{own}\n{self._recent.describe(name)}")
            why = f" ({self._state.stop_cause})" if self._state.stop_cause else ""
            started = "become ready" if member.pid is not None else "start"
            raise PipeplexError(f"{name} did not {started}: the cast began to stop{why}")
        await self._ready_result(name, self._state.ready(name))  # (raises why it did not)

    def add(self, spec: ProcSpec, *, let_go_on_failure: bool = False) -> Process:
        """Add a member to the running cast and start supervising it (the Python API's spawn
        and load; ``let_go_on_failure``: a spawn's, which is let go of if it fails).

        Such a member answers for its own start: if it cannot be spawned or does not become
        ready, it is stopped, :meth:`wait_ready` raises why, and the cast goes on. The name
        of a member that has ended (one that failed to get ready, say) may be used again:
        the new member takes its place.

        Raises:
            PipeplexError: the name belongs to a member that has not ended, or the cast is
                stopping or not running.
        """
        if self._state.tg is None or self._state.stopping:
            raise PipeplexError(f"cannot add {spec.name!r}: the cast is not running")
        self.check_can_add(spec.name)
        previous = self._members.get(spec.name)
        if previous is not None:
            self.forget(spec.name)
        loop = asyncio.get_running_loop()
        member = self._members[spec.name] = self._new_member(spec)
        seat = self._seats.setdefault(spec.name, Seat())
        seat.restarts = 0
        seat.ready = loop.create_future()
        if not spec.autostart:
            seat.start_requested = loop.create_future()
        seat.added = True
        seat.let_go_on_failure = let_go_on_failure
        self._state.late_waves.append([spec.name])
        self._state.hold()
        self._supervision.supervise(member, previous)
        return member

    def check_can_add(self, name: str) -> None:
        """Raise unless a member named ``name`` may be added: a free name, or one whose
        member has ended (its program exited and was read, nothing will restart it).

        Raises:
            PipeplexError: the name is ``all``, or its member has not ended, saying how.
        """
        if name == ALL:
            raise PipeplexError(f"the name {ALL!r} is reserved (it addresses every member)")
        member = self._members.get(name)
        if member is None or self._state.ended(member):
            return
        if member.running:
            state = f"is still running (pid {member.pid})"
        elif member.pid is None:
            state = "is waiting to start"
        elif self._seats[name].supervising and member.done_future.done():
            state = "is about to be restarted"
        else:
            state = "is still ending"
        raise PipeplexError(f"a member named {name!r} already exists and {state}; its name "
                            "can be used again once it has ended")

    def in_waves(self, waves: Sequence[Sequence[str]]) -> None:
        """The members just added (a loaded cast's, each its own wave so far) start in
        ``waves``, their cast's: stopped by them in reverse, as ``pipeplex run`` stops it."""
        names = {name for wave in waves for name in wave}
        late = [wave for wave in self._state.late_waves if not set(wave) <= names]
        self._state.late_waves = late + [list(wave) for wave in waves]

    def forget(self, name: str) -> None:
        """Drop what the engine kept about an ended member whose name is used again."""
        self._members[name].release_output()
        waves = [[other for other in wave if other != name] for wave in self._state.late_waves]
        self._state.late_waves = [wave for wave in waves if wave]
        self._seats[name].forget_runs()
        self._outcomes.forget(name)
        self._recent.forget(name)  # a later failure shows the new member's output only

    async def remove(self, name: str) -> None:
        """Stop the added member ``name`` if it runs (the usual escalation), let no run of it
        come (no restart, asked for or by its policy, no start) and let it go: the engine
        keeps nothing of it, and its name is free. A spawn still waiting for it to be ready
        raises that it was removed.

        Raises:
            UnknownMember: no such member.
            PipeplexError: another member starts after it, or it was not added (a member of
                the cast the engine began with).
        """
        member = self._router.resolve(name)[0]
        dependents = [other.name for other in self._members.values() if name in other.spec.after]
        if dependents:
            raise PipeplexError(f"{name} cannot be removed: {', '.join(dependents)} "
                                f"start{'s' if len(dependents) == 1 else ''} after it")
        seat = self._seats[name]
        if not seat.added:
            raise PipeplexError(f"{name} is a member of the cast it was started with: only "
                                "members added to a running cast can be removed")
        hurry = asyncio.get_running_loop().create_future()
        removal = asyncio.ensure_future(self._remove(name, member, seat, hurry))
        try:
            await asyncio.shield(removal)
        except asyncio.CancelledError:
            # As a cancelled close: what is left of the grace is skipped (SIGKILL), and the
            # member is let go all the same before the cancellation goes on, so that its
            # name is free and nothing of it lives on half removed.
            if not removal.done():
                hurry.set_result(None)
                await asyncio.wait([removal])
            if not removal.cancelled():
                removal.exception()  # (retrieved: the caller raises its cancellation)
            raise

    async def _remove(self, name: str, member: Process, seat: Seat,
                      hurry: asyncio.Future[None]) -> None:
        seat.removing = True
        try:
            seat.restart_requested = False
            seat.not_started_because = "it was removed"
            while (task := seat.supervisor) is not None and not task.done():
                if not member.running:
                    task.cancel()  # it waits (its turn, a start, a backoff): no run comes
                elif self._state.tg is not None:
                    await self._state.to_the_end(self._stopper.stop(member, hurry=hurry))
                await asyncio.wait([task])  # (a run ending as the cast stops: by the stop)
            if self._state.tg is not None and member.pid is not None:
                await self.stop_leftovers(name)
        finally:
            seat.removing = False
        ready = seat.ready
        if ready is not None and not ready.done():
            ready.set_exception(PipeplexError(f"{name} was removed before it was ready"))
            ready.exception()  # (retrieved: nobody may be waiting)
        if self._members.get(name) is member:  # (not a member given the name meanwhile)
            self.forget(name)
            del self._members[name], self._seats[name]

    async def wait_ready(self, name: str) -> bool:
        """Wait until member ``name`` is ready; False if the cast began to stop first.

        Raises:
            SpawnError, NotReady: an added member could not start or get ready.
        """
        ready = self._state.ready(name)
        await first(ready, self._state.stop)
        if not ready.done():
            return False
        await self._ready_result(name, ready)
        return True

    async def _ready_result(self, name: str, ready: asyncio.Future[None]) -> None:
        """The end of a wait for ``name``'s readiness, ``ready``, which has come: return if
        it got ready, else raise why, once the member is over (stopped, with what it left in
        its group, its exit reported): its name is then free for another try, and the events
        of the two never interleave."""
        if ready.exception() is not None:
            seat = self._seats.get(name)
            supervisor = seat.supervisor if seat is not None else None
            if supervisor is not None:
                await asyncio.wait([supervisor])
        ready.result()

    async def wait_up_again(self, name: str) -> bool:
        """Wait until ``name``'s current run is ready (a restart's, say: as its dependents'
        starts wait), or nothing more will come of it. Whether it got ready: False if it
        ended before it was, or the cast began to stop first."""
        gate = self._state.up_gate(name)
        if gate is not None:
            await first(gate, self._state.stop)
        seat = self._seats.get(name)
        return not self._state.stopping and seat is not None and (seat.up_now or seat.ready_last)

    async def stop_leftovers(self, name: str) -> None:
        """Stop what the ended member ``name`` left in its process group (announced, with
        the usual escalation), as before a restart: before its name is used again."""
        member = self._members.get(name)
        if member is not None and member.pid is not None and not member.running:
            await self._state.to_the_end(self._supervision.stop_remains(member))

    async def wait_ended(self, name: str) -> None:
        """Once ``name``'s run has exited and nothing follows it (no restart by policy or
        request), wait until its supervisor is done with it: its name is free from then on.
        Returns at once otherwise (it runs, or will run again)."""
        seat = self._seats.get(name)
        task = seat.supervisor if seat is not None else None
        member = self._members.get(name)
        if (task is None or task.done() or member is None or member.returncode is None
                or self._standing.will_restart(name)
                or (seat is not None and seat.restart_requested)):
            return
        await asyncio.shield(task)

    def _restart_anew(self, name: str) -> None:
        """A member that never ran, held back or left behind by a failure, is to start as at
        first: what said it failed to start is forgotten."""
        if self._standing.failed_to_start(name):
            self._seats[name].ready = asyncio.get_running_loop().create_future()
        self._outcomes.ended_for_good.pop(name, None)
