"""The last lines each member wrote, kept for error messages ("last output of ...")."""

from __future__ import annotations

from collections import deque

from ._events import Event, Output

__all__ = ("RecentOutput",)


class RecentOutput:
    """A sink that remembers the tail of every member's output, decoded for people.

    stdout and stderr are followed separately: an unfinished stdout line (a prompt) is
    continued by later stdout only, never by a stderr line that arrives in between.
    stderr lines are marked with ``! ``.
    """

    def __init__(self, lines: int = 20, max_line: int = 300) -> None:
        self._lines = lines
        self._max_line = max_line
        self._tails: dict[str, deque[list[str]]] = {}
        self._open: dict[tuple[str, str], list[str]] = {}

    def __call__(self, event: Event) -> None:
        if not isinstance(event, Output):
            return
        tail = self._tails.get(event.name)
        if tail is None:
            tail = self._tails[event.name] = deque(maxlen=self._lines)
        # Only the end of a big chunk can matter: decode at most what fits in the tail.
        data = event.data[-self._lines * self._max_line :]
        pieces = data.decode("utf-8", "replace").replace("\r\n", "\n").split("\n")
        rest = pieces.pop()
        key = (event.name, event.stream)
        entry = self._open.pop(key, None)
        if entry is not None:
            if not pieces:
                entry[1] = (entry[1] + rest)[: self._max_line]
                self._open[key] = entry
                return
            entry[1] = (entry[1] + pieces.pop(0))[: self._max_line]
        marker = "! " if event.stream == "stderr" else ""
        for piece in pieces:
            tail.append([marker, piece[: self._max_line]])
        if rest:
            self._open[key] = [marker, rest[: self._max_line]]
            tail.append(self._open[key])

    def tail(self, name: str) -> list[str]:
        return [marker + text for marker, text in self._tails.get(name, ())]

    def describe(self, name: str) -> str:
        """The recent output of ``name`` as an indented block, or a note that there was none."""
        lines = self.tail(name)
        if not lines:
            return f"{name} wrote nothing"
        shown = "\n".join(f"    {line}" for line in lines)
        return f"last output of {name}:\n{shown}"
