"""Waiting for one run of a member to be ready, and saying why it was not.

A run is ready once everything its spec asks for has come, in this order, all within its
``ready_timeout``: its exit with code 0 (``ready_exit``), a line matching ``ready``, its
``ready_port`` accepting connections from a listener of its own, its ``ready_cmd`` exiting
with code 0. :class:`ReadyWait` waits for them in turn and returns what the run captured,
or an :class:`Unready` that says what did not come; what follows (the member said ready,
restarted, the cast stopped) is the engine's, which this module never decides.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING

from .._events import Note
from .._seconds import seconds_said
from .._signals import describe_returncode
from ..cast.spec import DEFAULTS_TIMEOUT, ProcSpec, expand, is_port, quoted
from ..engine.stopping import first
from ..errors import SpawnError
from ..participants._group import live_in_group
from ..participants.health_check import last_lines, run_check
from ..participants.orphans import children
from .lines import RunWatch
from .ports import LOOPBACK_SAID, holders, listeners, port_accepts, ports_of, sockets_of

if TYPE_CHECKING:
    from .._bus import Bus
    from ..engine.seat import Seat
    from ..participants import Guardian, Process

__all__ = ("CHECK_PAUSE", "CHECK_PAUSE_CAP", "ReadyWait", "Unready", "assignments", "finished")

CHECK_PAUSE, CHECK_PAUSE_CAP = 0.1, 1.0
"""Seconds between two runs of a ``ready_cmd`` that failed: the first pause, doubled up to
the cap."""


def finished(member: Process) -> bool:
    """A member with ``ready_exit = true`` whose run exited with 0: its work is done (it
    was ready at that exit), and no exit policy follows it."""
    return member.spec.ready_exit and member.returncode == 0


class Unready:
    """Why a run did not get ready: ``what`` says it whole (``why``, the same as a clause
    for the summaries of its dependents); else it waited ``waiting_for`` in vain (or
    ``never`` says, in full, what never came); with neither, it ended first (its exit
    says). ``timed_out``: its ``ready_timeout`` is up, the run still going."""

    __slots__ = ("never", "timed_out", "waiting_for", "what", "why")

    def __init__(self, waiting_for: str = "", *, what: str | None = None,
                 why: str | None = None, never: str | None = None,
                 timed_out: bool = False) -> None:
        self.waiting_for = waiting_for
        self.what = what
        self.why = why
        self.never = never
        self.timed_out = timed_out

    def told(self, member: Process, *, waited: str | None,
             starts_others: bool) -> tuple[str, str | None, str | None]:
        """What to say of ``member``'s run: in full (``what``), as a clause for its
        dependents' summaries (``why``), and under its name (None: ``what`` without the
        name). ``waited``: what its run waited for last; ``starts_others``: members start
        after it."""
        what, why = self.what, self.why
        said: str | None = None
        if what is None and member.returncode is not None:
            how = describe_returncode(member.returncode)
            was = "" if how.startswith("exited") else "was "
            what = f"{member.name} {how} before it was ready"
            why = f"which {was}{how} before it was ready"
            # (Its exit was shown just before, under its name: not said twice.)
            said = "was not ready yet when it ended" + (f": it waited for {waited}"
                                                         if waited else "")
            if member.spec.ready_exit:  # (its exit is its readiness: not "before" it)
                before = " before the members after it start" if starts_others else ""
                what = (f"{member.name} {how}; ready_exit = true needs it to exit with code 0"
                        f"{before}")
                why = f"which {was}{how}"
                said = f"was not ready: ready_exit = true needs it to exit with code 0{before}"
            elif member.returncode == 0:  # (a server that put itself in the background)
                advice = ("if it runs on in the background (a daemon), run it in the "
                          "foreground instead (nginx -g 'daemon off;', redis-server "
                          "--daemonize no): pipeplex watches the process it started; if it is "
                          "a step that ends when its work is done, give it ready_exit = true "
                          "instead")
                what += "; " + advice
                # (After the lines a health check wrote: a line of its own, not one of them.)
                said += ("\n" if "\n" in said else "; ") + advice
        elif what is None:
            never = (self.never if self.never is not None
                     else f"it never showed {self.waiting_for}")
            after = seconds_said(member.spec.ready_timeout)
            what = (f"{member.name} was not ready after {after} s "
                    f"({_timeout_said(member.spec)}); {never}")
            why = f"which was not ready after {after} s"
        return what, why, said


class ReadyWait:
    """Waits for runs of the cast's members to be ready (see the module's docstring).

    ``members`` and ``variables`` are the engine's own (shared, never copied): the other
    members whose ``ready_port`` may be the same port, and the values they expand with.
    ``checks``: the runs of ``ready_cmd`` under way, kept up to date for the stop."""

    def __init__(self, bus: Bus, members: Mapping[str, Process], variables: Mapping[str, str],
                 *, guardian: Guardian | None, checks: set[int]) -> None:
        self._bus = bus
        self._members = members
        self._variables = variables
        self._guardian = guardian
        self._checks = checks
        self._stop: asyncio.Future[str | None] | None = None

    def begin(self, stop: asyncio.Future[str | None]) -> None:
        """The run has begun: ``stop``, done once the cast stops, ends every wait."""
        self._stop = stop

    @property
    def _stopping(self) -> bool:
        return self._stop is not None and self._stop.done()

    async def wait(self, member: Process, seat: Seat, run: RunWatch,
                   started_with: Mapping[str, str]) -> dict[str, str] | Unready | None:
        """Wait for this run of ``member`` to be ready (each run is watched, a restart's as
        the first). Its ``ready_port`` and ``ready_cmd`` get the values it was
        ``started_with`` and those it captured; ``seat.waiting_for`` says meanwhile what it
        waits for. Returns what it captured once it is ready; an :class:`Unready` if it
        did not get ready; None if the cast began to stop first, or the run is being
        stopped (a restart's, say)."""
        spec = member.spec
        matched, watch = run.matched, run.watch
        stop = self._stop
        assert stop is not None, "the run has not begun"
        exit_seen = member.exit_future
        loop = asyncio.get_running_loop()
        deadline = loop.time() + spec.ready_timeout
        captured: dict[str, str] = {}
        if spec.ready_exit:
            seat.waiting_for = "its exit with code 0 (ready_exit = true)"
            await first(exit_seen, stop, within=deadline - loop.time())
            if not exit_seen.done() and member.has_exited():  # (came due with the deadline)
                await first(exit_seen, stop)
            if not exit_seen.done() and not self._stopping:
                return Unready(
                    what=f"{member.name} had not exited after {seconds_said(spec.ready_timeout)} s "
                    f"({_timeout_said(spec)}); ready_exit = true waits for its exit with "
                    "code 0 before the members after it start",
                    why=f"which had not exited after {seconds_said(spec.ready_timeout)} s",
                    timed_out=True)
            if not finished(member):  # (stopping, or it failed: an exit before readiness)
                return Unready()
            # Its last words before the members after it say their first.
            await first(member.done_future, stop)
            if self._stopping:
                return None  # (the cast stopped as its output drained: nothing starts now)
        if spec.ready:
            waiting_for = seat.waiting_for = f"output matching ready = {quoted(spec.ready)}"
            await first(matched, exit_seen, stop, within=deadline - loop.time())
            if not matched.done() and not exit_seen.done():
                # Its time is up: what it wrote and the loop has not read yet counts (they
                # came due together after pipeplex was suspended with Ctrl-Z, say).
                member.output.take_output()
            if not matched.done() and exit_seen.done() and not self._stopping:
                # What it wrote before it exited may still be on its way (and its exit
                # ends its last line): a match there counts.
                await first(matched, member.done_future, stop,
                            within=max(deadline - loop.time(), 0.0))
            if not matched.done():
                if watch is not None and watch.held is not None:
                    waiting_for += (
                        f"; {watch.held!r} in its last line matches, but that line has not "
                        "ended, and a value at its end may still grow: end the line, or let "
                        "the pattern match what follows the value")
                return Unready(waiting_for, timed_out=True)
            captured = matched.result()
        if spec.ready_port:
            unready = await self._port_accepts(member, seat, {**started_with, **captured},
                                               deadline)
            if unready is not None:
                return unready
        if spec.ready_cmd is not None:
            health = await self._check_health(member, seat, {**started_with, **captured},
                                              deadline)
            if health is not True:
                what, why = health or (None, None)
                return Unready(what=what, why=why, timed_out=loop.time() >= deadline)
        if member.stopping and not run.said:
            return None  # a run being stopped (a restart's, say) is not the one to wait for
        return captured

    async def _port_accepts(self, member: Process, seat: Seat, variables: Mapping[str, str],
                            deadline: float) -> Unready | None:
        """Wait until the member's ``ready_port`` accepts a connection from a listener of
        its own, within ``deadline``: None once it does (or its exit or the stop came
        first: said elsewhere), else why it did not."""
        spec, loop, stop = member.spec, asyncio.get_running_loop(), self._stop
        assert spec.ready_port is not None and stop is not None
        port = expand(spec.ready_port, variables)
        if not is_port(port):
            where = spec.key_sources.get("ready_port")
            return Unready(
                what=f"{member.name}: ready_port = {spec.ready_port!r}"
                f"{f' (at {where})' if where else ''} is {port!r}, not a TCP port "
                "(1-65535)", why=f"whose ready_port was {port!r}, not a TCP port")
        own = " from a listener of its own (another held it before it started)"
        taken, seat.port_taken = seat.port_taken, frozenset()
        while True:
            seat.waiting_for = (f"port {port} on {LOOPBACK_SAID} to accept connections"
                                f"{own if taken else ''}")
            accepting = asyncio.ensure_future(port_accepts(int(port), taken=taken))
            try:
                await first(accepting, member.exit_future, stop, within=deadline - loop.time())
            finally:
                accepting.cancel()
            if (not accepting.done() or accepting.cancelled()
                    or accepting.exception() is not None):
                never = (f"port {port} on {LOOPBACK_SAID} never accepted a connection"
                         f"{own if taken else ''}{_listens_elsewhere(member, port)}")
                return Unready(never=never, timed_out=True)
            held, owners = self._listened_by_others(member, int(port))
            if not owners:
                return None
            taken = held  # (another member's, which began to listen after it started)
            own = (f" from a listener of its own ({' and '.join(owners)} "
                   f"listen{'s' if len(owners) == 1 else ''} there)")
            self._bus.publish(Note(
                f"port {port} (its ready_port) accepts connections, but {' and '.join(owners)} "
                f"listen{'s' if len(owners) == 1 else ''} there, not it: it counts as ready "
                "once it listens there too", name=member.name, level="warning"))

    async def _check_health(self, member: Process, seat: Seat, variables: Mapping[str, str],
                            deadline: float) -> bool | tuple[str, str]:
        """Run the member's ``ready_cmd`` until it exits with 0, within ``deadline``, as
        long as the member runs and neither it nor the cast is being stopped. True once it
        did; False if one of those came first (its exit, a stop: said elsewhere); else what
        went wrong, and the same as a clause for its dependents' summaries."""
        spec, loop = member.spec, asyncio.get_running_loop()
        assert self._stop is not None
        said = f"ready_cmd {spec.ready_cmd_text}{_values_said(spec, variables)}"
        try:
            argv = spec.ready_argv(variables)
        except SpawnError as exc:
            return (f"{member.name}: its {said} cannot be run: {exc.reason}",
                    "whose ready_cmd could not be run")
        env = member.environment(variables)
        pause, last, earlier = CHECK_PAUSE, "", ""
        seat.waiting_for = f"its {said} to exit with code 0"
        # The member's exit, its stop (a restart's) or the cast's ends the wait at once.
        ended = (member.exit_future, member.stop_future, self._stop)
        while not any(future.done() for future in ended):
            output = bytearray()
            check = asyncio.ensure_future(run_check(
                member.name, argv, spec.ready_cmd_text, output, env=env, cwd=spec.cwd,
                guardian=self._guardian, running=self._checks))
            left = deadline - loop.time()
            try:
                await first(check, *ended, within=min(spec.ready_cmd_timeout, left))
            finally:
                check.cancel()  # (done: nothing; else the run is killed)
            if any(future.done() for future in ended):
                return False
            if (not check.done() or check.cancelled()) and left <= spec.ready_cmd_timeout:
                await asyncio.wait({check})  # (killed: gone, with its group, before it is said)
                last = f"; its last run had not ended when the time was up{_said(output)}"
                if earlier:
                    last += f"\nthe run before it {earlier}"
                break
            if not check.done() or check.cancelled():  # (killed: a failed run)
                earlier = (f"did not end within {spec.ready_cmd_timeout:g} s "
                            f"({_run_limit_said(spec)}) and was killed"
                            f"{_said(output)}")
            elif isinstance(error := check.exception(), SpawnError):
                where = spec.key_sources.get("ready_cmd")
                return (f"{member.name}: its {said}{f' (at {where})' if where else ''} cannot "
                        f"be started: {error.reason}", "whose ready_cmd could not be started")
            elif (returncode := check.result()) == 0:
                return True
            else:
                earlier = f"{describe_returncode(returncode)}{_said(output)}"
            last = f"; its last run {earlier}"
            seat.waiting_for = f"its {said} to exit with code 0{last}"
            await first(*ended, within=min(pause, deadline - loop.time()))
            pause = min(pause * 2, CHECK_PAUSE_CAP)
            if loop.time() >= deadline:
                break
        if any(future.done() for future in ended):
            return False
        return (f"{member.name} was not ready after {seconds_said(spec.ready_timeout)} s "
                f"({_timeout_said(spec)}): its {said} never exited with code 0{last}",
                f"which was not ready after {seconds_said(spec.ready_timeout)} s")

    def _listened_by_others(self, member: Process,
                            port: int) -> tuple[frozenset[int], list[str]]:
        """The listeners on ``port`` and the other members they belong to, when they all
        belong to other members that wait for the same port (one of a wave with a copied
        ready_port): a connection proves nothing of its own. Else no members: one of them
        is its own, or one that belongs to no such member (a proxy that listens for it,
        say) is there. Only those members are looked at: their trees, not every member's
        (a cast of hundreds whose ports a proxy holds)."""
        others = [other for other in self._members.values()
                  if other is not member and other.running and other.pid is not None
                  and other.spec.ready_port
                  and expand(other.spec.ready_port, self._variables) == str(port)]
        if not others or member.pid is None:  # (the usual case: /proc is not read)
            return frozenset(), []
        held = listeners(port)
        if not held or held & sockets_of(_tree(member.pid)):
            return held, []
        owners: list[str] = []
        owned: set[int] = set()
        for other in others:
            assert other.pid is not None
            theirs = held & sockets_of(_tree(other.pid))
            if theirs:
                owners.append(other.name)
                owned |= theirs
        return held, owners if owned == held else []

    def note_port_taken(self, name: str, seat: Seat, port: int, where: str | None) -> None:
        """Before ``name`` starts: what listens on its ``ready_port`` already (a server left
        from an earlier run, another member) would make any connection succeed. Said, and
        the member is ready only once a listener of its own is there too. ``where``: where
        its ready_port was written."""
        taken = listeners(port)
        if not taken:
            return
        seat.port_taken = taken
        held = holders(taken)
        members = {pid: other.name for other in self._members.values()
                   if held and other.running and other.pid is not None
                   for pid in _tree(other.pid)}
        by = ", ".join(f"member {members[pid]} (pid {pid})" if pid in members else
                       f"{command} (pid {pid})" for pid, command in held)
        fix = (f"give {name} a port of its own" if held and all(
            pid in members for pid, _ in held) else "if that one is left from an earlier run, "
            f"stop it, or give {name} a port of its own")
        self._bus.publish(Note(
            f"port {port} (its ready_port{f', at {where}' if where else ''}) already has a "
            f"listener before it starts, not its own{f', held by {by}' if by else ''}: it "
            f"counts as ready once it listens there too; {fix}", name=name, level="warning"))


def _listens_elsewhere(member: Process, port: str) -> str:
    """Where a member whose ``ready_port`` never accepted listens instead, if it does:
    the likelier fix is the port, not a longer wait."""
    if member.pid is None or member.returncode is not None:
        return ""
    ports = [p for p in ports_of([member.pid, *live_in_group(member.pid)]) if str(p) != port]
    if not ports:
        return ""
    which = ", ".join(map(str, ports[:5])) + (", ..." if len(ports) > 5 else "")
    return (f"; it listens on port{'s' if len(ports) > 1 else ''} {which}: is ready_port the "
            "port it was told to use?")


def _tree(pid: int) -> list[int]:
    """``pid`` and the processes below it, by their parents' lists of children: cheap, as
    a pass over /proc is not (a worker that listens for its server is found; a daemon that
    left is not)."""
    found, todo = [pid], [pid]
    while todo:
        below = children(todo.pop())
        found += below
        todo += below
    return found


def _said(output: bytes | bytearray) -> str:
    """The last lines of a health check's output, for a message (or nothing)."""
    lines = last_lines(output)
    if not lines:
        return ", writing nothing"
    return ", writing:\n" + "\n".join(f"  {line}" for line in lines)


def _values_said(spec: ProcSpec, variables: Mapping[str, str]) -> str:
    """The values a member's ``ready_cmd`` ran with, for messages that show it as written:
    `` (with port='5433')``, or nothing; a long one cut, outside its quotes."""
    used = spec.helper_variables("ready_cmd") & variables.keys()
    return f" (with {assignments(variables, used)})" if used else ""


def assignments(variables: Mapping[str, str], names: Iterable[str]) -> str:
    """``port='5433', host='db'``: values as a message shows them, a long one cut outside
    its quotes."""
    return ", ".join(f"{name}={quoted(value) if len(value) <= 60 else quoted(value[:59]) + '…'}"
                     for name in sorted(names) for value in (variables[name],))


def _scaled_said(spec: ProcSpec) -> str:
    """That the member's limits were scaled (``pipeplex test --timeout-factor``): a value
    unlike its file's line, or the documented default, is then no surprise."""
    return f", x{spec.timeout_factor:g} by --timeout-factor" if spec.timeout_factor != 1 else ""


def _run_limit_said(spec: ProcSpec) -> str:
    """The limit of one run of a member's health check, and where it was set."""
    if where := spec.key_sources.get("ready_cmd_timeout"):
        return f"its ready_cmd_timeout, at {where}{_scaled_said(spec)}"
    if spec.key_sources:  # (of a file, where it was not set)
        return (f"the default ready_cmd_timeout{_scaled_said(spec)}: set one for a check "
                "that takes longer")
    return f"its ready_cmd_timeout{_scaled_said(spec)}"


def _timeout_said(spec: ProcSpec) -> str:
    """Which limit a member that took too long to get ready ran into, and where it was set."""
    if where := spec.key_sources.get("ready_timeout"):
        return f"its ready_timeout, at {where}{_scaled_said(spec)}"
    if where := spec.key_sources.get(DEFAULTS_TIMEOUT):
        return f"the scenario's [defaults] timeout, at {where}{_scaled_said(spec)}"
    if spec.key_sources:  # (of a file, where it was not set)
        return f"the default ready_timeout{_scaled_said(spec)}: set one to wait longer"
    return f"ready_timeout{_scaled_said(spec)}"
