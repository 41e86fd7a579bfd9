"""A transcript's records: each event as one JSON object, and back.

A record holds ``t`` (seconds since the epoch), ``p`` (the member, or null for the run)
and ``s``: ``out`` or ``err`` (what the member wrote), ``in`` (what it was sent) or
``event``. Data travels as ``d`` (text) when it is valid UTF-8, else as ``b64``, so the
bytes come back exactly. An ``event`` record names its kind in ``e``: ``start`` (``pid``,
``argv``, ``terminal`` when the member ran on a full terminal), ``exit`` (``code``,
negative for a signal; ``stopped``; ``runtime`` in seconds; ``stop_signal`` when the
member's is not SIGTERM), ``ready`` (``vars``),
``match`` (``pattern``, ``d``), ``note`` (``d``, ``level``) or ``eof`` (stdin closed).

Reading is for ``pipeplex replay`` and for scripts: a line that is no record (the last
one of a run killed mid-write) is said by file and line, never raised from deep inside.
"""

from __future__ import annotations

import base64
import json
import os
import signal
from collections.abc import Callable, Iterator
from typing import IO, Any

from .._events import Event, Exited, InputSent, Matched, Note, Output, Ready, Started, Stream
from ..cast.spec import NAME_RE

__all__ = ("MAX_RECORD", "event_record", "numbered_records", "read_transcript", "record_data",
           "record_event", "record_input")

_YEAR_10000 = 253402300800.0


def _data(data: bytes) -> dict[str, str]:
    try:
        return {"d": data.decode("utf-8")}
    except UnicodeDecodeError:
        return {"b64": base64.b64encode(data).decode("ascii")}


def event_record(event: Event) -> dict[str, Any]:
    """The transcript record of one event."""
    if isinstance(event, Output):
        return {"t": event.t, "p": event.name, "s": "out" if event.stream == "stdout" else "err",
                **_data(event.data)}
    if isinstance(event, InputSent):
        if event.eof:
            return {"t": event.t, "p": event.name, "s": "event", "e": "eof"}
        return {"t": event.t, "p": event.name, "s": "in", **_data(event.data)}
    if isinstance(event, Started):
        record = {"t": event.t, "p": event.name, "s": "event", "e": "start",
                  "pid": event.pid, "argv": list(event.argv)}
        if event.terminal:
            record["terminal"] = True
        return record
    if isinstance(event, Exited):
        record = {"t": event.t, "p": event.name, "s": "event", "e": "exit",
                  "code": event.returncode, "stopped": event.stopped,
                  "runtime": round(event.runtime, 3)}
        if event.stop_signal != signal.SIGTERM:
            record["stop_signal"] = event.stop_signal
        return record
    if isinstance(event, Ready):
        return {"t": event.t, "p": event.name, "s": "event", "e": "ready",
                "vars": dict(event.variables)}
    if isinstance(event, Matched):
        return {"t": event.t, "p": event.name, "s": "event", "e": "match",
                "pattern": event.pattern, "d": event.text}
    assert isinstance(event, Note)
    return {"t": event.t, "p": event.name, "s": "event", "e": "note", "d": event.text,
            "level": event.level}


def record_data(record: dict[str, Any]) -> bytes:
    """The exact bytes of an ``out``/``err``/``in`` record."""
    if "b64" in record:
        return base64.b64decode(record["b64"], validate=True)
    return str(record.get("d", "")).encode("utf-8")


def record_input(record: dict[str, Any]) -> InputSent | None:
    """What a record says was sent to a member's stdin, if it says that.

    Raises:
        ValueError: its time is no time.
    """
    name, kind = record.get("p"), record.get("s")
    if not isinstance(name, str) or not NAME_RE.fullmatch(name):
        return None
    t = _time(record)
    if kind == "in":
        return InputSent(name, record_data(record), t=t)
    if kind == "event" and record.get("e") == "eof":
        return InputSent(name, b"", eof=True, t=t)
    return None


def record_event(record: dict[str, Any]) -> Event | None:
    """The event a record stands for; None for input (not part of the stream) and for
    kinds this version does not know.

    Raises:
        ValueError, TypeError: a field holds what its kind cannot (the message names it).
    """
    t = _time(record)
    name = record.get("p")
    if name is not None and not isinstance(name, str):
        raise TypeError(f"p is {type(name).__name__}, not a member name")
    if name is not None and not NAME_RE.fullmatch(name):  # (escape sequences, for one)
        raise ValueError(f"p is {name!r}, which is no member name")
    kind = record.get("s")
    if kind in ("out", "err") and isinstance(name, str):
        data = record_data(record)
        stream: Stream = "stdout" if kind == "out" else "stderr"
        return Output(name, stream, data, not data.endswith(b"\n"), t)
    what = record.get("e")
    if kind != "event":
        return None
    if what == "note":
        level = record.get("level")
        return Note(_text(record.get("d", "")), name,
                    level if level in ("warning", "error") else "info", t)
    if name is None:
        return None
    if what == "start":
        return Started(name, int(record.get("pid", 0)),
                       tuple(_text(word) for word in record.get("argv") or ()), t,
                       terminal=bool(record.get("terminal")))
    if what == "exit":
        return Exited(name, int(record.get("code", 0)), bool(record.get("stopped")),
                      float(record.get("runtime", 0.0)), t,
                      int(record.get("stop_signal", signal.SIGTERM)))
    if what == "ready":
        return Ready(name, tuple((_text(k), _text(v))
                                 for k, v in dict(record.get("vars") or {}).items()), t)
    if what == "match":
        return Matched(name, _text(record.get("pattern")), _text(record.get("d")), t)
    return None


def _time(record: dict[str, Any]) -> float:
    t = float(record.get("t", 0.0))
    if not 0 <= t < _YEAR_10000:  # (nan too: a time --timestamps can show)
        raise ValueError(f"t is {t!r}, which is no time")
    return t


def _text(value: object) -> str:
    """A record's text, one that can be shown (UnicodeEncodeError for a lone surrogate)."""
    text = str(value)
    text.encode("utf-8")
    return text


def read_transcript(path: str | os.PathLike[str]) -> Iterator[dict[str, Any]]:
    """The records of a transcript file, in order.

    Raises:
        ValueError: a line is not a transcript record (the message names the line).
    """
    def refuse(problem: str) -> None:
        raise ValueError(problem)

    for _, record in numbered_records(path, on_bad=refuse):
        yield record


MAX_RECORD = 16 * 2**20
"""Bytes in a transcript line beyond which it is no record. The biggest pipeplex writes
hold an output piece (at most 256 KiB, 1.5 MiB once JSON escapes its control characters)
or a command line: a few MiB at most."""


def numbered_records(path: str | os.PathLike[str], *, on_bad: Callable[[str], None]
                     ) -> Iterator[tuple[int, dict[str, Any]]]:
    """Each record of a transcript file with its line number. A line that is no record
    (cut off by a killed run, not UTF-8, not JSON, longer than ``MAX_RECORD``) is said to
    ``on_bad``, naming the file and line, and skipped."""
    with open(path, "rb") as file:
        for lineno, raw in enumerate(_lines(file), start=1):
            if raw is None:
                on_bad(f"{path}:{lineno}: not a transcript record: longer than "
                       f"{MAX_RECORD // 2**20} MiB")
                continue
            if not raw.strip():
                continue
            try:
                record = json.loads(raw.decode("utf-8"))
            except UnicodeDecodeError as exc:
                on_bad(f"{path}:{lineno}: not a transcript record: not UTF-8 (byte "
                       f"0x{raw[exc.start]:02x}, the line's {_nth(exc.start + 1)})")
                continue
            except json.JSONDecodeError as exc:
                cut = " (the line is cut off)" if not raw.endswith(b"\n") else ""
                on_bad(f"{path}:{lineno}: not a transcript record: {exc.msg} column "
                       f"{exc.colno}{cut}")
                continue
            except RecursionError:
                on_bad(f"{path}:{lineno}: not a transcript record: nested too deep")
                continue
            if not isinstance(record, dict) or "s" not in record:
                on_bad(f"{path}:{lineno}: not a transcript record")
                continue
            yield lineno, record


def _lines(file: IO[bytes]) -> Iterator[bytes | None]:
    """Each line of ``file``, with its newline if it has one; None for one longer than
    ``MAX_RECORD``, read past in bounded pieces, so that a line that never ends
    (``pipeplex replay /dev/zero``) never fills the memory."""
    while line := file.readline(MAX_RECORD + 1):
        if len(line) <= MAX_RECORD or line.endswith(b"\n"):
            yield line
            continue
        while (rest := file.readline(64 * 1024)) and not rest.endswith(b"\n"):
            pass
        yield None


def _nth(number: int) -> str:
    """1st, 2nd, 3rd, 11th..."""
    tens = number % 100
    suffix = "th" if 11 <= tens <= 13 else {1: "st", 2: "nd", 3: "rd"}.get(number % 10, "th")
    return f"{number}{suffix}"
