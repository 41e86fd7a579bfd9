"""LineFramer: cutting a byte stream into line-aligned pieces."""

from __future__ import annotations

import pytest

from pipeplex.participants import _framing
from pipeplex.participants._framing import LineFramer


class Pieces(list[tuple[bytes, bool]]):
    """Records every ``emit(data, partial)`` call."""

    def __call__(self, data: bytes, partial: bool) -> None:
        self.append((data, partial))

    def joined(self) -> bytes:
        return b"".join(data for data, _ in self)


def framer(max_line: int = _framing.MAX_LINE) -> tuple[LineFramer, Pieces]:
    pieces = Pieces()
    return LineFramer(pieces, max_line=max_line), pieces


def test_whole_lines_go_out_as_one_piece_per_feed() -> None:
    """A flood of short lines goes out as one piece per read."""
    f, pieces = framer()
    f.feed(b"a\nbb\nccc\n")
    f.feed(b"d\n")
    assert pieces == [(b"a\nbb\nccc\n", False), (b"d\n", False)]
    assert not f.pending


def test_line_split_across_feeds_is_joined() -> None:
    """A line that arrives in several reads goes out whole, once its newline arrives."""
    f, pieces = framer()
    f.feed(b"hel")
    assert pieces == []
    f.feed(b"lo\nwor")
    assert pieces == [(b"hello\n", False)]
    f.feed(b"ld\n")
    assert pieces == [(b"hello\n", False), (b"world\n", False)]


def test_unfinished_tail_goes_out_only_on_flush() -> None:
    """What follows the last newline waits, and flush emits it as a partial piece."""
    f, pieces = framer()
    f.feed(b"first\nprompt> ")
    assert pieces == [(b"first\n", False)]
    f.flush()
    assert pieces == [(b"first\n", False), (b"prompt> ", True)]
    assert not f.pending


def test_flush_without_a_tail_emits_nothing() -> None:
    """Flushing after whole lines (or twice) emits no empty piece."""
    f, pieces = framer()
    f.flush()
    f.feed(b"line\n")
    f.flush()
    f.feed(b"x")
    f.flush()
    f.flush()
    assert pieces == [(b"line\n", False), (b"x", True)]


@pytest.mark.parametrize("text", ["café!", "日本!", "🙂!", "aé"])
def test_a_pause_inside_a_character_keeps_its_start_for_the_rest(text: str) -> None:
    """Each piece is decoded on its own downstream: cut at a pause, a character would show
    as two replacement characters. Its start waits; at the end it goes out as it is."""
    data = text.encode()
    for at in range(1, len(data)):
        f, pieces = framer()
        f.feed(data[:at])
        f.flush(whole_characters=True)
        f.feed(data[at:])
        f.flush(whole_characters=True)
        assert pieces.joined() == data
        for piece, partial in pieces:
            assert partial
            piece.decode()  # whole characters in every piece
    f, pieces = framer()
    f.feed("é".encode()[:1])
    f.flush(whole_characters=True)
    assert pieces == [] and f.pending
    f.flush()  # the end: what there is goes out
    assert pieces == [(b"\xc3", True)]


def test_a_pause_inside_an_escape_sequence_keeps_its_start_for_the_rest() -> None:
    """A colour cut by a pause would reach the terminal in two pieces, the second shown as
    text (``1;31mred``)."""
    f, pieces = framer()
    f.feed(b"server up \x1b[1;3")
    f.flush(whole_characters=True)
    f.feed(b"1mred\x1b[0m\n")
    assert pieces == [(b"server up ", True), (b"\x1b[1;31mred\x1b[0m\n", False)]
    f, pieces = framer()
    f.feed(b"\x1b]0;a title")  # (a string not yet ended: all of it waits)
    f.flush(whole_characters=True)
    assert pieces == [] and f.pending
    f.flush()  # the end: what there is goes out
    assert pieces == [(b"\x1b]0;a title", True)]


def test_a_pause_after_bytes_that_are_no_character_start_lets_them_go() -> None:
    f, pieces = framer()
    f.feed(b"ok \xff\x80\x80\x80")
    f.flush(whole_characters=True)
    assert pieces == [(b"ok \xff\x80\x80\x80", True)]


def test_pending_tracks_the_unfinished_line() -> None:
    """``pending`` is true exactly while an unfinished line waits."""
    f, _ = framer()
    assert not f.pending
    f.feed(b"abc")
    assert f.pending
    f.feed(b"def\n")
    assert not f.pending
    f.feed(b"\nxyz")
    assert f.pending
    f.flush()
    assert not f.pending


def test_over_long_ascii_line_goes_out_in_max_line_pieces() -> None:
    """An unfinished line longer than max_line is emitted in partial pieces of max_line."""
    f, pieces = framer(max_line=4)
    f.feed(b"x" * 10)
    assert pieces == [(b"xxxx", True), (b"xxxx", True)]
    assert f.pending
    f.feed(b"y\n")
    assert pieces[2:] == [(b"xxy\n", False)]
    assert pieces.joined() == b"x" * 10 + b"y\n"


@pytest.mark.parametrize("rest", [b"y" * 60 + b"\n", b"y" * 60 + b"\nnext\n",
                                  b"y" * 60 + b"\nnext"])
def test_a_line_that_ends_past_max_line_in_the_next_feed_is_cut_too(rest: bytes) -> None:
    """The unfinished line (under max_line) and the read that ends it: together longer
    than a piece may be, they went out as one piece."""
    f, pieces = framer(max_line=100)
    f.feed(b"x" * 90)
    f.feed(rest)
    f.flush()
    assert all(len(data.partition(b"\n")[0]) <= 100 for data, _ in pieces)
    assert pieces[0] == (b"x" * 90 + b"y" * 10, True)
    assert pieces.joined() == b"x" * 90 + rest


def test_over_long_tail_after_whole_lines() -> None:
    """Whole lines go out first; only the over-long remainder is cut."""
    f, pieces = framer(max_line=4)
    f.feed(b"line\n" + b"z" * 9)
    assert pieces == [(b"line\n", False), (b"zzzz", True), (b"zzzz", True)]
    f.flush()
    assert pieces[-1] == (b"z", True)


@pytest.mark.parametrize(
    ("text", "max_line"),
    [
        ("a\u00e9\u20ac\U0001f600xyz\u00e9\u00e9\u00e9", 6),
        ("\U0001f600" * 5 + "ab", 5),
        ("\u00e9" * 21 + "!", 5),
        ("x\u20ac" * 10, 7),
        ("ab\u0434\u043e\u043c\U0001f3e0\u6f22\u5b57" * 3, 9),
    ],
    ids=["mixed", "four-byte", "two-byte", "three-byte", "cyrillic-cjk"],
)
def test_over_long_line_never_splits_a_utf8_sequence(text: str, max_line: int) -> None:
    """Pieces of an over-long line stay within max_line and each decodes as UTF-8 alone."""
    data = text.encode()
    f, pieces = framer(max_line=max_line)
    f.feed(data)
    f.flush()
    assert len(pieces) > 1
    assert pieces.joined() == data
    for piece, partial in pieces:
        assert partial
        assert 0 < len(piece) <= max_line
        piece.decode("utf-8")  # raises if a multi-byte sequence was cut


@pytest.mark.parametrize("before", range(1, 6))
def test_over_long_line_never_splits_an_escape_sequence(before: int) -> None:
    """A colour that straddles the cut goes whole into the next piece: cut in two, its
    halves would show as text (``^[``, ``[31m``) and the colour would be lost."""
    data = b"x" * (16 - before) + b"\x1b[31mRED" + b"y" * 20
    f, pieces = framer(max_line=16)
    f.feed(data)
    f.flush()
    assert pieces.joined() == data
    for piece, _ in pieces:
        assert piece.count(b"\x1b") == piece.count(b"\x1b[31m"), pieces
        assert piece[:1] in (b"x", b"\x1b", b"R", b"y"), pieces


@pytest.mark.parametrize("chunks", [[b"abcd"], [b"ab", b"cd"]], ids=["one-read", "two-reads"])
def test_unfinished_line_of_exactly_max_line_bytes(chunks: list[bytes]) -> None:
    """An unfinished line exactly max_line long is framed without error or loss."""
    f, pieces = framer(max_line=4)
    for chunk in chunks:
        f.feed(chunk)
    f.feed(b"e\n")
    f.flush()
    assert pieces.joined() == b"abcde\n"
    assert all(len(piece) <= 4 for piece, partial in pieces if partial)


def test_byte_by_byte_feed_never_splits_a_utf8_sequence() -> None:
    """Reads that end inside a character never yield a piece that splits it."""
    data = "ab\u20acc\u00e9\U0001f600\n".encode()
    f, pieces = framer(max_line=4)
    for byte in data:
        f.feed(bytes([byte]))
    assert pieces.joined() == data
    for piece, _ in pieces:
        piece.decode("utf-8")  # raises if a multi-byte sequence was cut


class FakeClock:
    """Stands in for the ``time`` module inside the framer."""

    def __init__(self) -> None:
        self.now = 0.0

    def monotonic(self) -> float:
        return self.now


def test_times_of_last_data_and_of_the_unfinished_line(monkeypatch: pytest.MonkeyPatch) -> None:
    """tail_since keeps the start of the unfinished line while last_data follows every feed."""
    clock = FakeClock()
    monkeypatch.setattr(_framing, "time", clock)
    f, _ = framer()
    clock.now = 1.0
    f.feed(b"ab")
    clock.now = 2.0
    f.feed(b"cd")
    assert (f.tail_since, f.last_data) == (1.0, 2.0)
    clock.now = 3.0
    f.feed(b"\nef")
    assert (f.tail_since, f.last_data) == (3.0, 3.0)
