"""The engine: starts the cast in order, watches it, and stops it the same way every time.

One asyncio TaskGroup owns a supervisor task per member and the task that stops the
cast; nothing runs outside it, so an error anywhere reaches :meth:`Engine.run`. Members
start in waves (``after`` dependencies, each waiting for its dependencies to be *ready*),
and stop in the reverse waves, each member as :class:`~._stopping.Stopper` does it: close
stdin, SIGTERM to the process group, a grace period, SIGKILL, every step announced.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import os
import signal
import time
import warnings
from collections.abc import Awaitable, Callable, Coroutine, Mapping
from typing import Any

from ._bus import Bus
from ._events import Level, Note, Output, Ready, Started
from ._outcomes import Outcomes
from ._recent import RecentOutput
from ._seat import Seat
from ._signals import describe_returncode, exit_status, reap_children_again
from ._standing import Standing
from ._stopping import EOF_GRACE, Stopper, first
from ._verdict import Failure, Verdict
from .cast.order import stop_order
from .cast.slips import cast_warnings, echo_warning_filled
from .cast.spec import (
    DEFAULT_GRACE,
    CastSpec,
    ProcSpec,
    is_port,
)
from .errors import NotReady, PipeplexError, SignalRefused, SpawnError, ours_in_tracebacks
from .inputs.router import ALL, Router
from .participants import Guardian, Process
from .participants._escaped import start_time
from .participants.orphans import Adoption, children, descendants
from .readiness.lines import RunWatch, waits_for_prompt
from .readiness.wait import ReadyWait, Unready, assignments, finished

__all__ = ("BACKOFF_CAP", "BACKOFF_START", "DEFAULT_GRACE", "Engine", "Failure", "backoff_delay")

NO_PROC = ("/proc is not mounted here: what members start outside their process groups (a "
           "daemon's setsid) cannot be found, and is not stopped with the cast, nor if pipeplex "
           "is killed; mount /proc to have it stopped")

SIGCHLD_IGNORED = ("SIGCHLD was ignored in this process (set in it, or inherited from what "
                   "started it), so the kernel would reap each member as it exits and every exit "
                   "status would read 0: pipeplex set SIGCHLD back to its default")


def _proc_mounted() -> bool:
    return os.path.exists("/proc/self/stat")  # (a stat: no wait worth a thread)
__tracebackhide__ = ours_in_tracebacks  # (pytest: see there)

BACKOFF_START = 0.1
BACKOFF_CAP = 5.0


def backoff_delay(attempt: int) -> float:
    """Seconds before restart ``attempt + 1``: doubling from BACKOFF_START, up to BACKOFF_CAP.
    (The exponent stops growing with the cap: ``0.1 * 2 ** 1024`` is an OverflowError, after
    some 85 minutes of a crash loop with a high ``max_restarts``.)"""
    return min(BACKOFF_START * 2.0 ** min(attempt, 32), BACKOFF_CAP)
RESTART_RESET = 10.0
"""A member that ran this long before exiting starts its restart count afresh."""


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
        self._guardian = guardian
        self._checks: set[int] = set()
        """The runs of members' ready_cmd under way (pipeplex's children, reaped by it)."""
        self._adoption = adoption if adoption is not None and adoption.active else None
        """This process is the cast's subreaper (``pipeplex run`` and ``test``): its
        children other than :meth:`own_children`, and other than those it had before, are
        what the cast orphaned, stopped at the end with the rest."""
        self.stopper = Stopper(bus, grace=grace, stdin_grace=stdin_grace,
                               run_id=(env_overrides or {}).get("PIPEPLEX_RUN_ID"),
                               checks=self._checks)
        self._sleep = sleep
        self._process_options: dict[str, Any] = {
            "on_crash": self.crash, "columns": columns, "rows": rows,
            "env_overrides": env_overrides, "guardian": guardian,
        }
        self.members: dict[str, Process] = {
            spec.name: Process(spec, bus, **self._process_options) for spec in cast.procs
        }
        self.verdict = Verdict()
        self._seats: dict[str, Seat] = {name: Seat() for name in self.members}
        """Each member's supervision state, by name (see :class:`~._seat.Seat`)."""
        self._late_waves: list[list[str]] = []
        """Members added while running (:meth:`add`): each is its own, last, wave."""
        self.router = Router(self.members)
        self.variables: dict[str, str] = {}
        self._readying = ReadyWait(bus, self.members, self.variables, guardian=guardian,
                                   checks=self._checks)
        self.interrupted_by: int | None = None
        self.stop_asked = False
        """A person or a client asked for the stop (not only the cast ending on its own)."""
        self.stopped_by: str | None = None
        """The member whose end stopped the cast (it could not start or get ready, gave up
        restarting, or ended with ``on_exit = "stop"``); None when nothing stops it, or
        something else did."""
        self.stop_began: float | None = None
        """When the stop of the whole cast was requested (``time.monotonic()``)."""
        self.recent = RecentOutput(silence=self._why_silent)
        bus.subscribe(self.recent, [Output, Started])
        self.when_over: list[Callable[[str], None]] = []
        """Called with a member's name when nothing more will run of it (its policy gave
        up, the cast stopped it, it was removed): a matcher ends the waits that went on
        through its exits for its next run."""
        self._stop: asyncio.Future[str | None] | None = None
        self._crash: asyncio.Future[None] | None = None
        self._busy = 0
        """Supervisors at work plus holds; the cast ends on its own when this reaches 0."""
        self._all_done: asyncio.Future[None] | None = None
        self._early_stop: tuple[str | None, int | None] | None = None
        self._tg: asyncio.TaskGroup | None = None
        self.outcomes = Outcomes(self.members, self._seats)
        """Who waited for whom, who failed and why: what the summaries are made of."""
        self.standing = Standing(self.members, self._seats, self.outcomes,
                                 lambda: self.stopping)
        """What each member waits for, and what holds it back."""
        self._began = asyncio.Event()

    @property
    def stopping(self) -> bool:
        return self._stop is not None and self._stop.done()

    @property
    def restarts(self) -> dict[str, int]:
        """Each member's count of restarts."""
        return {name: seat.restarts for name, seat in self._seats.items()}

    def _ready(self, name: str) -> asyncio.Future[None]:
        """``name``'s first readiness (made as the run begins, or as it is added)."""
        ready = self._seats[name].ready
        assert ready is not None, "run() has not begun"
        return ready

    # Control from outside ----------------------------------------------------------------

    def request_stop(self, reason: str | None = None, *, interrupted_by: int | None = None,
                     asked: bool = False, stdin_first: bool = False,
                     by: str | None = None, announced: bool = False) -> None:
        """Stop the whole cast (idempotent). ``reason`` is announced once. ``asked``: a
        person or a client asked for it (``pipeplex stop``, ``:quit``), so a Ctrl-C from
        now on skips the grace, as a second one does. ``stdin_first``: each member gets
        :data:`EOF_GRACE` to end at EOF on its stdin before SIGTERM (a script's ``:quit``:
        the lines sent just before get their answers). ``by``: the member whose end stops
        it (see :attr:`stopped_by`); ``announced``: the caller said ``reason`` already, in
        a note of its own."""
        if asked:
            self.stop_asked = True
        if stdin_first and not self.stopping:
            self.stopper.stdin_grace = max(self.stopper.stdin_grace, EOF_GRACE)
        if self._stop is None:  # before run(): stop as soon as it begins
            self._early_stop = self._early_stop or (reason, interrupted_by)
            return
        if self._stop.done():
            return
        if interrupted_by is not None:
            self.interrupted_by = interrupted_by
        if reason and not announced:
            self.bus.publish(Note(reason))
        self.stopped_by = by
        self.stop_began = time.monotonic()
        self.outcomes.up_when_stopped = frozenset(
            name for name, seat in self._seats.items() if seat.up_now or seat.ready_last)
        self._stop.set_result(reason)

    @property
    def stop_reason(self) -> str | None:
        """Why the cast is stopping, as announced ("db exited with code 0; stopping the
        cast (on_exit = stop)"); None while it runs, or when no reason was given."""
        if self._stop is None or not self._stop.done():
            return None
        reason: str | None = self._stop.result()
        return reason

    @property
    def stop_cause(self) -> str | None:
        """Why the cast is stopping, in short, for a status: the announced reason up to
        its "stopping the cast" ("db exited with code 3", "got SIGINT"), else the member
        whose end stopped it; None while it runs (or for a stop given no reason)."""
        reason = self.stop_reason
        if reason is None:
            return None
        cause = reason.partition("stopping the cast")[0].rstrip(":;, ").removesuffix(" and")
        if not cause and self.stopped_by is not None:
            cause = f"because of {self.stopped_by}"
        return cause or None

    async def until_stopping(self) -> None:
        """Return once a stop of the whole cast has been requested (from anywhere)."""
        assert self._stop is not None, "run() has not begun"
        await asyncio.shield(self._stop)

    def force_stop(self, cause: str | None = None) -> None:
        """Skip the remaining grace periods: SIGKILL whatever still runs. ``cause``, what
        asked for it (``got SIGQUIT``), begins the line that says so."""
        self.request_stop()
        if self.stopper.skip_grace():
            said = "skipping the grace period: SIGKILL to every member"
            self.bus.publish(Note(f"{cause}: {said}" if cause else said, level="warning"))

    async def restart(self, name: str, *, stdin_first: bool = False) -> int:
        """Stop member ``name`` (the usual escalation) and start it again. ``stdin_first``:
        it gets :data:`EOF_GRACE` to end at EOF first (a console's restart: the lines sent
        just before get their answers).

        Works on a running member and on one that has ended while the cast goes on; the
        member's on_exit policy does not apply to this stop. Returns the new instance's pid
        once it runs (it may have exited since). A request that comes while the member is
        being restarted shares that restart. If the new instance cannot start, the cast
        stops as when a member cannot start at first, unless its on_exit is "ignore" and it
        was ready before: then it stays down.

        Raises:
            UnknownMember: no such member.
            SpawnError: the new instance could not start.
            PipeplexError: the cast is stopping (or began to before the member started
                again), or the member has not started yet.
        """
        member = self.router.resolve(name)[0]
        seat = self._seats[name]
        if self._tg is None or self._stop is None or self.stopping:
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
        if seat.added and self.standing.failed_to_start(name):
            # Its spawn failed (NotReady, SpawnError) and its name is free for a new one.
            raise PipeplexError(f"{name} did not start again: it failed to start or to get ready")
        restarted = seat.restarted
        held = self.standing.held_back_by(name)
        if held is not None and (restarted is None or restarted.done()):  # (left as it is)
            raise PipeplexError(f"{name} {held}")
        if member.pid is None and not seat.supervising:
            # Held back before it ever ran (a member it starts after ended for good), or
            # never started (one failed): started now, as at first.
            self._restart_anew(name)
        if restarted is None or restarted.done():
            restarted = seat.restarted = asyncio.get_running_loop().create_future()
            self.bus.publish(Note("restarting on request", name=name))
            # Down from now until its new run is ready, whatever it is doing: a member
            # started after it meanwhile (during its stop's grace, say) would otherwise start
            # with the values of a run going away.
            self._down(name)
            if member.running:
                seat.restart_requested = True
                await self._to_the_end(self.stopper.stop(member, stdin_first=stdin_first))
            elif seat.supervising:
                # It has exited and its supervisor is not done with it (its output still
                # drains, or it waits out a restart's backoff): that supervisor starts it
                # again, at once; or, if it is past taking it, starts a new one.
                seat.restart_requested = True
                wake = seat.backoff
                if wake is not None and not wake.done():
                    wake.set_result(None)
            else:
                self._busy += 1
                self._start_supervisor(member)
        # else: a restart is under way and its new instance starts after this request too:
        # requests that come together make one restart, never instances side by side.
        await first(restarted, self._stop)
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
        pid = self.members[name].pid
        assert pid is not None
        return pid

    def why_not_up_again(self, name: str) -> str:
        """Why ``name``'s new run (a restart's) did not get ready: how it ended, or why the
        cast stopped first; then its last output."""
        seat = self._seats.get(name)
        if name not in self.members or seat is None or seat.removing:  # (the API's remove)
            return f"{name} did not get ready again: it was removed"
        code = self.members[name].returncode
        own = self.own_failure(name) if code is None else None
        if own is not None:
            said = f"{name} did not get ready again: {own}"
        else:
            how = f" ({name} {describe_returncode(code)})" if code is not None else ""
            said = f"{name} did not get ready again{how}"
            if self.stopping and self.stopped_by == name:  # (its end stops the cast)
                gave_up = self.outcomes.why_failed.get(name, "")
                said += (f"; it {gave_up.removeprefix('which ')}" if "gave up" in gave_up
                         else "") + ": the cast stops"
            elif self.stopping and self.stop_cause:
                said += f" (the cast was stopping: {self.stop_cause})"
        return f"{said}\n{self.recent.describe(name)}"

    async def start(self, name: str) -> None:
        """Start a member declared with ``autostart = false``; return once it is ready.

        Raises:
            UnknownMember: no such member.
            PipeplexError: it starts by itself, or was already started.
        """
        self.router.resolve(name)  # raises UnknownMember
        seat = self._seats[name]
        if seat.removing:
            raise PipeplexError(f"{name} is being removed; it is not started")
        requested = seat.start_requested
        if requested is None:
            raise PipeplexError(f"{name} starts by itself (only autostart = false members "
                                "are started on request)")
        member = self.members[name]
        again = requested.done() and member.pid is None and not seat.supervising
        # A start under way (asked for a moment ago, waiting for a member it starts after,
        # or for its readiness): this request waits for it too, as requests that come
        # together share one restart.
        joining = (requested.done() and not again and seat.supervising
                   and not self._ready(name).done())
        if requested.done() and not again and not joining:
            if finished(member):
                raise PipeplexError(f"{name} was already started, and its step is done (it "
                                    f"exited with code 0): pipeplex restart {name} runs it "
                                    "again")
            if member.returncode is not None and not member.running:
                raise PipeplexError(f"{name} was already started, and has ended "
                                    f"({describe_returncode(member.returncode)}): pipeplex "
                                    f"restart {name} runs it again")
            raise PipeplexError(f"{name} was already started")
        blocked_by = next((found for dep in member.spec.after
                           if (found := self.standing.unrequested(dep)) is not None), None)
        if blocked_by is not None:  # it would wait for ever: say for whom (and start nothing)
            raise PipeplexError(f"{name} starts after {blocked_by}, which has autostart = "
                                f"false and was not started: start {blocked_by} first")
        held = None if joining else self.standing.held_back_by(name)
        if held is not None:
            raise PipeplexError(f"{name} {held}")
        if again:  # it was held back before: asked again, it starts now
            self._restart_anew(name)
            self._busy += 1
            self._start_supervisor(member)
        elif not joining:
            requested.set_result(None)
        assert self._stop is not None
        await first(self._ready(name), self._stop)
        if not self._ready(name).done():
            member = self.members[name]
            if member.returncode is not None:
                raise PipeplexError(f"{name} {describe_returncode(member.returncode)} before it "
                                    f"was ready\n{self.recent.describe(name)}")
            own = self.own_failure(name)
            if own is not None:
                raise PipeplexError(f"{own}\n{self.recent.describe(name)}")
            why = f" ({self.stop_cause})" if self.stop_cause else ""
            started = "become ready" if member.pid is not None else "start"
            raise PipeplexError(f"{name} did not {started}: the cast began to stop{why}")
        self._ready(name).result()  # raises why an added member did not get ready

    def status(self) -> list[dict[str, Any]]:
        """One record per member (see :meth:`Standing.records`)."""
        return self.standing.records()

    def will_restart(self, name: str) -> bool:
        """Whether an exit of ``name`` is followed by a next run, by its policy."""
        return self.standing.will_restart(name)

    def never_started_for(self, name: str) -> str | None:
        """Why ``name`` has not started and will not without a start step (see
        :meth:`Standing.never_started_for`)."""
        return self.standing.never_started_for(name)

    def start_failure(self, name: str) -> str | None:
        """Why ``name``, which has not started, never will by itself (see
        :meth:`Standing.start_failure`)."""
        return self.standing.start_failure(name)

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
        loop = asyncio.get_running_loop()
        self._stop = loop.create_future()
        self._readying.begin(self._stop)
        self.stopper.begin()
        self._crash = loop.create_future()
        self._all_done = loop.create_future()
        for name, seat in self._seats.items():
            seat.ready = loop.create_future()
            if not self.members[name].spec.autostart:
                seat.start_requested = loop.create_future()
        self._busy += len(self.members)
        self._began.set()
        for text in cast_warnings(self.cast):  # (a slip, most likely: said before it runs)
            self.bus.publish(Note(text, level="warning"))
        if not _proc_mounted():  # (a chroot, a bare sandbox)
            self.bus.publish(Note(NO_PROC, level="warning"))
        if reap_children_again():  # (a program using the API: the command cleans its own)
            self.bus.publish(Note(SIGCHLD_IGNORED, level="warning"))
            with contextlib.suppress(Warning):  # (made an error: the run would not start)
                warnings.warn(SIGCHLD_IGNORED, RuntimeWarning, stacklevel=1)
        if self._early_stop:
            reason, interrupted_by = self._early_stop
            self.request_stop(reason, interrupted_by=interrupted_by)
        try:
            async with asyncio.TaskGroup() as tg:
                self._tg = tg
                for member in self.members.values():
                    self._start_supervisor(member)
                stopping = tg.create_task(self._stop_cast(), name="stop the cast")
                crash_watch = tg.create_task(self._watch_crash(), name="crash watch")
                await stopping
                crash_watch.cancel()
        except BaseException as exc:
            self._kill_everything()
            self._fail_waiting(exc)
            raise
        finally:
            self._tg = None  # (the run is over: nothing more runs in it)
            for member in self.members.values():
                member.close()  # output held open by a process that escaped the stop
        self.verdict.judge_at_eof(self._start_waves())
        self._summarize()
        return self.exit_status()

    def _fail_waiting(self, exc: BaseException) -> None:
        """The run failed (a bug, not a member's doing): whoever waits for a member to be
        ready (a spawn) is told, rather than left waiting for ever."""
        while isinstance(exc, BaseExceptionGroup) and exc.exceptions:
            exc = exc.exceptions[0]
        for ready in (seat.ready for seat in self._seats.values()):
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
        """The members that failed on their own, in the order they did (see :mod:`._verdict`)."""
        return self.verdict.failures

    def exit_status(self) -> int:
        """0 when every member that ended on its own succeeded; else the first failure's."""
        return self.verdict.status(self.interrupted_by)

    def _start_waves(self) -> list[list[str]]:
        """The members by when they start: the cast's waves, then each member added later."""
        return [[p.name for p in wave] for wave in self.cast.start_waves()] + self._late_waves

    def record_failure(self, name: str, status: int, reason: str,
                       at: float | None = None) -> None:
        """Count a failure toward the exit status (the first one decides it); ``at``: when
        it happened, if that was before now."""
        self.verdict.record(name, status, reason, at)

    def exit_checked(self, name: str, started: float, ended: float) -> None:
        """A step found that the run of ``name`` from ``started`` to ``ended`` ended as it
        expected (its code): that exit is not a failure of the run."""
        # (An exit seen only once the stop began is counted no later than that: see
        # _after_exit.)
        said_at = {ended}
        if self.stop_began is not None and self.stop_began >= started:
            said_at.add(min(ended, self.stop_began))
        self.verdict.expected(name, said_at)

    def _start_supervisor(self, member: Process, previous: Process | None = None) -> None:
        assert self._tg is not None
        # Supervised from now, not from when its task first runs: in between, the member
        # has not ended, and its name cannot be taken (two spawns of one name at once).
        seat = self._seats[member.name]
        seat.supervising = True
        seat.supervisor = self._tg.create_task(self._supervise(member, previous),
                                               name=f"supervise {member.name}")

    async def _supervise(self, member: Process, previous: Process | None = None) -> None:
        """Start ``member`` and keep it going by its policy; ``previous``: the ended member
        whose name it takes, whose leftovers are stopped first, as before a restart."""
        seat = self._seats[member.name]
        self._down(member.name)
        again = False
        try:
            if previous is not None and previous.pid is not None:
                await self._stop_remains(previous)
            if await self._wait_for_dependencies(member):
                await self._run_member(member)
            # A restart asked for while this supervisor was past taking it (ending); not
            # for an added member that failed to get ready (its name is free again).
            again = (seat.restart_requested and not self.stopping
                     and not self.standing.failed_to_start(member.name))
        finally:
            seat.supervising = False
            if again:
                seat.restart_requested = False
                self._busy += 1
                self._start_supervisor(member)
            else:
                self._set_up(member.name)  # nothing more will come of it: nobody waits
                for tell in self.when_over:
                    tell(member.name)
                seat.restart_requested = False
                asked, seat.restarted = seat.restarted, None
                because, seat.not_started_because = seat.not_started_because, None
                if asked is not None and not asked.done():  # a restart it will not have
                    why = because or ("it failed to start or to get ready"
                                      if self.standing.failed_to_start(member.name)
                                      else "the cast is stopping")
                    asked.set_exception(PipeplexError(f"{member.name} did not start again: {why}"))
                    asked.exception()  # (retrieved: its callers may have gone)
            self.release()

    def add(self, spec: ProcSpec) -> Process:
        """Add a member to the running cast and start supervising it (the Python API's spawn).

        Such a member answers for its own start: if it cannot be spawned or does not become
        ready, it is stopped, :meth:`wait_ready` raises why, and the cast goes on. The name
        of a member that has ended (one that failed to get ready, say) may be used again:
        the new member takes its place.

        Raises:
            PipeplexError: the name belongs to a member that has not ended, or the cast is
                stopping or not running.
        """
        if self._tg is None or self._stop is None or self.stopping:
            raise PipeplexError(f"cannot add {spec.name!r}: the cast is not running")
        self.check_can_add(spec.name)
        previous = self.members.get(spec.name)
        if previous is not None:
            self._forget(spec.name)
        loop = asyncio.get_running_loop()
        member = self.members[spec.name] = Process(spec, self.bus, **self._process_options)
        seat = self._seats.setdefault(spec.name, Seat())
        seat.restarts = 0
        seat.ready = loop.create_future()
        if not spec.autostart:
            seat.start_requested = loop.create_future()
        seat.added = True
        self._late_waves.append([spec.name])
        self._busy += 1
        self._start_supervisor(member, previous)
        return member

    def _why_silent(self, name: str, awaiting: str | None = None) -> str:
        """Why a member that wrote nothing may have said something all the same.
        ``awaiting``: the pattern a step waited for in vain (else its ``ready``'s)."""
        member = self.members.get(name)
        if member is None or member.spec.pty == "full":
            return ""
        if member.spec.pty == "stdout":
            awaited = awaiting if awaiting is not None else member.spec.ready
            if (member.returncode is not None or member.stopping
                    or not waits_for_prompt(awaited or "")):
                return ""  # (only for a member still waited for at a prompt it never wrote)
            return ("a program that prompts only when its stdin is a terminal, as sqlite3 "
                    "and psql do, writes no prompt with pty = \"stdout\"; pty = true gives "
                    "it one")
        return ("its output is a pipe (pty = false), and a program that buffers its output "
                "off a terminal shows nothing until it flushes; pty = \"stdout\" gives it one")

    def check_can_add(self, name: str) -> None:
        """Raise unless a member named ``name`` may be added: a free name, or one whose
        member has ended (its program exited and was read, nothing will restart it).

        Raises:
            PipeplexError: the name is ``all``, or its member has not ended, saying how.
        """
        if name == ALL:
            raise PipeplexError(f"the name {ALL!r} is reserved (it addresses every member)")
        member = self.members.get(name)
        if member is None or self._ended(member):
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
        return not self.stopping and not all(map(self._ended, self.members.values()))

    def _ended(self, member: Process) -> bool:
        """Whether ``member`` is over: not running, not waiting, nothing will restart it."""
        if self._seats[member.name].supervising or member.running:
            return False
        return member.pid is None or member.done_future.done()

    def _forget(self, name: str) -> None:
        """Drop what the engine kept about an ended member whose name is used again."""
        self.members[name].release_output()
        self._late_waves = [wave for wave in self._late_waves if wave != [name]]
        self._seats[name].forget_runs()
        self.outcomes.forget(name)
        self.recent.forget(name)  # a later failure shows the new member's output only

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
        member = self.router.resolve(name)[0]
        dependents = [other.name for other in self.members.values() if name in other.spec.after]
        if dependents:
            raise PipeplexError(f"{name} cannot be removed: {', '.join(dependents)} "
                                f"start{'s' if len(dependents) == 1 else ''} after it")
        seat = self._seats[name]
        if not seat.added:
            raise PipeplexError(f"{name} is a member of the cast it was started with: only "
                                "members added to a running cast can be removed")
        seat.removing = True
        try:
            seat.restart_requested = False
            seat.not_started_because = "it was removed"
            while (task := seat.supervisor) is not None and not task.done():
                if not member.running:
                    task.cancel()  # it waits (its turn, a start, a backoff): no run comes
                elif self._tg is not None:
                    await self._to_the_end(self.stopper.stop(member))
                await asyncio.wait([task])  # (a run ending as the cast stops: by the stop)
            if self._tg is not None and member.pid is not None:
                await self.stop_leftovers(name)
        finally:
            seat.removing = False
        ready = seat.ready
        if ready is not None and not ready.done():
            ready.set_exception(PipeplexError(f"{name} was removed before it was ready"))
            ready.exception()  # (retrieved: nobody may be waiting)
        if self.members.get(name) is member:  # (not a member given the name meanwhile)
            self._forget(name)
            del self.members[name], self._seats[name]

    def own_failure(self, name: str) -> str | None:
        """Why the cast is stopping, when ``name``'s own failure stopped it (it could not
        get ready: what it waited for, and for how long); else None."""
        if self.stopped_by != name:
            return None
        own = [failure.reason for failure in self.verdict.failures if failure.name == name]
        return own[-1] if own else None

    def waiting_for(self, name: str) -> str | None:
        """What ``name``'s current run waits for to be ready (None: nothing, or not known)."""
        seat = self._seats.get(name)
        return seat.waiting_for if seat is not None else None

    async def wait_ready(self, name: str) -> bool:
        """Wait until member ``name`` is ready; False if the cast began to stop first.

        Raises:
            SpawnError, NotReady: an added member could not start or get ready.
        """
        assert self._stop is not None
        ready = self._ready(name)
        await first(ready, self._stop)
        if not ready.done():
            return False
        if ready.exception() is not None:
            # Raise once the member is over (stopped, its exit reported): its name is then
            # free for another try, and the events of the two never interleave.
            seat = self._seats.get(name)
            supervisor = seat.supervisor if seat is not None else None
            if supervisor is not None:
                await asyncio.wait([supervisor])
        ready.result()
        return True

    async def wait_up_again(self, name: str) -> bool:
        """Wait until ``name``'s current run is ready (a restart's, say: as its dependents'
        starts wait), or nothing more will come of it. Whether it got ready: False if it
        ended before it was, or the cast began to stop first."""
        assert self._stop is not None
        gate = self._up_gate(name)
        if gate is not None:
            await first(gate, self._stop)
        seat = self._seats.get(name)
        return not self.stopping and seat is not None and (seat.up_now or seat.ready_last)

    async def stop_leftovers(self, name: str) -> None:
        """Stop what the ended member ``name`` left in its process group (announced, with
        the usual escalation), as before a restart: before its name is used again."""
        member = self.members.get(name)
        if member is not None and member.pid is not None and not member.running:
            await self._to_the_end(self._stop_remains(member))

    async def _to_the_end(self, stop: Coroutine[Any, Any, None]) -> None:
        """Run ``stop`` in the engine's task group for a caller outside it: a caller that is
        cancelled (a timeout around :meth:`restart`) leaves it to finish, never half done
        (a member marked stopping that never gets its SIGKILL, a grace counted twice)."""
        assert self._tg is not None
        await asyncio.shield(self._tg.create_task(stop))

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
        assert self._stop is not None
        for name, member in self.members.items():
            if member.spec.autostart and self.standing.unrequested(name) is None:
                await first(self._ready(name), self._stop)
            if self.stopping:
                return False
        return True

    def hold(self) -> None:
        """Keep the cast going even if every member has ended (until :meth:`release`).

        A scenario holds the cast while its steps run: a later step may start a member.
        """
        self._busy += 1

    def release(self) -> None:
        self._busy -= 1
        if self._busy == 0 and self._all_done is not None and not self._all_done.done():
            self._all_done.set_result(None)

    async def _wait_for_dependencies(self, member: Process) -> bool:
        assert self._stop is not None
        requested = self._seats[member.name].start_requested
        if requested is not None:
            # Waiting to be asked does not keep the cast alive.
            self.release()
            await first(requested, self._stop)
            self.hold()
        for i, dep in enumerate(member.spec.after):
            self.outcomes.waiting_for[member.name] = dep
            self.outcomes.waiting_among[member.name] = member.spec.after[i:]
            await self._wait_ready_of(dep)
            if self.stopping:
                return False
            if self.standing.failed_to_start(dep):
                held = self.outcomes.ended_for_good.get(dep)  # ("which was not started: ...")
                why = f"{dep} {held.removeprefix('which ')}" if held else (
                    f"{dep} did not become ready")
                self.bus.publish(Note(f"not started: {why}", name=member.name, level="error"))
                if self._seats[member.name].added:
                    # Whoever waits for this one (a spawn, a load, its own dependents)
                    # learns that it will not start either, and why.
                    reason = f"{member.name} was not started: it waits for {dep}, "
                    self._fail_start(member.name, NotReady(
                        member.name, reason + self.outcomes.why_not_ready(dep),
                        self.recent.describe(self.outcomes.first_failed(dep))))
                return False
        self.outcomes.waiting_for.pop(member.name, None)
        self.outcomes.waiting_among.pop(member.name, None)
        return not self.stopping

    async def _wait_ready_of(self, dep: str) -> None:
        """Wait until ``dep`` is ready (or the cast stops). While it waits, itself or through
        its own ``after``, for an ``autostart = false`` member that nobody has asked to
        start, the wait does not keep the cast alive: a run with nothing left that could
        start it ends on its own."""
        assert self._stop is not None
        ready = self._ready(dep)
        while not ready.done() and not self.stopping:
            root = self.standing.unrequested(dep)
            if root is None:
                await first(ready, self._stop)
                return
            requested = self._seats[root].start_requested
            assert requested is not None  # (what makes it unrequested)
            self.release()
            try:
                await first(requested, ready, self._stop)
            finally:
                self.hold()

    def _fail_start(self, name: str, error: PipeplexError) -> None:
        """An added member could not start or get ready: tell whoever waits for it."""
        ready = self._ready(name)
        if not ready.done():
            ready.set_exception(error)
            # Whoever awaits it still gets the error; nobody may (a load that raised for
            # the member this one waited for): then asyncio must not log it as lost.
            ready.exception()

    async def _run_member(self, member: Process) -> None:
        try:
            await self._run_member_runs(member)
        finally:
            seat = self._seats[member.name]
            down, seat.down_after_failure = seat.down_after_failure, None
            if down is not None and self.stopping:  # stopped before its next run
                status, reason, at = down
                self.record_failure(member.name, status,
                                    f"{reason}, and the cast stopped before its restart", at)

    async def _run_member_runs(self, member: Process) -> None:
        spec, seat = member.spec, self._seats[member.name]
        attempt: int | None = 0
        while not self.stopping and attempt is not None:
            if member.pid is not None:
                # A restart: what the previous run left goes first (a worker still holding
                # the port, say), in its group or out of it, with the usual escalation.
                await self._stop_remains(member)
                if self.stopping:
                    return
            if not await self._wait_until_up(member):
                return
            # What the last run's leftovers still had to say is theirs, not the next run's:
            # it goes out before the new run's readiness is watched.
            member.release_output()
            run = RunWatch(member.name, spec.ready, self.bus,
                           functools.partial(self._ready_at_once, member))
            restarting = member.pid is not None
            seat.port_taken = frozenset()
            if spec.ready_port and is_port(spec.ready_port):  # (a {variable}: known later)
                self._readying.note_port_taken(member.name, seat, int(spec.ready_port))
            # A copy: what it starts with is one consistent set, whatever comes next; its
            # readiness checks use it too (a restart of a member it starts after may
            # capture other values meanwhile, for the next runs).
            started_with = dict(self.variables)
            try:
                await member.start(started_with)
            except SpawnError as exc:
                run.close()
                self._start_failed(member, exc, restarting)
                return
            if seat.restart_requested:  # a request met by this new run, which counts afresh
                seat.restart_requested = False
                attempt = 0
            self._started(member, restarting)
            seat.in_a_row, seat.started_with = attempt, started_with
            if not restarting and spec.input and spec.pty == "full" and (
                    echoed := echo_warning_filled(spec, started_with)) is not None:
                self.bus.publish(Note(echoed, name=member.name, level="warning"))
            if self.stopping and not member.stopping:
                await self.stopper.stop(member)
            try:
                ready_in_run = await self._wait_ready(member, run, started_with)
            finally:
                run.close()
            returncode = await member.wait_exited()
            attempt = await self._after_exit(member, returncode, ready_in_run, attempt)

    def _ready_at_once(self, member: Process, captured: dict[str, str]) -> bool:
        """Its ready line matched: it is said ready now, right after its line (before its
        exit, say), unless a port or a health check is still to be waited for, or the run
        is being stopped (one found not ready, say). Whether it was."""
        if member.spec.ready_port or member.spec.ready_cmd or member.stopping or self.stopping:
            return False
        self._now_ready(member, captured)
        return True

    def _start_failed(self, member: Process, exc: SpawnError, restarting: bool) -> None:
        """The member's program could not be started: said, and the cast stops, unless it
        was an added member's (it fails alone) or a restart of one whose exits are ignored
        (it stays down, and the cast goes on; its summary says why, and the exit status
        counts it, 127 or 126, as it counts an exit it ignores)."""
        seat = self._seats[member.name]
        seat.restart_requested = False
        restarted, seat.restarted = seat.restarted, None
        if restarted is not None and not restarted.done():
            restarted.set_exception(exc)
            restarted.exception()  # retrieved: its callers may have gone
        self.bus.publish(Note(str(exc), level="error"))
        self.outcomes.why_failed[member.name] = "which could not be started"
        self.outcomes.cannot_start[member.name] = exc.reason
        if seat.added:
            self._fail_start(member.name, exc)
            return
        self.record_failure(member.name, exc.status, str(exc))
        if restarting and member.spec.on_exit == "ignore" and self._ready(member.name).done():
            return
        # (Never ready yet: members after it would wait for it for ever.)
        self.request_stop(f"{member.name} could not be started: stopping the cast",
                          by=member.name)

    def _started(self, member: Process, restarting: bool) -> None:
        """A run of the member is under way: counted, and what was said of its last run's
        end (down after failing, unable to start) is over."""
        seat = self._seats[member.name]
        if restarting:
            seat.restarts += 1  # counted once the new instance runs
        seat.down_after_failure = None
        self.outcomes.cannot_start.pop(member.name, None)
        self.outcomes.ended_for_good.pop(member.name, None)
        # From its exit on, members that (re)start after it wait for its next run; not
        # once its supervisor has ended (it may see the exit first): no run will come.
        seat.up_now = seat.ready_last = False
        member.exit_future.add_done_callback(functools.partial(self._run_ended, member))
        restarted, seat.restarted = seat.restarted, None
        if restarted is not None and not restarted.done():
            assert member.pid is not None
            restarted.set_result(member.pid)

    async def _after_exit(self, member: Process, returncode: int, ready_in_run: bool,
                          attempt: int) -> int | None:
        """A run of the member has ended: judged, and its exit policy applied. The attempt
        its next run makes (0: afresh), or None when no run follows."""
        spec, seat = member.spec, self._seats[member.name]
        # Stopped by us: not one that had ended before the stop came to it, unseen yet.
        stopped = member.stopping and not member.exited_before_stop
        assert member.started_at is not None and member.ended_at is not None
        if (self.stop_began is not None and member.ended_at >= self.stop_began
                and not member.exited_before_stop):  # (not an exit seen before it)
            self.verdict.ended_in_stop(member.name, member.ended_at)
        # (Taken whatever follows: a restart asked for during that stop meets a new run.)
        not_ready, seat.not_ready = seat.not_ready, None
        if self.standing.failed_to_start(member.name):
            return None  # an added member that never got ready: no exit policy applies
        how = describe_returncode(returncode)
        if seat.restart_requested and not self.stopping:
            if not stopped and spec.on_exit != "restart" and not finished(member):
                # It ended on its own before the request (its exit was still being
                # published): that exit counts, and on_exit = stop stops the cast.
                if returncode != 0:
                    self.record_failure(member.name, exit_status(returncode),
                                        f"{member.name} {how}", member.ended_at)
                if spec.on_exit == "stop":
                    self.request_stop(f"{member.name} {how}; stopping the cast "
                                      "(on_exit = stop)", by=member.name)
                    return None
            seat.restart_requested = False
            return 0
        if not_ready is not None and not self.stopping and not seat.removing:
            # Stopped for not getting ready: a failed start, status 1 (as it would be at
            # the first start with another on_exit), and no reset of the attempts (it never
            # got ready, however long it ran).
            return await self._restart(member, 1, not_ready, True, attempt)
        if stopped:
            self._judge_stopped(member, returncode, how)
            return None
        if ready_in_run and finished(member):
            return None  # its work is done: not an end its on_exit answers
        if spec.on_exit == "restart" and not self.stopping:
            runtime = member.ended_at - member.started_at
            return await self._restart(member, returncode, how, ready_in_run,
                                       0 if runtime >= RESTART_RESET else attempt)
        if returncode != 0:
            before = "" if ready_in_run else " before it was ready"
            # One that ended before the stop, seen only in it, failed no later than then.
            at = member.ended_at
            if member.exited_before_stop and self.stop_began is not None:
                at = min(at, self.stop_began)
            self.record_failure(member.name, exit_status(returncode),
                                f"{member.name} {how}{before}", at)
        if spec.on_exit == "stop":
            hint = ""
            if returncode == 0 and not self.stopping and any(
                    member.name in self.standing.after_of(name) for name in self.members):
                hint = (" (a step that members start after? ready_exit = true makes its exit "
                        "with 0 its readiness, and the cast goes on)")
            self.request_stop(f"{member.name} {how}; stopping the cast (on_exit = stop){hint}",
                              by=member.name)
        return None

    def _judge_stopped(self, member: Process, returncode: int, how: str) -> None:
        """A run the stop ended, or that ended as the stop came: whether it failed on its
        own all the same."""
        assert member.ended_at is not None
        if member.ended_by_a_person:
            # A signal a person sent ended it, even if the stop came before its exit was
            # seen: that is its own end (docs/cli.md, pipeplex signal). (Not one it lived
            # through: the stop's own sending of it took it off.)
            self.record_failure(member.name, exit_status(returncode), f"{member.name} {how}",
                                member.ended_at)
        elif returncode != 0 and not member.signalled_to_stop:
            # It failed at the EOF the stop gave it, before any signal: its own failure, as
            # it would be a moment earlier, before the stop came; unless something else of
            # the cast ended in the stop before it (judged once the stop is over: see
            # Verdict.judge_at_eof).
            self.verdict.failed_at_eof(Failure(member.name, exit_status(returncode),
                                               f"{member.name} {how}", member.ended_at))

    async def _restart(self, member: Process, returncode: int, how: str, ready_in_run: bool,
                       attempt: int) -> int | None:
        """on_exit = "restart": the next attempt after the backoff, or None when it gives
        up (``max_restarts`` restarts in a row) or the cast stops meanwhile. ``how`` the run
        ended: ``returncode`` is 1 for one stopped for not getting ready, which ``how``
        says (and ``ready_in_run`` is True, as no "before it was ready" need be added)."""
        spec = member.spec
        assert member.ended_at is not None
        if attempt >= spec.max_restarts:
            await self._give_up(member, returncode, how, ready_in_run, attempt)
            return None
        delay = backoff_delay(attempt)
        attempt += 1
        which = f"restart {attempt} of {spec.max_restarts}"
        self.bus.publish(Note(f"restarting in {delay:.1f} s ({which})", name=member.name))
        if returncode != 0:  # down after failing, until its next run
            self._seats[member.name].down_after_failure = (
                exit_status(returncode), f"{member.name} {how}", member.ended_at)
        if not await self._backoff(member.name, delay, which):
            return None  # (that restart never happened: it is not counted)
        return attempt

    async def _give_up(self, member: Process, returncode: int, how: str, ready_in_run: bool,
                       attempt: int) -> None:
        """It restarted ``attempt`` times in a row and ended again: said, and the cast
        stops (an added member that was never ready fails alone)."""
        assert member.ended_at is not None
        seat = self._seats[member.name]
        seat.down_after_failure = None  # (it gave up: not down waiting for a restart)
        ready = self._ready(member.name)
        # (A step's exit is its readiness: a failed one did not end "before" it.)
        before = "" if ready_in_run or member.spec.ready_exit else " before it was ready"
        # The count that gave up is of restarts in a row; the summary's is of all of them:
        # say which when they differ.
        in_a_row = " in a row" if seat.restarts > attempt else ""
        times = f"{attempt} time{'s' if attempt != 1 else ''}{in_a_row}"
        tried = f"and was restarted {times}" if attempt else "(max_restarts = 0)"
        alone = seat.added and not ready.done()  # (an added member never ready fails alone)
        stopping = "" if alone else " and stopping the cast"
        reason = (f"{member.name} {how}{before} {tried}; giving up{stopping} (raise "
                  "max_restarts to allow more)")
        recent = self.recent.describe(member.name)
        self.bus.publish(Note(reason if ready_in_run else f"{reason}\n{recent}", level="error"))
        self.outcomes.why_failed[member.name] = (
            f"which gave up after {attempt} restart{'s' if attempt != 1 else ''}{in_a_row}"
            if attempt else "which gave up (max_restarts = 0)")
        if alone:
            self._fail_start(member.name, NotReady(member.name, reason, recent))
            await self.stopper.stop(member)  # what it left in its group
            return  # an added member fails alone
        stop_reason = reason
        if not returncode:  # (its summary says "exited with code 0": the 1 is explained)
            reason = (f"{member.name} gave up restarting: its last exit, with code 0, counts as "
                      'a failure, as on_exit = "restart" was to keep it running')
        self.record_failure(member.name, exit_status(returncode) or 1, reason,
                            member.ended_at)
        self.request_stop(stop_reason, by=member.name, announced=True)

    async def _backoff(self, name: str, delay: float, which: str) -> bool:
        """Wait ``delay`` seconds before restarting ``name`` (``which`` restart: its status
        says so meanwhile), cut short by a restart request; False if the cast began to stop
        first."""
        assert self._stop is not None
        seat = self._seats[name]
        sleeper = asyncio.ensure_future(self._sleep(delay))
        loop = asyncio.get_running_loop()
        wake = seat.backoff = loop.create_future()
        seat.backoff_ends = (loop.time() + delay, which)
        try:
            await first(sleeper, wake, self._stop)
        finally:
            sleeper.cancel()
            seat.backoff = seat.backoff_ends = None
        return not self.stopping

    async def _wait_ready(self, member: Process, run: RunWatch,
                          started_with: dict[str, str]) -> bool:
        """Wait for this run of the member to be ready (see :class:`ReadyWait`); on failure
        announce it and stop the cast. Once it is ready, what it captured replaces what its
        previous runs captured, for every start from then on (``run.said``: its ready line
        said so already). True if this run got ready."""
        exit_seen = member.exit_future
        waited = await self._readying.wait(member, self._seats[member.name], run, started_with)
        if isinstance(waited, Unready):
            await self._not_ready(member, waited)
            return False
        if waited is None:
            return False
        if not run.said:  # (else it was, when its line matched)
            self._now_ready(member, waited)
        ready = self._ready(member.name)
        if not ready.done():
            ready.set_result(None)
        # A run that matched and exited is not up: its next is, if one follows. If none
        # does (a build step), it holds nothing back, even while a process it started
        # keeps its output open (which its supervisor waits out before it ends).
        if not exit_seen.done() or not (self.standing.will_restart(member.name)
                                        or self._seats[member.name].restart_requested):
            self._set_up(member.name)
        return True

    def _now_ready(self, member: Process, captured: dict[str, str]) -> None:
        seat = self._seats[member.name]
        captured_before = bool(seat.captured)
        self._capture(member.name, captured)
        seat.waiting_for = None
        if member.returncode is None:
            seat.up_now = True  # (before its Ready: a sink may stop the cast)
        seat.ready_last = True
        if member.spec.waits_to_be_ready:
            self.bus.publish(Ready(member.name, tuple(sorted(captured.items()))))
        if captured_before:  # (a later run's values: members started with the old ones keep them)
            self._say_values_behind(member.name, captured)

    def _capture(self, name: str, captured: dict[str, str]) -> None:
        """``name``'s new values replace its old ones, all at once (nothing awaits here, so
        no member ever starts with half of them); a value it no longer captures is gone."""
        seat = self._seats[name]
        previous = seat.captured
        for key in previous.keys() - captured.keys():
            if self.variables.get(key) == previous[key]:
                del self.variables[key]
        self.variables.update(captured)
        seat.captured = dict(captured)

    def _say_values_behind(self, name: str, captured: Mapping[str, str]) -> None:
        """Members already running keep the values they started with: say so under the
        name of each one that uses a value ``name``'s new run changed (a client still
        calling the port a restarted server left), rather than let it fail in silence."""
        for other, member in self.members.items():
            if other == name or not member.running or member.stopping:
                continue
            started_with = self._seats[other].started_with
            behind = {key for key in captured.keys() & member.spec.referenced_variables()
                      if key in started_with and started_with[key] != captured[key]}
            if behind:
                self.bus.publish(Note(
                    f"runs with {assignments(started_with, behind)}, which {name}'s new run "
                    f"changed to {assignments(captured, behind)}: restart {other} to give it "
                    f"the new value{'s' if len(behind) > 1 else ''} (pipeplex restart {other})",
                    name=other, level="warning"))

    def _down(self, name: str) -> None:
        """``name`` has a run to come: members that (re)start after it wait until it is up."""
        seat = self._seats[name]
        if seat.up is None or seat.up.done():
            seat.up = asyncio.get_running_loop().create_future()

    def _run_ended(self, member: Process, exit_seen: asyncio.Future[int]) -> None:
        """A run of ``member`` exited (``exit_seen``, that run's). Its supervisor may have
        started the next run already (woken by the stop, not the exit): then only its exit
        code is this run's to record."""
        if self.members.get(member.name) is member and not exit_seen.cancelled():
            seat = self._seats[member.name]
            seat.last_exit = exit_seen.result()
            if member.exit_future is not exit_seen:
                return
            seat.up_now = False
            # Down until its next run is up; only if one follows: a build step that ended
            # holds nothing back, also while a process it started keeps its output open.
            if self.standing.will_restart(member.name) or seat.restart_requested:
                self._down(member.name)
                seat.ready_last = False

    def _set_up(self, name: str) -> None:
        gate = self._up_gate(name)
        if gate is not None and not gate.done():
            gate.set_result(None)

    def _up_gate(self, name: str) -> asyncio.Future[None] | None:
        """What a start after ``name`` waits on (see :attr:`Seat.up`); None for a name the
        engine has no run of."""
        seat = self._seats.get(name)
        return seat.up if seat is not None else None

    async def _wait_until_up(self, member: Process) -> bool:
        """Before each start, and a restart's too: wait until every member it starts after
        (directly or through others) is up, so that it starts with their current values.
        False if the cast began to stop first."""
        assert self._stop is not None
        announced = False
        while not self.stopping:
            deps = self.standing.dependencies(member.name)
            held = self.standing.held_back_by(member.name)
            if held is not None:
                self._not_started_after(member, held)
                return False
            gates = {dep: gate for dep in deps
                     if (gate := self._up_gate(dep)) is not None and not gate.done()}
            down = sorted(gates)
            if not down:
                self.outcomes.waiting_for.pop(member.name, None)
                self.outcomes.waiting_among.pop(member.name, None)
                return True
            self.outcomes.waiting_for[member.name] = down[0]  # (its summary names it)
            self.outcomes.waiting_among[member.name] = tuple(down)
            if not announced:
                announced = True
                self._announce(member, f"waiting for {', '.join(down)} to be ready again")
            await first(*gates.values(), self._stop)
        return False

    async def wait_ended(self, name: str) -> None:
        """Once ``name``'s run has exited and nothing follows it (no restart by policy or
        request), wait until its supervisor is done with it: its name is free from then on.
        Returns at once otherwise (it runs, or will run again)."""
        seat = self._seats.get(name)
        task = seat.supervisor if seat is not None else None
        member = self.members.get(name)
        if (task is None or task.done() or member is None or member.returncode is None
                or self.standing.will_restart(name)
                or (seat is not None and seat.restart_requested)):
            return
        await asyncio.shield(task)

    def _restart_anew(self, name: str) -> None:
        """A member that never ran, held back or left behind by a failure, is to start as at
        first: what said it failed to start is forgotten."""
        if self.standing.failed_to_start(name):
            self._seats[name].ready = asyncio.get_running_loop().create_future()
        self.outcomes.ended_for_good.pop(name, None)

    def _not_started_after(self, member: Process, held: str) -> None:
        """``member`` starts after a member that ended for good (``held`` says which and
        how): its (re)start does not happen (not with the values of a run that is gone),
        and it says why. It may be (re)started by request once that member runs again."""
        gone = self.standing.gone_before(member.name)
        dep = gone[0]
        which = self.standing.ended_for_good(dep)
        assert which is not None
        again = " again" if member.pid is not None else ""
        self.outcomes.waiting_for[member.name] = dep
        self.outcomes.waiting_among[member.name] = (dep, *(d for d in gone if d != dep))
        self.outcomes.ended_for_good[dep] = which
        self.outcomes.ended_for_good[member.name] = f"which was not started{again}: it {held}"
        self._seats[member.name].not_started_because = f"it {held}"
        self._announce(member, f"not started{again}: it {held}", "warning")
        self._fail_start(member.name, PipeplexError(f"{member.name} was not started: it {held}"))

    async def _not_ready(self, member: Process, unready: Unready) -> None:
        """``member`` did not get ready, as ``unready`` says. Such a run is a failed start, as
        an exit before readiness is: ``on_exit = "restart"`` stops it and starts it again
        (counted by ``max_restarts``), as systemd restarts a start that timed out; otherwise
        the cast stops."""
        if member.stopping or (self.stopping and member.returncode is None):
            return  # pipeplex itself is stopping it: that is not a readiness failure
        if (unready.what is None and member.returncode is not None
                and member.spec.on_exit == "restart"):
            return  # an exit like any other: the restart policy takes it, dependents wait
        seat = self._seats[member.name]
        starts_others = member.spec.ready_exit and any(
            member.name in other.spec.after for other in self.members.values())
        what, why, said = unready.told(member, waited=seat.waiting_for,
                                       starts_others=starts_others)
        restart = (unready.timed_out and member.spec.on_exit == "restart"
                   and member.returncode is None)
        if not restart:  # (a run restarted is not why its dependents did not start)
            self.outcomes.why_failed[member.name] = why or "which did not become ready"
        recent = self.recent.describe(member.name)
        # (Said under its name, which the note need not repeat.)
        own = self.recent.describe(member.name, own=True)
        said = said if said is not None else (
            what.removeprefix(member.name + " ").removeprefix(member.name + ": "))
        last = restart and seat.in_a_row >= member.spec.max_restarts
        if last:  # (the give-up follows its stop)
            said += ("; stopping this run, with no restart left (max_restarts = "
                     f"{member.spec.max_restarts})")
        elif restart:
            said += "; stopping this run (on_exit = restart)"
        self.bus.publish(Note(f"{said}\n{own}", name=member.name,
                              level="warning" if restart and not last else "error"))
        if restart:  # (its end, seen by its supervisor, goes to the restart policy)
            seat.not_ready = f"was not ready after {member.spec.ready_timeout:.1f} s"
            # Down after a failure from now: a stop of the cast that comes before its
            # restart (during this stop, say) ends it with that failure.
            seat.down_after_failure = (1, f"{member.name} {seat.not_ready}", time.monotonic())
            await self.stopper.stop(member)
            return
        if seat.added:
            self._fail_start(member.name, NotReady(member.name, what, recent))
            # Stopped, or if it exited, what it left in its group: nothing of it lingers
            # (a worker holding its port) when its name is used again.
            await self.stopper.stop(member)
            return
        # An exit before readiness gives the member's own status (1 if it exited with 0).
        status = (exit_status(member.returncode) or 1) if member.returncode is not None else 1
        self.record_failure(member.name, status, what)
        self.request_stop(f"{member.name} was not ready: stopping the cast", by=member.name)

    # Stopping ----------------------------------------------------------------------------

    async def _stop_cast(self) -> None:
        assert self._stop is not None and self._all_done is not None
        await first(self._stop, self._all_done)
        if not self.stopping:
            # Everything ended by itself; members still waiting to be started never will.
            self.request_stop()
            await asyncio.gather(*(self.stopper.stop_leftovers(m) for m in self.members.values()
                                   if m.pid is not None and not m.running))
        else:
            order = self._stop_order()
            self.stopper.close_inputs(self.members[n] for names in order for n in names)
            # What they started outside their groups, looked for once: each member's is
            # stopped with it, in its wave.
            self.stopper.outside.look(self.members.values())
            try:
                for names in order:
                    # (a member removed meanwhile, which its removal stopped, is gone here)
                    wave = [m for m in map(self.members.get, names) if m is not None]
                    self.stopper.take(wave)
                    await asyncio.gather(*(self.stopper.stop(m) for m in wave))
                # A member whose start raced with the stop request is caught here.
                await asyncio.gather(*(self.stopper.stop(m) for m in self.members.values()))
            finally:
                self.stopper.outside.end_look()
        # What members started outside their groups since: one more look for all of them.
        await self.stopper.outside.stop_escaped(
            [m for m in self.members.values() if m.pid is not None])
        if self._adoption is not None:  # and what kept neither group nor environment
            await self.stopper.outside.stop_strays(self._strays, self._protected_groups)
        await self._all_done

    def _stop_order(self) -> list[list[str]]:
        """The members in groups, each stopped once those before it are: the start's
        waves backwards, members added later first (see :func:`~.cast.order.stop_order`)."""
        return stop_order(self._start_waves(), self.standing.graph())

    def own_children(self) -> set[int]:
        """This process's children that are not to be reaped by whoever reaps orphans:
        members not yet reaped and the guardian (their owners wait for them), the orphans
        whose groups the stop still signals (a zombie keeps its group's id), and the
        children the process had before the cast (a program's own)."""
        spared = self._adoption.spared if self._adoption is not None else frozenset()
        return self._waited() | spared

    def _waited(self) -> set[int]:
        own = {m.pid for m in self.members.values() if m.pid is not None and m.returncode is None}
        if self._guardian is not None:
            own.add(self._guardian.pid)
        return own | self._checks | self.stopper.outside.held_strays

    def _strays(self) -> list[int]:
        assert self._adoption is not None
        waited = self._waited()
        return [pid for pid in children()
                if pid not in waited and not self._adoption.theirs(pid)]

    def _protected_groups(self) -> set[int]:
        """Groups that stopping the cast's orphans never signals: this process's own, the
        members' (each leads its own), those of the children it had before."""
        assert self._adoption is not None
        groups = {os.getpgrp(), *(m.pid for m in self.members.values() if m.pid is not None)}
        for pid in self._adoption.before:
            with contextlib.suppress(OSError):
                groups.add(os.getpgid(pid))
        return groups

    async def _stop_remains(self, member: Process) -> None:
        """What the ended ``member`` left: in its process group, then outside it."""
        await self.stopper.stop_leftovers(member)
        await self.stopper.outside.stop_escaped([member])

    def _announce(self, member: Process, text: str, level: Level = "info") -> None:
        self.bus.publish(Note(text, name=member.name, level=level))

    def _kill_everything(self) -> None:
        """Last resort on the way out (a crash, a cancel): no process group survives us,
        nor what the cast orphaned."""
        below: list[tuple[int, int]] = []
        if self._adoption is not None:  # their orphans-to-be too, seen before they are
            alive = [m.pid for m in self.members.values()
                     if m.pid is not None and m.returncode is None]
            below = [(pid, started) for pid in descendants(alive)
                     if (started := start_time(pid)) is not None]
        for member in self.members.values():
            if member.pid is not None:
                with contextlib.suppress(SignalRefused):  # (as another user: nothing to do)
                    member.signal_to_stop(signal.SIGKILL)
        if self._adoption is not None:
            self.stopper.outside.kill_strays(self._strays, self._protected_groups, also=below)

    def _summarize(self) -> None:
        for note in self.outcomes.closing(self.failures, self.cast,
                                          interrupted_by=self.interrupted_by,
                                          stop_asked=self.stop_asked,
                                          stopped_because=self.stopped_by):
            self.bus.publish(note)
