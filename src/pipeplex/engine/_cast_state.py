"""What the engine's parts share while a cast runs: its members and their seats, the values
they captured, what is known of how they ended, and whether (and why) the cast stops.

The engine answers to the outside; the supervision of each member (:mod:`._supervision`),
the policy for what follows a run (:mod:`._exit_policy`), the requests that reach into a
member's life (:mod:`._member_requests`) and the cast's stop (:mod:`._cast_stop`) each get
this one object, not the engine: what they read and change together is here, and nothing
else of each other's.
"""

from __future__ import annotations

import asyncio
import functools
import time
from collections.abc import Callable, Coroutine, Mapping
from typing import TYPE_CHECKING, Any

from .._bus import Bus
from .._events import Level, Note, Output, Started
from ..cast.spec import CastSpec
from ..errors import PipeplexError, ours_in_tracebacks
from ..readiness.lines import waits_for_prompt
from ._outcomes import Outcomes
from ._standing import Standing
from .recent import RecentOutput
from .seat import Seat
from .stopping import EOF_GRACE, Stopper, first
from .verdict import Verdict

if TYPE_CHECKING:
    from ..participants import Process

__all__ = ("CastPart", "CastState")

__tracebackhide__ = ours_in_tracebacks  # (pytest: see there)


class CastState:
    """One running cast's shared state (see the module's docstring). Made with the
    engine; :meth:`begin` as its run begins."""

    def __init__(self, cast: CastSpec, bus: Bus, members: dict[str, Process],
                 stopper: Stopper) -> None:
        self.cast = cast
        self.bus = bus
        self.members = members
        """Each member's process, by name (an added member's too)."""
        self.seats: dict[str, Seat] = {name: Seat() for name in members}
        """Each member's supervision state, by name (see :class:`~.seat.Seat`)."""
        self.variables: dict[str, str] = {}
        """What the members' ready lines captured: ``{port}`` in later starts."""
        self.late_waves: list[list[str]] = []
        """Members added while running: each is its own, last, wave."""
        self.stopper = stopper
        self.verdict = Verdict()
        self.outcomes = Outcomes(members, self.seats)
        """Who waited for whom, who failed and why: what the summaries are made of."""
        self.standing = Standing(members, self.seats, self.outcomes, lambda: self.stopping)
        """What each member waits for, and what holds it back."""
        self.recent = RecentOutput(silence=functools.partial(why_silent, members))
        bus.subscribe(self.recent, [Output, Started])
        self.when_over: list[Callable[[str], None]] = []
        """Called with a member's name when nothing more will run of it (its policy gave
        up, the cast stopped it, it was removed): a matcher ends the waits that went on
        through its exits for its next run."""
        self.tg: asyncio.TaskGroup | None = None
        """The task group of the run, while it goes on: every task of the cast is in it."""
        self.interrupted_by: int | None = None
        self.stop_asked = False
        """A person or a client asked for the stop (not only the cast ending on its own)."""
        self.stop_began_asked = False
        """The stop began because a person or a client asked for it (a signal, ``pipeplex
        stop``, ``:quit``), not because the cast came to it by itself: one asked for once
        the cast was stopping changes nothing of what the stop did."""
        self.stopped_by: str | None = None
        """The member whose end stopped the cast (it could not start or get ready, gave up
        restarting, or ended with ``on_exit = "stop"``); None when nothing stops it, or
        something else did."""
        self.stop_began: float | None = None
        """When the stop of the whole cast was requested (``time.monotonic()``)."""
        self._stop: asyncio.Future[str | None] | None = None
        self._early_stop: tuple[str | None, int | None] | None = None
        self._busy = 0
        """Supervisors at work plus holds; the cast ends on its own when this reaches 0."""
        self._all_done: asyncio.Future[None] | None = None

    def begin(self) -> None:
        """The run begins: the futures its parts wait on are made in its loop, and a stop
        asked for before it is taken now."""
        loop = asyncio.get_running_loop()
        self._stop = loop.create_future()
        self._all_done = loop.create_future()
        for name, seat in self.seats.items():
            seat.ready = loop.create_future()
            if not self.members[name].spec.autostart:
                seat.start_requested = loop.create_future()
        self._busy += len(self.members)
        if self._busy == 0:  # (no member, and nothing holds it: over before it began)
            self._all_done.set_result(None)

    def take_early_stop(self) -> None:
        """A stop asked for before the run began: requested now."""
        if self._early_stop:
            reason, interrupted_by = self._early_stop
            self.request_stop(reason, interrupted_by=interrupted_by)

    # The stop of the cast ----------------------------------------------------------------

    @property
    def stop(self) -> asyncio.Future[str | None]:
        """Done once the stop of the whole cast is requested (its reason as the result)."""
        assert self._stop is not None, "run() has not begun"
        return self._stop

    @property
    def stopping(self) -> bool:
        return self._stop is not None and self._stop.done()

    def request_stop(self, reason: str | None = None, *, interrupted_by: int | None = None,
                     asked: bool = False, stdin_first: bool = False,
                     by: str | None = None, announced: bool = False) -> None:
        """Stop the whole cast (idempotent; see :meth:`Engine.request_stop`)."""
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
        self.stop_began_asked = asked or interrupted_by is not None
        if reason and not announced:
            self.bus.publish(Note(reason))
        self.stopped_by = by
        self.stop_began = time.monotonic()
        self.outcomes.up_when_stopped = frozenset(
            name for name, seat in self.seats.items() if seat.up_now or seat.ready_last)
        self._stop.set_result(reason)

    @property
    def stop_reason(self) -> str | None:
        """Why the cast is stopping, as announced; None while it runs, or when no reason was
        given."""
        if self._stop is None or not self._stop.done():
            return None
        reason: str | None = self._stop.result()
        return reason

    @property
    def stop_cause(self) -> str | None:
        """Why the cast is stopping, in short (see :attr:`Engine.stop_cause`)."""
        reason = self.stop_reason
        if reason is None:
            return None
        cause, _, after = reason.partition("stopping the cast")
        cause = cause.rstrip(":;, ").removesuffix(" and")
        if not cause and self.stopped_by is not None:
            cause = f"because of {self.stopped_by}"
        if not cause and after.startswith(" (") and after.endswith(")"):
            cause = f"asked for with {after[2:-1]}"  # ("stopping the cast (:quit)")
        return cause or None

    def record_failure(self, name: str, status: int, reason: str,
                       at: float | None = None, *, step: bool = False) -> None:
        """Count a failure toward the exit status (the first one decides it); ``at``: when
        it happened, if that was before now; ``step``: a scenario's step failed."""
        self.verdict.record(name, status, reason, at, step=step)

    def own_failure(self, name: str) -> str | None:
        """Why the cast is stopping, when ``name``'s own failure stopped it (it could not
        get ready: what it waited for, and for how long); else None."""
        if self.stopped_by != name:
            return None
        own = [failure.reason for failure in self.verdict.failures if failure.name == name]
        return own[-1] if own else None

    # Whether the cast goes on ------------------------------------------------------------

    def hold(self) -> None:
        """Keep the cast going even if every member has ended (until :meth:`release`)."""
        self._busy += 1

    def release(self) -> None:
        self._busy -= 1
        if self._busy == 0 and self._all_done is not None and not self._all_done.done():
            self._all_done.set_result(None)

    @property
    def all_done(self) -> asyncio.Future[None]:
        """Done once nothing holds the cast any more: every supervisor has ended."""
        assert self._all_done is not None, "run() has not begun"
        return self._all_done

    def ended(self, member: Process) -> bool:
        """Whether ``member`` is over: not running, not waiting, nothing will restart it."""
        if self.seats[member.name].supervising or member.running:
            return False
        return member.pid is None or member.done_future.done()

    async def to_the_end(self, stop: Coroutine[Any, Any, None], *,
                         or_cast_stop: bool = False) -> None:
        """Run ``stop`` in the run's task group for a caller outside it: a caller that is
        cancelled (a timeout around a restart) leaves it to finish, never half done (a
        member marked stopping that never gets its SIGKILL, a grace counted twice).
        ``or_cast_stop``: the caller goes on once the cast's stop begins (a restart's
        asker, answered then; the member's stop goes on, now the cast's)."""
        assert self.tg is not None
        stopping = self.tg.create_task(stop)
        if or_cast_stop:
            await first(stopping, self.stop)  # (a wait that never cancels what it waits on)
        else:
            await asyncio.shield(stopping)

    # Readiness, as the members' starts wait on it ----------------------------------------

    def ready(self, name: str) -> asyncio.Future[None]:
        """``name``'s first readiness (made as the run begins, or as it is added)."""
        ready = self.seats[name].ready
        assert ready is not None, "run() has not begun"
        return ready

    def fail_start(self, name: str, error: PipeplexError) -> None:
        """An added member could not start or get ready: tell whoever waits for it."""
        ready = self.ready(name)
        if not ready.done():
            ready.set_exception(error)
            # Whoever awaits it still gets the error; nobody may (a load that raised for
            # the member this one waited for): then asyncio must not log it as lost.
            ready.exception()

    def down(self, name: str) -> None:
        """``name`` has a run to come: members that (re)start after it wait until it is up."""
        seat = self.seats[name]
        if seat.up is None or seat.up.done():
            seat.up = asyncio.get_running_loop().create_future()

    def set_up(self, name: str) -> None:
        gate = self.up_gate(name)
        if gate is not None and not gate.done():
            gate.set_result(None)

    def up_gate(self, name: str) -> asyncio.Future[None] | None:
        """What a start after ``name`` waits on (see :attr:`Seat.up`); None for a name the
        engine has no run of."""
        seat = self.seats.get(name)
        return seat.up if seat is not None else None

    # Saying ------------------------------------------------------------------------------

    def announce(self, member: Process, text: str, level: Level = "info") -> None:
        self.bus.publish(Note(text, name=member.name, level=level))

    def start_waves(self) -> list[list[str]]:
        """The members by when they start: the cast's waves, then each member added later."""
        return [[p.name for p in wave] for wave in self.cast.start_waves()] + self.late_waves


class CastPart:
    """A part of the engine: it reads and changes the cast's shared state, whose tables it
    keeps at hand (the same objects, never copies: the state never replaces them)."""

    def __init__(self, state: CastState) -> None:
        self._state = state
        self._bus = state.bus
        self._members = state.members
        self._seats = state.seats
        self._variables = state.variables
        self._outcomes = state.outcomes
        self._recent = state.recent
        self._standing = state.standing
        self._stopper = state.stopper
        self._verdict = state.verdict


def why_silent(members: Mapping[str, Process], name: str, awaiting: str | None = None) -> str:
    """Why a member that wrote nothing may have said something all the same.
    ``awaiting``: the pattern a step waited for in vain (else its ``ready``'s)."""
    member = members.get(name)
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
