"""How each member ended, or why it never started: what the engine records on the way, the
one-line summaries it publishes when the cast ends, and what decided the exit status.

The engine writes the records (who waited for whom, who failed and how it reads in the
summary of a member that waited for it, whose program could not start); this module turns
them into clauses such as "waited for api, which waited for db, which gave up after 2
restarts", so the supervision (``_supervision.py``, ``_exit_policy.py``) stays about
supervising.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterator, Mapping, Sequence

from .._events import Note
from .._signals import describe_returncode, signal_name, stopped_by
from ..cast.slips import variable_warnings
from ..cast.spec import CastSpec
from ..participants import Process
from .seat import Seat
from .verdict import Failure

__all__ = ("STOPPED_FIRST", "Outcomes")

STOPPED_FIRST = "the cast began to stop before its turn"
USAGE_ERROR = 2
"""pipeplex's own exit status for a mistake in its command line or cast file (the cli's)."""
MAX_LINKS = 4
"""Links of a chain of members waiting for one another that a summary tells one by one."""


class Outcomes:
    """The engine's records of members that failed or waited, and their summaries.

    ``members`` and ``seats`` are the engine's own (shared, never copied): each member, and
    what the engine keeps of it (its first readiness, the start request an ``autostart =
    false`` member waits for, its count of restarts), which this only reads.
    """

    def __init__(self, members: Mapping[str, Process], seats: Mapping[str, Seat]) -> None:
        self._members = members
        self._seats = seats
        self.waiting_for: dict[str, str] = {}
        """Per member waiting to start, the member it waits for (the summary names it)."""
        self.waiting_among: dict[str, tuple[str, ...]] = {}
        """Per member waiting to start, every member it still waits for (that one first)."""
        self.why_failed: dict[str, str] = {}
        """Per member that could not start, get ready or go on, the reason as the summary of
        a member that waited for it gives it: "which gave up after 5 restarts" (set by
        :meth:`failed`)."""
        self.gave_up: dict[str, str] = {}
        """Per member whose restart policy gave up on it, how: "gave up after 5 restarts"
        (while that is its :attr:`why_failed`)."""
        self.ended_for_good: dict[str, str] = {}
        """Per member that held others back until it runs again (it ended for good, or was
        itself held back), the reason as their summaries give it; gone once it starts."""
        self.cannot_start: dict[str, str] = {}
        """Per member whose program could not be started, the reason (for its summary)."""
        self._settled: dict[str, str] = {}
        """Per member that waited for one whose name was then used again, what it waited
        for and why that never got ready, as it stood then: "waited for x, which ..."."""
        self.reused_at: dict[str, float] = {}
        """Per name given to a new member after its earlier one ended, when (the loop's
        ``time.monotonic()``): a failure before that was the earlier member's."""
        self.up_when_stopped: frozenset[str] | None = None
        """The members whose run was ready (and running) when the cast began to stop: one
        that others waited for and was not, a restart's run say, held them back."""

    def forget(self, name: str) -> None:
        """A name used again: what was recorded about its ended member goes. Members that
        waited for it keep, for their summaries, why it never got ready (the new member
        of that name is another story)."""
        for waiter, dep in list(self.waiting_for.items()):
            if dep == name and waiter != name and self._members[waiter].pid is None:
                self._settled[waiter] = f"waited for {name}, {self.why_not_ready(name)}"
                del self.waiting_for[waiter]
        for table in (self.waiting_for, self.waiting_among, self.why_failed, self.gave_up,
                      self.ended_for_good, self.cannot_start, self._settled):
            table.pop(name, None)
        self.reused_at[name] = time.monotonic()

    def failed(self, name: str, why: str, *, gave_up: str | None = None) -> None:
        """``name`` could not start, get ready or go on: ``why``, as a clause ("which ...");
        ``gave_up``: how its restart policy gave up on it, if that is why."""
        self.why_failed[name] = why
        if gave_up is None:
            self.gave_up.pop(name, None)
        else:
            self.gave_up[name] = gave_up

    def why_not_ready(self, name: str, seen: frozenset[str] = frozenset()) -> str:
        """Why member ``name``, which others waited for, never got ready, as a clause:
        "which gave up after 5 restarts", "which waited for db, which exited with ...".

        A long chain of members waiting for one another is told by its first links and its
        end ("..., and so on back to db, which exited with ..."): a summary line each, and
        no recursion however long the chain.
        """
        walked = set(seen)
        links: list[str] = []
        while True:
            walked.add(name)
            clause, dep = self._why_this(name, walked)
            if dep is None:
                break
            if len(links) == MAX_LINKS:
                end = self.first_failed(dep)
                clause, further = self._why_this(end, walked | {end})
                if further is not None:
                    clause = "which never started"
                clause = f"and so on back to {end}, {clause}" if end != dep else (
                    f"which waited for {dep}, {clause}")
                break
            links.append(dep)
            name = dep
        return "".join(f"which waited for {dep}, " for dep in links) + clause

    def _why_this(self, name: str, seen: set[str]) -> tuple[str, str | None]:
        """Why ``name`` never got ready, as a clause; or ("", dep) when it waited in vain
        for ``dep``, whose own reason is the rest."""
        if name in self.why_failed:
            return self.why_failed[name], None
        if name in self.ended_for_good:
            return self.ended_for_good[name], None
        member = self._members[name]
        if member.pid is None:
            if name in self._settled:
                return f"which {self._settled[name]}", None
            if name in self.cannot_start:
                return "which could not be started", None
            dep = self._blamed(name)
            if dep is not None and dep not in seen:
                if self.held_back(dep):
                    return "", dep
                return f"which never started ({STOPPED_FIRST})", None
            return "which never started", None
        if self._was_up(name):
            return "which was ready", None  # (a race with the stop: it got ready just then)
        return "which was not ready when the cast stopped", None

    def first_failed(self, name: str) -> str:
        """The member at the end of a chain of members that waited for one another."""
        seen = {name}
        while not self._failed(name) and self._members[name].pid is None:
            dep = self.waiting_for.get(name)
            if dep is None or dep in seen:
                break
            name = dep
            seen.add(name)
        return name

    def held_back(self, dep: str) -> bool:
        """Whether ``dep`` kept those waiting for it from starting: it failed, or was not
        ready; else (ready just as the cast began to stop) the stop came first."""
        return self._failed(dep) or not self._was_up(dep)

    def _failed(self, name: str) -> bool:
        """Whether ``name`` failed, or ended for good, in a way its waiters' summaries say."""
        return name in self.why_failed or name in self.ended_for_good

    def _was_up(self, name: str) -> bool:
        """Whether ``name``'s run was ready when the cast began to stop (before that: its
        first run's readiness)."""
        if self.up_when_stopped is None:
            ready = self._seats[name].ready
            return ready is not None and ready.done()
        return name in self.up_when_stopped

    def _blamed(self, name: str) -> str | None:
        """The member whose readiness ``name`` waited for in vain, for its summary. It
        waits for the members it starts after one at a time: of those it still waited for,
        one whose failure kept it waiting is named before the one it happened to be waiting
        for (a slow db beside a cache that failed)."""
        dep = self.waiting_for.get(name)
        if dep is None or self._failed(self.first_failed(dep)):
            return dep
        for other in self.waiting_among.get(name, ()):
            if other in self._members and self._failed(self.first_failed(other)):
                return other
        return dep

    def summary(self, member: Process) -> str:
        """How ``member`` ended, or why it never started: one line, once the cast is over."""
        if member.pid is None:
            return self._never_started(member)
        assert member.returncode is not None
        assert member.started_at is not None and member.ended_at is not None
        how = describe_returncode(member.returncode)
        if member.ended_by_the_stop:  # (as its exit line says)
            by = stopped_by(member.returncode, member.spec.stop_signal)
            how = f"stopped by {by}" if by else f"stopped, {how}"
        text = f"{how} after {member.ended_at - member.started_at:.1f} s"
        restarts = self._seats[member.name].restarts
        if restarts:
            text += f", {restarts} restart{'s' if restarts != 1 else ''}"
        if member.name in self.cannot_start:  # its last start failed
            text += f"; could not start again ({self.cannot_start[member.name]})"
        dep = self._blamed(member.name)
        if dep is not None and self.held_back(dep):  # its next run waited in vain
            why = self.why_not_ready(dep, frozenset({member.name}))
            text += f"; not started again (waited for {dep}, {why})"
        return text

    def closing(self, failures: Sequence[Failure], cast: CastSpec, *,
                interrupted_by: int | None, stop_asked: bool,
                stopped_because: str | None, stop_began: float | None) -> Iterator[Note]:
        """The notes that end a run: each member's summary, then what decided the exit
        status when a line of its own must say it (``failures``: the members that failed
        on their own, first the one that decides; ``interrupted_by``: the signal that
        stopped the cast; ``stop_asked``: a person or a client asked for the stop;
        ``stopped_because``: the member whose end stopped the cast; ``stop_began``: when
        the stop began, ``time.monotonic()``)."""
        for member in self._members.values():
            yield Note(f"summary: {self.summary(member)}", name=member.name)
        if not failures:
            if interrupted_by is not None:
                yield Note(f"stopped by {signal_name(interrupted_by)}")
            return
        # A guess not worth a word as the run started, now that a member failed which used
        # the {name} in question: '{port}' reached it as written.
        names = {failure.name for failure in failures}
        told = set(variable_warnings(cast))
        for guess in variable_warnings(cast, guesses=True):
            if guess not in told and any(f": {name} uses {{" in guess for name in names):
                yield Note(guess, level="warning")
        # The summaries tell each member's last run: a status set by an earlier one (before
        # a restart) would otherwise go unexplained.
        first = failures[0]
        if first.step:
            # Said in full as it failed (step failed: ...): its first line again, where the
            # status is read, with what did not decide it.
            but = (f" (the step's failure decides it, not the {signal_name(interrupted_by)} "
                   "that came as the cast stopped)" if interrupted_by is not None else
                   " (the step's failure decides it, not the stop asked for)" if stop_asked
                   else "")
            summary = first.reason.partition("\n")[0]
            yield Note(f"exit status {first.status}: {summary}{but}")
            return
        failed = self._members.get(first.name)
        started = failed.started_at if failed is not None else None
        said = first.reason.split("; ", 1)[0]  # (what was said of it then, without advice)
        # (Not the status of the signal that stopped the cast: whose it is.)
        decides = ""
        if interrupted_by is not None:  # (one that came once a member's end stopped it: later)
            did = ("that came as the cast stopped" if stopped_because is not None
                   else "that stopped the cast")
            decides = (" (a member's own failure decides it, not the "
                       f"{signal_name(interrupted_by)} {did})")
        if first.at < self.reused_at.get(first.name, -math.inf):
            # (Its name was given to another member since: the summary is that one's.)
            yield Note(f"exit status {first.status}: {first.reason}, of an earlier member of "
                       "that name")
        elif started is not None and first.at < started:
            yield Note(f"exit status {first.status}: {first.reason}, in an earlier run")
        elif (failed is not None and failed.returncode == 0) or interrupted_by is not None:
            # Its summary says code 0 (an exit before it was ready, a restart given up), or
            # the signal's stop: what failed, said where the status is read.
            yield Note(f"exit status {first.status}: {said}{decides}")
        elif failed is not None and failed.signalled_to_stop:
            # Its summary says the stop ended it (a run never ready, stopped): what failed
            # is said again where the status is read, in short.
            why = self.why_failed.get(first.name, "")
            if why.startswith("which "):
                said = f"{first.name} {why.removeprefix('which ')}"
            yield Note(f"exit status {first.status}: {said}")
        elif stop_asked:
            # A stop asked for (pipeplex stop, :quit) that a failure outweighs: said as for
            # a signal's (a member down in its restart's backoff, whose summary reads as any
            # earlier exit).
            yield Note(f"exit status {first.status}: {said} (a member's own failure decides "
                       "it, not the stop asked for)")
        elif stopped_because not in (None, first.name):
            if stop_began is not None and first.at > stop_began:
                # Another's end (with 0) stopped the cast, and this one failed on its own
                # in the stop, as it waited for its turn: not first, but the only failure.
                yield Note(f"exit status {first.status}: {said} during the stop, before its "
                           f"turn came (after {stopped_because}, whose end stopped the cast)")
            else:
                # Another's end stopped the cast (and was said so), but this one failed
                # first: its exit let go by (on_exit = "ignore"), or seen late (a process it
                # left held its output).
                yield Note(f"exit status {first.status}: {said}, first (before "
                           f"{stopped_because}, whose end stopped the cast)")
        elif first.status == USAGE_ERROR:
            # The status pipeplex itself gives a usage or cast-file mistake: a script that
            # reads it must be able to tell the two.
            yield Note(f"exit status {first.status}: {said} (its own code; pipeplex's 2 for a "
                       "mistake in its command line or cast file comes before anything starts)")

    def _never_started(self, member: Process) -> str:
        name = member.name
        if name in self._settled:
            return f"never started ({self._settled[name]})"
        if name in self.cannot_start:
            return f"never started (cannot start: {self.cannot_start[name]})"
        requested = self._seats[name].start_requested
        if requested is not None and not requested.done():  # (what it starts after is moot)
            return "never started (autostart = false, and nothing started it)"
        dep = self._blamed(name)
        if dep is not None and self.held_back(dep):
            why = self.why_not_ready(dep, frozenset({name}))
            return f"never started (waited for {dep}, {why})"
        return f"never started ({STOPPED_FIRST})"
