"""The last lines each member wrote, kept for error messages ("last output of ...")."""

from __future__ import annotations

from collections import deque
from collections.abc import Callable

from .._events import Event, Output, Started
from .._plain_text import plain
from .._printable import printable

__all__ = ("RecentOutput",)

_RUN = "run"
"""The mark a member's start leaves among its chunks."""


class RecentOutput:
    """A sink that remembers the tail of every member's output, for people to read.

    It sits on the hot path, so recording is one append per chunk: it keeps each member's
    last ``2 * lines`` chunks (a deque drops the oldest; the reader hands out whole lines,
    so that holds the last lines unless pieces of over-long lines fill it), each cut to
    its last ``lines * max_line`` bytes, and decodes and splits them only when someone
    asks. stdout and stderr are followed separately: an unfinished stdout line (a prompt)
    is continued by later stdout only, never by a stderr line that arrives in between.
    stderr lines are marked with ``! ``. Lines read as the screen shows them and as patterns
    see them (escape sequences out: colours, cursor moves), and the control characters left
    are shown escaped. Each
    start of a member (a :class:`Started` event, when subscribed) begins a new run: what
    earlier runs wrote is told apart from the latest run's.
    """

    def __init__(self, lines: int = 20, max_line: int = 300, *,
                 silence: Callable[[str, str | None], str] = lambda name, awaiting: "") -> None:
        self._silence = silence
        """Why a member that wrote nothing (while a pattern was awaited of it, when given)
        may not have been silent (its output buffered, a prompt it writes on a terminal
        only), or ''."""
        self._lines = lines
        self._max_line = max_line
        self._keep = lines * max_line
        self._chunks: dict[str, deque[tuple[str, bytes]]] = {}
        self._writing: str | None = None
        """The member whose output came last, and how many of its chunks in a row (no
        other member's between): what a recap of it would repeat from just above."""
        self._in_a_row = 0
        self.shown = False
        """Whether the output is shown as one stream with the notes (``pipeplex run``), so
        that a note's recap of what is right above it can be left out. Elsewhere (test mode,
        the Python API) the notes are read apart from any stream."""

    def __call__(self, event: Event) -> None:
        if type(event) is not Output:  # (subscribed to output and starts only)
            if type(event) is Started and event.name in self._chunks:
                self._chunks[event.name].append((_RUN, b""))
                if event.name == self._writing:  # (its new run's lines start a new streak)
                    self._writing, self._in_a_row = None, 0
            return
        chunks = self._chunks.get(event.name)
        if chunks is None:
            chunks = self._chunks[event.name] = deque(maxlen=2 * self._lines)
        if event.name == self._writing:
            self._in_a_row += 1
        else:
            self._writing, self._in_a_row = event.name, 1
        data = event.data
        if event.new_line:  # (a prompt again: on a line of its own, as matching sees it)
            data = b"\n" + data
        chunks.append((event.stream, data if len(data) <= self._keep else data[-self._keep :]))

    def tail(self, name: str) -> list[str]:
        """The last lines of ``name``, marked as the stream marks them: ``| `` stdout, ``! ``
        stderr."""
        return self._runs(name)[1]

    def latest_run(self, name: str) -> list[str]:
        """The last lines of ``name`` (as :meth:`tail`) that its latest run wrote."""
        latest, lines = self._runs(name)
        return lines[len(lines) - latest :]

    def _runs(self, name: str) -> tuple[int, list[str]]:
        """The last lines of ``name`` (as :meth:`tail`), and how many of them its latest
        run wrote (the others, before, came from earlier runs)."""
        lines: list[list[str]] = []
        open_line: dict[str, list[str]] = {}
        latest = 0  # where the latest run's lines begin
        for stream, data in tuple(self._chunks.get(name, ())):  # (callers in other threads)
            if stream == _RUN:
                open_line.clear()  # (a new run does not finish the last one's line)
                latest = len(lines)
                continue
            pieces = data.decode("utf-8", "replace").replace("\r\n", "\n").split("\n")
            rest = pieces.pop()
            entry = open_line.pop(stream, None)
            if entry is not None:
                if not pieces:
                    entry[1] += rest
                    open_line[stream] = entry
                    continue
                entry[1] += pieces.pop(0)
            marker = "! " if stream == "stderr" else "| "
            lines.extend([marker, piece] for piece in pieces)
            if rest:
                open_line[stream] = [marker, rest]
                lines.append(open_line[stream])
        shown = [marker + printable("".join(plain(text))[: self._max_line])
                 for marker, text in lines[-self._lines :]]
        return min(len(lines) - latest, len(shown)), shown

    def _just_above(self, name: str) -> bool:
        """Whether everything a recap of ``name`` would show came after any other member's
        output: right above in the stream (a note or two between), where a second copy is
        noise (a 20-line traceback, twice)."""
        chunks = self._chunks.get(name, ())
        return self.shown and self._writing == name and self._in_a_row >= sum(
            1 for stream, _ in chunks if stream != _RUN)

    def _nothing(self, name: str, when: str, own: bool, awaiting: str | None = None) -> str:
        why = self._silence(name, awaiting)
        return f"{'' if own else name + ' '}wrote nothing{when}" + (f" ({why})" if why else "")

    def forget(self, name: str) -> None:
        """Drop what ``name`` wrote: a new member of that name starts with none of it."""
        self._chunks.pop(name, None)

    def describe(self, name: str, *, own: bool = False, awaiting: str | None = None) -> str:
        """The recent output of ``name`` as an indented block, or a note that there was none.
        Lines from runs before its latest are said to be so (a restart's readiness failure
        must not seem to quote a line of the run that failed). ``own``: for a note under
        the member's own name, which need not say it again. ``awaiting``: the pattern
        waited for in vain (its silence may then be explained by it)."""
        latest, lines = self._runs(name)
        if not lines:
            return self._nothing(name, "", own, awaiting)
        of = "" if own else f" of {name}"
        if latest == len(lines):
            if own and self._just_above(name):
                return "its last output is just above"
            shown = "\n".join(f"    {line}" for line in lines)
            return f"last output{of}:\n{shown}"
        earlier = "\n".join(f"    {line}" for line in lines[: len(lines) - latest])
        text = f"last output{of}, from its earlier runs:\n{earlier}"
        if not latest:
            return f"{text}\n{self._nothing(name, ' in its latest run', own, awaiting)}"
        this = "\n".join(f"    {line}" for line in lines[len(lines) - latest :])
        return f"{text}\nand from its latest run:\n{this}"
