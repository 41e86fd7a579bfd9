"""Transcripts (JSON Lines of every event) and per-member log folders."""

from __future__ import annotations

import base64
import json
import os
import re
import stat
from pathlib import Path
from typing import Any

import pytest

from pipeplex._bus import Bus
from pipeplex._events import Event, Exited, InputSent, Matched, Note, Output, Ready, Started
from pipeplex.report.transcript import (
    LogDirSink,
    TranscriptSink,
    event_record,
    read_transcript,
    record_data,
)

T = 1700000000.5


def out(name: str, data: bytes, stream: str = "stdout") -> Output:
    return Output(name, stream, data, t=T)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("event", "record"),
    [
        (out("a", b"hi\n"), {"t": T, "p": "a", "s": "out", "d": "hi\n"}),
        (out("a", b"oops\n", "stderr"), {"t": T, "p": "a", "s": "err", "d": "oops\n"}),
        (InputSent("a", b"cmd\n", t=T), {"t": T, "p": "a", "s": "in", "d": "cmd\n"}),
        (InputSent("a", b"", eof=True, t=T), {"t": T, "p": "a", "s": "event", "e": "eof"}),
        (
            Started("a", 123, ("prog", "--flag"), t=T),
            {"t": T, "p": "a", "s": "event", "e": "start", "pid": 123,
             "argv": ["prog", "--flag"]},
        ),
        (
            Exited("a", -15, stopped=True, runtime=2.0, t=T),
            {"t": T, "p": "a", "s": "event", "e": "exit", "code": -15, "stopped": True},
        ),
        (
            Ready("a", (("port", "8080"), ("host", "h")), t=T),
            {"t": T, "p": "a", "s": "event", "e": "ready",
             "vars": {"port": "8080", "host": "h"}},
        ),
        (
            Matched("a", "^ready$", "ready", t=T),
            {"t": T, "p": "a", "s": "event", "e": "match", "pattern": "^ready$", "d": "ready"},
        ),
        (
            Note("stopping", level="warning", t=T),
            {"t": T, "p": None, "s": "event", "e": "note", "d": "stopping", "level": "warning"},
        ),
        (
            Note("a crashed", name="a", level="error", t=T),
            {"t": T, "p": "a", "s": "event", "e": "note", "d": "a crashed", "level": "error"},
        ),
    ],
)
def test_event_record_for_every_event_type(event: Event, record: dict[str, Any]) -> None:
    """Each kind of event becomes its documented record."""
    assert event_record(event) == record


@pytest.mark.parametrize("data", [b"\xff\xfe binary", b"caf\xc3", b"\x80", b"ok\xed\xa0\x80"])
def test_non_utf8_output_is_stored_as_base64(data: bytes) -> None:
    """Bytes that are not valid UTF-8 are kept as ``b64`` and restored exactly."""
    record = event_record(out("a", data))
    assert "d" not in record
    assert base64.b64decode(record["b64"]) == data
    assert record_data(record) == data


@pytest.mark.parametrize(
    "data", [b"", b"plain\n", "caf\u00e9 \u2028 \U0001f600\n".encode(), b"\x00\x1b[31m\r\n"]
)
def test_utf8_output_is_stored_as_text(data: bytes) -> None:
    """Valid UTF-8 is kept as readable text under ``d`` and restored exactly."""
    record = event_record(out("a", data))
    assert "b64" not in record
    assert record["d"] == data.decode()
    assert record_data(record) == data


def test_record_data_of_a_record_without_data_is_empty() -> None:
    """An event record without data (an EOF) has no bytes."""
    assert record_data(event_record(InputSent("a", b"", eof=True))) == b""


PAYLOADS = [
    b"line one\n",
    b"\xff\xfe\x00 not text",
    "ünïcödé \u2028 split\n".encode(),
    b"half \xe2\x82",
    b"\xac rest\r\n",
    b"",
    b"\x00\x01\x02\x7f\x1b[0m",
]


def test_transcript_round_trips_exact_bytes(tmp_path: Path) -> None:
    """Output written to a transcript and read back gives exactly the same bytes."""
    path = tmp_path / "run.jsonl"
    bus = Bus()
    sink = TranscriptSink(path, bus)
    bus.subscribe(sink)
    bus.publish(Started("a", 99, ("prog",)))
    for i, payload in enumerate(PAYLOADS):
        bus.publish(Output("a", "stderr" if i % 2 else "stdout", payload))
    bus.publish(InputSent("a", b"typed \xff\n"))
    bus.publish(Exited("a", 0))
    sink.close()

    records = list(read_transcript(path))
    assert [r["s"] for r in records] == ["event", *["out", "err"] * 3, "out", "in", "event"]
    assert [record_data(r) for r in records[1:-2]] == PAYLOADS
    assert record_data(records[-2]) == b"typed \xff\n"
    assert (records[0]["e"], records[-1]["e"]) == ("start", "exit")
    assert path.read_text(encoding="utf-8").count("\n") == len(records)


def test_transcript_file_is_private(tmp_path: Path) -> None:
    """The transcript file is created with mode 0600, whatever the umask."""
    path = tmp_path / "run.jsonl"
    old = os.umask(0)
    try:
        sink = TranscriptSink(path, Bus())
    finally:
        os.umask(old)
    sink.close()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_existing_transcript_file_is_made_private(tmp_path: Path) -> None:
    """Writing over an existing file leaves it readable by its owner only."""
    path = tmp_path / "run.jsonl"
    path.write_text("old\n")
    path.chmod(0o644)
    TranscriptSink(path, Bus()).close()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_transcript_truncates_an_existing_file(tmp_path: Path) -> None:
    """A new transcript replaces what was in the file."""
    path = tmp_path / "run.jsonl"
    path.write_text("not json\n" * 10)
    sink = TranscriptSink(path, Bus())
    sink(out("a", b"x"))
    sink.close()
    assert [record_data(r) for r in read_transcript(path)] == [b"x"]


def test_transcript_is_buffered_until_flush_at(tmp_path: Path) -> None:
    """Records reach the file once ``flush_at`` characters are pending, or at close."""
    path = tmp_path / "run.jsonl"
    line_length = len(json.dumps(event_record(out("a", b"x" * 50)), ensure_ascii=False)) + 1
    sink = TranscriptSink(path, Bus(), flush_at=2 * line_length)
    sink(out("a", b"x" * 50))
    assert path.read_text() == ""
    sink(out("a", b"x" * 50))
    assert path.read_text().count("\n") == 2
    sink(out("a", b"x" * 50))
    assert path.read_text().count("\n") == 2
    sink.close()
    assert path.read_text().count("\n") == 3
    sink(out("a", b"after close"))  # ignored, not an error
    assert path.read_text().count("\n") == 3


def test_write_failure_disables_the_transcript_with_one_note() -> None:
    """A full disk disables the transcript and publishes a single error note."""
    if not os.path.exists("/dev/full"):
        pytest.skip("needs /dev/full")
    bus = Bus()
    notes: list[Event] = []
    bus.subscribe(lambda event: notes.append(event) if isinstance(event, Note) else None)
    sink = TranscriptSink("/dev/full", bus, flush_at=1)
    bus.subscribe(sink)
    bus.publish(out("a", b"first\n"))
    bus.publish(out("a", b"second\n"))
    sink.close()
    assert len(notes) == 1
    assert isinstance(notes[0], Note)
    assert notes[0].level == "error"
    assert "transcript write failed" in notes[0].text
    assert "transcript disabled" in notes[0].text


@pytest.mark.parametrize(
    ("content", "line", "why"),
    [
        ('{"s": "out", "d": "x"}\n{broken\n', 2, "not a transcript record: "),
        ('{"s": "out", "d": "x"}\n\n[1, 2]\n', 3, "not a transcript record"),
        ('{"p": "a", "d": "no stream"}\n', 1, "not a transcript record"),
        ('"just a string"\n', 1, "not a transcript record"),
    ],
)
def test_read_transcript_names_the_bad_line(
    tmp_path: Path, content: str, line: int, why: str
) -> None:
    """A line that is not a record raises ValueError naming the file and line."""
    path = tmp_path / "bad.jsonl"
    path.write_text(content)
    with pytest.raises(ValueError, match="^" + re.escape(f"{path}:{line}: {why}")):
        list(read_transcript(path))


def test_read_transcript_skips_blank_lines(tmp_path: Path) -> None:
    """Blank lines between records are ignored."""
    path = tmp_path / "t.jsonl"
    path.write_text('\n{"s": "out", "d": "a"}\n   \n{"s": "err", "b64": "/w=="}\n')
    assert [record_data(r) for r in read_transcript(path)] == [b"a", b"\xff"]


def test_log_dir_writes_exact_bytes_per_member(tmp_path: Path) -> None:
    """Each member's log holds exactly what it wrote, both streams, in order."""
    folder = tmp_path / "logs" / "nested"
    bus = Bus()
    sink = LogDirSink(folder)
    bus.subscribe(sink)
    events: list[Event] = [
        Started("a", 1, ("x",)),
        Output("a", "stdout", b"a1\n"),
        Output("b", "stdout", b"b\xff\xfe1\n"),
        Output("a", "stderr", b"a-err\r\n"),
        InputSent("a", b"typed\n"),
        Note("note", name="a"),
        Output("a", "stdout", b"partial", partial=True),
        Exited("a", 0),
    ]
    for event in events:
        bus.publish(event)
    sink.close()
    assert sorted(p.name for p in folder.iterdir()) == ["a.log", "b.log"]
    assert (folder / "a.log").read_bytes() == b"a1\na-err\r\npartial"
    assert (folder / "b.log").read_bytes() == b"b\xff\xfe1\n"
    assert stat.S_IMODE((folder / "a.log").stat().st_mode) == 0o600


def test_log_dir_starts_each_log_afresh(tmp_path: Path) -> None:
    """A log left by an earlier run is replaced, not appended to."""
    (tmp_path / "a.log").write_bytes(b"old run\n")
    sink = LogDirSink(tmp_path)
    sink(Output("a", "stdout", b"new run\n"))
    sink.close()
    assert (tmp_path / "a.log").read_bytes() == b"new run\n"
