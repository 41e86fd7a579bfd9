"""Transcripts: every event of a run as JSON Lines, exact enough to replay and compare.

One object per line: ``t`` (seconds since the epoch), ``p`` (the member, or null), ``s``
(``out``, ``err``, ``in`` or ``event``) and the data, as ``d`` (text) when it is valid UTF-8,
else as ``b64``. Events add ``e`` (``start``, ``exit``, ``ready``, ``match``, ``note``,
``eof``) and their fields. Writes are buffered and go to disk at the end or every 64 KiB; a
write error disables the transcript with one note and never stops the run.
"""

from __future__ import annotations

import base64
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

from .._bus import Bus
from .._events import Event, Exited, InputSent, Matched, Note, Output, Ready, Started
from ..errors import PipeplexError

__all__ = ("LogDirSink", "TranscriptSink", "event_record", "read_transcript")


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
        return {"t": event.t, "p": event.name, "s": "event", "e": "start", "pid": event.pid,
                "argv": list(event.argv)}
    if isinstance(event, Exited):
        return {"t": event.t, "p": event.name, "s": "event", "e": "exit",
                "code": event.returncode, "stopped": event.stopped}
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
        return base64.b64decode(record["b64"])
    return str(record.get("d", "")).encode("utf-8")


class TranscriptSink:
    """Writes every event to a JSON Lines file (0600)."""

    def __init__(
        self, path: str | os.PathLike[str], bus: Bus, *, flush_at: int = 64 * 1024
    ) -> None:
        self.path = Path(path)
        self._bus = bus
        try:
            fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
        except OSError as exc:
            raise PipeplexError(f"cannot write the transcript {self.path}: {exc.strerror} "
                                "(give a file in a folder that exists and you may write to)"
                                ) from None
        os.fchmod(fd, 0o600)  # an existing file keeps its mode through O_CREAT
        self._file: IO[str] | None = os.fdopen(fd, "w", encoding="utf-8")
        self._pending: list[str] = []
        self._size = 0
        self._flush_at = flush_at

    def __call__(self, event: Event) -> None:
        if self._file is None:
            return
        line = json.dumps(event_record(event), ensure_ascii=False) + "\n"
        self._pending.append(line)
        self._size += len(line)
        if self._size >= self._flush_at:
            self.flush()

    def flush(self) -> None:
        if self._file is None or not self._pending:
            return
        try:
            self._file.write("".join(self._pending))
            self._file.flush()
        except OSError as exc:
            self._fail(exc)
        self._pending.clear()
        self._size = 0

    def _fail(self, exc: OSError) -> None:
        file, self._file = self._file, None
        try:
            if file is not None:
                file.close()
        except OSError:
            pass
        self._bus.publish(Note(f"transcript write failed: {exc.strerror} ({self.path}); "
                               "transcript disabled", level="error"))

    def close(self) -> None:
        self.flush()
        if self._file is not None:
            try:
                self._file.close()
            except OSError as exc:
                self._fail(exc)
            self._file = None


class LogDirSink:
    """One plain log per member in a folder: ``NAME.log`` with exactly what it wrote."""

    def __init__(self, folder: str | os.PathLike[str]) -> None:
        self.folder = Path(folder)
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise PipeplexError(f"cannot make the log folder {self.folder}: {exc.strerror} "
                                "(give a folder you may write to)") from None
        self._files: dict[str, IO[bytes]] = {}

    def __call__(self, event: Event) -> None:
        if not isinstance(event, Output):
            return
        file = self._files.get(event.name)
        if file is None:
            fd = os.open(self.folder / f"{event.name}.log",
                         os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
            os.fchmod(fd, 0o600)
            file = self._files[event.name] = os.fdopen(fd, "wb")
        file.write(event.data)

    def close(self) -> None:
        for file in self._files.values():
            file.close()
        self._files.clear()


def read_transcript(path: str | os.PathLike[str]) -> Iterator[dict[str, Any]]:
    """The records of a transcript file, in order.

    Raises:
        ValueError: a line is not a transcript record (the message names the line).
    """
    with open(path, encoding="utf-8") as file:
        for lineno, line in enumerate(file, start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as exc:
                raise ValueError(f"{path}:{lineno}: not a transcript record: {exc.msg}") from None
            if not isinstance(record, dict) or "s" not in record:
                raise ValueError(f"{path}:{lineno}: not a transcript record")
            yield record
