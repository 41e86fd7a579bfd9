"""Transcripts (JSON Lines of every event) and per-member log folders."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import re
import stat
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from pipeplex._bus import Bus
from pipeplex._events import Event, Exited, InputSent, Matched, Note, Output, Ready, Started
from pipeplex.errors import PipeplexError
from pipeplex.report.records import (
    event_record,
    read_transcript,
    record_data,
    record_event,
    record_input,
)
from pipeplex.report.transcript import LogDirSink, TranscriptSink

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
            {"t": T, "p": "a", "s": "event", "e": "exit", "code": -15, "stopped": True,
             "runtime": 2.0},
        ),
        (
            Exited("a", -2, stopped=True, runtime=2.0, t=T, stop_signal=2),
            {"t": T, "p": "a", "s": "event", "e": "exit", "code": -2, "stopped": True,
             "runtime": 2.0, "stop_signal": 2},
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


@pytest.mark.parametrize("event", [
    out("a", b"hi\n"),
    Output("a", "stdout", b"prompt> ", True, T),
    out("a", b"\xff oops\n", "stderr"),
    Started("a", 123, ("prog", "--flag"), t=T, terminal=True),
    Started("a", 7, (), t=T),
    Exited("a", -15, stopped=True, runtime=2.5, t=T),
    Exited("a", 3, runtime=0.25, t=T),
    Exited("a", -3, stopped=True, runtime=0.5, t=T, stop_signal=3),
    Ready("a", (("port", "8080"), ("host", "h")), t=T),
    Matched("a", "^ready$", "ready", t=T),
    Note("stopping", level="warning", t=T),
    Note("a crashed", name="a", level="error", t=T),
])
def test_a_record_reads_back_as_its_event(event: Event) -> None:
    """What a transcript keeps of an event is all of it: replay and scripts see what the
    run saw (an exit's runtime, a start's command included)."""
    assert record_event(event_record(event)) == event
    assert record_input(event_record(event)) is None


@pytest.mark.parametrize("event", [InputSent("a", b"cmd\n", t=T),
                                   InputSent("a", b"", eof=True, t=T)])
def test_a_record_of_input_reads_back_as_what_was_sent(event: InputSent) -> None:
    assert record_input(event_record(event)) == event
    assert record_event(event_record(event)) is None


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


_WRITE_FAILURE = """
import json, resource, signal, sys
from pipeplex._bus import Bus
from pipeplex._events import Note, Output
from pipeplex.report.transcript import TranscriptSink

signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails with EFBIG
resource.setrlimit(resource.RLIMIT_FSIZE, (200, resource.getrlimit(resource.RLIMIT_FSIZE)[1]))
bus = Bus()
notes = []
bus.subscribe(lambda event: notes.append(event) if isinstance(event, Note) else None)
sink = TranscriptSink(sys.argv[1], bus, flush_at=1)
bus.subscribe(sink)
bus.publish(Output("a", "stdout", b"x" * 300 + b"\\n"))
bus.publish(Output("a", "stdout", b"second\\n"))
sink.close()
print(json.dumps([[n.level, n.text] for n in notes]))
"""


def test_write_failure_disables_the_transcript_with_one_note(tmp_path: Path) -> None:
    """A write that fails (here: past the file size limit) disables the transcript and
    publishes a single error note."""
    result = subprocess.run([sys.executable, "-c", _WRITE_FAILURE, str(tmp_path / "t.jsonl")],
                            capture_output=True, text=True, timeout=30, check=True)
    notes = json.loads(result.stdout)
    assert len(notes) == 1
    level, text = notes[0]
    assert level == "error"
    assert "transcript write failed" in text
    assert "transcript disabled" in text


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


# Planted records: what another user could put in a shared folder where a transcript or a
# log is to be written. Each must be refused, never followed, opened for long or emptied.

VICTIM = b"precious\n"


def plant(kind: str, path: Path, tmp_path: Path) -> Path | None:
    """Put ``kind`` at ``path``; return the victim file that must stay as it was."""
    victim = tmp_path / "victim"
    victim.write_bytes(VICTIM)
    victim.chmod(0o644)
    if kind == "symlink":
        path.symlink_to(victim)
    elif kind == "dangling-symlink":
        path.symlink_to(tmp_path / "created-through-the-link")
    elif kind == "hard-link":
        os.link(victim, path)
    elif kind == "fifo":
        os.mkfifo(path)
    elif kind == "folder":
        path.mkdir()
    elif kind == "other-owner":
        path.write_bytes(VICTIM)
        path.chmod(0o644)
        os.chown(path, 65534, 65534)
        return path
    return victim


def assert_untouched(victim: Path | None, tmp_path: Path) -> None:
    assert not (tmp_path / "created-through-the-link").exists()
    if victim is not None:
        assert victim.read_bytes() == VICTIM
        assert stat.S_IMODE(victim.stat().st_mode) == 0o644


PLANTED = [
    ("symlink", "it is a symbolic link, which pipeplex does not follow"),
    ("dangling-symlink", "it is a symbolic link, which pipeplex does not follow"),
    ("hard-link", "it has other hard links, which would see what is written"),
    ("fifo", "it is a named pipe, not a regular file"),
    ("folder", "it is a folder"),
    pytest.param("other-owner", "it belongs to another user", marks=pytest.mark.skipif(
        os.geteuid() != 0, reason="making a file of another user needs root")),
]


class _Reader:
    """Holds a named pipe's read end open, so that an open for writing cannot block."""

    def __init__(self, path: Path) -> None:
        self.fd = (os.open(path, os.O_RDONLY | os.O_NONBLOCK)
                   if path.is_fifo() and not path.is_symlink() else None)

    def close(self) -> None:
        if self.fd is not None:
            os.close(self.fd)


@pytest.mark.parametrize(("kind", "why"), PLANTED)
def test_transcript_refuses_a_planted_path(tmp_path: Path, kind: str, why: str) -> None:
    """A symbolic link, a named pipe, a folder, a file with other links or of another user
    at the transcript's path: refused, naming the file and what to do; nothing written."""
    path = tmp_path / "run.jsonl"
    victim = plant(kind, path, tmp_path)
    reader = _Reader(path)
    try:
        with pytest.raises(PipeplexError) as info:
            TranscriptSink(path, Bus())
    finally:
        reader.close()
    assert str(info.value) == (f"cannot write the transcript {path}: {why}; remove it, or give "
                               "another file")
    assert_untouched(victim, tmp_path)


def test_transcript_refuses_a_device() -> None:
    """A device is not a file to keep a transcript in."""
    with pytest.raises(PipeplexError, match=r"^cannot write the transcript /dev/zero: it is a "
                                            r"device, not a regular file; give another file$"):
        TranscriptSink("/dev/zero", Bus())


def test_a_transcript_makes_its_missing_folders_private(tmp_path: Path) -> None:
    """As --junit and --log-dir do; 0700, as the records in them are private. A file where
    one of them goes is said to be."""
    path = tmp_path / "missing" / "inner" / "t.jsonl"
    TranscriptSink(path, Bus()).close()
    assert path.is_file()
    assert stat.S_IMODE((tmp_path / "missing" / "inner").stat().st_mode) == 0o700
    assert stat.S_IMODE((tmp_path / "missing").stat().st_mode) == 0o700
    (tmp_path / "afile").write_text("x")
    with pytest.raises(PipeplexError) as info:
        TranscriptSink(tmp_path / "afile" / "t.jsonl", Bus())
    assert str(info.value) == (f"cannot write the transcript {tmp_path / 'afile' / 't.jsonl'}: "
                               f"{tmp_path / 'afile'} is a file, not a folder (give another "
                               "path)")


@pytest.mark.parametrize(("kind", "why"), PLANTED)
def test_log_dir_skips_a_planted_log_with_one_warning(
    tmp_path: Path, kind: str, why: str
) -> None:
    """A planted ``NAME.log`` is refused with a warning note naming it; the member's output
    is not logged, and the other members' logs go on."""
    folder = tmp_path / "logs"
    folder.mkdir()
    path = folder / "a.log"
    victim = plant(kind, path, tmp_path)
    reader = _Reader(path)
    bus = Bus()
    notes: list[Note] = []
    bus.subscribe(lambda event: notes.append(event) if isinstance(event, Note) else None)
    sink = LogDirSink(folder, bus=bus)
    bus.subscribe(sink)
    try:
        for event in (out("a", b"secret\n"), out("b", b"b1\n"), out("a", b"more\n")):
            bus.publish(event)
        sink.close()
    finally:
        reader.close()
    assert [(n.name, n.level, n.text) for n in notes] == [
        ("a", "warning", f"cannot write the log {path}: {why}; a's output is not logged "
                         "(remove it, or give another --log-dir)")]
    assert (folder / "b.log").read_bytes() == b"b1\n"
    assert_untouched(victim, tmp_path)


def test_a_log_removed_while_written_is_said_once(tmp_path: Path) -> None:
    """A log folder cleaned up mid-run: the writes went on into files no folder held,
    without a word. Said once, by name, at the next write; the other logs go on."""
    folder = tmp_path / "logs"
    bus = Bus()
    notes: list[Note] = []
    bus.subscribe(lambda event: notes.append(event) if isinstance(event, Note) else None)
    sink = LogDirSink(folder, bus=bus)
    bus.subscribe(sink)
    for event in (out("a", b"a1\n"), out("b", b"b1\n")):
        bus.publish(event)
    asyncio.run(sink.drain())
    (folder / "a.log").unlink()
    for event in (out("a", b"a2\n"), out("b", b"b2\n"), out("a", b"a3\n")):
        bus.publish(event)
        asyncio.run(sink.drain())
    sink.close()
    assert [(n.name, n.level, n.text) for n in notes] == [
        ("a", "warning", f"the log {folder / 'a.log'} was removed while the run wrote it; "
                         "a's output is logged no further (give --log-dir a folder that "
                         "nothing cleans up)")]
    assert (folder / "b.log").read_bytes() == b"b1\nb2\n"


def test_log_dir_without_a_bus_raises_the_refusal(tmp_path: Path) -> None:
    """Without a bus to tell, the refusal is raised (the caller's bus reports it)."""
    victim = plant("symlink", tmp_path / "a.log", tmp_path)
    sink = LogDirSink(tmp_path)
    with pytest.raises(PipeplexError, match=r"cannot write the log .*a\.log: it is a symbolic"):
        sink(out("a", b"secret\n"))
    sink.close()
    assert_untouched(victim, tmp_path)


def test_the_runs_own_descriptors_are_taken_as_given(tmp_path: Path) -> None:
    """/dev/null, /dev/stdout and a shell's >(...) (/dev/fd/N) name the run's own
    descriptors; a link to them elsewhere is still refused, as every planted link is."""
    bus = Bus()
    TranscriptSink("/dev/null", bus).close()
    read, write = os.pipe()
    try:
        sink = TranscriptSink(f"/dev/fd/{write}", bus)
        sink(Note("through the pipe"))
        sink.close()
        os.close(write)
        write = -1
        assert b"through the pipe" in os.read(read, 65536)
    finally:
        os.close(read)
        if write >= 0:
            os.close(write)
    link = tmp_path / "t.jsonl"
    link.symlink_to("/dev/null")
    with pytest.raises(PipeplexError, match="symbolic link"):
        TranscriptSink(link, bus)


def test_a_transcript_pipe_whose_reader_left_leaves_no_descriptor_open() -> None:
    """A write that fails (the reader went away) disables the transcript with a note; its
    close then still lets go of the description its writer opened (it stayed open)."""
    before = set(os.listdir("/proc/self/fd"))
    read_end, write_end = os.pipe()
    bus = Bus()
    notes: list[Event] = []
    bus.subscribe(notes.append, [Note])
    sink = TranscriptSink(f"/dev/fd/{write_end}", bus)
    bus.subscribe(sink)
    os.close(read_end)
    bus.publish(Note("hello"))
    sink.flush()
    sink.close()
    os.close(write_end)
    assert any("transcript write failed" in note.text for note in notes if isinstance(note, Note))
    assert set(os.listdir("/proc/self/fd")) == before
