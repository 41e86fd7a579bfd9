"""Watching a member's output for its ``ready`` line, and telling a prompt from a line.

A sink on the bus per run (:class:`RunWatch`, with its :class:`LineWatch`) from before the
run starts: a match found in a line, or in an unfinished one that cannot grow any more,
resolves the run's ``matched`` future with what the pattern's named groups captured.
"""

from __future__ import annotations

import asyncio
import codecs
import re
from collections.abc import Callable
from typing import TYPE_CHECKING, Literal

from .._events import Event, Exited, Output, Stream
from .._plain_text import plain
from ..cast.spec import ready_regex

if TYPE_CHECKING:
    from .._bus import Bus

__all__ = ("MAX_PARTIAL", "LineWatch", "RunWatch", "waits_for_prompt")

MAX_PARTIAL = 64 * 1024

_PROMPT_PATTERN = re.compile(r"(?:[>:#%]|\\[$?])(?: [?*]?)?\)?\$?\)?$|\\s[*?]?\$?$")


def waits_for_prompt(pattern: str) -> bool:
    """Whether ``pattern`` waits for a prompt (``sqlite> $``, ``Password: ``, ``\\$ $``): it
    ends in a prompt's character (a ``$`` or ``?`` escaped, as a pattern writes them), not
    in the end of a line (``^ready$``)."""
    return _PROMPT_PATTERN.search(pattern) is not None


class RunWatch:
    """One run of a member, watched for its ``ready`` line (:class:`LineWatch`), from
    before it starts: ``matched`` gets what the line captured, and ``said`` tells whether
    the run was said ready as the line matched (``on_match`` decides, and says so)."""

    __slots__ = ("_unsubscribe", "matched", "said", "watch")

    def __init__(self, name: str, pattern: str | None, bus: Bus,
                 on_match: Callable[[dict[str, str]], bool]) -> None:
        self.matched: asyncio.Future[dict[str, str]] = (
            asyncio.get_running_loop().create_future())
        self.said = False
        self.watch: LineWatch | None = None
        self._unsubscribe: Callable[[], None] | None = None
        if pattern:
            def matched(match: re.Match[str]) -> None:
                if not self.matched.done():
                    # (a group the match left out gives the empty string)
                    captured = {k: v or "" for k, v in match.groupdict().items()}
                    self.matched.set_result(captured)
                    self.said = on_match(captured)

            self.watch = LineWatch(name, pattern, matched)
            self._unsubscribe = bus.subscribe(self.watch, [Output, Exited])

    def close(self) -> None:
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None


class LineWatch:
    """A sink that searches each line of one member's output for a pattern.

    Subscribe it to ``Output`` and ``Exited``. Lines are matched whole (``^`` and ``$``
    anchor at the line), as read: without colours or other escape sequences (a server
    on a terminal colours its log). An unfinished line is tried too, so a prompt without a
    newline can signal readiness. A match on an unfinished line is taken only if none of
    its named groups reaches the end of the text so far (nor is left out by a match that
    does): ``listening on 80`` may be the start of ``listening on 8081``, so a value there
    waits for more of its line, for the line's end, or for the member's exit (which ends
    its last line). Likewise a named group that starts where an over-long line was cut
    (only its last 64 KiB are kept) is never taken. The cost is linear in the output: each
    byte is looked at once, plus the unfinished line on each piece.
    """

    def __init__(self, name: str, pattern: str, on_match: Callable[[re.Match[str]], None]) -> None:
        self.name = name
        self._regex = ready_regex(pattern)
        self._groups = tuple(self._regex.groupindex)
        self._on_match = on_match
        # Per stream: an unfinished line, and a decoder that keeps a split character.
        self._partial: dict[Stream, str] = {"stdout": "", "stderr": ""}
        # Per stream: whether the unfinished line lost its beginning (it was over-long);
        # its first character is then kept only as context for the one after the cut.
        self._cut: dict[Stream, bool] = {"stdout": False, "stderr": False}
        self._decoders = {
            stream: codecs.getincrementaldecoder("utf-8")("replace") for stream in self._partial
        }
        self.done = False
        self.held: str | None = None
        """The last match held back because a value in it ends where an unfinished line
        does (it may still grow), for the message if the member is never ready."""

    def __call__(self, event: Event) -> None:
        if self.done or event.name != self.name:
            return
        if isinstance(event, Exited):
            # Everything it wrote has been read: its unfinished lines are finished.
            for stream, decoder in self._decoders.items():
                line = self._partial[stream] + decoder.decode(b"", final=True)
                if line and self._try(_readable(line), cut=self._cut[stream]):
                    return
            return
        if not isinstance(event, Output):
            return
        stream = event.stream
        text = self._partial[stream] + self._decoders[stream].decode(event.data)
        first_cut = self._cut[stream]  # applies to the first line of ``text``
        lines = text.split("\n")
        partial = lines.pop()
        partial_cut = first_cut and not lines
        for i, line in enumerate(lines):
            if self._try(_readable(line), cut=first_cut and i == 0):
                return
        if lines:
            self.held = None  # (that line ended, and did not match when it did)
        # The unfinished line is tried whole, as it came, before only its end is kept for
        # the next piece: what a long line holds is searched wherever it lies.
        if partial:
            shown, cut_short = plain(partial)
            # A carriage return at its end: the next state starts there, a value before it
            # has ended (so has one before "\r\n").
            ended = not cut_short and shown.endswith("\r")
            if self._try(shown.rstrip("\r"), cut=partial_cut, unfinished=not ended):
                return
        if len(partial) > MAX_PARTIAL:
            partial = partial[-(MAX_PARTIAL + 1):]
            partial_cut = True
        self._partial[stream] = partial
        self._cut[stream] = partial_cut

    def _try(self, line: str, *, cut: bool = False, unfinished: bool = False) -> bool:
        if "\r" not in line:
            return self._try_piece(line, cut=cut, unfinished=unfinished)
        # A carriage return starts the line again (a progress line's "loading 20%\rServer
        # started": the screen shows each state on the line in turn, pipeplex each on a line
        # of its own): each piece is a line, tried in order, the last one unfinished if the
        # line is.
        pieces = line.split("\r")
        last = len(pieces) - 1
        return any(self._try_piece(piece, cut=cut and i == 0, unfinished=unfinished and i == last)
                   for i, piece in enumerate(pieces) if piece)

    def _try_piece(self, line: str, *, cut: bool = False, unfinished: bool = False) -> bool:
        # After a cut, search from the character after it: ``^`` does not match there,
        # and a lookbehind still sees the character before.
        start = 1 if cut else 0
        match = self._regex.search(line, start)
        if match is not None and cut and self._touches(match, start, "start"):
            # A value that starts at the cut may have lost its beginning: look past it.
            match = self._regex.search(line, max(match.end(), start + 1))
        if match is None:
            return False
        if unfinished and self._may_grow(match, len(line)):
            self.held = match[0]
            return False  # wait for more of the line (or its end)
        self.done = True
        self._on_match(match)
        return True

    def _may_grow(self, match: re.Match[str], end: int) -> bool:
        """Whether more text after ``end`` could change a value: a named group that took
        part reaches it. (An optional group left out is not waited for: a prompt such as
        ``Password(?: for (?P<user>\\w+))?: $`` must fire as it stands.)"""
        return self._touches(match, end, "end")

    def _touches(self, match: re.Match[str], where: int, side: Literal["start", "end"]) -> bool:
        """Whether a named group that took part starts (or ends) at ``where``."""
        index = 0 if side == "start" else 1
        return any(match.span(group)[index] == where for group in self._groups
                   if match.start(group) != -1)


def _readable(line: str) -> str:
    """The line as read (see :mod:`.._plain_text`): no escape sequences, no "\\r" at its end.
    (Of an unfinished line, a sequence cut short is left out, and what a value ends at there
    is its end for now.)"""
    return plain(line)[0].rstrip("\r")
