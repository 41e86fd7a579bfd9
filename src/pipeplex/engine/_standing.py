"""Where each member of a running cast stands: what it waits for, what holds it back.

The engine's supervision asks these questions before each start (is a member it starts
after up, or gone for good?), and so do its status records and the messages that say why
a member has not started. They only read the engine's tables (``members``, ``seats``,
``outcomes``: shared, never copied) and whether the cast is stopping; the engine alone
writes them.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from .._signals import describe_returncode
from ..cast.order import after_first
from ..readiness.wait import finished

if TYPE_CHECKING:
    from ..participants import Process
    from ._outcomes import Outcomes
    from .seat import Seat

__all__ = ("Standing",)


class Standing:
    """The members' standing in the cast (see the module's docstring)."""

    def __init__(self, members: Mapping[str, Process], seats: Mapping[str, Seat],
                 outcomes: Outcomes, stopping: Callable[[], bool]) -> None:
        self._members = members
        self._seats = seats
        self._outcomes = outcomes
        self._stopping = stopping
        """Whether the cast is stopping (the engine's)."""

    def records(self) -> list[dict[str, Any]]:
        """One record per member: name, pid, state, uptime, restarts, its exit code,
        ``last_exit`` (that code, or while it runs again, its last run's) and ``waiting_for``:
        while it runs but is not ready yet (state ``starting``), what it waits for; while it
        waits out a restart's backoff (``restarting``), when that restart comes; while it
        waits to start (``pending``), for whom, or to be started (``autostart = false``)."""
        records = []
        for member in self._members.values():
            record = member.statistics()
            seat = self._seats[member.name]
            if (record["state"] == "exited" and member.name in self._outcomes.waiting_for
                    and seat.supervising):
                record["state"] = "pending"  # its next run waits for a member it starts after
            starting = record["state"] == "running" and seat.waiting_for is not None
            if starting:
                record["state"] = "starting"
            record["waiting_for"] = seat.waiting_for if starting else None
            if record["state"] == "exited" and seat.backoff_ends is not None:
                ends, which = seat.backoff_ends
                left = max(ends - time.monotonic(), 0.0)
                record["state"] = "restarting"  # (waiting out its backoff)
                record["waiting_for"] = f"its restart in {left:.1f} s ({which})"
            if record["state"] == "pending":
                record["waiting_for"] = self.pending_on(member.name)
            record["restarts"] = seat.restarts
            record["last_exit"] = (record["returncode"] if record.get("returncode") is not None
                                   else seat.last_exit)
            record["uptime"] = (
                round(time.monotonic() - member.started_at, 3)
                if member.running and member.started_at is not None
                else None
            )
            records.append(record)
        return records

    def pending_on(self, name: str) -> str | None:
        """What a member that has not started (or not again) waits for, in words (for one
        held back, what it takes); None once the cast stops."""
        if self._stopping():
            return None
        gone = self.gone_before(name)
        if gone:  # (a member it starts after ended for good)
            return f"{gone[0]}, {self.ended_for_good(gone[0])}, to run again (restart it first)"
        if name in self._outcomes.ended_for_good:  # (held back before: that one runs again)
            return "a restart (it was held back)"
        requested = self._seats[name].start_requested
        if requested is not None and not requested.done():
            return "a start (autostart = false)"
        dep = self._outcomes.waiting_for.get(name)
        if dep is None or self.failed_to_start(dep):
            return None
        # (Its next run, as the stream says, once it ran: the member restarts.)
        again = " again" if self._members[name].pid is not None else ""
        return f"{dep} to be ready{again}"

    def never_started_for(self, name: str) -> str | None:
        """Why ``name`` has not started and will not without a start step: the
        ``autostart = false`` member (itself, or one it starts after) nobody asked to start;
        None when it runs, or will by itself."""
        return self.unrequested(name) if self._members[name].pid is None else None

    def start_failure(self, name: str) -> str | None:
        """Why ``name``, which has not started, never will by itself: what kept it from
        starting (one it starts after did not get ready, say); None if nothing did."""
        ready = self._seats[name].ready
        if self._members[name].pid is not None or ready is None or not ready.done():
            return None
        error = ready.exception()
        if error is None:
            return None
        why = str(error).split("\n", 1)[0]
        return why.removeprefix(f"{name} was not started: ")

    def unrequested(self, name: str) -> str | None:
        """The ``autostart = false`` member, ``name`` or one it starts after (directly or
        through others), that has not been asked to start; None if there is none."""
        seen: set[str] = set()
        todo = [name]
        while todo:
            current = todo.pop()
            if current in seen or current not in self._members:
                continue
            seen.add(current)
            requested = self._seats[current].start_requested
            if requested is not None and not requested.done():
                return current
            todo.extend(self._members[current].spec.after)
        return None

    def failed_to_start(self, name: str) -> bool:
        ready = self._seats[name].ready
        assert ready is not None, "the run has not begun"
        return ready.done() and ready.exception() is not None

    def dependencies(self, name: str) -> set[str]:
        """The members ``name`` starts after, directly or through others."""
        return set(after_first(name, self.after_of))

    def after_of(self, name: str) -> tuple[str, ...]:
        member = self._members.get(name)
        return member.spec.after if member is not None else ()

    def graph(self) -> dict[str, tuple[str, ...]]:
        """Each member, in order, to those it starts after."""
        return {name: member.spec.after for name, member in self._members.items()}

    def will_restart(self, name: str) -> bool:
        """Whether an exit of ``name`` is followed by a next run, by its policy
        (``on_exit = "restart"``, and it has not given up or been stopped). Of a run that
        has not ended: whether an end of it may be (``on_failure = "restart"``, say)."""
        member = self._members.get(name)
        return (member is not None and self._restarts_after(member) and not self._stopping()
                and self._seats[name].supervising and not finished(member))

    def _restarts_after(self, member: Process) -> bool:
        """Whether its policy restarts it after its run's end (any end, while it runs)."""
        spec = member.spec
        if member.returncode is None:
            return spec.may_restart
        seat = self._seats[member.name]
        failed = seat.failed_end
        if failed is None:  # (exited, its exit not taken in yet: its readiness still says)
            failed = member.returncode != 0 or not seat.ready_last
        return spec.on_end(failed) == "restart"

    def held_back_by(self, name: str) -> str | None:
        """Why ``name`` cannot (re)start now, as "starts after db, which exited with code
        3; restart db first": a member it starts after ended for good (the one at the root,
        when that one in turn starts after another that did; "db (through app)" when
        ``name`` starts after it through another); None if none did."""
        gone = self.gone_before(name)
        if not gone:
            return None
        dep = gone[0]
        after = self.after_of(name)
        through = ("" if dep in after else f" (through "
                   f"{next(d for d in after if dep in self.dependencies(d))})")
        return (f"starts after {dep}{through}, {self.ended_for_good(dep)}; restart {dep} "
                "first")

    def gone_before(self, name: str) -> list[str]:
        """The members ``name`` starts after that ended for good, a root one first."""
        gone = sorted(dep for dep in self.dependencies(name)
                      if self.ended_for_good(dep) is not None)
        gone.sort(key=lambda dep: any(self.ended_for_good(d) is not None
                                      for d in self.dependencies(dep)))
        return gone

    def ended_for_good(self, name: str) -> str | None:
        """How ``name`` ended, as "which ...", if it ended on its own and nothing will start
        it again unless asked: it failed, was killed, or could not start again. None while
        it runs or will run again, and for one that ended with 0 (a build step whose
        members after it use what it made)."""
        member = self._members.get(name)
        if member is None or member.pid is None or self._stopping():
            return None
        # Its supervisor is done with it, or will be: its exit is not one its policy (or a
        # request) follows with another run. (The supervisor may still be winding down.)
        seat = self._seats[name]
        if seat.supervising and (self._restarts_after(member)
                                 or seat.restart_requested
                                 or member.returncode is None):
            return None
        if name in self._outcomes.cannot_start:
            return "which could not start again"
        if member.returncode is None or member.returncode == 0:
            return None
        how = describe_returncode(member.returncode)
        return f"which {'' if how.startswith('exited') else 'was '}{how}"
