"""The console's terminal in raw mode, for as long as the prompt runs.

Apart from the prompt itself (``_prompt.py``): prompt_toolkit's input and raw mode, changed
so that the terminal never goes back to cooked mode between prompts (keys typed meanwhile
would be echoed twice), Ctrl-C stays the terminal's SIGINT (the stop begins at once, even
while a slow terminal takes a backlog), and lines that came in one read are taken as the
paste they are.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import termios
import tty
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, nullcontext
from typing import Any, TextIO

from prompt_toolkit.input.vt100 import Vt100Input, raw_mode
from prompt_toolkit.key_binding import KeyPress
from prompt_toolkit.keys import Keys

from .._signals import inherited_as_ignored

__all__ = ("FOREGROUND_LOOK", "RawInput", "foreground")


class RawInput(Vt100Input):
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

    def attach(self, input_ready_callback: Callable[[], None]) -> AbstractContextManager[None]:
        return self._attached_in_the_foreground(input_ready_callback)

    @contextlib.contextmanager
    def _attached_in_the_foreground(self, callback: Callable[[], None]) -> Iterator[None]:
        """prompt_toolkit's attach, but keys are read only while pipeplex is the terminal's
        foreground job. In the background (``bg``), the keys typed to the shell wake the
        reader too: its read stopped pipeplex (SIGTTIN), and at ``fg`` it was left blocked
        in that read, on a terminal the shell had made cooked, holding the whole loop
        (Ctrl-C, the members' output, clients) until someone pressed Enter. So the reader
        lets go of the terminal in the background, and looks a few times a second for the
        foreground (no event says it) to take it again."""
        loop = asyncio.get_running_loop()
        fd = self.fileno()
        later: list[asyncio.TimerHandle] = []

        def look() -> None:
            later.clear()
            if foreground(fd):
                loop.add_reader(fd, ready)
            else:
                later.append(loop.call_later(FOREGROUND_LOOK, look))

        def ready() -> None:
            if self.closed or foreground(fd):
                callback()
            elif not later:
                loop.remove_reader(fd)
                later.append(loop.call_later(FOREGROUND_LOOK, look))

        with super().attach(ready):
            try:
                yield
            finally:
                for handle in later:
                    handle.cancel()

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
        if not foreground(self.fileno) or _ignored(signal.SIGINT):
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
        if foreground(self.fileno):
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


def foreground(fd: int) -> bool:
    """Whether pipeplex is the foreground job of the terminal ``fd``."""
    try:
        return os.tcgetpgrp(fd) == os.getpgrp()
    except OSError:
        return False


FOREGROUND_LOOK = 0.25
"""Seconds between two looks for the foreground, in the background (after a ``bg``)."""

_DISABLED = b"\0"
"""A special character set to this is disabled (``_POSIX_VDISABLE``, 0 on Linux)."""
