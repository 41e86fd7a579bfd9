"""RecentOutput: the last lines of each member, for error messages."""

from __future__ import annotations

import pytest

from pipeplex._events import Exited, Note, Output, Started
from pipeplex.engine.recent import RecentOutput


def out(name: str, data: bytes, *, stream: str = "stdout", partial: bool = False) -> Output:
    return Output(name, stream, data, partial, t=0.0)  # type: ignore[arg-type]


def test_keeps_the_last_lines() -> None:
    """Only the last N lines are kept."""
    recent = RecentOutput(lines=3)
    recent(out("web", b"1\n2\n3\n"))
    recent(out("web", b"4\n5\n"))
    assert recent.tail("web") == ["| 3", "| 4", "| 5"]


def test_members_are_kept_apart() -> None:
    """Each member has its own tail."""
    recent = RecentOutput()
    recent(out("web", b"w\n"))
    recent(out("db", b"d\n"))
    assert (recent.tail("web"), recent.tail("db"), recent.tail("cache")) == (["| w"], ["| d"], [])


def test_partial_pieces_are_joined() -> None:
    """Pieces of one line arriving separately make one line."""
    recent = RecentOutput()
    recent(out("web", b"hel", partial=True))
    recent(out("web", b"lo", partial=True))
    recent(out("web", b" world\nnext\n"))
    recent(out("web", b"after\n"))
    assert recent.tail("web") == ["| hello world", "| next", "| after"]


def test_unfinished_last_line_is_shown() -> None:
    """A prompt without a newline appears as the last line."""
    recent = RecentOutput()
    recent(out("web", b"a\npassword: ", partial=True))
    assert recent.tail("web") == ["| a", "| password: "]


def test_stderr_lines_are_marked() -> None:
    """Stderr lines start with ``! ``."""
    recent = RecentOutput()
    recent(out("web", b"fine\n"))
    recent(out("web", b"boom\nagain\n", stream="stderr"))
    assert recent.tail("web") == ["| fine", "! boom", "! again"]


def test_crlf_and_invalid_utf8() -> None:
    """CRLF line ends are dropped and undecodable bytes become U+FFFD."""
    recent = RecentOutput()
    recent(out("web", b"one\r\ncaf\xff\r\n"))
    assert recent.tail("web") == ["| one", "| caf\ufffd"]


def test_long_lines_are_cut() -> None:
    """Lines are cut to max_line characters, also when joined from pieces."""
    recent = RecentOutput(max_line=5)
    recent(out("web", b"abcdefghij\n"))
    recent(out("web", b"xyz", partial=True))
    recent(out("web", b"uvw\n"))
    assert recent.tail("web") == ["| abcde", "| xyzuv"]


def test_other_events_are_ignored() -> None:
    """Notes and exits are not output."""
    recent = RecentOutput()
    recent(Note("hello", name="web", t=0.0))
    recent(Exited("web", 1, t=0.0))
    assert recent.tail("web") == []


@pytest.mark.parametrize("data", [b"", b"\n"], ids=["nothing", "empty-line"])
def test_describe_when_nothing_was_written(data: bytes) -> None:
    """A member with no recorded lines is described as having written nothing."""
    recent = RecentOutput()
    if data:
        recent(out("other", data))
    assert recent.describe("web") == "web wrote nothing"


def test_describe_indents_the_lines() -> None:
    """describe() gives a heading and the lines indented by four spaces."""
    recent = RecentOutput()
    recent(out("web", b"starting\n"))
    recent(out("web", b"port in use\n", stream="stderr"))
    assert recent.describe("web") == "last output of web:\n    | starting\n    ! port in use"


def test_stderr_does_not_continue_an_unfinished_stdout_line() -> None:
    """An unfinished stdout line is not glued to the stderr line that follows it."""
    recent = RecentOutput()
    recent(out("web", b"prompt> ", partial=True))
    recent(out("web", b"err\n", stream="stderr"))
    assert recent.tail("web") == ["| prompt> ", "! err"]


def test_many_chunks_and_a_huge_one_keep_only_the_tail() -> None:
    """Thousands of chunks keep the last lines; a chunk far over the limit keeps its end."""
    recent = RecentOutput(lines=3, max_line=10)
    for n in range(5000):
        recent(out("web", f"{n}\n".encode()))
    assert recent.tail("web") == ["| 4997", "| 4998", "| 4999"]
    recent(out("web", b"x" * 1_000_000 + b"\nlast\n"))
    assert recent.tail("web") == ["| 4999", "| xxxxxxxxxx", "| last"]


def test_control_characters_are_shown_escaped() -> None:
    """A member's escape sequences in an error message must not clear the reader's screen
    or colour what follows: they are taken out, as the screen shows the text and as the
    failed pattern saw it; other controls and a lone ESC are shown escaped, tabs stay."""
    recent = RecentOutput()
    recent(out("web", b"before\x1b[2J\x1b[31mRED\tx\x00\x7f\xc2\x9b\n"))
    recent(out("web", b"\x1b[32mINFO\x1b[0m:     Started\n"))
    recent(out("web", b"lone \x1b\n"))
    assert recent.tail("web") == ["| beforeRED\tx\\x00\\x7f\\x9b", "| INFO:     Started",
                                  "| lone \\x1b"]


def test_output_of_earlier_runs_is_told_apart() -> None:
    """After a restart, what earlier runs wrote is said to be theirs: a readiness failure of
    the latest run must not seem to quote a line of that run."""
    recent = RecentOutput()
    recent(Started("db", 1, ("db",), t=0.0))  # (its first start: nothing before it)
    recent(out("db", b"listening on 1\npartial"))
    recent(Started("db", 2, ("db",), t=0.0))
    assert recent.describe("db") == ("last output of db, from its earlier runs:\n"
                                     "    | listening on 1\n    | partial\n"
                                     "db wrote nothing in its latest run")
    recent(out("db", b"more\n"))  # (does not finish the earlier run's line)
    assert recent.describe("db") == ("last output of db, from its earlier runs:\n"
                                     "    | listening on 1\n    | partial\n"
                                     "and from its latest run:\n    | more")
    recent(Started("web", 3, ("web",), t=0.0))
    recent(out("web", b"up\n"))
    assert recent.describe("web") == "last output of web:\n    | up"


def test_silence_gets_the_reason_it_may_not_be_silence() -> None:
    """A member that wrote nothing (in its latest run) may have a reason: it is said then."""
    recent = RecentOutput(silence=lambda name, awaiting: "buffered" if name == "db" else "")
    assert recent.describe("db") == "db wrote nothing (buffered)"
    assert recent.describe("web") == "web wrote nothing"
    recent(out("db", b"up\n"))
    assert recent.describe("db") == "last output of db:\n    | up"
    recent(Started("db", 2, ("db",), t=0.0))
    assert recent.describe("db").endswith("db wrote nothing in its latest run (buffered)")


def test_a_prompt_again_after_an_answered_one_is_a_line_of_its_own() -> None:
    """As matching sees it (Output.new_line): not '>>> >>> '."""
    recent = RecentOutput()
    recent(out("py", b">>> ", stream="stderr", partial=True))
    recent(Output("py", "stderr", b">>> ", True, t=0.0, new_line=True))
    assert recent.tail("py") == ["! >>> ", "! >>> "]


def test_a_recap_of_what_is_just_above_is_not_repeated() -> None:
    """The note under a member's name quotes its last output, unless that output is what
    the stream shows right above (no other member wrote since it began): a 20-line
    traceback once, not twice. Another member's line in between brings the recap back,
    and a message for elsewhere (own=False: an exception, a report) always has it."""
    recent = RecentOutput()
    recent.shown = True  # (pipeplex run: the stream is shown with the notes)
    recent(out("web", b"Traceback (most recent call last):\n"))
    recent(out("web", b"OSError: [Errno 98] Address already in use\n", stream="stderr"))
    assert recent.describe("web", own=True) == "its last output is just above"
    assert recent.describe("web").startswith("last output of web:\n    | Traceback")
    recent(out("db", b"ready\n"))
    assert recent.describe("web", own=True).startswith("last output:\n    | Traceback")


def test_where_no_stream_is_shown_the_recap_is_always_there() -> None:
    """Test mode and the Python API show no stream: nothing is above a note, so its recap
    quotes the output however it came."""
    recent = RecentOutput()
    recent(out("web", b"Traceback (most recent call last):\n"))
    assert recent.describe("web", own=True) == (
        "last output:\n    | Traceback (most recent call last):")


def test_an_earlier_runs_output_is_never_just_above() -> None:
    """srv wrote a traceback and restarted; its new run wrote nothing yet: the note says
    what the earlier run wrote, as such, not that the output is just above."""
    recent = RecentOutput()
    recent(out("srv", b"Traceback: boom\n"))
    recent(Started("srv", 42, ("srv",)))
    assert recent.describe("srv", own=True) == (
        "last output, from its earlier runs:\n    | Traceback: boom\n"
        "wrote nothing in its latest run")
    recent(out("srv", b"listening\n"))
    assert recent.describe("srv", own=True).startswith("last output, from its earlier runs:")
