"""The line typed at the console's prompt: what its keys do, and how Tab completes it.

Apart from the prompt's run over the shared terminal (``_prompt.py``): this is the line
editor's part, Ctrl-C, Ctrl-\\ and Ctrl-Z as the console means them, Tab completing at
once (commands, member names, signals), and a line for a member that reads a password
shown as stars.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, cast

from prompt_toolkit.completion import (
    CompleteEvent,
    Completer,
    Completion,
    get_common_complete_suffix,
)
from prompt_toolkit.document import Document
from prompt_toolkit.key_binding import KeyBindings, KeyPressEvent
from prompt_toolkit.layout.processors import Processor, Transformation, TransformationInput
from prompt_toolkit.layout.utils import explode_text_fragments

from ._console_commands import COMMANDS
from .router import ALL

if TYPE_CHECKING:
    from prompt_toolkit.formatted_text import StyleAndTextTuples

    from .console import Console

__all__ = ("MemberCompleter", "SecretShownAsStars", "key_bindings")

SIGNALS = ("TERM", "INT", "HUP", "KILL", "USR1", "USR2", "QUIT", "STOP", "TSTP", "CONT",
           "WINCH")
_TAKES_MEMBER = {"to", "signal", "restart", "start", "close"}


def key_bindings(console: Console) -> KeyBindings:
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


class SecretShownAsStars(Processor):
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
