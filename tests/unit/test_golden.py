"""Golden transcripts: per-member text, normalisation, and comparison."""

from __future__ import annotations

import itertools
import os
import stat
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest

from pipeplex._events import Event, Exited, InputSent, Matched, Note, Output, Ready, Started
from pipeplex.errors import PipeplexError
from pipeplex.report.golden import (
    DIFF_LINES,
    compare_golden,
    golden_text,
    normalize,
    write_golden,
)
from pipeplex.scenario.model import NormalizeRule

NAMES = ("server", "alice")


def out(name: str, data: bytes, stream: str = "stdout", partial: bool = False) -> Output:
    return Output(name, stream, data, partial)  # type: ignore[arg-type]


SERVER = [
    Started("server", 1001, ("srv",)),
    out("server", b"listening\n"),
    out("server", b"warning: slow\n", "stderr"),
    out("server", b"alice: hello\n"),
    Exited("server", -15, stopped=True),
]
ALICE = [
    Started("alice", 1002, ("cli",)),
    out("alice", b"connected\n"),
    InputSent("alice", b"hello\n"),
    InputSent("alice", b"", eof=True),
    Exited("alice", 0),
]
EXPECTED = """\
[server]
| listening
| alice: hello
! warning: slow
= stopped
[alice]
| connected
> hello
= exited with code 0
"""


def interleavings(a: Sequence[Event], b: Sequence[Event]) -> Iterator[list[Event]]:
    """Every merge of ``a`` and ``b`` that keeps each one's own order."""
    total = len(a) + len(b)
    for slots in itertools.combinations(range(total), len(a)):
        left, right = iter(a), iter(b)
        yield [next(left) if i in slots else next(right) for i in range(total)]


def test_golden_text_lists_members_in_cast_order_with_prefixes() -> None:
    """Each member gets a section in cast order: stdout ``| ``, stderr ``! ``, input ``> ``."""
    assert golden_text([*ALICE, *SERVER], NAMES) == EXPECTED


def test_interleaving_between_members_does_not_change_the_text() -> None:
    """However the two members' events interleave, the golden text is the same."""
    texts = {golden_text(events, NAMES) for events in interleavings(SERVER, ALICE)}
    assert texts == {EXPECTED}


@pytest.mark.parametrize(
    ("exited", "line"),
    [
        (Exited("a", 0), "= exited with code 0"),
        (Exited("a", 2), "= exited with code 2"),
        (Exited("a", -9), "= killed by SIGKILL"),
        (Exited("a", -9, stopped=True), "= stopped"),
        (Exited("a", 0, stopped=True), "= stopped"),
    ],
)
def test_how_a_member_ended(exited: Exited, line: str) -> None:
    """The exit line gives the code or signal, or ``stopped`` when pipeplex stopped it."""
    assert golden_text([exited], ["a"]) == f"[a]\n{line}\n"


@pytest.mark.parametrize(
    "chunks",
    [
        [b"hello world\n"],
        [b"hel", b"lo world\n"],
        [b"h", b"e", b"llo", b" world", b"\n"],
        [b"hello w\xc3", b"\xb6rld\n"],
        [b"hello world\r\n"],
        [b"hello world\r", b"\n"],
        [b"hello world\r\r\n"],  # (a full terminal's, of the program's own "\r\n")
        [b"\x1b[1mhello\x1b[0m \x1b[32mwor", b"ld\x1b[0m\x1b[K\n"],  # (as the screen shows)
    ],
)
def test_a_line_split_across_output_events_joins(chunks: list[bytes]) -> None:
    """Pieces of one line, even a character cut in two, make one golden line, as the
    screen shows it (no colours)."""
    events = [out("a", chunk, partial=not chunk.endswith(b"\n")) for chunk in chunks]
    text = golden_text(events, ["a"])
    expected = "hello w\xf6rld" if any(b"\xc3" in c for c in chunks) else "hello world"
    assert text == f"[a]\n| {expected}\n"


def test_several_lines_in_one_event() -> None:
    """An event carrying several lines gives one golden line each, blank ones included."""
    text = golden_text([out("a", b"one\n\nthree\n")], ["a"])
    assert text == "[a]\n| one\n|\n| three\n"


def test_blank_line_in_its_own_event_is_kept() -> None:
    """A blank line gives a ``| `` line however the output was split into events."""
    split = golden_text([out("a", b"one\n"), out("a", b"\n"), out("a", b"three\n")], ["a"])
    assert split == golden_text([out("a", b"one\n\nthree\n")], ["a"])


def test_streams_keep_their_own_unfinished_lines() -> None:
    """A stderr line between two halves of a stdout line does not split that line."""
    events = [
        out("a", b"progress: ", partial=True),
        out("a", b"oops\n", "stderr"),
        out("a", b"done\n"),
    ]
    assert golden_text(events, ["a"]) == "[a]\n| progress: done\n! oops\n"


def test_how_one_members_stdout_and_stderr_interleave_does_not_change_the_text() -> None:
    """They come through two pipes: each run lists its stdout (with its input), then its
    stderr, then how it ended."""
    first = [out("a", b"out 1\n"), out("a", b"out 2\n")]
    second = [out("a", b"err 1\n", "stderr"), out("a", b"err 2\n", "stderr")]
    ended = [Exited("a", 1)]
    again = [out("a", b"out 3\n"), out("a", b"err 3\n", "stderr")]
    texts = {golden_text([*events, *ended, *again], ["a"])
             for events in interleavings(first, second)}
    assert texts == {"[a]\n| out 1\n| out 2\n! err 1\n! err 2\n= exited with code 1\n"
                     "| out 3\n! err 3\n"}


def test_an_unfinished_line_is_flushed_at_exit() -> None:
    """A last line without a newline appears before the exit line."""
    events = [out("a", b"prompt> ", partial=True), Exited("a", 1)]
    assert golden_text(events, ["a"]) == "[a]\n| prompt>\n= exited with code 1\n"


def test_a_prompt_again_after_a_line_sent_is_a_line_of_its_own() -> None:
    """A REPL's prompt on stderr, then again after a line sent that printed nothing: two
    lines, as the screen shows them and as expectations see them (not ``>>> >>> ``)."""
    events = [Output("py", "stderr", b">>> ", partial=True), InputSent("py", b"x = 1\n"),
              Output("py", "stderr", b">>> ", partial=True, new_line=True), Exited("py", 0)]
    assert golden_text(events, ["py"]) == "[py]\n> x = 1\n! >>>\n! >>>\n= exited with code 0\n"


def test_an_unfinished_line_is_flushed_at_the_end() -> None:
    """A member still running at the end keeps its unfinished last line."""
    assert golden_text([out("a", b"tail", partial=True)], ["a"]) == "[a]\n| tail\n"


def test_input_lines_are_each_shown() -> None:
    """Input with several lines shows each; closing stdin adds nothing."""
    events = [InputSent("a", b"one\ntwo\n"), InputSent("a", b"", eof=True)]
    assert golden_text(events, ["a"]) == "[a]\n> one\n> two\n"


def test_a_full_terminals_end_of_input_is_no_line_sent() -> None:
    """Closing a full terminal's stdin types ^D (as the stop does): not an empty line."""
    events = [InputSent("a", b"one\n"), InputSent("a", b"\x04"), InputSent("a", b"", eof=True)]
    assert golden_text(events, ["a"]) == "[a]\n> one\n"


def test_members_outside_the_cast_and_other_events_are_ignored() -> None:
    """Only the named members appear; notes, matches and readiness leave no trace."""
    events: list[Event] = [
        out("stranger", b"hi\n"),
        Note("about a", name="a"),
        Note("about the run"),
        Matched("a", "x", "x"),
        Ready("a", (("port", "1"),)),
        out("a", b"x\n"),
    ]
    assert golden_text(events, ["a"]) == "[a]\n| x\n"


def test_a_member_with_no_events_has_an_empty_section() -> None:
    """Every named member has a section, even if it did nothing."""
    assert golden_text([], ["a", "b"]) == "[a]\n[b]\n"


@pytest.mark.parametrize(
    ("variables", "line", "normalised"),
    [
        ({"port": "40123"}, "listening on 127.0.0.1:40123", "listening on 127.0.0.1:{port}"),
        ({"port": "40123"}, "port 140123 and 401234", "port 140123 and 401234"),
        ({"port": "8000", "url": "http://h:8000/x"}, "see http://h:8000/x", "see {url}"),
        ({"token": "abc", "empty": ""}, "token=abc", "token={token}"),
    ],
)
def test_variables_are_normalised(variables: dict[str, str], line: str, normalised: str) -> None:
    """Captured values become ``{name}``, whole values only, longest first."""
    text = golden_text([out("a", line.encode() + b"\n")], ["a"], variables=variables)
    assert text == f"[a]\n| {normalised}\n"


def test_pids_are_normalised_where_written_as_pids() -> None:
    """The pids of started members become ``{pid}`` where they are written as pids, not
    wherever their number appears: in a container a pid is 3, and "3 squared" stays."""
    events = [
        Started("a", 4242, ("x",)),
        Started("b", 3, ("y",)),
        out("a", b'my pid is 4242, PID: 3, pid=4242 {"pid": 3} daemon[3]: up; not 42420\n'),
        out("a", b"INFO:     Started server process [4242]\n4242:M 22 Nov 2026 00:24:13 * Ready\n"),
        out("a", b"2026-11-22 10:21:46.275 UTC [4242] LOG:  database system is ready\n"),
        out("b", b"3 squared is 9, 4242 took 3 ms, items[3]\n4242:3 and 3:M up\n"),
    ]
    text = golden_text(events, ["a", "b"])
    assert text == ('[a]\n| my pid is {pid}, PID: {pid}, pid={pid} {"pid": {pid}} daemon[{pid}]: '
                    "up; not 42420\n| INFO:     Started server process [{pid}]\n"
                    "| {pid}:M {time} * Ready\n"
                    "| {time} [{pid}] LOG:  database system is ready\n"
                    "[b]\n| 3 squared is 9, 4242 took 3 ms, items[3]\n| 4242:3 and 3:M up\n")


def test_only_the_members_lines_are_normalised() -> None:
    """A captured value never rewrites a member's name or how it ended."""
    events = [out("alice", b"alice has 100 errors\n"), Exited("alice", 100)]
    text = golden_text(events, ["alice"], variables={"user": "alice", "errors": "100"})
    assert text == "[alice]\n| {user} has {errors} errors\n= exited with code 100\n"


def test_a_captured_value_leaves_placeholders_whole() -> None:
    events = [out("a", b"at 10:00:00 it was time\n")]
    assert golden_text(events, ["a"], variables={"what": "time"}) == (
        "[a]\n| at {time} it was {what}\n")


def test_a_captured_value_does_not_eat_a_part_of_a_date() -> None:
    """Times first: a value such as 2026 (this year) leaves the date whole, for {time}."""
    events = [out("a", b"2026-11-21 17:02:03 worker with 2026 jobs\n")]
    assert golden_text(events, ["a"], variables={"jobs": "2026"}) == (
        "[a]\n| {time} worker with {jobs} jobs\n")


@pytest.mark.parametrize(
    ("line", "normalised"),
    [
        ("at 2024-05-06T12:34:56", "at {time}"),
        ("at 2024-05-06 12:34:56.789Z", "at {time}"),
        ("at 2024-05-06T12:34:56,5+02:00 done", "at {time} done"),
        ("at 2024-05-06T12:34:56-0700", "at {time}"),
        ("[12:34:56] tick", "[{time}] tick"),
        ("took 00:00:01.250", "took {time}"),
        ("version 1.2.3", "version 1.2.3"),
        ("released 2024-05-06", "released {time}"),
        ('127.0.0.1 - - [22/Nov/2026 00:21:57] "GET / HTTP/1.1" 200',  # http.server
         '127.0.0.1 - - [{time}] "GET / HTTP/1.1" 200'),
        ("[22/Nov/2026:00:21:57 +0000] GET", "[{time}] GET"),  # the common log format
        ("2026/11/22 00:24:13 [notice] 42#42: start", "{time} [notice] 42#42: start"),  # nginx
        ("19924:C 22 Nov 2026 00:24:13.123 * Ready", "19924:C {time} * Ready"),  # redis
        ("Nov  2 00:24:13 host cron", "{time} host cron"),  # syslog
        ("Sun Nov 22 00:24:13 2026 started", "{time} started"),  # ctime
        ("Date: Sun, 22 Nov 2026 00:24:13 GMT", "Date: {time}"),  # HTTP, mail
        ("Sun Nov 22 03:06:19 UTC 2026 began", "{time} began"),  # date
        ("at Sun Nov 22 2026 03:06:19 GMT+0000 (Coordinated Universal Time).",
         "at {time}."),  # JavaScript's Date
        ("Nov 22 03:06:19 WARN disk", "{time} WARN disk"),  # (syslog: a word, not a zone)
        ("build 2026-13-99x and 12/Nov/20", "build 2026-13-99x and 12/Nov/20"),
    ],
)
def test_times_and_dates_are_normalised(line: str, normalised: str) -> None:
    """Timestamps as servers log them, dates and clock times become ``{time}``: a golden
    file recorded today must pass tomorrow. Other numbers stay."""
    assert golden_text([out("a", line.encode() + b"\n")], ["a"]) == f"[a]\n| {normalised}\n"


def test_time_normalisation_does_not_depend_on_pids() -> None:
    """A timestamp is normalised the same whatever pid the member happened to get."""
    events = [Started("a", 2024, ("x",)), out("a", b"at 2024-05-06 12:00:00\n")]
    assert golden_text(events, ["a"]) == "[a]\n| at {time}\n"


def test_custom_rules_apply_after_the_built_in_ones() -> None:
    """[[normalize]] rules run last, line-anchored, and may use the built-in placeholders."""
    rules = [
        NormalizeRule(r"took \d+ ms", "took N ms"),
        NormalizeRule(r"^\| id=\w+$", "| id=X"),
        NormalizeRule(r":\{port\}", ":PORT"),
        NormalizeRule(r"(\w+)@(\w+)", r"\2@\1"),
    ]
    events = [out("a", b"took 12 ms\nid=f00d\nid=a b\non :5555\nuser@host\n")]
    text = golden_text(events, ["a"], variables={"port": "5555"}, rules=rules)
    assert text == "[a]\n| took N ms\n| id=X\n| id=a b\n| on :PORT\n| host@user\n"


def test_normalize_rewrites_member_lines_then_applies_the_rules_to_all() -> None:
    """normalize() rewrites times, variables and pids in member lines, then the rules."""
    text = normalize(
        "[abc]\n| pid=77777 v=abc t=10:00:00 keep\n= keep abc",
        variables={"v": "abc"},
        pids=[77777],
        rules=[NormalizeRule("keep", "kept")],
    )
    assert text == "[abc]\n| pid={pid} v={v} t={time} kept\n= kept abc"


def test_compare_golden_returns_none_when_equal() -> None:
    """Equal texts compare as None."""
    assert compare_golden(EXPECTED, EXPECTED, path="g.txt") is None


def test_compare_golden_returns_a_unified_diff() -> None:
    """Different texts give a unified diff from the golden file to this run."""
    actual = EXPECTED.replace("| alice: hello", "| alice: bye")
    diff = compare_golden(EXPECTED, actual, path="chat.golden")
    assert diff is not None
    lines = diff.splitlines()
    assert lines[:2] == ["--- chat.golden (golden)", "+++ this run"]
    assert lines[2].startswith("@@ ")
    assert "-| alice: hello" in lines
    assert "+| alice: bye" in lines
    assert " | listening" in lines


def test_a_diff_shows_control_characters_and_splits_lines_at_newlines_only() -> None:
    """A member's escape sequence is shown, not played; a carriage return stays in its
    line; a missing last newline is said."""
    diff = compare_golden("[a]\n| red \x1b[2J\n", "[a]\n| re\rd\n", path="g")
    assert diff is not None
    assert "-| red \\x1b[2J\n+| re\\x0dd\n" in diff
    assert "\x1b" not in diff and "\r" not in diff
    assert compare_golden("[a]\n= stopped", "[a]\n= stopped\n", path="g") == (
        "(the golden file has no newline at its end)\n")


def test_a_diff_tells_a_real_escape_from_the_text_of_one() -> None:
    """The golden file has the text ``\\x1b[1m`` where the run wrote the character: the
    two lines of the diff must not read the same."""
    diff = compare_golden("[a]\n| \\x1b[1mbold\n", "[a]\n| \x1b[1mbold\n", path="g")
    assert diff is not None
    assert "-| \\\\x1b[1mbold\n+| \\x1b[1mbold\n" in diff
    assert "backslashes written by the members are shown doubled" in diff
    assert "\x1b" not in diff


@pytest.mark.parametrize("target", ["victim.txt", "nowhere.txt"])
def test_a_golden_file_that_is_a_link_is_refused_never_followed(
        tmp_path: Path, target: str) -> None:
    (tmp_path / "victim.txt").write_text("someone else's\n")
    golden = tmp_path / "s.golden"
    golden.symlink_to(tmp_path / target)
    with pytest.raises(PipeplexError, match=(
            f"^cannot write golden file {golden}: it is a symbolic link, which pipeplex does "
            "not follow; remove it, or name another file with golden = in the scenario$")):
        write_golden(golden, EXPECTED)
    assert (tmp_path / "victim.txt").read_text() == "someone else's\n"
    assert sorted(os.listdir(tmp_path)) == ["s.golden", "victim.txt"]


def test_a_golden_file_keeps_its_mode_and_a_new_one_is_0644(tmp_path: Path) -> None:
    """Golden files are committed: not private as records are. Its folder is made."""
    kept, new = tmp_path / "kept.golden", tmp_path / "sub" / "new.golden"
    kept.write_text("old\n")
    kept.chmod(0o640)
    write_golden(kept, EXPECTED)
    write_golden(new, EXPECTED)
    assert (kept.read_text(), stat.S_IMODE(kept.stat().st_mode)) == (EXPECTED, 0o640)
    assert (new.read_text(), stat.S_IMODE(new.stat().st_mode)) == (EXPECTED, 0o644)


def test_a_progress_bar_keeps_its_last_state() -> None:
    """A carriage return has the terminal write over the line: only the last state shows,
    and a bar redrawn on a timer (different states each run) makes the same golden text."""
    events = [out("a", b"  1/100\r"), out("a", b" 37/100\r100/100\r\n"), out("a", b"done\n")]
    assert golden_text(events, ["a"]) == "[a]\n| 100/100\n| done\n"


def test_trailing_spaces_are_neither_written_nor_compared() -> None:
    """An editor that strips them on save leaves a golden file that still matches."""
    events = [out("a", b"calc> \n\t\n")]
    assert golden_text(events, ["a"]) == "[a]\n| calc>\n|\n"
    assert compare_golden("[a]\n| calc> \n| \n", "[a]\n| calc>\n|\n", path="g") is None
    assert compare_golden("[a]\n| calc>\n", "[a]\n| calc> x\n", path="g") is not None


def test_a_short_captured_value_is_left_as_written() -> None:
    """A value of one or two characters would stand for every other one like it."""
    events = [out("a", b"shard 1 ready: 1 of 12 batches, ok\n")]
    text = golden_text(events, ["a"], variables={"shard": "1", "state": "ok", "n": "12"})
    assert text == "[a]\n| shard 1 ready: 1 of 12 batches, ok\n"


def test_a_long_diff_is_cut_saying_how_much_more_there_was() -> None:
    expected = "[a]\n" + "".join(f"| line {i} of 1000\n" for i in range(1000))
    actual = "[a]\n" + "".join(f"| line {i} of 1001\n" for i in range(1000))
    diff = compare_golden(expected, actual, path="g")
    assert diff is not None
    lines = diff.splitlines()
    assert len(lines) == DIFF_LINES + 1
    assert lines[-1] == ("... and 1804 more lines of the diff (1804 of them changed) not "
                         "shown; pipeplex test --update writes this run's text, for git diff "
                         "to show whole")
