"""What happens in a run, as data.

Participants and the engine publish these on the bus; sinks (the terminal, transcripts,
matchers, subscribers) consume them. Events carry bytes: decoding and rendering are the
sinks' business, so a transcript can keep exactly what a member wrote.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Literal

Stream = Literal["stdout", "stderr"]
Level = Literal["info", "warning", "error"]
"""How much a note matters (its colour on a terminal)."""

__all__ = (
    "KINDS",
    "SHOWN",
    "Event",
    "Exited",
    "InputSent",
    "Level",
    "Matched",
    "Note",
    "Output",
    "Ready",
    "Started",
    "Stream",
)


@dataclass(frozen=True, slots=True)
class Started:
    """A member's program is running."""

    name: str
    pid: int
    argv: tuple[str, ...]
    t: float = field(default_factory=time.time)
    terminal: bool = False
    """It runs on a full terminal (``pty = true``): its lines end in ``\r\n``, which
    whoever shows them again (``replay``, ``attach``) folds."""


@dataclass(slots=True)  # one per chunk read: frozen would cost ~0.5 us each (a round trip's 2 %)
class Output:
    """Bytes a member wrote. Shared by every sink: read it, never change it.

    ``data`` holds whole lines (each ending in ``\\n``) unless ``partial`` is true: then it
    ends mid-line (a prompt shown after a quiet time, a piece of an over-long line, or the
    last bytes before EOF) and the next ``Output`` of the same stream continues that line.
    Concatenating ``data`` in order gives exactly what the member wrote.

    ``new_line`` is true when this piece is a prompt (an unfinished line ending in a space,
    cut as the member went quiet) that the stream writes right after a line was sent to its
    previous prompt, with no terminal to echo that line (not ``pty = true``): the screen would
    show it on a line of its own, and matching sees it so (``>>> `` twice after a line that
    prints nothing is two lines).
    """

    name: str
    stream: Stream
    data: bytes
    partial: bool = False
    t: float = field(default_factory=time.time)
    new_line: bool = False


@dataclass(slots=True)  # one per line sent: not frozen, as Output (0.5 -> 0.2 us each)
class InputSent:
    """Bytes delivered to a member's stdin (``data == b""`` with ``eof`` means closed).
    Shared by every sink: read it, never change it."""

    name: str
    data: bytes
    eof: bool = False
    t: float = field(default_factory=time.time)


@dataclass(frozen=True, slots=True)
class Ready:
    """A member met its readiness condition; ``variables`` holds what it captured."""

    name: str
    variables: tuple[tuple[str, str], ...] = ()
    t: float = field(default_factory=time.time)


@dataclass(frozen=True, slots=True)
class Matched:
    """An expectation was met: ``pattern`` matched ``text`` in a member's output."""

    name: str
    pattern: str
    text: str
    t: float = field(default_factory=time.time)


@dataclass(frozen=True, slots=True)
class Exited:
    """A member's program ended and its output has been drained.

    ``returncode`` follows :mod:`subprocess`: negative for a signal. ``stopped`` is true when
    pipeplex itself stopped the member (so its status does not count as a failure).
    """

    name: str
    returncode: int
    stopped: bool = False
    runtime: float = 0.0
    t: float = field(default_factory=time.time)
    stop_signal: int = 15  # (SIGTERM)
    """The signal a stop asks this member to end with (SIGTERM, or its ``stop_signal``): a
    stopped member that died of it, or of SIGKILL, was ``stopped by`` it; of another, it
    crashed on its way out."""


@dataclass(frozen=True, slots=True)
class Note:
    """pipeplex's own message, about one member (``name``) or about the run (``None``)."""

    text: str
    name: str | None = None
    level: Level = "info"
    t: float = field(default_factory=time.time)


Event = Started | Output | InputSent | Ready | Matched | Exited | Note

KINDS: tuple[type, ...] = (Started, Output, InputSent, Ready, Matched, Exited, Note)
SHOWN: tuple[type, ...] = (Started, Output, Ready, Exited, Note)
"""The kinds that make up the merged stream a person reads (input and matches are records)."""
