"""The console: pipeplex's own standard input as a way to talk to the cast.

A line ``NAME: text`` goes to NAME (``all: text`` to everyone), a plain line to the
current target, and lines starting with ``:`` are commands (``:to``, ``:list``, ``:help``,
``:signal``, ``:restart``, ``:close``, ``:quit``). :func:`parse_line` turns one line into an
action and knows nothing else (:mod:`._console_commands`); :class:`Console` carries actions
out through the engine.

Where the lines come from (see :func:`~pipeplex.inputs.stdin.console_mode`):

- ``"prompt"``: stdin and the output are the terminal we are in the foreground of: an
  interactive prompt with editing, history and completion (prompt_toolkit, imported only
  then), the merged output printed above it;
- ``"lines"``: a pipe, a file, or a terminal whose output goes elsewhere: lines are read as
  they come, without a prompt;
- ``None``: nothing usable (``/dev/null``, closed, a terminal we are in the background of):
  no console.

Lines from a pipe or a file are read once every member that starts by itself is ready, so
a script never races the cast's start. The end of the input (EOF, Ctrl-D) ends the console,
never the run; but a terminal that hangs up (its window closed, the ssh connection dropped:
EIO, or EOF on a hung-up terminal) calls :attr:`Console.on_hangup`, which the run sets to
stop the cast as SIGHUP does.
"""

from __future__ import annotations

import asyncio
import errno
import os
import stat
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, Any

from .._events import Level, Note
from .._signals import signal_name
from ..errors import PipeplexError, UnknownMember
from ..output.status import format_status, started_and_ready
from ._console_commands import (
    COMMANDS,
    CloseInput,
    Invalid,
    ListMembers,
    Parsed,
    Quit,
    Restart,
    SendLine,
    SendSignal,
    SetTarget,
    ShowHelp,
    Start,
    help_text,
    parse_line,
)
from .router import ALL
from .stdin import ConsoleMode, console_mode, hung_up

if TYPE_CHECKING:
    from ..engine.engine import Engine
    from ..output.terminal import Writer
    from ..participants import Process

__all__ = (
    "COMMANDS",
    "CloseInput",
    "Console",
    "ConsoleMode",
    "Invalid",
    "ListMembers",
    "Quit",
    "Restart",
    "SendLine",
    "SendSignal",
    "SetTarget",
    "ShowHelp",
    "Start",
    "console_mode",
    "parse_line",
)

Reply = Callable[[str, Level], None]

READ_SIZE = 64 * 1024
MAX_LINE = 1024 * 1024
HELD_LINES = 1024
"""Lines read ahead of the one being carried out (a restart's, say) before reading waits."""
HELD_BYTES = 1024 * 1024
"""The same in bytes: a script of long lines waiting for a member to read holds that much."""


# Carrying lines out -------------------------------------------------------------------


class Console:
    """The console of one run: reads lines, carries them out, replies through ``reply``.

    Args:
        engine: the running engine (its router, status, restart and stop).
        reply: shows pipeplex's answer to a console line (not part of the run's events).
        interrupt: what Ctrl-C at the prompt does (the same as SIGINT to pipeplex).
        quit_now: what Ctrl-\\ does (SIGQUIT's: a stop without the grace); None when
            SIGQUIT was ignored from the start (``nohup``, a script's background job).
    """

    def __init__(self, engine: Engine, reply: Reply, *, interrupt: Callable[[], None],
                 quit_now: Callable[[], None] | None = None) -> None:
        self.engine = engine
        self.reply = reply
        self.interrupt = interrupt
        self.quit_now = quit_now
        self.members = list(engine.members)
        self.target = self.members[0] if self.members else ALL
        self._dropping: str | None = None
        """The target whose dropped plain lines were said to go there (until one is not)."""
        self.on_end: Callable[[], None] = lambda: None
        """Set by the prompt: get ready to be cancelled without leaving a trace."""
        self.on_hangup: Callable[[], None] = lambda: None
        """Set by the run: the console's terminal hung up (the console then ends)."""
        self.on_resize: Callable[[], None] = lambda: None
        """Set by the run: look whether the terminal changed size (the prompt takes SIGWINCH
        while it is up, and asks before each redraw)."""
        self.on_raw: Callable[[int, list[Any] | None], None] = lambda fd, settings: None
        """Set by the run: the prompt made the terminal ``fd`` raw, its ``settings`` before
        being these (None: set back), for the guardian to set back should pipeplex die."""
        self._tg: asyncio.TaskGroup | None = None

    def __repr__(self) -> str:
        return f"<Console target={self.target!r}>"

    async def run(self, mode: ConsoleMode, *, stdin_fd: int = 0,
                  writer: Writer | None = None) -> None:
        """Read and carry out lines until the input ends (or this task is cancelled).

        ``writer`` is the terminal's writer, which the prompt holds while it is shown.
        """
        # The first wave spawns before the prompt is set up (milliseconds of work in one
        # go): a Ctrl-C in them would be taken only once the wave had started.
        await self.engine.wait_began()
        await asyncio.sleep(0)  # (a yield: the wave's supervisors, made at the run's begin)
        try:
            async with asyncio.TaskGroup() as tg:
                self._tg = tg
                if mode == "prompt":
                    try:
                        from . import _prompt
                    except ImportError as exc:
                        self.reply(f"no interactive prompt ({exc}); reading lines without "
                                   "one", "warning")
                        mode = "lines"
                if mode == "prompt":
                    assert writer is not None
                    await _prompt.run_prompt(self, writer)
                # A script's first lines would otherwise race the members' start and be
                # dropped ("has not started yet"): read once the cast is up.
                elif await self.engine.wait_up():
                    if await _read_lines(stdin_fd, self._in_order, self._too_long):
                        self.on_hangup()
                    elif not self.engine.stopping:  # (a script's end, after its lines)
                        self.reply("console input ended; the cast goes on (pipeplex stop, "
                                   "Ctrl-C or SIGTERM stops it)", "info")
        finally:
            self._tg = None

    def end(self) -> None:
        """The run is over; the task running :meth:`run` is cancelled next."""
        self.on_end()

    def keeps(self, entry: str) -> bool:
        """Whether ``entry`` (its lines, as they would be carried out: a ``:to`` among them
        changes where the next ones go) may be shown as typed and kept in the history: not
        when a line goes to a member reading a password (see ``Process.reads_secret``)."""
        target, targets = self.target, set()
        for line in entry.split("\n"):
            action = parse_line(line, self.members)
            if isinstance(action, SendLine):
                targets.add(action.target or target)
            elif isinstance(action, SetTarget) and action.name is not None:
                target = action.name
        router = self.engine.router
        for name in targets:  # (each once: a long paste is checked in one pass)
            try:
                if any(member.reads_secret for member in router.resolve(name)):
                    return False
            except UnknownMember:
                continue
        return True

    def handle_line(self, line: str) -> None:
        """Carry out one console line (without its newline)."""
        self.carry_out(parse_line(line, self.members))

    def _in_order(self, line: str) -> Awaitable[None] | None:
        """A script's line: as :meth:`handle_line`, but a restart or a start is awaited
        before the next line (which then reaches the new instance, not the one being
        stopped, or the member just started), and so is room in a member's input that a
        line filled (a script piped in then waits, as on a pipe to a program that does not
        read, instead of filling pipeplex's memory)."""
        action = parse_line(line, self.members)
        if isinstance(action, Restart):
            return self._restart(action.name)
        if isinstance(action, Start):
            return self._start(action.name)
        self.carry_out(action)
        if isinstance(action, SendLine):
            return self._room_in(action.target or self.target)
        return None

    def _too_long(self, size: int) -> None:
        self.reply(f"dropped a line of {size:,} bytes (a console line may hold at most "
                   f"{MAX_LINE // (1024 * 1024)} MiB)", "warning")

    def _room_in(self, target: str) -> Awaitable[None] | None:
        try:
            members = self.engine.router.resolve(target)
        except UnknownMember:
            return None
        full = [m for m in members if m.input_open and m.input_full]
        return _room(full) if full else None

    def carry_out(self, action: Parsed) -> None:
        """Do what ``action`` asks; mistakes and refusals become replies, never errors."""
        engine, router = self.engine, self.engine.router
        try:
            if isinstance(action, SendLine):
                target = action.target or self.target
                data = (action.text + "\n").encode("utf-8", "surrogateescape")
                if router.send(target, data):
                    self._dropping = None
                elif target == ALL:
                    self.reply("no member is taking input; the line was dropped", "warning")
                elif action.target is None and self._dropping != target:
                    # (The member said why, once; this says where to go, once too.)
                    self._dropping = target
                    self.reply(f"plain lines go to {target}; :to NAME sends them to "
                               "another member", "info")
            elif isinstance(action, SetTarget):
                if action.name is not None:
                    self.target = action.name
                self.reply(f"plain lines go to {self.target}", "info")
            elif isinstance(action, ListMembers):
                self.reply(format_status(engine.status(), stopping=engine.stopping,
                                         stop_reason=engine.stop_cause), "info")
            elif isinstance(action, ShowHelp):
                self.reply(help_text(self.members), "info")
            elif isinstance(action, SendSignal):
                reached = router.signal(action.name, action.signal)
                what = signal_name(action.signal)
                if reached:  # (in the run's events, a transcript too, as pipeplex signal is)
                    whom = "every running member" if action.name == ALL else action.name
                    engine.bus.publish(Note(f"{what} sent to {whom} from the console"))
                else:
                    self.reply(router.not_signalled(action.name, action.signal), "warning")
            elif isinstance(action, Restart):
                if self._tg is None:
                    raise PipeplexError("the console has ended")
                self._tg.create_task(self._restart(action.name), name=f"restart {action.name}")
            elif isinstance(action, Start):
                if self._tg is None:
                    raise PipeplexError("the console has ended")
                self._tg.create_task(self._start(action.name), name=f"start {action.name}")
            elif isinstance(action, CloseInput):
                one = None if action.name == ALL else router.resolve(action.name)[0]
                if one is not None and not one.input_open:  # (refused, as the socket's close is)
                    self.reply(f"{one.name} {router.why_closed(one)}; nothing was closed",
                               "warning")
                else:
                    router.close_input(action.name)
                    whose = "every member's stdin" if one is None else f"the stdin of {one.name}"
                    self.reply(f"closed {whose}", "info")
            elif isinstance(action, Quit):
                engine.request_stop("stopping the cast (:quit)", asked=True, stdin_first=True)
            else:
                self.reply(action.message, "warning")
        except PipeplexError as exc:
            self.reply(str(exc), "warning")

    async def _restart(self, name: str) -> None:
        try:
            pid = await self.engine.restart_until_ready(name, stdin_first=True)
        except PipeplexError as exc:
            self.reply(f"cannot restart {name}: {exc}", "warning")
            return
        member = self.engine.members[name]
        step_exit = member.returncode if member.spec.ready_exit else None
        self.reply(started_and_ready(name, pid, step_exit, done="restarted"), "info")

    async def _start(self, name: str) -> None:
        try:
            await self.engine.start(name, f":restart {name}")
        except PipeplexError as exc:
            self.reply(f"cannot start {name}: {exc}", "warning")
            return
        member = self.engine.members[name]
        step_exit = member.returncode if member.spec.ready_exit else None
        self.reply(started_and_ready(name, member.pid, step_exit), "info")


async def _room(members: Sequence[Process]) -> None:
    for member in members:
        await member.input_room()


async def _read_lines(fd: int, handle: Callable[[str], Awaitable[None] | None],
                      too_long: Callable[[int], None] = lambda size: None) -> bool:
    """Hand each line read from ``fd`` to ``handle`` until EOF; True if a terminal hung up.

    A line whose handling is awaitable (a restart) holds back the lines after it until it
    is done: a script's next line goes to the new instance, not the one being stopped.
    Reading pauses while :data:`HELD_LINES` (or :data:`HELD_BYTES`) wait, so memory stays
    bounded. A line longer than :data:`MAX_LINE` is dropped whole, and ``too_long`` is told
    its size in its place: a piece of it taken as a line would go to another member, or
    be carried out as a command.

    Once the other end of a terminal is gone, reads fail with EIO (until the kernel has
    hung it up) or return EOF (after): both mean a hangup, unlike Ctrl-D's plain EOF.
    """
    loop = asyncio.get_running_loop()
    own, private = _private_reader(fd)
    queued: deque[str | int] = deque()  # (a line, or the size of one dropped)
    more = asyncio.Event()
    ended: list[bool] = []  # [hangup] once the input ended
    hung: asyncio.Future[None] = loop.create_future()  # (a terminal's hangup: at once)
    pending = b""
    dropping = 0  # (the size so far of a line too long, while its end is still to come)
    dropped_cr = False  # (whether what was dropped of it ends in a CR, a CRLF's first half)
    held = 0  # (about: the bytes of the lines queued)
    reading = False

    def lines(data: bytes) -> None:
        nonlocal pending, dropping, dropped_cr, held
        if dropping:
            end = data.find(b"\n")
            if end < 0:
                dropping += len(data)
                dropped_cr = data.endswith(b"\r")
                return
            crlf = data[end - 1:end] == b"\r" if end else dropped_cr
            queued.append(dropping + end - crlf)  # (its size as a line: without its end)
            dropping, data = 0, data[end + 1:]
        data = pending + data if pending else data
        end = data.rfind(b"\n") + 1
        pending = data[end:]
        for line in data[:end].split(b"\n")[:-1]:
            if line.endswith(b"\r"):  # (a script written with CRLF line ends)
                line = line[:-1]
            queued.append(line.decode("utf-8", "surrogateescape") if len(line) <= MAX_LINE
                          else len(line))  # (whole, but too long all the same)
        held += end
        if len(pending) - pending.endswith(b"\r") > MAX_LINE:  # bounded: dropped to its end
            dropping, dropped_cr, pending = len(pending), pending.endswith(b"\r"), b""
        more.set()

    def finish(hangup: bool = False) -> None:
        nonlocal pending, dropping
        if dropping:
            queued.append(dropping)
            dropping = 0
        if pending:
            queued.append(pending.decode("utf-8", "surrogateescape"))
            pending = b""
        ended.append(hangup or hung_up(own))
        if ended[0] and not hung.done():
            hung.set_result(None)
        more.set()

    def readable() -> None:
        hangup = False
        try:
            data = os.read(own, READ_SIZE)
        except (BlockingIOError, InterruptedError):
            return
        except OSError as exc:  # EIO: the terminal hung up; anything else ends the input too
            data, hangup = b"", exc.errno == errno.EIO
        if data:
            lines(data)
            if len(queued) >= HELD_LINES or held >= HELD_BYTES:
                pause()
        else:
            pause()
            finish(hangup)

    def pause() -> None:
        nonlocal reading
        if reading:
            loop.remove_reader(own)
            reading = False

    regular = stat.S_ISREG(os.fstat(own).st_mode)
    try:
        while True:
            while queued:
                line = queued.popleft()
                if isinstance(line, int):
                    too_long(line)
                    continue
                held = max(held - len(line) - 1, 0)
                work = handle(line)
                if work is not None:
                    # A hangup meanwhile does not wait for it: the run stops at once.
                    task = asyncio.ensure_future(work)
                    try:
                        await asyncio.wait((task, hung), return_when=asyncio.FIRST_COMPLETED)
                    finally:
                        task.cancel()  # (nothing, once it is done)
                    if not task.done() or task.cancelled():
                        return True
                    task.result()
            if ended:
                return ended[0]
            if regular:  # (always "readable", which epoll refuses: read in chunks)
                data = os.read(own, READ_SIZE)
                if data:
                    lines(data)
                else:
                    finish()
                await asyncio.sleep(0)  # (the loop runs between chunks)
                continue
            if not reading:
                loop.add_reader(own, readable)
                reading = True
            more.clear()
            await more.wait()
    finally:
        pause()
        if private:
            os.close(own)


def _private_reader(fd: int) -> tuple[int, bool]:
    """A non-blocking descriptor for reading ``fd``, and whether we must close it.

    stdin's file description is shared with whoever started us; setting O_NONBLOCK on it
    would leak to them. A pipe, FIFO or terminal is reopened through /proc as a private
    description; a socket cannot be, so its descriptor is read only when it is readable
    (a read then does not block); a regular file is read as it is.
    """
    mode = os.fstat(fd).st_mode
    if stat.S_ISFIFO(mode) or stat.S_ISCHR(mode):
        try:
            flags = os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC | os.O_NOCTTY
            return os.open(f"/proc/self/fd/{fd}", flags), True
        except OSError:
            pass
    return fd, False
