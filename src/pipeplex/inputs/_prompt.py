"""The interactive prompt of the console, on prompt_toolkit (imported only for a terminal).

The merged output and the prompt share one terminal. While the prompt is up, the terminal
writer is *held*: it keeps what the cast writes (back-pressure still applies past its
high-water mark) and wakes :func:`_show_output`, which hides the prompt
(``in_terminal``), writes everything held so far, waits until the terminal took it, and
lets prompt_toolkit draw the prompt again below it. The output never goes through
prompt_toolkit's ``StdoutProxy`` (unbounded, ``str`` only, a redraw every 0.2 s), and a
burst of output costs one erase and one redraw, not one per line. prompt_toolkit's own
drawing goes through the same writer, ahead of what is held: nothing written to the
terminal ever blocks the loop, however slow the terminal.

Ctrl-C stays the terminal's SIGINT (the terminal is raw otherwise): the stop begins at
once, even while a slow terminal takes a backlog and no key is being read.

When the terminal hangs up (its window closed, the ssh connection dropped), writes fail
with EIO and the input reads EOF: the writes are dropped, the prompt ends, and
:attr:`Console.on_hangup` stops the cast, where Ctrl-D would only end the console.

The terminal's raw mode is in ``_prompt_raw_mode.py``, the line typed (keys, completion)
in ``_prompt_line.py``, and the history in ``_prompt_history.py``.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import select
import signal
import sys
import termios
from typing import TYPE_CHECKING, Any, TextIO, cast

from prompt_toolkit import PromptSession
from prompt_toolkit.application import in_terminal
from prompt_toolkit.output import Output, create_output
from prompt_toolkit.output.vt100 import Vt100_Output

from ._prompt_history import KeptHistory, console_history
from ._prompt_line import MemberCompleter, SecretShownAsStars, key_bindings
from ._prompt_raw_mode import FOREGROUND_LOOK, RawInput, foreground
from .stdin import hung_up

if TYPE_CHECKING:
    from ..output.terminal import Writer
    from .console import Console

__all__ = ("run_prompt",)

OUTPUT_WINDOW = 64 * 1024
"""Bytes of held output written between two frames of the prompt: at 1 MB/s (ssh), 60 ms."""
PROMPT_FRAME = 0.016
"""Seconds the prompt shows, and reads keys, after output: after each window of a flood
while keys wait, and after what trickles in (the lines of those 16 ms share a redraw)."""


async def run_prompt(console: Console, writer: Writer) -> None:
    """Prompt for lines and carry them out until Ctrl-D (or cancellation)."""
    stdout = _TerminalStdout(writer, sys.stdout.fileno(), sys.stdout.encoding)
    session: PromptSession[str] = PromptSession(
        input=RawInput(sys.stdin, console.on_raw),
        output=_output(stdout),
        history=KeptHistory(console_history(), console.keeps),
        completer=MemberCompleter(console.members),
        key_bindings=key_bindings(console),
        complete_while_typing=False,
        enable_suspend=False,
        input_processors=[SecretShownAsStars(console)],
    )
    # prompt_toolkit takes SIGWINCH while a prompt is up, and redraws after it: the members'
    # ptys follow the new width from there.
    session.app.before_render += lambda app: console.on_resize()
    wake = asyncio.Event()
    writer.hold(wake.set)
    # When the run ends the prompt is cancelled: erase it rather than leave "NAME> " behind.
    console.on_end = lambda: setattr(session.app, "erase_when_done", True)
    try:
        # The terminal stays raw for the whole session, between prompts too (see _RawInput).
        raw_mode = session.input.raw_mode()
        with raw_mode:
            fd = session.input.fileno()
            raw = termios.tcgetattr(fd) if foreground(fd) else None
            loop = asyncio.get_running_loop()
            waiting: list[asyncio.Task[None]] = []  # (for the foreground, after a bg)
            if raw is not None:
                loop.add_signal_handler(signal.SIGCONT, _continued, session, fd, raw, waiting)
                cooked = getattr(raw_mode, "attrs_before", None)
                if cooked is not None and signal.getsignal(signal.SIGTSTP) == signal.SIG_DFL:
                    loop.add_signal_handler(signal.SIGTSTP, _suspended, session, fd, cooked)
            # Said once the keys are the console's (Ctrl-Z no longer suspends): said
            # before, a Ctrl-Z typed at once stopped pipeplex.
            console.reply("console: type NAME: text to send a line, :help for more", "info")
            try:
                await _prompt_loop(console, session, writer, wake, stdout)
            finally:
                loop.remove_signal_handler(signal.SIGCONT)
                loop.remove_signal_handler(signal.SIGTSTP)  # (back to the default: it was)
                for task in waiting:
                    task.cancel()
    finally:
        writer.release()


def _suspended(session: PromptSession[str], fd: int, cooked: list[Any]) -> None:
    """A SIGTSTP from elsewhere (``kill -TSTP``; the console's Ctrl-Z is no key): the shell
    gets its terminal back as it was (the prompt erased, bracketed paste off, the cursor
    shown, keys echoed), as ``less`` and ``vim`` leave it, and pipeplex stops, as asked;
    :func:`_continued` takes the terminal back at ``fg``."""
    if not _a_job_of_a_shell():
        return  # (as the kernel drops it for an orphaned group: nobody would fg it)
    if foreground(fd):
        session.app.renderer.erase()
        with contextlib.suppress(termios.error):
            termios.tcsetattr(fd, termios.TCSANOW, cooked)
    os.kill(os.getpid(), signal.SIGSTOP)


def _a_job_of_a_shell() -> bool:
    """Whether pipeplex's process group has a parent in another group of its session (a
    job control shell's): only then does a SIGTSTP stop it, as the kernel decides for its
    default action; a group without one (an orphaned one) nobody could continue."""
    try:
        parent = os.getppid()
        return (os.getsid(parent) == os.getsid(0)
                and os.getpgid(parent) != os.getpgrp())
    except OSError:  # (the parent is gone)
        return False


def _continued(session: PromptSession[str], fd: int, raw: list[Any],
               waiting: list[asyncio.Task[None]]) -> None:
    """pipeplex was stopped (SIGSTOP, a debugger, a SIGTSTP from elsewhere: the console's
    Ctrl-Z is no key) and is continued, ``fg``: the shell had the terminal meanwhile and set
    it its own way, so keys were echoed and held until Enter. Raw again, and the prompt
    drawn anew where the cursor is now. Continued in the background (``bg``), it takes the
    terminal back once it is the foreground job again: a shell's ``fg`` of a running job
    sends no signal, so that is looked at a few times a second until then (``waiting``)."""
    if foreground(fd):
        _take_terminal_back(session, fd, raw)
    elif not any(not task.done() for task in waiting):
        waiting[:] = [asyncio.ensure_future(_in_foreground_again(session, fd, raw))]


async def _in_foreground_again(session: PromptSession[str], fd: int, raw: list[Any]) -> None:
    # (Looked at, not waited for: no event tells a job it is in the foreground again.)
    while True:
        if foreground(fd):
            _take_terminal_back(session, fd, raw)
            return
        await asyncio.sleep(FOREGROUND_LOOK)


def _take_terminal_back(session: PromptSession[str], fd: int, raw: list[Any]) -> None:
    with contextlib.suppress(termios.error):
        termios.tcsetattr(fd, termios.TCSANOW, raw)
    session.app.renderer.reset()
    session.app.invalidate()


async def _prompt_loop(console: Console, session: PromptSession[str], writer: Writer,
                       wake: asyncio.Event, stdout: _TerminalStdout) -> None:
    async with asyncio.TaskGroup() as tg:
        display = tg.create_task(_show_output(writer, wake, session), name="console output")
        try:
            while True:
                try:
                    line = await session.prompt_async(
                        lambda: f"{console.target}> ",
                        # Our own SIGINT handler stays in place: Ctrl-C is a key binding here
                        # (the terminal is raw), and SIGINT from elsewhere reaches it directly.
                        handle_sigint=False,
                        set_exception_handler=False,
                    )
                except EOFError:
                    if stdout.hung_up or hung_up(session.input.fileno()):
                        console.on_hangup()
                    else:
                        console.reply("console closed; the cast goes on (Ctrl-C or SIGTERM "
                                      "stops it)", "info")
                    return
                # A paste of several lines comes as one entry (the terminal brackets it):
                # each line is taken as if typed, with its own address or command. Its last
                # newline ends the last line; it adds no empty one.
                parts = line.split("\n")
                if len(parts) > 1 and not parts[-1]:
                    parts.pop()
                for part in parts:
                    console.handle_line(part)
        finally:
            display.cancel()


async def _show_output(writer: Writer, wake: asyncio.Event, session: PromptSession[str]) -> None:
    fd = session.input.fileno()
    hidden = False
    while True:
        await wake.wait()
        wake.clear()
        if not foreground(fd):
            # In the background (bg) the output goes on, as any job's does, but the prompt
            # stays away (drawn, it sat on the shell's line, bracketed paste on); at fg,
            # _take_terminal_back draws it again.
            if not hidden:
                session.app.renderer.erase()
                hidden = True
            if writer.flush_held(OUTPUT_WINDOW):
                wake.set()
            await writer.drain()
            continue
        hidden = False
        # in_terminal hides the prompt and stops reading keys; the terminal stays raw, so
        # keys typed meanwhile wait, unechoed, for the prompt drawn again afterwards. A
        # window at a time, each followed by a frame of the prompt: a flood to a slow
        # terminal (ssh, 1 MB/s) took the keyboard for as long as it lasted, and output
        # that trickles in costs a redraw a frame, not one a line.
        async with in_terminal():
            more = writer.flush_held(OUTPUT_WINDOW)
            await writer.drain()
        if more:
            wake.set()
            if not _keys_waiting(session):
                continue  # (nobody types: the flood goes on at the terminal's pace)
        await asyncio.sleep(PROMPT_FRAME)


def _keys_waiting(session: PromptSession[str]) -> bool:
    try:
        return bool(select.select([session.input.fileno()], [], [], 0)[0])
    except (OSError, ValueError):
        return False


class _TerminalStdout:
    """prompt_toolkit's stdout: its drawing goes out through the run's :class:`Writer`.

    Written straight to the terminal, a redraw blocked the loop, and the whole cast with it,
    while the terminal was full (a slow or stalled ssh link); the writer keeps it in order
    with the cast's output and writes it as the terminal takes it. Not ``sys.stdout``
    either: a buffered stream on a hung-up terminal fails again at every flush, the last
    one at interpreter exit; the writer drops what comes once the terminal hung up, and
    says so. prompt_toolkit uses ``write``, ``flush``, ``fileno``, ``isatty`` and
    ``encoding``.
    """

    def __init__(self, writer: Writer, fd: int, encoding: str | None) -> None:
        self._writer = writer
        self._fd = fd
        self.encoding = encoding or "utf-8"

    @property
    def hung_up(self) -> bool:
        return self._writer.refused

    def write(self, text: str) -> int:
        self._writer.write_through(text.encode(self.encoding, "replace"))
        return len(text)

    def flush(self) -> None:
        pass

    def fileno(self) -> int:
        return self._fd

    def isatty(self) -> bool:
        return os.isatty(self._fd)


def _output(stdout: _TerminalStdout) -> Output:
    """prompt_toolkit's output, without cursor position requests (CPR).

    prompt_toolkit asks the terminal where the cursor is at each prompt, and waits for the
    answer when a line is entered: up to a second, every line, where nothing answers (a
    program driving the console, as pexpect or expect do), and a round trip per line over
    a slow link. It would only use the answer to keep room below the prompt for a menu;
    the completion menu is drawn the same without it (the terminal scrolls).
    """
    output = create_output(cast(TextIO, stdout))
    if isinstance(output, Vt100_Output):
        output.enable_cpr = False
    return output
