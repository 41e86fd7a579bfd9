"""One place that turns "send this to NAME" into calls on members.

The ways in that a name comes by (the named pipes, the console, the control socket,
scenario steps) go through the router, so they all resolve names, treat ``all`` and report
unknown members the same way. The Python API holds its members' handles, and calls them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping

from .._signals import signal_name
from ..errors import SignalRefused, UnknownMember
from ..participants import Process

__all__ = ("ALL", "Router", "why_input_closed")

ALL = "all"


def why_input_closed(member: Process, *, stopping: bool = False) -> str:
    """Why a line cannot reach ``member`` (its stdin is not open), after its name: "has not
    started yet", "is not running"... (``stopping``: the cast is, and starts nothing more.)"""
    state = member.state
    if state == "pending" and stopping:
        return "has not started, and will not: the cast is stopping"
    if state == "pending":
        return ("has not started yet" if member.spec.autostart else
                f"has not started (autostart = false: pipeplex start {member.name} starts it)")
    if state == "failed":
        return "could not start"
    if member.returncode is not None:
        return "is not running"
    return "has its stdin closed"


class Router:
    """Resolves member names (and ``all``) and delivers input and signals."""

    def __init__(self, members: Mapping[str, Process], *,
                 stopping: Callable[[], bool] = lambda: False) -> None:
        self._members = members
        self._stopping = stopping
        """Whether the cast is stopping, which starts no member any more."""
        self.before_close: Callable[[str], None] = lambda target: None
        """Called with the target of :meth:`close_input` first: the run folder's pipes hand
        over what was written to them by then."""

    def resolve(self, target: str) -> list[Process]:
        """The members ``target`` means.

        Raises:
            UnknownMember: ``target`` is neither a member nor ``all``.
        """
        if target == ALL:
            return list(self._members.values())
        try:
            return [self._members[target]]
        except KeyError:
            raise UnknownMember(target, self._members) from None

    def __iter__(self) -> Iterator[Process]:
        return iter(self._members.values())

    def send(self, target: str, data: bytes) -> int:
        """Queue ``data`` for the stdin of ``target``; returns how many members took it.

        For ``all``, members that are not running are skipped silently.
        """
        members = self.resolve(target)
        if target == ALL:
            members = [m for m in members if m.running and m.input_open]
        return sum(member.send(data) for member in members)

    def close_input(self, target: str) -> None:
        """Close the stdin of ``target`` once what was sent before has been written."""
        members = self.resolve(target)
        self.before_close(target)
        for member in members:
            member.close_input()

    def signal(self, target: str, sig: int) -> int:
        """Signal ``target`` as a person asks (see :meth:`Process.signal_as_asked`); returns
        how many members were reached.

        Raises:
            SignalRefused: a member's processes run as another user (the others of ``all``
                were signalled).
        """
        reached = 0
        refused: SignalRefused | None = None
        for member in self.resolve(target):
            if member.running:
                try:
                    reached += member.signal_as_asked(sig)
                except SignalRefused as exc:
                    refused = refused or exc
        if refused is not None:
            raise refused
        return reached

    def not_signalled(self, target: str, sig: int) -> str:
        """Why :meth:`signal` of ``target`` reached nobody, in the words every channel
        answers with: "db has not started yet; SIGTERM was not sent"."""
        what = signal_name(sig)
        if target == ALL:
            return f"no member is running; {what} was not sent"
        member = self.resolve(target)[0]
        why = self.why_closed(member) if member.state in ("pending", "failed") else (
            "is not running")
        return f"{target} {why}; {what} was not sent"

    def why_closed(self, member: Process) -> str:
        """:func:`why_input_closed`, as the cast stands now."""
        return why_input_closed(member, stopping=self._stopping())
