"""LineWatch on unfinished lines: a value is never taken while it may still grow."""

from __future__ import annotations

import re

import pytest

from pipeplex._events import Exited, Output
from pipeplex.readiness import lines
from pipeplex.readiness.lines import MAX_PARTIAL, LineWatch


def out(data: bytes, *, name: str = "web", stream: str = "stdout",
        partial: bool = False) -> Output:
    return Output(name, stream, data, partial, t=0.0)  # type: ignore[arg-type]


def watch(pattern: str) -> tuple[LineWatch, list[re.Match[str]]]:
    matches: list[re.Match[str]] = []
    return LineWatch("web", pattern, matches.append), matches


def test_a_value_at_the_end_of_an_unfinished_line_waits_for_the_rest() -> None:
    """``listening on 80`` then ``81``: the port is 8081, never 80."""
    w, matches = watch(r"listening on (?P<port>\d+)")
    w(out(b"listening on 80", partial=True))
    assert matches == []
    assert not w.done
    w(out(b"81\n"))
    assert [m["port"] for m in matches] == ["8081"]


def test_a_value_waits_over_several_unfinished_pieces() -> None:
    """Each piece of the unfinished line is tried again, and still waits."""
    w, matches = watch(r"port=(?P<port>\d+)")
    for piece in (b"port=", b"8", b"08", b"1"):
        w(out(piece, partial=True))
        assert matches == []
    w(out(b" (http)", partial=True))
    assert [m["port"] for m in matches] == ["8081"]


@pytest.mark.parametrize(
    ("pattern", "text", "found"),
    [
        (r"> $", b"welcome\n> ", {}),
        (r"Password: ", b"Password: ", {}),
        (r"port (?P<port>\d+)> ", b"port 8081> ", {"port": "8081"}),
        (r"^(?P<user>\w+)@host\$ ", b"alice@host$ ", {"user": "alice"}),
        (r"listening on \d+", b"listening on 80", {}),
    ],
    ids=["anchored-prompt", "password", "value-before-prompt", "user-prompt", "no-groups"],
)
def test_prompts_on_an_unfinished_line_still_fire(pattern: str, text: bytes,
                                                  found: dict[str, str]) -> None:
    """A match whose named groups all end before the text does is taken at once."""
    w, matches = watch(pattern)
    w(out(text, partial=True))
    assert len(matches) == 1
    assert {k: v for k, v in matches[0].groupdict().items() if v is not None} == found


def test_a_group_left_out_is_not_waited_for() -> None:
    """A prompt with an optional part fires as it stands (an optional group that more text
    might fill is not waited for: a value that is needed is written as required)."""
    w, matches = watch(r"Password(?: for (?P<user>\w+))?: $")
    w(out(b"Password: ", partial=True))
    assert len(matches) == 1 and matches[0]["user"] is None


def test_a_group_left_out_before_the_end_is_settled() -> None:
    """Text after the match decides an optional group: the match is taken."""
    w, matches = watch(r"listening(?: on (?P<port>\d+))?!")
    w(out(b"listening! ", partial=True))
    assert len(matches) == 1
    assert matches[0]["port"] is None


def test_the_exit_ends_the_last_line() -> None:
    """A value at the end of the member's last, unfinished line is taken at its exit."""
    w, matches = watch(r"token (?P<token>\w+)")
    w(out(b"token abc", partial=True))
    assert matches == []
    w(Exited("db", 0, t=0.0))  # another member's exit changes nothing
    assert matches == []
    w(Exited("web", 0, t=0.0))
    assert [m["token"] for m in matches] == ["abc"]


def test_the_exit_ends_a_stderr_line_too() -> None:
    w, matches = watch(r"token (?P<token>\w+)")
    w(out(b"token xyz", stream="stderr", partial=True))
    w(Exited("web", 0, t=0.0))
    assert [m["token"] for m in matches] == ["xyz"]


def test_a_value_cut_from_an_over_long_line_is_not_taken(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Only the last 64 KiB of an unfinished line are kept for its next piece (64 bytes
    here: a failed search of 64 KiB of digits for (\\d+) open takes the regex engine
    seconds): a value that starts right at that cut may have lost its beginning, so it is
    skipped; a later one on the line is not."""
    monkeypatch.setattr(lines, "MAX_PARTIAL", 64)
    w, matches = watch(r"(?P<port>\d+) open")
    w(out(b"x" * 10 + b"8" * 64, partial=True))
    w(out(b"1 open", partial=True))
    assert matches == []
    w(out(b" and 9090 open\n"))
    assert [m["port"] for m in matches] == ["9090"]


def test_a_start_anchor_does_not_match_at_the_cut() -> None:
    """``^`` means the start of the line, not where an over-long line was cut."""
    w, matches = watch(r"^ready")
    # The cut falls right before "ready": what is kept starts there.
    w(out(b"x" * 10 + b"ready" + b"y" * (MAX_PARTIAL - 5), partial=True))
    w(out(b" now\n"))
    assert matches == []
    w(out(b"ready\n"))
    assert len(matches) == 1


def test_an_over_long_line_keeps_bounded_memory() -> None:
    w, _ = watch(r"never")
    for _ in range(5):
        w(out(b"y" * MAX_PARTIAL, partial=True))
    assert len(w._partial["stdout"]) <= MAX_PARTIAL + 1


def test_a_match_anywhere_in_a_long_piece_is_found() -> None:
    """A piece of an unfinished line far longer than what is kept of it (the framer hands
    a line on in 256 KiB pieces): what it holds is searched before only its end is kept,
    as are the states of a progress line it holds."""
    for separator in (b" ", b"\r"):
        w, matches = watch(r"Server started on (?P<port>\d+)")
        filler = separator.join(b"loading %d" % i for i in range(20_000))
        w(out(filler + separator + b"Server started on 5000" + separator + filler,
              partial=True))
        assert [m["port"] for m in matches] == ["5000"], separator


def test_a_value_before_a_carriage_return_at_the_end_has_ended() -> None:
    """print(..., end="\\r"): the line is unfinished, but the state after the value has
    begun; the value cannot grow, and the member is ready."""
    w, matches = watch(r"started on (?P<port>\d+)")
    w(out(b"loading 50%\rServer started on 5000\r", partial=True))
    assert [m["port"] for m in matches] == ["5000"]
    w, matches = watch(r"started on (?P<port>\d+)")
    w(out(b"Server started on 5000", partial=True))  # (no "\r": 50001 may still come)
    assert matches == []
