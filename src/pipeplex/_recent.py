"""The last lines each member wrote, kept for error messages ("recent output: ...")."""

from __future__ import annotations

from collections import deque

from ._events import Event, Output

__all__ = ("RecentOutput",)


class RecentOutput:
    """A sink that remembers the tail of every member's output, decoded for people."""

    def __init__(self, lines: int = 20, max_line: int = 300) -> None:
        self._lines = lines
        self._max_line = max_line
        self._tails: dict[str, deque[str]] = {}
        self._open: dict[str, bool] = {}

    def __call__(self, event: Event) -> None:
        if not isinstance(event, Output):
            return
        tail = self._tails.get(event.name)
        if tail is None:
            tail = self._tails[event.name] = deque(maxlen=self._lines)
        # Only the end of a big chunk can matter: decode at most what fits in the tail.
        data = event.data[-self._lines * self._max_line :]
        text = data.decode("utf-8", "replace").replace("\r\n", "\n")
        marker = "! " if event.stream == "stderr" else ""
        pieces = text.split("\n")
        if self._open.get(event.name) and tail and pieces:
            tail[-1] = (tail[-1] + pieces.pop(0))[: self._max_line]
        if event.partial or not text.endswith("\n"):
            self._open[event.name] = True
        else:
            self._open[event.name] = False
            if pieces and pieces[-1] == "":
                pieces.pop()
        for piece in pieces:
            tail.append(marker + piece[: self._max_line])

    def tail(self, name: str) -> list[str]:
        return list(self._tails.get(name, ()))

    def describe(self, name: str) -> str:
        """The recent output of ``name`` as an indented block, or a note that there was none."""
        lines = self.tail(name)
        if not lines:
            return f"{name} wrote nothing"
        shown = "\n".join(f"    {line}" for line in lines)
        return f"last output of {name}:\n{shown}"
