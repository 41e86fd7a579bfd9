"""What the engine keeps of each member's place in the cast, across its runs.

One record per name, so that a member's state is made, reset and let go of in one place:
the engine's tables were a score of dicts and sets keyed by name, each to be remembered
where a member is added, given to a new member of the same name, or removed.
"""

from __future__ import annotations

import asyncio

__all__ = ("Seat",)


class Seat:
    """One member's supervision state (its process is the engine's ``members[name]``).

    A plain class, not a dataclass: a dataclass of this size costs half a millisecond to
    make at import, which every cast's start would pay."""

    __slots__ = ("added", "backoff", "backoff_ends", "captured", "down_after_failure",
                 "failed_end", "in_a_row", "last_exit", "let_go_on_failure", "not_ready",
                 "not_started_because",
                 "port_taken", "ready", "ready_last", "removing", "restart_requested",
                 "restarted", "restarts", "start_requested", "started_with", "supervising",
                 "supervisor", "up", "up_now", "waiting_for")

    def __init__(self) -> None:
        self.ready: asyncio.Future[None] | None = None
        """Its first readiness: what its dependents' first start waits for (made as the run
        begins; an error in it says why an added member did not start or get ready)."""
        self.start_requested: asyncio.Future[None] | None = None
        """For an ``autostart = false`` member: done once someone asked it to start."""
        self.restarts: int = 0
        """Its runs after the first, counted once each new run is under way."""
        self.in_a_row: int = 0
        """The restarts in a row that led to its current run: ``on_exit = "restart"`` gives
        up when one more would pass ``max_restarts``."""
        self.up: asyncio.Future[None] | None = None
        """Done while its current run is ready, or once nothing more will come of it; pending
        from the moment a run ends (or its supervisor begins) until the next run is ready.
        Every start of a member waits until whom it starts after is up."""
        self.up_now: bool = False
        """Its current run is ready and has not ended: the summaries say whether a member
        others waited for was so when the cast began to stop."""
        self.ready_last: bool = False
        """Its latest run got ready, ended since or not, with no run due after it (a build step
        that printed its line and exited at once): those waiting for it had their turn, which
        the stop may have taken."""
        self.started_with: dict[str, str] = {}
        """The values its latest run started with (its command, environment and input)."""
        self.captured: dict[str, str] = {}
        """What its latest ready run captured: its share of the engine's ``variables``."""
        self.supervisor: asyncio.Task[None] | None = None
        """Its latest supervisor task: done once the member has ended for good."""
        self.supervising: bool = False
        """A supervisor is at work on it (from the moment the task is made, so that its name
        cannot be taken in between)."""
        self.not_ready: str | None = None
        """Its run was stopped for not getting ready in time (``on_exit = "restart"``): why,
        said again if it gives up; its end is a failed start, which the policy restarts."""
        self.restart_requested: bool = False
        """A restart was asked for that its next run meets."""
        self.restarted: asyncio.Future[int] | None = None
        """The restart under way on request: its new run's pid, shared by the requests that
        come meanwhile."""
        self.backoff: asyncio.Future[None] | None = None
        """While it waits out a restart's backoff: set to cut the wait short."""
        self.backoff_ends: tuple[float, str] | None = None
        """Meanwhile: when that wait ends (the loop's clock), and which restart it is for."""
        self.down_after_failure: tuple[int, str, float] | None = None
        """Down after failing, until its next run: its status, how and when it ended (a stop
        before that run leaves it ended so: a failure of the run, then)."""
        self.not_started_because: str | None = None
        """Why its (re)start did not happen, for a member it starts after."""
        self.failed_end: bool | None = None
        """Its latest run's end was a failure: it exited with another code than 0 (or by a
        signal), or before it was ready; None while it runs, and until its exit is taken in.
        Its ``on_failure``, if it has one, answers that end, not its ``on_exit``."""
        self.last_exit: int | None = None
        """How its latest run that ended did (a return code, negative for a signal): what
        ``status`` shows of a member running again after a restart."""
        self.port_taken: frozenset[int] = frozenset()
        """About to start: the listeners its ``ready_port`` had before (not its own)."""
        self.waiting_for: str | None = None
        """While its run is not ready yet: what it waits for (its ready line, its port, its
        health check and how its last run went), for a step that gives up waiting."""
        self.added: bool = False
        """Added while running (the Python API): a failure to start or get ready is its alone."""
        self.let_go_on_failure: bool = False
        """Added alone (a spawn): if it fails to start or get ready, it is let go of, its name
        free for a new one; never restarted. (A loaded cast's members stay, to be restarted.)"""
        self.removing: bool = False
        """An added member being removed: nothing starts it again."""

    def __repr__(self) -> str:
        shown = ", ".join(f"{name}={getattr(self, name)!r}" for name in self.__slots__
                          if name not in ("ready", "start_requested", "up", "supervisor",
                                          "restarted", "backoff"))
        futures = [name for name in ("ready", "start_requested", "up", "restarted", "backoff")
                   if (future := getattr(self, name)) is not None and not future.done()]
        return f"<Seat {shown}, pending={futures}>"

    def forget_runs(self) -> None:
        """Its name is taken by a new member: what belonged to the old one's runs goes. Its
        readiness gates and captured values stay: members that wait for the name wait on,
        and the new member's values replace the old ones once it is ready."""
        self.start_requested = self.restarted = self.supervisor = self.last_exit = None
        self.port_taken = frozenset()
        self.waiting_for = None
        self.restart_requested = False
