"""Stopping a member: close its stdin, SIGTERM (or its ``stop_signal``) to its process
group, a grace, SIGKILL.

Every step is announced on the bus, in words a person reads while it happens
(``server ignored SIGTERM for 1.0 s; sent SIGKILL to its process group``). What a member
leaves in its process group once it has exited (a shell's background worker) gets the
same escalation, once per run of the member, however many callers need it gone: a
restart, a name used again, the end of the cast. So do the processes it started outside
its group, with its own stop (:mod:`._stopping_outside`, the stopper's ``outside``).
"""

from __future__ import annotations

import asyncio
import functools
import signal
from collections.abc import Awaitable, Callable, Collection, Iterable
from typing import Any

from .._bus import Bus
from .._events import Level, Note
from .._seconds import seconds_said, seconds_waited
from .._signals import describe_returncode, signal_name
from ..errors import SignalRefused, SpawnError
from ..participants import Process
from ..participants._group import wait_group_gone
from ..participants._proc import signal_ignored
from ..participants.health_check import last_lines
from ._stopping_outside import OutsideStopper
from ._stopping_reach import LEFTOVER_KILL_WAIT

__all__ = ("EOF_GRACE", "LEFTOVER_KILL_WAIT", "StopCommand", "Stopper", "first")

StopCommand = Callable[[Process, bytearray, Callable[[], None]], Awaitable[int]]
"""Runs a member's ``stop_cmd`` once, the end of its output kept in the bytearray, calling
the callable once it runs; its return code (raises :class:`SpawnError` if it cannot start;
cancelled, it is killed)."""

HELD_UP = 1.0
"""Seconds past its grace from which a stop says how long a member really had (pipeplex
itself was stopped meanwhile, by SIGSTOP or Ctrl-Z) rather than the grace: well past a
timer that a busy machine keeps late."""

EOF_GRACE = 0.3
"""Seconds a member gets to end at EOF on its stdin before SIGTERM, where a stop closes
stdin first (a test's end, the API's, a console script's ``:quit``)."""


async def first(*futures: asyncio.Future[Any], within: float | None = None) -> None:
    """Wait until one of ``futures`` is done, or ``within`` seconds have passed."""
    await asyncio.wait(futures, timeout=within, return_when=asyncio.FIRST_COMPLETED)


async def _seen_if_exited(member: Process, exit_seen: asyncio.Future[Any]) -> None:
    """A grace is up: if the member exited meanwhile and the loop has not seen it yet (its
    exit and the deadline came due together, as after pipeplex was suspended with Ctrl-Z
    longer than the grace), wait for the loop to see it, rather than say it ignored the
    signal and kill its group."""
    if not exit_seen.done() and member.has_exited():
        await asyncio.shield(exit_seen)


class Stopper:
    """Stops members with the escalation, and skips every grace left once told to."""

    def __init__(self, bus: Bus, *, grace: float, stdin_grace: float = 0.0,
                 run_id: str | None = None, checks: Collection[int] = ()) -> None:
        self.bus = bus
        self.grace = grace
        """Seconds from SIGTERM to SIGKILL, unless a member's ``stop_timeout`` says."""
        self.stdin_grace = stdin_grace
        """Seconds a member gets to end at EOF on its stdin before SIGTERM (0: none)."""
        self.outside = OutsideStopper(bus, grace=grace, run_id=run_id, checks=checks)
        """What members started outside their process groups, stopped with them."""
        self.stop_command: StopCommand | None = None
        """How a member's ``stop_cmd`` is run (the engine's: it knows the values and the
        guardian); None: members are asked with their stop signal only."""
        self._force: asyncio.Future[None] | None = None
        self._input_closed: dict[str, tuple[int, float]] = {}
        """Members whose stdin :meth:`close_inputs` closed: the run's pid, and when."""
        self._taken: dict[str, int] = {}
        """Members :meth:`take` gave to the stop, and the run's pid: each one's
        :meth:`stop` is still to come."""
        self._sweeps: dict[str, tuple[tuple[int, float | None], asyncio.Future[None]]] = {}
        """Per member, its latest run (pid and start time: a pid comes back) whose leftover
        processes are being stopped (pending) or were (done): each run once, and whoever
        else needs them gone waits for that one stop. (An earlier run's is not kept: a crash
        loop would add one a restart.)"""

    def begin(self) -> None:
        """Get ready to stop members (in the running loop)."""
        self._force = asyncio.get_running_loop().create_future()
        self.outside.begin(self._force)

    def skip_grace(self) -> bool:
        """SIGKILL whatever is waiting out a grace, now and from now on. False if it was
        already so (or nothing has begun)."""
        if self._force is None or self._force.done():
            return False
        self._force.set_result(None)
        return True

    def close_inputs(self, members: Iterable[Process]) -> None:
        """The cast stops, with a grace at EOF (``stdin_grace``): close the stdin of every
        member now, in the stop's order, so that their graces run together: one wave's after
        another's would add up, wave by wave. The SIGTERMs still go wave by wave
        (:meth:`stop`)."""
        if not self.stdin_grace:
            return
        now = asyncio.get_running_loop().time()
        for member in self.take(members):  # (an exit at this EOF is judged as in a stop)
            member.close_input()
            assert member.pid is not None
            self._input_closed[member.name] = (member.pid, now)
            self._announce(member, "closed its stdin")

    def take(self, members: Iterable[Process]) -> list[Process]:
        """The stop takes ``members`` over, all of them before it touches any: a member
        that ends as another one's stdin closes or its SIGTERM lands (a client whose server
        went away) then ended in the stop, not before it. (Taken one by one, the last of
        them could be found already ended, on a busy machine, and blamed for it.) Their
        :meth:`stop` is to follow; the members taken are returned."""
        taken = []
        for member in members:
            if member.running and not member.stopping and member.pid is not None:
                member.begin_stop()
                self._taken[member.name] = member.pid
                taken.append(member)
        return taken

    async def stop(self, member: Process, *, stdin_first: bool = False,
                   hurry: asyncio.Future[None] | None = None) -> None:
        """Close stdin, SIGTERM the group, wait the grace, SIGKILL; each step announced.
        ``stdin_first``: the member gets :data:`EOF_GRACE` to end at EOF first (as every
        member does when the stopper's ``stdin_grace`` says so). What the member started
        outside its group gets its SIGTERM with the group's, and shares its grace.
        ``hurry``, once done, skips what is left of this member's graces, as
        :meth:`skip_grace` does for all (a cancelled remove)."""
        assert self._force is not None
        forced = (self._force,) if hurry is None else (self._force, hurry)
        closed = self._input_closed.pop(member.name, None)
        taken = self._taken.pop(member.name, None)
        if member.pid is None:
            return
        if not member.running:
            if not self.outside.looking:
                await self.stop_leftovers(member)
            else:  # (in its wave of the cast's stop, not after the last)
                await asyncio.gather(self.stop_leftovers(member),
                                     self.outside.stop_with(member))
            return
        # This run only: once it is gone, a restart may start the next one.
        pid, exit_seen, done = member.pid, member.exit_future, member.done_future
        closed_here = closed is not None and closed[0] == pid  # (by close_inputs: ours)
        if member.stopping and taken != pid:  # (not taken by this stop: another's)
            await asyncio.shield(done)
            return
        member.begin_stop()
        member.close_input()
        grace = member.spec.stop_timeout or self.grace
        loop = asyncio.get_running_loop()
        termed_at: float | None = None
        stdin_grace = max(self.stdin_grace, EOF_GRACE if stdin_first else 0.0)
        said = "closed its stdin; "
        if stdin_grace:
            # Many programs end cleanly at EOF on stdin; give them that chance first.
            if closed is not None and closed_here:  # (what is left of that grace)
                closed_at = closed[1]
            else:
                self._announce(member, "closed its stdin")
                closed_at = loop.time()
            left = closed_at + stdin_grace - loop.time()
            await first(exit_seen, *forced, within=max(left, 0.0))
            await _seen_if_exited(member, exit_seen)
            # The grace, or the time it really was: a turn that came well after that grace
            # (its stdin closed with the whole cast's, a later wave took its own grace to
            # stop), or a grace cut short (a second Ctrl-C).
            waited = seconds_waited(loop.time() - closed_at, stdin_grace)
            said = f"still running {waited} s after its stdin closed; "
        refused = None
        escaped: asyncio.Future[None] | None = None
        ignored = f"ignored {_asked(member)} for {{s}} s"
        asked_at = loop.time()  # (the grace counts from here, a stop_cmd's or a signal's)
        try:
            # (Not once the graces are skipped: the command would be killed as it starts.)
            if not exit_seen.done() and member.spec.stop_cmd is not None and (
                    self.stop_command is not None) and not any(f.done() for f in forced):
                ignored = "still running {s} s after its stop_cmd"
                refused, termed_at, escaped = await self._ask_by_command(
                    member, said, exit_seen, forced, grace)
            elif not exit_seen.done():
                done_to_it, refused = _terminate(member)
                termed_at = loop.time()
                if refused is None:
                    self._announce(member, said + done_to_it)
                else:
                    self._announce(member, f"{said}may not signal it: its processes run as "
                                           f"{refused.owner}; waiting {seconds_said(grace)} s "
                                           "for it to end", "warning")
                # What it started outside its group too, now: one grace for both, not
                # one after the other.
                escaped = asyncio.ensure_future(self.outside.stop_with(member))
                await first(exit_seen, *forced, within=grace)
            await _seen_if_exited(member, exit_seen)
            await self._kill(member, pid, exit_seen, grace=grace, refused=refused,
                             termed_at=termed_at, hurried=any(f.done() for f in forced),
                             ignored=ignored, asked_at=asked_at)
            if escaped is None and self.outside.looking:  # (it ended at EOF: in its wave)
                escaped = asyncio.ensure_future(self.outside.stop_with(member))
            if escaped is not None:
                await escaped
        finally:
            if escaped is not None and not escaped.done():
                escaped.cancel()
        if member.pid == pid and not done.done() and member.output.output_held():
            # Its group is empty, yet its output is open: held by a process it started
            # outside its group (a daemon's setsid) since the look above. That one is
            # stopped now, as the cast's stop would anyway, not after the 2 s in which an
            # ended member's last output may still come.
            await self.outside.stop_escaped([member])
            if not done.done() and member.output.output_held():
                # Not found by its environment (env -i): the stop goes on; the end of
                # the cast stops what it orphaned (pipeplex is its subreaper).
                member.output.stop_waiting_for_output()
        await asyncio.shield(done)

    async def _ask_by_command(
        self, member: Process, said: str, exit_seen: asyncio.Future[Any],
        forced: tuple[asyncio.Future[None], ...], grace: float,
    ) -> tuple[SignalRefused | None, float | None, asyncio.Future[None] | None]:
        """Ask ``member`` to stop with its ``stop_cmd``, and wait (within ``grace`` from
        then) for its end. A command that fails or cannot start is said, and the stop
        signal asks instead, within what is left of the grace. The command is given what
        is left of the grace to finish even once the member has ended (``docker compose
        down`` goes on after its containers stopped); killed then. Returns the refusal of
        that signal, when it was sent (None: it was not, so what the run left in its group
        gets it afterwards), and the stop of what the member started outside its group."""
        assert self.stop_command is not None
        loop = asyncio.get_running_loop()
        deadline = loop.time() + grace
        output = bytearray()
        member.stop_command_runs()
        text = member.spec.helper_text("stop_cmd")
        run = asyncio.ensure_future(self.stop_command(member, output, functools.partial(
            self._announce, member, f"{said}ran its stop_cmd ({text})")))
        try:
            await first(exit_seen, run, *forced, within=grace)
            if not exit_seen.done() and run.done() and not any(f.done() for f in forced):
                failure = _failed(run)
                if failure is not None:  # the stop signal asks instead
                    done_to_it, refused = _terminate(member)
                    termed_at = loop.time()
                    asked = (done_to_it if refused is None else
                             f"may not signal it: its processes run as {refused.owner}")
                    # (One that could not start was not said to have run: said whole here.)
                    text = (f"{said}its stop_cmd ({text}) {failure}; {asked}"
                            if not run.cancelled()
                            and isinstance(run.exception(), SpawnError) else
                            f"its stop_cmd {failure}; {asked}")
                    if wrote := last_lines(output):
                        text += "\nit wrote:" + "".join(f"\n  {line}" for line in wrote)
                    self._announce(member, text, "warning")
                    escaped = asyncio.ensure_future(self.outside.stop_with(member))
                    await first(exit_seen, *forced, within=max(deadline - loop.time(), 0.0))
                    return refused, termed_at, escaped
                await first(exit_seen, *forced, within=max(deadline - loop.time(), 0.0))
            if exit_seen.done() and not run.done():
                await first(run, *forced, within=max(deadline - loop.time(), 0.0))
            return None, None, None
        finally:
            if not run.done():
                run.cancel()  # (the run and its group are killed, and reaped)
                await asyncio.wait({run})

    async def _kill(self, member: Process, pid: int, exit_seen: asyncio.Future[Any], *,
                    grace: float, refused: SignalRefused | None,
                    termed_at: float | None, hurried: bool, ignored: str,
                    asked_at: float) -> None:
        """SIGKILL to the group if its grace is over (or was skipped: ``hurried``) and the
        run still goes on; then what the run left in its group. ``ignored``: what the run
        did with how it was asked to stop (at ``asked_at``), ``{s}`` the seconds since
        (``ignored SIGTERM for {s} s``)."""
        killed = False
        if not exit_seen.done():
            # (The grace, unless pipeplex was held up well past it: a SIGSTOP.)
            after = seconds_waited(asyncio.get_running_loop().time() - asked_at, grace,
                                   slack=HELD_UP)
            if ignored.startswith("ignored ") and not signal_ignored(pid, member.spec.stop_signal):
                # It took the signal, and is slow to end (draining its connections): "ignored"
                # would send its author looking for a handler it has.
                ignored = f"still running {{s}} s after {_asked(member)}"
            try:
                member.signal_to_stop(signal.SIGKILL)
            except SignalRefused as no_kill:
                # Nothing pipeplex may do: it is said, with how to do it, and waited for.
                waited = ("" if hurried else f"still running after {after} s, "
                          "and " if refused else f"{ignored.format(s=after)}, and ")
                self._announce(member, f"{waited}may not be killed: its processes run as "
                                       f"{no_kill.owner}; waiting for it to end (stop it as "
                                       f"that user: sudo kill -KILL -- -{no_kill.pgid})",
                               "error")
            else:
                killed = True
                if hurried:
                    self._announce(member, "sent SIGKILL to its process group", "warning")
                else:
                    self._announce(member, f"{ignored.format(s=after)}; sent SIGKILL to its "
                                           "process group", "warning")
            await asyncio.shield(exit_seen)
        if member.pid == pid:
            await self.stop_leftovers(member, termed_at=termed_at, killed=killed)

    async def stop_leftovers(self, member: Process, *, termed_at: float | None = None,
                             killed: bool = False) -> None:
        """What the ended member left in its process group gets the escalation, once.

        ``termed_at``: when the group got SIGTERM with the member; the grace counts from then.
        ``killed``: the group got SIGKILL with the member (whatever is left is on its way out).
        """
        assert self._force is not None and member.pid is not None
        run = (member.pid, member.started_at)
        while (entry := self._sweeps.get(member.name)) is not None and entry[0] == run:
            if entry[1].done():
                return  # stopped already
            await asyncio.shield(entry[1])  # another caller is stopping them: wait for it
        if not member.has_leftovers():
            return
        sweep = asyncio.get_running_loop().create_future()
        self._sweeps[member.name] = (run, sweep)
        try:
            await self._sweep(member, termed_at=termed_at, killed=killed)
        except BaseException:
            if self._sweeps.get(member.name) == (run, sweep):
                del self._sweeps[member.name]  # not finished (cancelled): the next caller does it
            raise
        finally:
            sweep.set_result(None)

    async def _sweep(self, member: Process, *, termed_at: float | None,
                     killed: bool) -> None:
        assert self._force is not None and member.pid is not None
        if killed:
            await wait_group_gone(member.pid, LEFTOVER_KILL_WAIT)
            return
        loop = asyncio.get_running_loop()
        grace = member.spec.stop_timeout or self.grace
        if termed_at is None:
            if (refused := _terminate(member)[1]) is not None:
                self._left_running(member, refused)
                return
            termed_at = loop.time()
            self._announce(member, "left processes in its process group; sent them "
                                   f"{_asked(member)}", "warning")
        remaining = termed_at + grace - loop.time()
        if await wait_group_gone(member.pid, max(remaining, 0.0), self._force):
            return
        if self._force.done():
            what = "sent SIGKILL to the processes left in its process group"
        else:
            # ("still ran", not "ignored": one may have been forked since the signal)
            waited = seconds_waited(loop.time() - termed_at, grace, slack=HELD_UP)
            what = (f"processes left in its process group still ran {waited} s after "
                    f"{_asked(member)}; sent them SIGKILL")
        try:
            member.signal_to_stop(signal.SIGKILL)
        except SignalRefused as refused:  # (those that took SIGTERM were ours)
            self._left_running(member, refused)
            return
        self._announce(member, what, "warning")
        # Gone within a moment: SIGKILL cannot be ignored (a process in the kernel may lag).
        await wait_group_gone(member.pid, LEFTOVER_KILL_WAIT)

    def _left_running(self, member: Process, refused: SignalRefused) -> None:
        """What the member left in its group runs as another user: pipeplex may not stop
        it, and does not wait for it either (its exit is not pipeplex's to see)."""
        self._announce(member, f"left processes in its process group that run as "
                               f"{refused.owner}, which pipeplex may not signal; they run on "
                               f"(stop them as that user: sudo kill -- -{refused.pgid})",
                       "error")

    def _announce(self, member: Process, text: str, level: Level = "info") -> None:
        self.bus.publish(Note(text, name=member.name, level=level))


def _failed(run: asyncio.Future[int]) -> str | None:
    """How a ``stop_cmd`` that ended failed, in words; None if it exited with 0."""
    if run.cancelled():
        return "was cut short"
    if isinstance(error := run.exception(), SpawnError):
        return f"could not be started: {error.reason}"
    if error is not None:
        raise error
    if (returncode := run.result()) == 0:
        return None
    return describe_returncode(returncode)


def _asked(member: Process) -> str:
    """The signal that asks ``member`` to stop, by name: ``SIGTERM``, or its ``stop_signal``."""
    return signal_name(member.spec.stop_signal)


def _terminate(member: Process) -> tuple[str, SignalRefused | None]:
    """SIGTERM (or the member's ``stop_signal``) to its process group, then SIGCONT: a
    stopped process (SIGSTOP, Ctrl-Z) gets to run its handler within the grace instead of
    waiting for SIGKILL. A full terminal that would not hear it is hung up first (see
    :func:`_deaf_to_it`). What was done, in words; or the refusal when the group's processes
    run as another user (nothing was sent)."""
    hang_up = member.spec.pty == "full" and _deaf_to_it(member)
    try:
        if hang_up:
            member.hang_up()
        member.signal_to_stop(member.spec.stop_signal)
        member.signal_to_stop(signal.SIGCONT)
    except SignalRefused as refused:
        return "", refused
    sent = f"sent {_asked(member)} to its process group"
    return (f"hung up its terminal (SIGHUP) and {sent}" if hang_up else sent), None


def _deaf_to_it(member: Process) -> bool:
    """Whether a member on a full terminal would not hear its stop signal: it ignores it (an
    interactive shell ignores SIGTERM), or the terminal's foreground job, a command its
    shell runs, is a group of its own. The terminal is then hung up too, as closing a window
    does (:meth:`Process.hang_up`). Otherwise the signal alone asks, as on pipes: a
    program's handler (a server's graceful shutdown, a ``stop_signal = "INT"`` clean-up)
    runs, where SIGHUP, sent with it, would have ended the program first."""
    assert member.pid is not None
    return (signal_ignored(member.pid, member.spec.stop_signal)
            or member.terminal.foreground_job() is not None)


