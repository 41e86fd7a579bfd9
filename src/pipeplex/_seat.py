"""What the engine keeps of each member's place in the cast, across its runs.

One record per name, so that a member's state is made, reset and let go of in one place:
the engine's tables were a score of dicts and sets keyed by name, each to be remembered
where a member is added, given to a new member of the same name, or removed.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

__all__ = ("Seat",)


@dataclass(slots=True, eq=False)
class Seat:
    """One member's supervision state (its process is the engine's ``members[name]``)."""

    ready: asyncio.Future[None] | None = None
    """Its first readiness: what its dependents' first start waits for (made as the run
    begins; an error in it says why an added member did not start or get ready)."""
    start_requested: asyncio.Future[None] | None = None
    """For an ``autostart = false`` member: done once someone asked it to start."""
    restarts: int = 0
    """Its runs after the first, counted once each new run is under way."""
    up: asyncio.Future[None] | None = None
    """Done while its current run is ready, or once nothing more will come of it; pending
    from the moment a run ends (or its supervisor begins) until the next run is ready.
    Every start of a member waits until whom it starts after is up."""
    up_now: bool = False
    """Its current run is ready and has not ended: the summaries say whether a member
    others waited for was so when the cast began to stop."""
    ready_last: bool = False
    """Its latest run got ready, ended since or not, with no run due after it (a build step
    that printed its line and exited at once): those waiting for it had their turn, which
    the stop may have taken."""
    captured: dict[str, str] = field(default_factory=dict)
    """What its latest ready run captured: its share of the engine's ``variables``."""
    supervisor: asyncio.Task[None] | None = None
    """Its latest supervisor task: done once the member has ended for good."""
    supervising: bool = False
    """A supervisor is at work on it (from the moment the task is made, so that its name
    cannot be taken in between)."""
    restart_requested: bool = False
    """A restart was asked for that its next run meets."""
    restarted: asyncio.Future[int] | None = None
    """The restart under way on request: its new run's pid, shared by the requests that
    come meanwhile."""
    backoff: asyncio.Future[None] | None = None
    """While it waits out a restart's backoff: set to cut the wait short."""
    down_after_failure: tuple[int, str, float] | None = None
    """Down after failing, until its next run: its status, how and when it ended (a stop
    before that run leaves it ended so: a failure of the run, then)."""
    not_started_because: str | None = None
    """Why its (re)start did not happen, for a member it starts after."""
    last_exit: int | None = None
    """How its latest run that ended did (a return code, negative for a signal): what
    ``status`` shows of a member running again after a restart."""
    port_taken: frozenset[int] = frozenset()
    """About to start: the listeners its ``ready_port`` had before (not its own)."""
    added: bool = False
    """Added while running (the Python API): a failure to start or get ready is its alone."""
    removing: bool = False
    """An added member being removed: nothing starts it again."""

    def forget_runs(self) -> None:
        """Its name is taken by a new member: what belonged to the old one's runs goes. Its
        readiness gates and captured values stay: members that wait for the name wait on,
        and the new member's values replace the old ones once it is ready."""
        self.start_requested = self.restarted = self.supervisor = self.last_exit = None
        self.port_taken = frozenset()
        self.restart_requested = False
