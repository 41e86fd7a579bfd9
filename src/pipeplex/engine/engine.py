"""The engine: starts the cast in order, watches it, and stops it the same way every time.

One asyncio TaskGroup owns a supervisor task per member and the task that stops the
cast; nothing runs outside it, so an error anywhere reaches :meth:`Engine.run`. Members
start in waves (``after`` dependencies, each waiting for its dependencies to be *ready*),
and stop in the reverse waves, each member as :class:`~.stopping.Stopper` does it: close
stdin, SIGTERM to the process group, a grace period, SIGKILL, every step announced.

The engine is what the rest of pipeplex talks to; its parts share one
:class:`~._cast_state.CastState`: each member's supervision (:mod:`._supervision`), what
follows each run (:mod:`._exit_policy`), the requests about one member
(:mod:`._member_requests`) and the stop of the cast (:mod:`._cast_stop`).
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any

from .._bus import Bus
from .._events import Note
from ..cast.slips import cast_warnings
from ..cast.spec import DEFAULT_GRACE, CastSpec, ProcSpec
from ..errors import PipeplexError, SpawnError, ours_in_tracebacks
from ..inputs.router import Router
from ..participants import Guardian, Process
from ..participants._proc import proc_is_ours
from ..participants.health_check import run_check
from ..participants.orphans import Adoption
from ..participants.process import reap_children_again_said
from ..readiness.wait import ReadyWait
from ._cast_state import CastState
from ._cast_stop import CastStop
from ._exit_policy import ExitPolicy
from ._member_requests import MemberRequests
from ._supervision import Supervision
from .stopping import Stopper, first
from .verdict import Failure

__all__ = ("DEFAULT_GRACE", "Engine", "Failure")

__tracebackhide__ = ours_in_tracebacks  # (pytest: see there)

NO_PROC = ("/proc is not mounted here: what members start outside their process groups (a "
           "daemon's setsid) cannot be found, and is not stopped with the cast, nor if pipeplex "
           "is killed; mount /proc to have it stopped")
FOREIGN_PROC = ("/proc here is another PID namespace's (unshare -p without --mount-proc?): what "
                "members start outside their process groups (a daemon's setsid) cannot be "
                "found, and is not stopped with the cast, nor if pipeplex is killed; mount this "
                "namespace's own /proc to have it stopped")

KILLED_EXIT_WAIT = 1.0
"""Seconds a run that failed or was cancelled, having SIGKILLed its members on the way out,
waits for their exits (all of them together, blocking: the kernel ends a killed process in
milliseconds) so that they are reaped, not left zombies, before it lets go of them."""


def _proc_missing() -> str | None:
    """What to say where /proc cannot be read for this namespace's processes, if so."""
    if proc_is_ours():
        return None
    return FOREIGN_PROC if os.path.exists("/proc/self/stat") else NO_PROC


class Engine:
    """Runs one cast from start to a clean stop. Use :meth:`run` once."""

    def __init__(
        self,
        cast: CastSpec,
        bus: Bus,
        *,
        grace: float = DEFAULT_GRACE,
        columns: int = 80,
        rows: int = 24,
        env_overrides: Mapping[str, str] | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        guardian: Guardian | None = None,
        stdin_grace: float = 0.0,
        adoption: Adoption | None = None,
    ) -> None:
        self.cast = cast
        self.bus = bus
        checks: set[int] = set()  # runs of ready_cmd and stop_cmd under way (reaped by us)
        self.stopper = Stopper(bus, grace=grace, stdin_grace=stdin_grace,
                               run_id=(env_overrides or {}).get("PIPEPLEX_RUN_ID"),
                               checks=checks)
        self._process_options: dict[str, Any] = {
            "on_crash": self.crash, "columns": columns, "rows": rows,
            "env_overrides": env_overrides, "guardian": guardian,
        }
        self.members: dict[str, Process] = {
            spec.name: Process(spec, bus, **self._process_options) for spec in cast.procs
        }
        self.state = CastState(cast, bus, self.members, self.stopper)
        self.router = Router(self.members, stopping=lambda: self.state.stopping)
        self.variables = self.state.variables
        self.outcomes = self.state.outcomes
        self.standing = self.state.standing
        self.recent = self.state.recent
        self.when_over = self.state.when_over
        self._readying = ReadyWait(bus, self.members, self.variables, guardian=guardian,
                                   checks=checks)
        self._supervision = Supervision(self.state, ExitPolicy(self.state, sleep),
                                        self._readying)
        self._requests = MemberRequests(
            self.state, self._supervision, self.router,
            lambda spec: Process(spec, bus, **self._process_options))
        # This process is the cast's subreaper (``pipeplex run`` and ``test``): its children
        # other than :meth:`own_children`, and other than those it had before, are what the
        # cast orphaned, stopped at the end with the rest (by the guardian, should this
        # process be killed while it was stopped and could not tell of them).
        adopting = adoption if adoption is not None and adoption.active else None
        self._cast_stop = CastStop(self.state, guardian=guardian, checks=checks,
                                   adoption=adopting)
        if guardian is not None and adopting is not None:
            guardian.adopting(adopting.before_started)
        self._crash: asyncio.Future[None] | None = None
        self._began = asyncio.Event()
        self._guardian, self._checks = guardian, checks
        self.stopper.stop_command = self._run_stop_cmd

    async def _run_stop_cmd(self, member: Process, output: bytearray,
                            began: Callable[[], None]) -> int:
        """Run ``member``'s ``stop_cmd`` once (see :data:`.stopping.StopCommand`), as a
        health check runs: with the values its run started with and those it captured, in
        its environment and folder, told to the guardian, reaped by us."""
        seat, spec = self.state.seats[member.name], member.spec
        own = spec.captured_variables()
        # What it captured counts only once this run is ready: a restarted server's old
        # port may be another's by now, and a command sent there would stop a stranger.
        values = {**seat.started_with, **seat.captured} if seat.ready_last else {
            key: value for key, value in seat.started_with.items() if key not in own}
        text = spec.helper_text("stop_cmd")
        # A value it captures itself, wanted before it was ready: not run with the name as
        # text, nor with an earlier run's value (the stop signal asks instead).
        if unknown := sorted(spec.helper_variables("stop_cmd") & own - values.keys()):
            whose = (f"this run of {member.name}" if unknown[0] in seat.captured
                     else member.name)
            raise SpawnError(member.name, text, f"it uses {{{unknown[0]}}}, which {whose} "
                                                "has not captured yet (it was not ready)")
        return await run_check(member.name, spec.helper_argv("stop_cmd", values), text, output,
                               env=member.environment(values), cwd=spec.cwd,
                               guardian=self._guardian, running=self._checks, began=began)

    @property
    def stopping(self) -> bool:
        return self.state.stopping

    @property
    def restarts(self) -> dict[str, int]:
        """Each member's count of restarts."""
        return {name: seat.restarts for name, seat in self.state.seats.items()}

    @property
    def interrupted_by(self) -> int | None:
        """The signal that interrupted the run (it makes the exit status 128 + N)."""
        return self.state.interrupted_by

    @interrupted_by.setter
    def interrupted_by(self, signum: int | None) -> None:
        self.state.interrupted_by = signum

    @property
    def stop_asked(self) -> bool:
        """A person or a client asked for the stop (not only the cast ending on its own)."""
        return self.state.stop_asked

    @property
    def stop_began_asked(self) -> bool:
        """The stop under way began because a person or a client asked for it (see
        :attr:`CastState.stop_began_asked`)."""
        return self.state.stop_began_asked

    @property
    def stopped_by(self) -> str | None:
        """The member whose end stopped the cast (see :attr:`CastState.stopped_by`)."""
        return self.state.stopped_by

    @property
    def stop_began(self) -> float | None:
        """When the stop of the whole cast was requested (``time.monotonic()``)."""
        return self.state.stop_began

    # Control from outside ----------------------------------------------------------------

    def request_stop(self, reason: str | None = None, *, interrupted_by: int | None = None,
                     asked: bool = False, stdin_first: bool = False,
                     by: str | None = None, announced: bool = False) -> None:
        """Stop the whole cast (idempotent). ``reason`` is announced once. ``asked``: a
        person or a client asked for it (``pipeplex stop``, ``:quit``), so a Ctrl-C from
        now on skips the grace, as a second one does. ``stdin_first``: each member gets
        :data:`~.stopping.EOF_GRACE` to end at EOF on its stdin before SIGTERM (a script's
        ``:quit``: the lines sent just before get their answers). ``by``: the member whose
        end stops it (see :attr:`stopped_by`); ``announced``: the caller said ``reason``
        already, in a note of its own."""
        self.state.request_stop(reason, interrupted_by=interrupted_by, asked=asked,
                                stdin_first=stdin_first, by=by, announced=announced)

    @property
    def stop_reason(self) -> str | None:
        """Why the cast is stopping, as announced ("db exited with code 0; stopping the
        cast (on_exit = stop)"); None while it runs, or when no reason was given."""
        return self.state.stop_reason

    @property
    def stop_cause(self) -> str | None:
        """Why the cast is stopping, in short, for a status: the announced reason up to
        its "stopping the cast" ("db exited with code 3", "got SIGINT"), else the member
        whose end stopped it; None while it runs (or for a stop given no reason)."""
        return self.state.stop_cause

    async def until_stopping(self) -> None:
        """Return once a stop of the whole cast has been requested (from anywhere)."""
        await asyncio.shield(self.state.stop)

    def force_stop(self, cause: str | None = None) -> None:
        """Skip the remaining grace periods: SIGKILL whatever still runs. ``cause``, what
        asked for it (``got SIGQUIT``), begins the line that says so."""
        self.request_stop()
        if self.stopper.skip_grace():
            said = "skipping the grace period: SIGKILL to every member"
            self.bus.publish(Note(f"{cause}: {said}" if cause else said, level="warning"))

    # Requests about one member (see :class:`~._member_requests.MemberRequests`) ----------

    async def restart(self, name: str, *, stdin_first: bool = False) -> int:
        """Stop member ``name`` (the usual escalation) and start it again; its new run's pid."""
        return await self._requests.restart(name, stdin_first=stdin_first)

    async def restart_until_ready(self, name: str, *, stdin_first: bool = False) -> int:
        """:meth:`restart`, then wait until the new run is ready; the pid of the run that is."""
        return await self._requests.restart_until_ready(name, stdin_first=stdin_first)

    def why_not_up_again(self, name: str) -> str:
        """Why ``name``'s new run (a restart's) did not get ready, and its last output."""
        return self._requests.why_not_up_again(name)

    async def start(self, name: str, restart_with: str | None = None) -> None:
        """Start a member declared with ``autostart = false``; return once it is ready
        (``restart_with``: see :meth:`MemberRequests.start`)."""
        await self._requests.start(name, restart_with)

    def add(self, spec: ProcSpec, *, let_go_on_failure: bool = False) -> Process:
        """Add a member to the running cast and start supervising it (the API's spawn, which
        lets go of one that fails: ``let_go_on_failure``, and load)."""
        return self._requests.add(spec, let_go_on_failure=let_go_on_failure)

    def in_waves(self, waves: Sequence[Sequence[str]]) -> None:
        """The members just added (a loaded cast's) start in ``waves``, and are stopped by
        them in reverse, as the members of a cast run by ``pipeplex run``."""
        self._requests.in_waves(waves)

    def check_can_add(self, name: str) -> None:
        """Raise unless a member named ``name`` may be added (a free name, or one whose
        member has ended)."""
        self._requests.check_can_add(name)

    async def remove(self, name: str) -> None:
        """Stop the added member ``name`` if it runs, and let it go: its name is free."""
        await self._requests.remove(name)

    async def wait_ready(self, name: str) -> bool:
        """Wait until member ``name`` is ready; False if the cast began to stop first."""
        return await self._requests.wait_ready(name)

    async def wait_up_again(self, name: str) -> bool:
        """Wait until ``name``'s current run is ready, or nothing more will come of it."""
        return await self._requests.wait_up_again(name)

    async def wait_ended(self, name: str) -> None:
        """Once ``name``'s run has exited and nothing follows it, wait until its name is
        free; return at once otherwise."""
        await self._requests.wait_ended(name)

    async def stop_leftovers(self, name: str) -> None:
        """Stop what the ended member ``name`` left, as before a restart."""
        await self._requests.stop_leftovers(name)

    # What each member stands at ----------------------------------------------------------

    def status(self) -> list[dict[str, Any]]:
        """One record per member (see :meth:`Standing.records`)."""
        return self.standing.records()

    def will_restart(self, name: str) -> bool:
        """Whether an exit of ``name`` is followed by a next run, by its policy."""
        return self.standing.will_restart(name)

    def restarting(self, name: str) -> bool:
        """Whether a restart asked for (``pipeplex restart``, ``:restart``, the API's) is
        under way for ``name``, its new run not yet spawned: the exit of its run is the
        restart's doing."""
        seat = self.state.seats.get(name)
        return seat is not None and seat.restarted is not None and not seat.restarted.done()

    def gave_up(self, name: str) -> str | None:
        """How ``name``'s restart policy gave up on it ("gave up after 2 restarts"); None
        if it did not."""
        return self.outcomes.gave_up.get(name)

    def never_started_for(self, name: str) -> str | None:
        """Why ``name`` has not started and will not without a start step (see
        :meth:`Standing.never_started_for`)."""
        return self.standing.never_started_for(name)

    def start_failure(self, name: str) -> str | None:
        """Why ``name``, which has not started, never will by itself (see
        :meth:`Standing.start_failure`)."""
        return self.standing.start_failure(name)

    def being_removed(self, name: str) -> bool:
        """Whether :meth:`remove` of ``name`` is under way (stopping it)."""
        seat = self.state.seats.get(name)
        return seat is not None and seat.removing

    def waiting_for(self, name: str) -> str | None:
        """What ``name``'s current run waits for to be ready (None: nothing, or not known)."""
        seat = self.state.seats.get(name)
        return seat.waiting_for if seat is not None else None

    def held_output_end(self, name: str) -> asyncio.Future[None] | None:
        """For member ``name``, whose run has ended: done once no process it started holds
        its output open (None: none did)."""
        member = self.members.get(name)
        return member.output.held_output_end if member is not None else None

    def ended_at(self, name: str) -> float | None:
        """When member ``name``'s last run ended (the loop's clock; None: it has not)."""
        member = self.members.get(name)
        return member.ended_at if member is not None else None

    def goes_on(self) -> bool:
        """Whether the cast goes on: not stopping, and some member not over."""
        return not self.stopping and not all(map(self.state.ended, self.members.values()))

    def resize(self, columns: int, rows: int) -> None:
        """pipeplex's terminal changed size: members on a pty get ``columns`` and ``rows``
        (running ones at once, with their SIGWINCH in a full terminal; the others at their
        start)."""
        self._process_options.update(columns=columns, rows=rows)
        for member in self.members.values():
            member.resize(columns, rows)

    def crash(self, exc: BaseException) -> None:
        """A callback failed: end the run with this exception."""
        if self._crash is not None and not self._crash.done():
            self._crash.set_exception(exc)

    # Running -----------------------------------------------------------------------------

    async def run(self) -> int:
        """Start every member, run until the cast ends, and return the exit status."""
        self.state.begin()
        self._readying.begin(self.state.stop)
        self.stopper.begin()
        self._crash = asyncio.get_running_loop().create_future()
        self._began.set()
        for text in cast_warnings(self.cast):  # (a slip, most likely: said before it runs)
            self.bus.publish(Note(text, level="warning"))
        if (missing := _proc_missing()) is not None:  # (a chroot, a bare sandbox)
            self.bus.publish(Note(missing, level="warning"))
        reap_children_again_said(self.bus)  # (a program using the API: the command cleans its own)
        self.state.take_early_stop()
        try:
            async with asyncio.TaskGroup() as tg:
                self.state.tg = tg
                for member in self.members.values():
                    self._supervision.supervise(member)
                stopping = tg.create_task(self._cast_stop.run(), name="stop the cast")
                crash_watch = tg.create_task(self._watch_crash(), name="crash watch")
                await stopping
                crash_watch.cancel()
        except BaseException as exc:
            self._cast_stop.kill_everything()
            self._fail_waiting(exc)
            raise
        finally:
            self.state.tg = None  # (the run is over: nothing more runs in it)
            exit_by = time.monotonic() + KILLED_EXIT_WAIT
            for member in self.members.values():
                # Output held open by a process that escaped the stop; and, after a failure
                # or a cancel, runs whose exit is not read yet: every member's descriptors
                # are closed by the time the run ends.
                member.close(exit_by)
        self.state.verdict.judge_at_eof(self.state.start_waves())
        self._summarize()
        return self.exit_status()

    def _fail_waiting(self, exc: BaseException) -> None:
        """The run failed (a bug, not a member's doing): whoever waits for a member to be
        ready (a spawn) is told, rather than left waiting for ever."""
        while isinstance(exc, BaseExceptionGroup) and exc.exceptions:
            exc = exc.exceptions[0]
        for ready in (seat.ready for seat in self.state.seats.values()):
            if ready is not None and not ready.done():
                failed = PipeplexError(f"pipeplex failed while this member started: {exc!r}")
                failed.__cause__ = exc
                ready.set_exception(failed)
                ready.exception()  # (retrieved: one nobody waits for is no warning)

    async def _watch_crash(self) -> None:
        assert self._crash is not None
        await self._crash

    @property
    def failures(self) -> list[Failure]:
        """The members that failed on their own, in the order they did (see :mod:`.verdict`)."""
        return self.state.verdict.failures

    def exit_status(self) -> int:
        """0 when every member that ended on its own succeeded; else the first failure's."""
        return self.state.verdict.status(self.interrupted_by)

    def record_failure(self, name: str, status: int, reason: str,
                       at: float | None = None, *, step: bool = False) -> None:
        """Count a failure toward the exit status (the first one decides it); ``at``: when
        it happened, if that was before now; ``step``: a scenario's step failed (``name``:
        the member it was about, or "steps")."""
        self.state.record_failure(name, status, reason, at, step=step)

    def exit_checked(self, name: str, started: float, ended: float) -> None:
        """A step found that the run of ``name`` from ``started`` to ``ended`` ended as it
        expected (its code): that exit is not a failure of the run."""
        # (An exit seen only once the stop began is counted no later than that: see
        # ExitPolicy.after_exit.)
        said_at = {ended}
        if self.stop_began is not None and self.stop_began >= started:
            said_at.add(min(ended, self.stop_began))
        self.state.verdict.expected(name, said_at)

    async def wait_began(self) -> None:
        """Wait until :meth:`run` has begun (members may still be starting)."""
        await self._began.wait()

    async def wait_up(self) -> bool:
        """Wait until every member that starts by itself is ready; False if stopping first.

        A member that waits (itself, or through its ``after``) for an ``autostart = false``
        member nobody has asked to start is not waited for: the steps that would start that
        one run only once the cast is up.
        """
        await self._began.wait()
        for name, member in self.members.items():
            if member.spec.autostart and self.standing.unrequested(name) is None:
                await first(self.state.ready(name), self.state.stop)
            if self.stopping:
                return False
        return True

    def hold(self) -> None:
        """Keep the cast going even if every member has ended (until :meth:`release`).

        A scenario holds the cast while its steps run: a later step may start a member.
        """
        self.state.hold()

    def release(self) -> None:
        self.state.release()

    def own_children(self) -> set[int]:
        """This process's children that are not to be reaped by whoever reaps orphans (see
        :meth:`CastStop.own_children`)."""
        return self._cast_stop.own_children()

    def _summarize(self) -> None:
        for note in self.outcomes.closing(self.failures, self.cast,
                                          interrupted_by=self.interrupted_by,
                                          stop_asked=self.stop_asked,
                                          stopped_because=self.stopped_by,
                                          stop_began=self.stop_began):
            self.bus.publish(note)
