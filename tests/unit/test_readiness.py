"""LineWatch: spotting a member's ready line in its output."""

from __future__ import annotations

import re

import pytest

from pipeplex._events import Exited, Note, Output
from pipeplex.readiness.lines import LineWatch


def out(name: str, data: bytes, *, stream: str = "stdout", partial: bool = False) -> Output:
    return Output(name, stream, data, partial, t=0.0)  # type: ignore[arg-type]


def watch(pattern: str, name: str = "web") -> tuple[LineWatch, list[re.Match[str]]]:
    matches: list[re.Match[str]] = []
    return LineWatch(name, pattern, matches.append), matches


def test_pattern_within_a_line() -> None:
    """A pattern found inside a line fires with the match and its groups."""
    w, matches = watch(r"listening on (?P<port>\d+)")
    w(out("web", b"starting\nnow listening on 8080 (http)\n"))
    assert len(matches) == 1
    assert matches[0]["port"] == "8080"
    assert w.done


def test_no_match_does_not_fire() -> None:
    """Output without the pattern leaves the watch waiting."""
    w, matches = watch(r"listening")
    w(out("web", b"starting\nloading\n"))
    assert matches == []
    assert not w.done


def test_pattern_split_over_two_events() -> None:
    """A line whose text arrives in two pieces is matched once whole."""
    w, matches = watch(r"listening on (?P<port>\d+)")
    w(out("web", b"boot\nlisten", partial=True))
    assert matches == []
    w(out("web", b"ing on 8080\n"))
    assert [m["port"] for m in matches] == ["8080"]


def test_unfinished_line_can_match() -> None:
    """A prompt without a newline signals readiness."""
    w, matches = watch(r"^> $")
    w(out("web", b"welcome\n> ", partial=True))
    assert [m.string for m in matches] == ["> "]


def test_a_held_match_is_only_the_current_unfinished_lines() -> None:
    """A value at an unfinished line's end is held (it may grow), and said if the member
    is never ready; once that line ended without matching, it is no longer so."""
    w, matches = watch(r"port: (?P<port>\d+)$")
    w(out("web", b"port: 42", partial=True))
    assert matches == [] and w.held == "port: 42"
    w(out("web", b" (busy)\nretrying", partial=True))
    assert matches == [] and w.held is None


@pytest.mark.parametrize(
    ("data", "fires"),
    [
        (b"not ready\nready\n", True),
        (b"already ready now\nnot ready\n", False),
        (b"ready \n", False),
        (b"x\nready\r\n", True),
    ],
    ids=["own-line", "inside-lines", "trailing-space", "crlf"],
)
def test_anchors_apply_to_each_line(data: bytes, fires: bool) -> None:
    """``^`` and ``$`` anchor at line boundaries, and a CRLF line end counts as one."""
    w, matches = watch(r"^ready$")
    w(out("web", data))
    assert bool(matches) is fires
    if fires:
        assert matches[0].string == "ready"


def test_start_anchor_matches_a_later_line() -> None:
    """``^`` matches at the start of any line, not only the chunk's first."""
    w, matches = watch(r"^b")
    w(out("web", b"ab\nb\n"))
    assert len(matches) == 1


def test_other_members_and_events_are_ignored() -> None:
    """Only the watched member's output is searched."""
    w, matches = watch(r"ready")
    w(out("db", b"ready\n"))
    w(Note("ready", name="web", t=0.0))
    w(Exited("web", 0, t=0.0))
    assert matches == []
    w(out("web", b"ready\n", stream="stderr"))
    assert len(matches) == 1


def test_fires_only_once() -> None:
    """After the first match, later matching lines are ignored."""
    w, matches = watch(r"ready (\d)")
    w(out("web", b"ready 1\nready 2\n"))
    w(out("web", b"ready 3\n"))
    w(out("web", b"ready 4", partial=True))
    assert [m[1] for m in matches] == ["1"]


def test_unfinished_line_does_not_fire_twice() -> None:
    """A matching prompt that is then completed fires once, not again on its newline."""
    w, matches = watch(r"login:")
    w(out("web", b"login:", partial=True))
    w(out("web", b" \n"))
    assert len(matches) == 1


def test_character_split_between_events() -> None:
    """A UTF-8 character split over two events still matches."""
    w, matches = watch("caf\u00e9 ouvert")
    w(out("web", b"caf\xc3", partial=True))
    w(out("web", b"\xa9 ouvert\n"))
    assert len(matches) == 1


def test_streams_are_not_joined() -> None:
    """An unfinished stdout line and a stderr line are not read as one line."""
    w, matches = watch(r"^listening on 80$")
    w(out("web", b"listening", partial=True))
    w(out("web", b" on 80\n", stream="stderr"))
    assert matches == []


def test_colours_are_not_in_the_way() -> None:
    """A server on a terminal colours its log (uvicorn does, on stderr): the pattern is
    what the screen shows, and the value has no escape sequence in it."""
    w, matches = watch(r"running on http://127\.0\.0\.1:(?P<port>\d+)$")
    w(out("web", b"INFO: running on \x1b[1mhttp://127.0.0.1:4", stream="stderr", partial=True))
    w(out("web", b"2193\x1b[", stream="stderr", partial=True))
    assert matches == []  # (the value may go on after the cut sequence)
    w(out("web", b"0m (Press CTRL+C to quit)\n", stream="stderr"))
    assert matches == []
    w, matches = watch(r"on http://127\.0\.0\.1:(?P<port>\d+) ")
    w(out("web", b"INFO: running on \x1b[1mhttp://127.0.0.1:42193\x1b[0m (Press CTRL+C)\n"))
    assert [m["port"] for m in matches] == ["42193"]


def test_a_full_terminals_crlf_ends_the_line() -> None:
    """A full terminal makes ``\\r\\r\\n`` of a program's own ``\\r\\n``: the value ends
    before it."""
    w, matches = watch(r"key: (?P<key>.+)$")
    w(out("web", b"key: val-1\r\r\n"))
    assert [m["key"] for m in matches] == ["val-1"]


@pytest.mark.parametrize("chunks", [
    [b"loading 0%\rloading 20%\rServer started on 5000\n"],
    [b"loading 0%\r", b"loading 20%\r", b"Server started on 5000\n"],
    [b"\rloading 0%", b"\rloading 20%", b"\rServer started on 5000\n"],
    [b"\x1b[2K\rServer started on 5000\n"],
], ids=["one-chunk", "cr-last", "cr-first", "erase-line"])
def test_a_line_after_a_carriage_return_is_a_line_of_its_own(chunks: list[bytes]) -> None:
    """A progress line ("loading 20%\\r"), then the server's: the screen shows it on its
    own, and ^ matches where it starts."""
    w, matches = watch(r"^Server started on (?P<port>\d+)$")
    for chunk in chunks:
        w(out("web", chunk))
    assert [m["port"] for m in matches] == ["5000"]


def test_each_state_of_a_progress_line_is_tried_in_turn() -> None:
    """What a carriage return wrote over was shown too: it may be waited for, and the
    first state that matches is the one taken."""
    w, matches = watch(r"^(?P<done>\d+)% done$")
    w(out("web", b"10% done\r60% done\r100% done\n"))
    assert [m["done"] for m in matches] == ["10"]


def test_a_value_before_a_carriage_return_has_ended() -> None:
    """"port 80\\r" on an unfinished line: the state after it starts again, so 80 is
    whole (it is not the start of a longer number)."""
    w, matches = watch(r"port (?P<port>\d+)")
    w(out("web", b"port 80\rwaiting", partial=True))
    assert [m["port"] for m in matches] == ["80"]


@pytest.mark.parametrize(("pattern", "prompt"), [
    ("sqlite> $", True), ("Password: ", True), ("Name: $", True), (r"\$ $", True),
    (r"Continue\? $", True), (">>> ", True), ("(sqlite> )$", True), (r"prompt\s*$", True),
    # A space written as optional is still a prompt's.
    ("Password: ?$", True), ("> ?$", True), (r"\$ ?$", True), (r"prompt\s?$", True),
    # The end of a line, or a word, is no prompt.
    ("^ready$", False), ("^bye$", False), ("listening on (?P<port>\\d+)$", False),
    ("ready", False), ("a:b$", False),
])
def test_a_pattern_that_waits_for_a_prompt_is_told_from_one_that_ends_a_line(
        pattern: str, prompt: bool) -> None:
    """What the hint that a program prompts only on a terminal goes by."""
    from pipeplex.readiness.lines import waits_for_prompt

    assert waits_for_prompt(pattern) is prompt
