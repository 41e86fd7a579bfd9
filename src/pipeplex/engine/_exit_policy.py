"""What follows a member's run that ended, could not be started or did not get ready:
judged, restarted after a backoff, given up, or the end of the cast.

``on_exit`` ("stop", "ignore", "restart"), or ``on_failure`` for a failed end (when the
member has one), ``max_restarts`` and the backoff decide; the
supervision of the member (:mod:`._supervision`) waits for the run and then asks here what
comes next. Apart from it because this is the part a user's configuration steers, and what
the exit status and the summaries say comes from here.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from .._events import Note
from .._seconds import seconds_said
from .._signals import describe_returncode, exit_status
from ..errors import NotReady, SpawnError, ours_in_tracebacks
from ..readiness.wait import Unready, finished
from ._cast_state import CastPart, CastState
from .stopping import first
from .verdict import Failure

if TYPE_CHECKING:
    from ..participants import Process

__all__ = ("BACKOFF_CAP", "BACKOFF_START", "RESTART_RESET", "ExitPolicy", "backoff_delay")

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


class ExitPolicy(CastPart):
    """Each member's ``on_exit`` (``on_failure``), applied to its runs (see the module's
    docstring).

    ``sleep`` waits out a backoff (a test's clock may stand in for it)."""

    def __init__(self, state: CastState, sleep: Callable[[float], Awaitable[None]]) -> None:
        super().__init__(state)
        self._sleep = sleep

    async def start_failed(self, member: Process, exc: SpawnError, restarting: bool,
                           attempt: int) -> int | None:
        """The member's program could not be started: said, and the cast stops, unless it
        was an added member's (it fails alone), or a restart of one whose failures restart
        it (the next attempt after the pause, as systemd tries a start that failed again:
        a program being replaced; returned, and ``max_restarts`` bounds them) or are
        ignored (it stays down, and the cast goes on; its summary says why, and the exit
        status counts it, 127 or 126, as it counts an exit it ignores). None: no attempt
        follows."""
        seat = self._seats[member.name]
        seat.restart_requested = False
        restarted, seat.restarted = seat.restarted, None
        if restarted is not None and not restarted.done():
            restarted.set_exception(exc)
            restarted.exception()  # retrieved: its callers may have gone
        self._bus.publish(Note(str(exc), level="error"))
        if restarting and not seat.added and member.spec.on_end(failed=True) == "restart":
            seat.failed_end = True  # (its end is a failure now: another run is to come)
            return await self._restart(member, exc.status, "could not be started again",
                                       True, attempt, cannot_start=exc.reason)
        self._outcomes.failed(member.name, "which could not be started")
        self._outcomes.cannot_start[member.name] = exc.reason
        if seat.added:
            self._state.fail_start(member.name, exc)
            return None
        self._state.record_failure(member.name, exc.status, str(exc))
        if (restarting and member.spec.on_end(failed=True) == "ignore"
                and self._state.ready(member.name).done()):
            return None
        # (Never ready yet: members after it would wait for it for ever.)
        self._state.request_stop(f"{member.name} could not be started: stopping the cast",
                                 by=member.name)
        return None

    async def not_ready(self, member: Process, unready: Unready) -> None:
        """``member`` did not get ready, as ``unready`` says. Such a run is a failed start, as
        an exit before readiness is: ``on_exit = "restart"`` (or ``on_failure``) stops it
        and starts it again (counted by ``max_restarts``), as systemd restarts a start that
        timed out; otherwise the cast stops."""
        restarts = member.spec.on_end(failed=True) == "restart"
        if member.stopping or (self._state.stopping and member.returncode is None):
            return  # pipeplex itself is stopping it: that is not a readiness failure
        if unready.what is None and member.returncode is not None and restarts:
            return  # an exit like any other: the restart policy takes it, dependents wait
        seat = self._seats[member.name]
        starts_others = member.spec.ready_exit and any(
            member.name in other.spec.after for other in self._members.values())
        what, why, said = unready.told(member, waited=seat.waiting_for,
                                       starts_others=starts_others)
        restart = unready.timed_out and restarts and member.returncode is None
        if not restart:  # (a run restarted is not why its dependents did not start)
            self._outcomes.failed(member.name, why or "which did not become ready")
        recent = self._recent.describe(member.name)
        # (Said under its name, which the note need not repeat.)
        own = self._recent.describe(member.name, own=True)
        said = said if said is not None else (
            what.removeprefix(member.name + " ").removeprefix(member.name + ": "))
        last = restart and seat.in_a_row >= member.spec.max_restarts
        if last:  # (the give-up follows its stop)
            said += ("; stopping this run, with no restart left (max_restarts = "
                     f"{member.spec.max_restarts})")
        elif restart:
            said += f"; stopping this run ({member.spec.policy_said(failed=True)})"
        self._bus.publish(Note(f"{said}\n{own}", name=member.name,
                               level="warning" if restart and not last else "error"))
        if restart:  # (its end, seen by its supervisor, goes to the restart policy)
            seat.not_ready = f"was not ready after {seconds_said(member.spec.ready_timeout)} s"
            # Down after a failure from now: a stop of the cast that comes before its
            # restart (during this stop, say) ends it with that failure.
            seat.down_after_failure = (1, f"{member.name} {seat.not_ready}", time.monotonic())
            await self._stopper.stop(member)
            return
        if seat.added:
            self._state.fail_start(member.name, NotReady(member.name, what, recent))
            # Stopped, or if it exited, what it left in its group: nothing of it lingers
            # (a worker holding its port) when its name is used again.
            await self._stopper.stop(member)
            return
        # An exit before readiness gives the member's own status (1 if it exited with 0).
        status = (exit_status(member.returncode) or 1) if member.returncode is not None else 1
        self._state.record_failure(member.name, status, what)
        decided = member.spec.policy_said(failed=True)
        if member.spec.on_end(failed=True) == "ignore":  # (its dependents would wait for ever)
            decided += (', but a start that failed stops the cast all the same; '
                        '"restart" would try again')
        self._state.request_stop(f"{member.name} was not ready: stopping the cast ({decided})",
                                 by=member.name)

    async def after_exit(self, member: Process, returncode: int, ready_in_run: bool,
                         attempt: int) -> int | None:
        """A run of the member has ended: judged, and its exit policy applied. The attempt
        its next run makes (0: afresh), or None when no run follows."""
        spec, seat = member.spec, self._seats[member.name]
        # Stopped by us: not one that had ended before the stop came to it, unseen yet.
        stopped = member.stopping and not member.exited_before_stop
        assert member.started_at is not None and member.ended_at is not None
        if (self._state.stop_began is not None and member.ended_at >= self._state.stop_began
                and not member.exited_before_stop):  # (not an exit seen before it)
            self._verdict.ended_in_stop(member.name, member.ended_at)
        # (Taken whatever follows: a restart asked for during that stop meets a new run.)
        not_ready, seat.not_ready = seat.not_ready, None
        if self._standing.failed_to_start(member.name):
            return None  # an added member that never got ready: no exit policy applies
        how = describe_returncode(returncode)
        # A failure picks on_failure, where the member has one.
        failed = returncode != 0 or not ready_in_run
        policy, said = spec.on_end(failed), spec.policy_said(failed)
        if seat.restart_requested and not self._state.stopping:
            if not stopped and policy != "restart" and not finished(member):
                # It ended on its own before the request (its exit was still being
                # published): that exit counts, and on_exit = stop stops the cast.
                if returncode != 0:
                    self._state.record_failure(member.name, exit_status(returncode),
                                               f"{member.name} {how}", member.ended_at)
                if policy == "stop":
                    self._state.request_stop(f"{member.name} {how}; stopping the cast "
                                             f"({said})", by=member.name)
                    return None
            seat.restart_requested = False
            return 0
        if not_ready is not None and not self._state.stopping and not seat.removing:
            # Stopped for not getting ready: a failed start, status 1 (as it would be at
            # the first start with another on_exit), and no reset of the attempts (it never
            # got ready, however long it ran).
            return await self._restart(member, 1, not_ready, True, attempt)
        if stopped:
            self._judge_stopped(member, returncode, how)
            return None
        if ready_in_run and finished(member):
            return None  # its work is done: not an end its on_exit answers
        if policy == "restart" and not self._state.stopping:
            # A long run starts the count afresh only if it got ready: one that crashes
            # at start, however slowly, is not restarted forever.
            runtime = member.ended_at - member.started_at
            return await self._restart(member, returncode, how, ready_in_run,
                                       0 if runtime >= RESTART_RESET and ready_in_run
                                       else attempt)
        if returncode != 0:
            before = "" if ready_in_run else " before it was ready"
            # One that ended before the stop, seen only in it, failed no later than then.
            at = member.ended_at
            if member.exited_before_stop and self._state.stop_began is not None:
                at = min(at, self._state.stop_began)
            self._state.record_failure(member.name, exit_status(returncode),
                                       f"{member.name} {how}{before}", at)
        if policy == "stop":
            hint = ""
            if returncode == 0 and not self._state.stopping and any(
                    member.name in self._standing.after_of(name) for name in self._members):
                hint = (" (a step that members start after? ready_exit = true makes its exit "
                        "with 0 its readiness, and the cast goes on)")
            self._state.request_stop(
                f"{member.name} {how}; stopping the cast ({said}){hint}", by=member.name)
        return None

    def _judge_stopped(self, member: Process, returncode: int, how: str) -> None:
        """A run the stop ended, or that ended as the stop came: whether it failed on its
        own all the same."""
        assert member.ended_at is not None
        if member.ended_by_a_person:
            # A signal a person sent ended it, even if the stop came before its exit was
            # seen: that is its own end (docs/cli.md, pipeplex signal). (Not one it lived
            # through: the stop's own sending of it took it off.)
            self._state.record_failure(member.name, exit_status(returncode), f"{member.name} {how}",
                                       member.ended_at)
        elif returncode != 0 and not member.signalled_to_stop:
            # It failed at the EOF the stop gave it, before any signal: its own failure, as
            # it would be a moment earlier, before the stop came; unless something else of
            # the cast ended in the stop before it (judged once the stop is over: see
            # Verdict.judge_at_eof).
            self._verdict.failed_at_eof(Failure(member.name, exit_status(returncode),
                                                f"{member.name} {how}", member.ended_at))

    async def _restart(self, member: Process, returncode: int, how: str, ready_in_run: bool,
                       attempt: int, *, cannot_start: str | None = None) -> int | None:
        """on_exit = "restart": the next attempt after the backoff, or None when it gives
        up (``max_restarts`` restarts in a row) or the cast stops meanwhile. ``how`` the run
        ended: ``returncode`` is 1 for one stopped for not getting ready, which ``how``
        says (and ``ready_in_run`` is True, as no "before it was ready" need be added);
        ``cannot_start``: why its restart could not start (127 or 126 as ``returncode``)."""
        spec = member.spec
        assert member.ended_at is not None
        if attempt >= spec.max_restarts:
            if cannot_start is not None:  # (its summary says so)
                self._outcomes.cannot_start[member.name] = cannot_start
            await self._give_up(member, returncode, how, ready_in_run, attempt)
            return None
        if returncode != 0:  # down after failing, until its next run
            self._seats[member.name].down_after_failure = (
                exit_status(returncode), f"{member.name} {how}", member.ended_at)
        if self._standing.held_back_by(member.name) is not None:
            # A member it starts after ended for good already: no restart comes, and none
            # is announced; its supervisor says so at once, and why.
            return attempt
        delay = backoff_delay(attempt)
        attempt += 1
        which = f"restart {attempt} of {spec.max_restarts}"
        self._bus.publish(Note(f"restarting in {delay:.1f} s ({which})", name=member.name))
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
        ready = self._state.ready(member.name)
        # (A step's exit is its readiness: a failed one did not end "before" it.)
        before = "" if ready_in_run or member.spec.ready_exit else " before it was ready"
        # The count that gave up is of restarts in a row; the summary's is of all of them:
        # say which when they differ.
        in_a_row = " in a row" if seat.restarts > attempt else ""
        times = f"{attempt} time{'s' if attempt != 1 else ''}{in_a_row}"
        if not attempt:
            tried = "(max_restarts = 0)"
        elif member.name in self._outcomes.cannot_start:  # (that restart never ran)
            tried = f"(restart {attempt} of {member.spec.max_restarts})"
        else:
            tried = f"and was restarted {times}"
        alone = seat.added and not ready.done()  # (an added member never ready fails alone)
        stopping = "" if alone else " and stopping the cast"
        # (One that could not start: more tries would not help; what would, was said.)
        more = "" if member.name in self._outcomes.cannot_start else (
            " (raise max_restarts to allow more)")
        reason = f"{member.name} {how}{before} {tried}; giving up{stopping}{more}"
        recent = self._recent.describe(member.name)
        self._bus.publish(Note(reason if ready_in_run else f"{reason}\n{recent}", level="error"))
        gave_up = (f"gave up after {attempt} restart{'s' if attempt != 1 else ''}{in_a_row}"
                   if attempt else "gave up (max_restarts = 0)")
        self._outcomes.failed(member.name, f"which {gave_up}", gave_up=gave_up)
        if alone:
            self._state.fail_start(member.name, NotReady(member.name, reason, recent))
            await self._stopper.stop(member)  # what it left in its group
            return  # an added member fails alone
        stop_reason = reason
        if not returncode:  # (its summary says "exited with code 0": the 1 is explained)
            key = member.spec.policy_key(failed=not ready_in_run)
            reason = (f"{member.name} gave up restarting: its last exit, with code 0, counts as "
                      + (f'a failure, as {key} = "restart" was to keep it running'
                         if ready_in_run else "a failed start, as it came before it was ready"))
        self._state.record_failure(member.name, exit_status(returncode) or 1, reason,
                                   member.ended_at)
        self._state.request_stop(stop_reason, by=member.name, announced=True)

    async def _backoff(self, name: str, delay: float, which: str) -> bool:
        """Wait ``delay`` seconds before restarting ``name`` (``which`` restart: its status
        says so meanwhile), cut short by a restart request; False if the cast began to stop
        first."""
        seat = self._seats[name]
        sleeper = asyncio.ensure_future(self._sleep(delay))
        loop = asyncio.get_running_loop()
        wake = seat.backoff = loop.create_future()
        seat.backoff_ends = (loop.time() + delay, which)
        try:
            await first(sleeper, wake, self._state.stop)
        finally:
            sleeper.cancel()
            seat.backoff = seat.backoff_ends = None
        return not self._state.stopping
