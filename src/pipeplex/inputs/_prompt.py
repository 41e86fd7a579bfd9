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
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import select
import signal
import stat
import sys
import termios
import tty
from collections.abc import Callable, Iterable, Iterator
from contextlib import AbstractContextManager, nullcontext
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO, cast

from prompt_toolkit import PromptSession
from prompt_toolkit.application import in_terminal
from prompt_toolkit.completion import (
    CompleteEvent,
    Completer,
    Completion,
    get_common_complete_suffix,
)
from prompt_toolkit.document import Document
from prompt_toolkit.history import FileHistory, History, InMemoryHistory
from prompt_toolkit.input.vt100 import Vt100Input, raw_mode
from prompt_toolkit.key_binding import KeyBindings, KeyPress, KeyPressEvent
from prompt_toolkit.keys import Keys
from prompt_toolkit.layout.processors import Processor, Transformation, TransformationInput
from prompt_toolkit.layout.utils import explode_text_fragments
from prompt_toolkit.output import Output, create_output
from prompt_toolkit.output.vt100 import Vt100_Output

from .._signals import inherited_as_ignored
from ..report.files import make_folders
from ._console_commands import COMMANDS
from .router import ALL
from .stdin import hung_up

if TYPE_CHECKING:
    from prompt_toolkit.formatted_text import StyleAndTextTuples

    from ..output.terminal import Writer
    from .console import Console

__all__ = ("run_prompt",)

SIGNALS = ("TERM", "INT", "HUP", "KILL", "USR1", "USR2", "QUIT", "STOP", "TSTP", "CONT",
           "WINCH")
OUTPUT_WINDOW = 64 * 1024
"""Bytes of held output written between two frames of the prompt: at 1 MB/s (ssh), 60 ms."""
PROMPT_FRAME = 0.016
"""Seconds the prompt shows, and reads keys, after output: after each window of a flood
while keys wait, and after what trickles in (the lines of those 16 ms share a redraw)."""
_TAKES_MEMBER = {"to", "signal", "restart", "start", "close"}


async def run_prompt(console: Console, writer: Writer) -> None:
    """Prompt for lines and carry them out until Ctrl-D (or cancellation)."""
    stdout = _TerminalStdout(writer, sys.stdout.fileno(), sys.stdout.encoding)
    session: PromptSession[str] = PromptSession(
        input=_RawInput(sys.stdin, console.on_raw),
        output=_output(stdout),
        history=_KeptHistory(_history(), console.keeps),
        completer=MemberCompleter(console.members),
        key_bindings=_key_bindings(console),
        complete_while_typing=False,
        enable_suspend=False,
        input_processors=[_SecretShownAsStars(console)],
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
        with session.input.raw_mode():
            fd = session.input.fileno()
            raw = termios.tcgetattr(fd) if _foreground(fd) else None
            loop = asyncio.get_running_loop()
            if raw is not None:
                loop.add_signal_handler(signal.SIGCONT, _continued, session, fd, raw)
            try:
                await _prompt_loop(console, session, writer, wake, stdout)
            finally:
                loop.remove_signal_handler(signal.SIGCONT)
    finally:
        writer.release()


def _continued(session: PromptSession[str], fd: int, raw: list[Any]) -> None:
    """pipeplex was stopped (SIGSTOP, a debugger, a SIGTSTP from elsewhere: the console's
    Ctrl-Z is no key) and is continued, ``fg``: the shell had the terminal meanwhile and set
    it its own way, so keys were echoed and held until Enter. Raw again, and the prompt
    drawn anew where the cursor is now."""
    if not _foreground(fd):
        return
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
    while True:
        await wake.wait()
        wake.clear()
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


class _RawInput(Vt100Input):
    """The terminal's input that never switches back to cooked mode while the console runs.

    prompt_toolkit makes the terminal cooked around output printed above the prompt. For
    the moment it is cooked, the tty itself echoes keys typed then, behind prompt_toolkit's
    back, and a fast typist sees them twice. Output processing (``\\n`` to ``\\r\\n``)
    is on in raw mode too, so nothing else needs cooked mode here.
    """

    def __init__(self, stdin: TextIO, on_raw: Callable[[int, list[Any] | None], None]) -> None:
        super().__init__(stdin)
        self._on_raw = on_raw
        self._raw = 0
        """Raw modes entered and not left: prompt_toolkit enters one per prompt, inside
        the console's own, and only the outermost knows the terminal as it was found."""

    def raw_mode(self) -> AbstractContextManager[None]:
        return _RawModeKeepingCtrlC(self.stdin.fileno(), self._nested)

    def _nested(self, fd: int, settings: list[Any] | None) -> None:
        if settings is not None:
            self._raw += 1
            if self._raw == 1:
                self._on_raw(fd, settings)
        else:
            self._raw -= 1
            if self._raw == 0:
                self._on_raw(fd, None)

    def read_keys(self) -> list[KeyPress]:
        return _as_paste(super().read_keys())

    def cooked_mode(self) -> AbstractContextManager[None]:
        return nullcontext()


class _RawModeKeepingCtrlC(raw_mode):
    """prompt_toolkit's raw mode, but Ctrl-C stays the terminal's SIGINT.

    As a key, Ctrl-C was read only between writes of the output: behind a terminal slower
    than the cast (a flood over ssh), the stop began seconds after the key. The tty sends
    the signal at once, whatever pipeplex is doing, to the whole foreground job as in any
    program. Only when that signal reaches pipeplex's handler: pipeplex is the terminal's
    foreground job (not started in another session on it) and SIGINT is not ignored (a
    wrapper's ``trap '' INT``); else Ctrl-C stays a key, as prompt_toolkit makes it.
    Ctrl-\\ and Ctrl-Z are not signals here (a core dump, or pipeplex stopped while its
    members run on, are not what anyone wants from a console); output is not flushed on
    Ctrl-C (``NOFLSH``): no line of the cast is cut.
    """

    def __init__(self, fileno: int, on_raw: Callable[[int, list[Any] | None], None]) -> None:
        super().__init__(fileno)
        self._on_raw = on_raw
        self._told = False

    def __enter__(self) -> None:
        super().__enter__()
        self._told = self.attrs_before is not None
        if self.attrs_before is not None:
            self._on_raw(self.fileno, self.attrs_before)
        if not _foreground(self.fileno) or _ignored(signal.SIGINT):
            return
        try:
            attrs = termios.tcgetattr(self.fileno)
            attrs[tty.LFLAG] |= termios.ISIG | termios.NOFLSH
            for key in (termios.VQUIT, termios.VSUSP):
                attrs[tty.CC][key] = _DISABLED
            termios.tcsetattr(self.fileno, termios.TCSANOW, attrs)
        except termios.error:  # (not a terminal: prompt_toolkit ignores it too)
            pass

    def __exit__(self, *exc: object) -> None:
        # A Ctrl-C reaches the whole job: a parent that died of it (make, a script) may
        # have handed the terminal back to the shell already, which sets it as it needs.
        if _foreground(self.fileno):
            super().__exit__(*exc)
        if self._told:
            self._on_raw(self.fileno, None)


_ENTER = frozenset({Keys.ControlM, Keys.ControlJ})


def _as_paste(keys: list[KeyPress]) -> list[KeyPress]:
    """Lines that came in one read, from a terminal that does not bracket a paste, as the
    paste they are: one entry and one Enter, not a prompt per line (prompt_toolkit takes
    a few milliseconds to set up and draw each one: 150 lines a second). Nobody types two
    Enters between two reads, and each line is still handled as if typed. Only plain
    characters and Enters: a Tab, an arrow or a control key keeps its meaning."""
    enters = [i for i, key in enumerate(keys) if key.key in _ENTER]
    if len(enters) < 2 or not all(
            key.key in _ENTER or (len(key.key) == 1 and key.key.isprintable()) for key in keys):
        return keys
    last = enters[-1]
    text = "".join("\n" if key.key in _ENTER else key.key for key in keys[:last])
    return [KeyPress(Keys.BracketedPaste, text), keys[last], *keys[last + 1:]]


def _ignored(sig: int) -> bool:
    return signal.getsignal(sig) is signal.SIG_IGN or inherited_as_ignored(sig)


def _foreground(fd: int) -> bool:
    """Whether pipeplex is the foreground job of the terminal ``fd``."""
    try:
        return os.tcgetpgrp(fd) == os.getpgrp()
    except OSError:
        return False


_DISABLED = b"\0"
"""A special character set to this is disabled (``_POSIX_VDISABLE``, 0 on Linux)."""


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


def _key_bindings(console: Console) -> KeyBindings:
    bindings = KeyBindings()

    @bindings.add("c-c", eager=True)
    def _interrupt(event: KeyPressEvent) -> None:
        # Where the terminal left Ctrl-C a key (it is SIGINT otherwise): do what SIGINT
        # does, keep the prompt.
        event.current_buffer.reset()
        console.interrupt()

    @bindings.add("c-\\", eager=True)
    def _quit(event: KeyPressEvent) -> None:
        # SIGQUIT's key, a key here too: what SIGQUIT does (a stop without the grace).
        if console.quit_now is not None:
            console.quit_now()
        else:
            console.reply("Ctrl-\\ does nothing here (SIGQUIT was ignored when pipeplex "
                          "started); Ctrl-C stops the cast", "info")

    @bindings.add("c-@", eager=True)  # (Ctrl-Space, an input method's key, or a NUL pasted)
    def _no_mark(event: KeyPressEvent) -> None:
        # prompt_toolkit's Emacs keys start a selection here, in which the keys typed next
        # are not inserted: the rest of the line was lost without a sign. Nothing, instead.
        pass

    @bindings.add("tab")
    def _complete(event: KeyPressEvent) -> None:
        # At once, where prompt_toolkit's own Tab completes in the background: a key that
        # came in the same read (typed ahead while output floods, or sent by a program)
        # found the line not completed yet, and ":li<Tab><Enter>" ran ":li".
        buffer = event.current_buffer
        if buffer.complete_state is not None:  # (its menu is open: the next candidate)
            buffer.complete_next()
            return
        assert buffer.completer is not None
        found = list(buffer.completer.get_completions(
            buffer.document, CompleteEvent(completion_requested=True)))
        if len(found) == 1:
            buffer.apply_completion(found[0])
        elif found:  # the part they share now, as readline does; the menu for the rest
            if shared := get_common_complete_suffix(buffer.document, found):
                buffer.insert_text(shared)
            else:
                buffer.start_completion(select_first=False)

    @bindings.add("c-z", eager=True)
    def _suspend(event: KeyPressEvent) -> None:
        console.reply("pipeplex does not suspend (its members would run on unread); "
                      "Ctrl-C stops the cast", "info")

    return bindings


class _SecretShownAsStars(Processor):
    """A line for a member that reads a password (echo off in line mode) shows as stars, as
    the member's own prompt would show nothing; but for its address (``NAME: ``), so that
    who gets it stays in sight."""

    def __init__(self, console: Console) -> None:
        self._console = console

    def apply_transformation(self, ti: TransformationInput) -> Transformation:
        text = ti.document.text
        if self._console.keeps(text):
            return Transformation(ti.fragments)
        shown = 0
        if ti.lineno == 0:
            name, colon, _ = text.partition(": ")
            if colon and name in (*self._console.members, ALL):
                shown = len(name) + len(colon)
        fragments = explode_text_fragments(ti.fragments)
        return Transformation(cast("StyleAndTextTuples", [  # (as prompt_toolkit's own does)
            (style, char if i < shown else "*", *rest)
            for i, (style, char, *rest) in enumerate(fragments)]))


class _KeptHistory(History):
    """``history``, less the entries ``keeps`` refuses (a password typed for a member)."""

    def __init__(self, history: History, keeps: Callable[[str], bool]) -> None:
        super().__init__()
        self._history = history
        self._keeps = keeps

    def append_string(self, string: str) -> None:
        if self._keeps(string):
            super().append_string(string)

    def load_history_strings(self) -> Iterable[str]:
        return self._history.load_history_strings()

    def store_string(self, string: str) -> None:
        self._history.store_string(string)


def _history() -> History:
    """The console history in ``$XDG_STATE_HOME/pipeplex`` (memory only if unusable).

    A relative XDG_STATE_HOME is ignored, as the XDG spec says. The folders and the file are
    made only in a folder of our own: root with a user's HOME (``sudo -E``) would leave
    folders or a history of root's there, which the user could not write to afterwards."""
    state = os.environ.get("XDG_STATE_HOME", "")
    if not os.path.isabs(state):
        state = os.path.join(Path.home(), ".local", "state")
    folder = Path(state) / "pipeplex"
    path = folder / "console-history"
    try:
        existing = next(f for f in (folder, *folder.parents) if f.exists())
        if existing.stat().st_uid != os.geteuid():
            return InMemoryHistory()
        make_folders(folder, mode=0o700)
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_NOFOLLOW | os.O_CLOEXEC
                     | os.O_NONBLOCK, 0o600)
    except OSError:
        return InMemoryHistory()
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode) or st.st_uid != os.geteuid():
            os.close(fd)
            return InMemoryHistory()  # (not a file of ours: nothing typed goes there)
        if st.st_mode & 0o077:  # what was typed is nobody else's (an older file: 0644)
            os.fchmod(fd, 0o600)
    except OSError:
        os.close(fd)
        return InMemoryHistory()
    return _HeldFileHistory(str(path), fd)


class _HeldFileHistory(FileHistory):
    """prompt_toolkit's history file, read and written through the descriptor that was
    checked, never opened again by name: a link put in its place meanwhile (by whoever
    may write to its folder) takes nothing typed anywhere else."""

    def __init__(self, filename: str, fd: int) -> None:
        super().__init__(filename)
        self._fd = fd

    def load_history_strings(self) -> Iterable[str]:
        strings: list[str] = []
        lines: list[str] = []
        with open(os.dup(self._fd), "rb") as f:  # (its own offset is shared: from the top)
            f.seek(0)
            for raw in f:
                line = raw.decode("utf-8", "surrogateescape")  # (as it was typed)
                if line.startswith("+"):
                    lines.append(line[1:])
                else:
                    if lines:
                        strings.append("".join(lines)[:-1])
                    lines = []
        if lines:
            strings.append("".join(lines)[:-1])
        return reversed(strings)

    def store_string(self, string: str) -> None:
        import datetime

        entry = f"\n# {datetime.datetime.now()}\n" + "".join(
            f"+{line}\n" for line in string.split("\n"))
        # (O_APPEND: at the end, in one write; bytes typed that are not UTF-8, as they were)
        os.write(self._fd, entry.encode("utf-8", "surrogateescape"))


class MemberCompleter(Completer):
    """Completes commands, member names (``NAME: `` at the start of a line) and signals."""

    def __init__(self, members: Iterable[str]) -> None:
        self.members = list(members)

    def get_completions(self, document: Document,
                        complete_event: CompleteEvent) -> Iterator[Completion]:
        text = document.text_before_cursor
        words = text.split(" ")
        current = words[-1]
        if len(words) == 1:
            if text.startswith(":"):
                yield from _starting(current, (f":{c}" for c in COMMANDS), suffix=" ")
            else:
                yield from _starting(current, [*self.members, ALL], suffix=": ")
            return
        command = words[0][1:] if words[0].startswith(":") else None
        if command in _TAKES_MEMBER and len(words) == 2:
            names = self.members if command in ("restart", "start") else [*self.members, ALL]
            yield from _starting(current, names, suffix=" " if command == "signal" else "")
        elif command == "signal" and len(words) == 3:
            yield from _starting(current.upper(), SIGNALS, suffix="", replace=len(current))


def _starting(prefix: str, candidates: Iterable[str], *, suffix: str,
              replace: int | None = None) -> Iterator[Completion]:
    for candidate in candidates:
        if candidate.startswith(prefix):
            yield Completion(candidate + suffix, start_position=-(replace or len(prefix)),
                             display=candidate)
