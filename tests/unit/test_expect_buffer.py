"""OutputBuffer: pexpect-style searching from a cursor over a member's decoded output."""

from __future__ import annotations

import re
import threading
import time
import tracemalloc
from collections.abc import Sequence

import pytest

from pipeplex.expect import buffer as buffer_module
from pipeplex.expect.buffer import (
    CHUNK_COST,
    LOOKBEHIND,
    MAX_BEFORE,
    OutputBuffer,
    SharedOutputBuffer,
)
from pipeplex.expect.patterns import (
    EOF,
    MAX_CANDIDATE_MISSES,
    TIMEOUT,
    compile_pattern,
    line_start_literal,
    search_regex,
)

PIECE = 4096


class CountingPattern:
    """A regex stand-in that counts how many characters each search may scan."""

    def __init__(self, pattern: str) -> None:
        self.regex = compile_pattern(pattern)
        self.pattern = pattern
        self.flags = self.regex.flags
        self.scanned = 0
        self.widest = 0
        self.calls = 0

    def search(self, text: str, pos: int = 0) -> re.Match[str] | None:
        span = len(text) - pos
        self.scanned += span
        self.widest = max(self.widest, span)
        self.calls += 1
        return self.regex.search(text, pos)


def fed(*chunks: bytes) -> OutputBuffer:
    buffer = OutputBuffer()
    for chunk in chunks:
        buffer.feed(chunk)
    return buffer


def regexes(*patterns: str) -> list[re.Pattern[str]]:
    return [compile_pattern(p) for p in patterns]


def test_search_returns_match_before_and_moves_cursor_past_it() -> None:
    """A match yields its index, match and preceding text, and the cursor moves past it."""
    buffer = fed(b"login: alice\nready\n")
    found = buffer.search(regexes("ready"))
    assert found is not None
    assert found.index == 0
    assert found.match.group(0) == "ready"
    assert found.before == "login: alice\n"
    assert buffer.text == "\n"


def test_next_search_starts_at_the_cursor() -> None:
    """A second search sees only what follows the previous match."""
    buffer = fed(b"one two one three\n")
    first = buffer.search(regexes("one"))
    second = buffer.search(regexes("one"))
    assert first is not None
    assert second is not None
    assert first.before == ""
    assert second.before == " two "
    assert buffer.search(regexes("one")) is None
    assert buffer.text == " three\n"


@pytest.mark.parametrize(
    ("pattern", "index"),
    [("^", 1), ("$", 1), (r"\b", None), ("x*", 1), ("(?<=y)", None), ("(?<=\n)", 1)],
)
def test_with_nothing_past_the_cursor_only_empty_matches_are_found(
    pattern: str, index: int | None
) -> None:
    """After a match that ends a line, the next look finds what sre finds at the end (the
    matched newline stays as context for ``^`` and lookbehinds)."""
    buffer = fed(b"ready\n")
    assert buffer.search(regexes("ready\n")) is not None
    found = buffer.search(regexes("never", pattern))
    assert (found and found.index) == index
    if found is not None:
        assert found.match.group(0) == "" and found.before == ""


def test_no_match_keeps_the_text() -> None:
    """A failed search returns None and consumes nothing."""
    buffer = fed(b"nothing here\n")
    assert buffer.search(regexes("missing")) is None
    assert buffer.text == "nothing here\n"
    assert len(buffer) == len("nothing here\n")


def test_search_with_no_patterns_finds_nothing() -> None:
    """An empty pattern list never matches and consumes nothing."""
    buffer = fed(b"abc\n")
    assert buffer.search([]) is None
    assert buffer.text == "abc\n"


@pytest.mark.parametrize(
    ("patterns", "index", "matched"),
    [
        (["world", "hello"], 1, "hello"),
        (["hello", "world"], 0, "hello"),
        (["hel", "hello"], 0, "hel"),
        (["hello", "hel"], 0, "hello"),
        (["o w", "l+o"], 1, "llo"),
    ],
)
def test_earliest_match_wins_and_ties_go_to_the_first_pattern(
    patterns: list[str], index: int, matched: str
) -> None:
    """The match that starts first wins; at the same start, the pattern listed first."""
    found = fed(b"hello world\n").search(regexes(*patterns))
    assert found is not None
    assert (found.index, found.match.group(0)) == (index, matched)


@pytest.mark.parametrize(
    ("pattern", "before", "matched"),
    [
        ("^bar.*$", "foo bar\n", "bar baz"),
        ("bar$", "foo ", "bar"),
        ("^baz", None, None),
        ("^$", "foo bar\nbar baz\n", ""),
    ],
)
def test_anchors_match_at_line_boundaries(
    pattern: str, before: str | None, matched: str | None
) -> None:
    """``^`` and ``$`` match at the start and end of every line, not only of the text."""
    found = fed(b"foo bar\nbar baz\n\n").search(regexes(pattern))
    if before is None:
        assert found is None
    else:
        assert found is not None
        assert (found.before, found.match.group(0)) == (before, matched)


def test_compile_pattern_makes_anchors_multiline_and_keeps_compiled_patterns() -> None:
    """Strings compile with MULTILINE; a precompiled pattern is used as given."""
    assert compile_pattern("x").flags & re.MULTILINE
    given = re.compile("^x")
    assert compile_pattern(given) is given
    assert fed(b"a\nx\n").search([given]) is None


def test_match_split_across_two_feeds_is_found() -> None:
    """A pattern whose text arrives in two pieces matches once the second arrives."""
    buffer = fed(b"server rea")
    assert buffer.search(regexes("ready")) is None
    buffer.feed(b"dy on 8080\n")
    found = buffer.search(regexes(r"ready on (\d+)"))
    assert found is not None
    assert found.match.group(1) == "8080"
    assert found.before == "server "


def test_multibyte_character_split_across_feeds_decodes_whole() -> None:
    """A UTF-8 character cut between two chunks is decoded once both halves are in."""
    buffer = fed(b"caf\xc3")
    assert buffer.text == "caf"
    buffer.feed(b"\xa9 ok\n")
    assert buffer.text == "café ok\n"
    found = buffer.search(regexes("café"))
    assert found is not None
    assert found.before == ""


def test_each_stream_has_its_own_decoder() -> None:
    """Half a character on stdout is not spoiled by stderr bytes arriving in between."""
    buffer = OutputBuffer()
    buffer.feed(b"\xe2\x82", "stdout")
    buffer.feed(b"err\n", "stderr")
    buffer.feed(b"\xac\n", "stdout")
    assert buffer.text == "err\n€\n"


def test_invalid_utf8_is_replaced() -> None:
    """Bytes that are not UTF-8 become U+FFFD rather than failing."""
    assert fed(b"a\xffb\n").text == "a\ufffdb\n"


@pytest.mark.parametrize(
    ("chunks", "text"),
    [
        ([b"a\r\nb\r\n"], "a\nb\n"),
        ([b"a\r", b"\nb\r\n"], "a\nb\n"),
        ([b"a\r", b"\n", b"b\r", b"\n"], "a\nb\n"),
        ([b"a\r", b"\r\n"], "a\n"),  # (a full terminal makes "\r\r\n" of "\r\n")
        ([b"a\r\r\nb\r\r", b"\r\n"], "a\nb\n"),
        ([b"a\r", b"b\n"], "a\nb\n"),
        ([b"50%\r100%\n"], "50%\n100%\n"),  # (a progress line: each state a line)
        # bash on a full terminal: its answer after bracketed paste's end and a "\r"
        ([b"echo $((6*7))\r\n\x1b[?2004l\r42\r\n"], "echo $((6*7))\n42\n"),
        ([b"\r42\n"], "42\n"),
        ([b"a\n", b"\r\rb\n"], "a\nb\n"),
        ([b"a", b"\rb\n"], "a\nb\n"),  # (not at a line's start: the line starts again)
        ([b"\x1b[2K\rServer up\n"], "Server up\n"),
    ],
)
def test_crlf_is_folded_to_lf_even_across_chunks(chunks: list[bytes], text: str) -> None:
    """``\\r\\n`` (or ``\\r\\r\\n``) ends a line like ``\\n``, also when the halves arrive
    apart; a ``\\r`` at a line's start, which moves nothing on the screen, is not there; one
    in a line starts it again, as a line of its own."""
    assert fed(*chunks).text == text


def test_dollar_matches_before_crlf_line_ends() -> None:
    """A line written with ``\\r\\n`` ends where ``$`` expects it."""
    buffer = fed(b"ok\r", b"\nnext\r\n")
    found = buffer.search(regexes("^ok$"))
    assert found is not None
    assert buffer.text == "\nnext\n"


def test_crlf_pending_is_tracked_per_stream() -> None:
    """A ``\\r`` ending a stdout chunk pairs only with a later stdout ``\\n``."""
    buffer = OutputBuffer()
    buffer.feed(b"a\r", "stdout")
    buffer.feed(b"\nerr\n", "stderr")
    buffer.feed(b"\n", "stdout")
    assert buffer.text == "a\n\nerr\n"  # (a, an empty stderr line, err)


def test_an_unfinished_line_ends_where_the_other_streams_text_comes() -> None:
    """A REPL's prompt on stderr, then its answer on stdout: two lines, as they are shown
    (``^answer$`` matches); the prompt's stream, going on, starts a line of its own."""
    buffer = OutputBuffer()
    buffer.feed(b">>> ", "stderr")
    assert buffer.search(regexes(r"^>>> ")) is not None
    buffer.feed(b"42\n", "stdout")
    buffer.feed(b">>> ", "stderr")
    found = buffer.search(regexes(r"^42$"))
    assert found is not None and found.before == "\n"
    buffer.feed(b"half", "stdout")
    buffer.feed(b"more\n", "stderr")
    buffer.feed(b" done\n", "stdout")
    assert buffer.text == "\n>>> \nhalf\nmore\n done\n"


def test_a_line_end_that_the_other_stream_came_before_is_not_a_second_one() -> None:
    buffer = OutputBuffer()
    buffer.feed(b"out", "stdout")
    buffer.feed(b"err\n", "stderr")
    buffer.feed(b"\nnext\n", "stdout")
    assert buffer.text == "out\nerr\nnext\n"


@pytest.mark.parametrize(
    ("chunks", "text"),
    [
        ([b"\x1b[01;32mok\x1b[0m\n"], "ok\n"),
        ([b"fo\x1b[01;31m\x1b[Koba\x1b[m\x1b[Kr\n"], "foobar\n"),  # grep --color
        ([b"\x1b[1G\x1b[0J> \x1b[3G"], "> "),  # node's prompt
        ([b"\x1b]0;title\x07a\x1b]8;;http://x\x1b\\link\x1b]8;;\x1b\\\n"], "alink\n"),
        ([b"\x1b=\x1b(Bx\n"], "x\n"),
        ([b"on \x1b[1", b"mhttp://h:80\x1b", b"[0m\n"], "on http://h:80\n"),
        ([b"a\r\x1b[", b"K\n"], "a\n"),
        ([b"\x1b]0;" + b"x" * 5000], "0;" + "x" * 5000),  # (too long to wait for its end)
        # An unterminated link swallows no line: a string ends at the line's end.
        ([b"see \x1b]8;;http://x\nline A\nline B\x07\n"], "see 8;;http://x\nline A\nline B\x07\n"),
        ([b"see \x1b]8;;http://x\nline A\n", b"line B\x07\n"],
         "see 8;;http://x\nline A\nline B\x07\n"),
    ],
)
def test_escape_sequences_are_not_searched(chunks: list[bytes], text: str) -> None:
    """Colours, cursor moves and titles are not text: a pattern copied from the screen
    matches, also when a sequence is cut between two reads."""
    assert fed(*chunks).text == text


def test_a_sequence_cut_at_a_pause_waits_for_its_rest() -> None:
    buffer = OutputBuffer()
    buffer.feed(b"ready\r\x1b[", "stdout")
    buffer.release("stdout")
    assert buffer.text == "ready\n"  # (its "\r" a line end: the member paused after it)
    buffer.feed(b"0m\n", "stdout")
    assert buffer.text == "ready\n"


def test_match_spanning_lines_within_lookbehind_is_found() -> None:
    """A multi-line match whose start was already scanned is still found later."""
    buffer = fed(b"BEGIN\n")
    pattern = regexes(r"BEGIN\n(?:.*\n)*END")
    assert buffer.search(pattern) is None
    filler = b"".join(b"line %04d of filler text\n" % i for i in range(100))
    assert len(filler) < LOOKBEHIND
    buffer.feed(filler)
    assert buffer.search(pattern) is None
    buffer.feed(b"END\n")
    found = buffer.search(pattern)
    assert found is not None
    assert found.match.group(0).startswith("BEGIN\nline 0000")
    assert found.before == ""


def test_search_after_each_piece_scans_bounded_text(monkeypatch: pytest.MonkeyPatch) -> None:
    """20 MB fed in 4 KiB pieces, searched after each, scans each character a bounded number
    of times (the retained size is lowered to keep the copying in feed cheap here)."""
    monkeypatch.setattr(buffer_module, "MAX_BEFORE", 256 * 1024)
    line = b"x" * 99 + b"\n"
    piece = (line * (PIECE // len(line) + 1))[:PIECE]  # pieces end mid-line
    total = 20 * 1024 * 1024
    pieces = total // PIECE
    buffer = OutputBuffer()
    pattern = CountingPattern("NEVER")
    for _ in range(pieces):
        buffer.feed(piece)
        assert buffer.search([pattern]) is None  # type: ignore[list-item]
    assert pattern.calls == pieces
    # Each search sees at most the look-behind, the new piece and the unfinished line.
    assert pattern.widest <= LOOKBEHIND + PIECE + len(line)
    assert pattern.scanned <= pieces * (LOOKBEHIND + PIECE + len(line))
    buffer.feed(b"NEVER\n")
    found = buffer.search([pattern])  # type: ignore[list-item]
    assert found is not None
    assert buffer.dropped > 0


def test_search_on_one_long_unfinished_line_scans_bounded_text() -> None:
    """Searching after each piece of a line that never ends scans bounded text per search."""
    buffer = OutputBuffer()
    pattern = CountingPattern("NEVER")
    for _ in range(512):  # 2 MiB on one line
        buffer.feed(b"\r" + b"#" * (PIECE - 1))
        assert buffer.search([pattern]) is None  # type: ignore[list-item]
    assert pattern.widest <= 2 * LOOKBEHIND + PIECE


def test_feed_work_does_not_grow_with_retained_text() -> None:
    """Feeding a 4 KiB piece allocates about the piece, not the whole retained text."""
    buffer = OutputBuffer()
    buffer.feed((b"y" * 99 + b"\n") * (1024 * 1024 // 100))
    buffer.feed(b"z" * (1024 * 1024))
    patterns = regexes("NEVER")
    piece = b"p" * (PIECE - 1) + b"\n"
    transient = 0
    tracemalloc.start()
    try:
        for _ in range(256):
            tracemalloc.reset_peak()
            current, _peak = tracemalloc.get_traced_memory()
            buffer.feed(piece)
            buffer.search(patterns)
            _now, peak = tracemalloc.get_traced_memory()
            transient += peak - current
    finally:
        tracemalloc.stop()
    # 256 pieces are 1 MiB; allow amortised copying of a few times that.
    assert transient <= 8 * 1024 * 1024


def test_unmatched_output_is_dropped_beyond_max_before() -> None:
    """Without a match, the buffer stays bounded and ``dropped`` counts what went."""
    buffer = OutputBuffer()
    chunk = (b"z" * 1023 + b"\n") * 1024  # 1 MiB of lines
    fed_chars = 0
    for _ in range(MAX_BEFORE // len(chunk) + 3):
        buffer.feed(chunk)
        fed_chars += len(chunk)
        assert buffer.search(regexes("NEVER")) is None
        assert len(buffer) <= MAX_BEFORE + LOOKBEHIND
    assert fed_chars > MAX_BEFORE + LOOKBEHIND
    assert buffer.dropped > 0
    assert buffer.dropped + len(buffer) == fed_chars
    buffer.feed(b"the end\n")
    found = buffer.search(regexes("^the end$"))
    assert found is not None
    assert found.before.endswith("z\n")


def test_a_buffer_nobody_searches_keeps_the_newest_without_holding_much_more() -> None:
    """Cutting the output nobody searched to the newest MAX_BEFORE takes what went out
    before joining what stays: joining all of it first held five times MAX_BEFORE at the
    moment of each cut (a flooding member cost a plex some 60 MB more than it kept)."""
    buffer = OutputBuffer()
    chunk = (b"f" * 1023 + b"\n") * 64  # 64 KiB of lines, as a read gives them
    tracemalloc.start()
    try:
        for _ in range(3 * MAX_BEFORE // len(chunk)):  # three cuts
            buffer.feed(chunk)
        _now, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert 0 < buffer.dropped < 3 * MAX_BEFORE
    assert buffer.text.endswith("f\n")
    assert peak < 3 * MAX_BEFORE, f"{peak / MAX_BEFORE:.1f} times MAX_BEFORE"


def test_a_buffer_nobody_searches_stays_bounded_though_released_at_every_piece() -> None:
    """An over-long line comes in pieces, each released (as after a pause); nobody searches
    this buffer (another member's, one stream's, or during a wait for an exit): it keeps
    only the newest text, as when it is not released."""
    buffer = OutputBuffer()
    piece = b"x" * (256 * 1024)
    fed = 0
    for _ in range(3 * MAX_BEFORE // len(piece)):
        buffer.feed(piece)
        buffer.release("stdout")
        fed += len(piece)
    assert buffer.dropped > 0  # (read before anything else touches the buffer)
    assert len(buffer) <= 2 * MAX_BEFORE
    assert buffer.dropped + len(buffer) == fed


def _mixed_output(seed: int) -> list[tuple[str, bytes | None]]:
    """Chunks of both streams, with pauses (None), line ends of every kind, escape
    sequences and characters cut between chunks: what a cut must decode as a search would."""
    import random

    rng = random.Random(seed)
    words = [b"alpha", b"\xc3\xa9t\xc3\xa9", b"\r\n", b"\n", b"\r", b"\x1b[31m", b"\x1b[0m",
             b"MARK", b"\xe2\x82\xac", b" ", b"\x1b]0;t\x07"]
    data = {name: b"".join(rng.choice(words) for _ in range(6000)) for name in ("stdout", "stderr")}
    chunks: list[tuple[str, bytes | None]] = []
    at = dict.fromkeys(data, 0)
    while any(at[name] < len(data[name]) for name in data):
        name = rng.choice([n for n in data if at[n] < len(data[n])])
        size = rng.choice([1, 2, 3, 7, 40, 300])
        chunks.append((name, data[name][at[name] : at[name] + size]))
        at[name] += size
        if rng.random() < 0.2:
            chunks.append((name, None))
    return chunks


def _fed_mixed(chunks: list[tuple[str, bytes | None]]) -> OutputBuffer:
    buffer = OutputBuffer()
    for stream, data in chunks:
        if data is None:
            buffer.release(stream)
        else:
            buffer.feed(data, stream)
    return buffer


@pytest.mark.parametrize("seed", range(4))
def test_a_buffer_nobody_searches_keeps_the_text_a_search_would_have_seen(
        seed: int, monkeypatch: pytest.MonkeyPatch) -> None:
    """Taken in piece by piece while nobody searches, and cut to the newest MAX_BEFORE
    characters, the output reads as it would have read whole: its newest characters are
    the same, what went is counted, and a search finds what it would have found there."""
    everything = _mixed_output(seed)
    for end in range(len(everything) // 2, len(everything) + 1, 29):  # (cut at any point)
        chunks = everything[:end]
        with monkeypatch.context() as patched:
            whole = _fed_mixed(chunks).text
            patched.setattr(buffer_module, "MAX_BEFORE", 5000)
            patched.setattr(buffer_module, "_PIECE", 700)
            cut = _fed_mixed(chunks)
            kept = cut.text
        assert cut.dropped > 0
        assert cut.dropped + len(kept) == len(whole)
        assert kept == whole[len(whole) - len(kept) :]
        pattern = regexes(r"^MARK.*|\balpha\b")
        found = cut.search(pattern)
        reference = pattern[0].search(whole, len(whole) - len(kept))
        assert (found is None) == (reference is None)
        if found is not None and reference is not None:
            assert found.match.group(0) == reference.group(0)
            assert found.before == whole[len(whole) - len(kept) : reference.start()]


def test_output_nobody_searched_is_found_after_later_floods() -> None:
    """A line in the newest MAX_BEFORE of output nobody searched is still found, with
    everything after the first kept character in ``before``, however often it was cut."""
    buffer = OutputBuffer()
    chunk = (b"f" * 1023 + b"\n") * 64
    for _ in range(2 * MAX_BEFORE // len(chunk)):
        buffer.feed(chunk)
    buffer.feed(b"HERE\n")
    for _ in range(MAX_BEFORE // 2 // len(chunk)):
        buffer.feed(chunk)
    found = buffer.search(regexes("^HERE$"))
    assert found is not None
    assert found.before.endswith("f\n") and "HERE" not in found.before
    assert buffer.dropped + len(found.before) + len("HERE") + len(buffer) == (
        (2 * MAX_BEFORE // len(chunk) + MAX_BEFORE // 2 // len(chunk)) * len(chunk) + 5)


def test_a_release_lets_go_in_order_with_the_bytes() -> None:
    """A "\\r" held back as the first half of "\\r\\n" comes out where the pause was, and a
    cut character only at the end (final), both before what came after them."""
    buffer = OutputBuffer()
    buffer.feed(b"a\r")
    buffer.release("stdout")
    buffer.feed(b"b\xc3")
    buffer.release("stdout")  # a pause: the cut character may still be completed
    buffer.feed(b"\xa9 c\xc3")
    buffer.release("stdout", final=True)
    assert buffer.text == "a\nb\u00e9 c\ufffd"


@pytest.mark.parametrize("after", [b"\n", b"", b"\r\n"])
def test_a_carriage_return_before_a_pause_ends_its_line_once(after: bytes) -> None:
    """"a\\r", a pause: the line ended there (^ matches what comes next); a "\\n" that
    then comes is the rest of a "\\r\\n", not a second line end."""
    buffer = OutputBuffer()
    buffer.feed(b"a\r")
    buffer.release("stdout")
    assert buffer.search(regexes("^a$")) is not None
    buffer.feed(after)
    buffer.feed(b"b\n")
    assert buffer.search(regexes("^b$")) is not None
    assert fed_text(b"a\r", after, b"b\n") == "a\nb\n"


def fed_text(first: bytes, *rest: bytes) -> str:
    """The text of a buffer fed ``first``, paused after it, then the rest."""
    buffer = OutputBuffer()
    buffer.feed(first)
    buffer.release("stdout")
    for chunk in rest:
        buffer.feed(chunk)
    return buffer.text


def test_a_pattern_anchored_at_a_line_start_matches_after_a_progress_line() -> None:
    """"loading 20%\\rServer started on 5000": the screen shows the server's line on its
    own, and ^Server matches it, in one chunk or in several."""
    for chunks in ([b"loading 0%\rloading 20%\rServer started on 5000\n"],
                   [b"loading 0%\r", b"loading 20%\r", b"Server started on 5000\n"],
                   [b"\rloading 0%", b"\rloading 20%", b"\rServer started on 5000\n"]):
        found = fed(*chunks).search(regexes(r"^Server started on (\d+)$"))
        assert found is not None and found.match[1] == "5000", chunks


def test_dropping_keeps_the_newest_text() -> None:
    """What is dropped is the oldest text; the latest output is kept intact."""
    buffer = OutputBuffer()
    first = b"OLDEST\n" + b"a" * (MAX_BEFORE + LOOKBEHIND)
    buffer.feed(first)
    buffer.feed(b"NEWEST\n")
    assert "OLDEST" not in buffer.text
    assert buffer.text.endswith("a" * 100 + "NEWEST\n")
    assert len(buffer) <= MAX_BEFORE + LOOKBEHIND
    assert buffer.dropped + len(buffer) == len(first) + len(b"NEWEST\n")


@pytest.mark.parametrize(
    ("sentinel", "shown"), [(EOF, "pipeplex.EOF"), (TIMEOUT, "pipeplex.TIMEOUT")]
)
def test_sentinels_are_distinct_and_named(sentinel: object, shown: str) -> None:
    """EOF and TIMEOUT are distinct objects that show their names."""
    assert repr(sentinel) == shown
    assert EOF is not TIMEOUT


def test_found_before_plus_match_plus_text_is_the_output() -> None:
    """Nothing is lost or duplicated between ``before``, the match and the rest."""
    output = "alpha\nbeta 42\ngamma\n"
    buffer = fed(output.encode())
    pieces: list[str] = []
    patterns: Sequence[re.Pattern[str]] = regexes(r"\d+", "gamma")
    while (found := buffer.search(patterns)) is not None:
        pieces += [found.before, found.match.group(0)]
    assert "".join(pieces) + buffer.text == output


# Line-start literals ------------------------------------------------------------------------


@pytest.mark.parametrize(("pattern", "literal"), [
    ("^FINAL-MARK$", "FINAL-MARK"),
    ("^ready on port (\\d+)", "ready on port "),
    ("^abc*", "ab"),
    ("^a?", None),
    ("^a.b", "a"),
    ("^\\d+", None),
    ("^a|b", None),
    ("^(a)", None),
    ("DONE$", None),
])
def test_line_start_literal_is_read_conservatively(pattern: str, literal: str | None) -> None:
    assert line_start_literal(compile_pattern(pattern)) == literal


def test_flags_that_change_literals_turn_it_off() -> None:
    assert line_start_literal(re.compile("^abc", re.MULTILINE | re.IGNORECASE)) is None
    assert line_start_literal(re.compile("^abc", re.MULTILINE | re.VERBOSE)) is None
    assert line_start_literal(re.compile("^abc")) is None  # ^ is the start of the text only


@pytest.mark.parametrize("pattern", ["^x1$", "^x", "^ab*c", "^a.b$", "^x1\\b"])
def test_searching_by_literal_finds_what_sre_finds(pattern: str) -> None:
    regex = compile_pattern(pattern)
    lines = ["ax1", "x1 tail", "x", "abbc", "ac", "a-b", "x1", "zz x1", ""]
    text = "\n".join(lines * (MAX_CANDIDATE_MISSES // 2 + 3)) + "\nx1"
    for pos in range(len(text) + 1):
        ours, sres = search_regex(regex, text, pos), regex.search(text, pos)
        assert (ours and ours.span()) == (sres and sres.span()), pos


def test_a_literal_on_most_lines_hands_over_to_sre() -> None:
    regex = compile_pattern("^w0 DONE$")
    text = "w0 0000000001 xxxx\n" * (MAX_CANDIDATE_MISSES + 5) + "w0 DONE\n"
    match = search_regex(regex, text, 0)
    assert match and match.group(0) == "w0 DONE"


def test_shared_buffer_behaves_like_the_loop_only_one_while_threads_feed_and_search() -> None:
    """The locking buffer of the synchronous API finds the same matches, in order, while
    another thread feeds it; the loop-only buffer fed the same way finds the same."""
    lines = [f"line {i}\n".encode() for i in range(2000)]
    plain = OutputBuffer()
    shared = SharedOutputBuffer()
    feeder = threading.Thread(target=lambda: [shared.feed(line) for line in lines])
    feeder.start()
    found_shared = []
    deadline = time.monotonic() + 30
    while len(found_shared) < len(lines) and time.monotonic() < deadline:
        found = shared.search(regexes(r"line (\d+)\n"))
        if found is not None:
            found_shared.append(found.match[1])
    feeder.join()
    for line in lines:
        plain.feed(line)
    found_plain = [plain.search(regexes(r"line (\d+)\n")) for _ in lines]
    assert found_shared == [str(i) for i in range(2000)]
    assert [f.match[1] for f in found_plain if f is not None] == found_shared
    assert len(shared) == len(plain) == 0
    assert shared.text == plain.text == ""


def test_tiny_chunks_nobody_searches_are_bounded_by_what_they_take() -> None:
    """A member writing two bytes at a time: each chunk is an object of some hundred bytes,
    counted against the bound, so they are taken into the text (two bytes each) in time."""
    buffer = OutputBuffer()
    for _ in range(300_000):
        buffer.feed(b"x\n", "stdout")
        buffer.release("stdout")
    assert len(buffer._fresh) < MAX_BEFORE // CHUNK_COST
    assert buffer.text == "x\n" * 300_000  # (all of it: 600 KB of text is within the bound)


def test_the_plexs_transcript_counts_what_each_event_takes() -> None:
    """Its "last megabyte" held a million two-byte events (some 110 MB) before trimming."""
    from pipeplex._events import Output, Started
    from pipeplex.output.merged import EVENT_COST, TRANSCRIPT_KEEP
    from pipeplex.output.merged import MergedTranscript as _MergedTranscript
    from pipeplex.output.render import Renderer

    transcript = _MergedTranscript(Renderer(["a"]))
    for _ in range(200_000):
        transcript(Output("a", "stdout", b"x\n", False))
    assert len(transcript._events) <= 2 * TRANSCRIPT_KEEP // EVENT_COST
    assert transcript.text().endswith("a | x\n")
    script = "x" * 10_000  # (a spawned script's text: its argv)
    for pid in range(1000):
        transcript(Started("a", pid, ("python3", "-c", script)))
    assert len(transcript._events) <= 2 * TRANSCRIPT_KEEP // len(script) + 1


def test_a_line_sent_ends_the_prompt_it_answers() -> None:
    """python -i takes a line that prints nothing and prompts again, on stderr both times:
    with no terminal to echo the line, the two prompts are two lines, as shown."""
    buffer = OutputBuffer()
    buffer.feed(b">>> ", "stderr")
    buffer.release("stderr")
    assert buffer.search(regexes(r"^>>> ")) is not None
    buffer.new_line("stderr")
    buffer.feed(b">>> ", "stderr")
    found = buffer.search(regexes(r"^>>> $"))
    assert found is not None and found.before == "\n"
    buffer.new_line("stderr")  # (the second prompt answered in turn)
    buffer.feed(b"x\n", "stderr")
    assert buffer.text == "\nx\n"


def test_a_new_line_is_made_only_where_the_streams_own_line_is_unfinished() -> None:
    """After a finished line nothing is added; where the other stream's text left the line
    unfinished, the rule for two streams ends it, once."""
    buffer = OutputBuffer()
    buffer.feed(b"1\n", "stdout")
    buffer.new_line("stderr")
    buffer.feed(b">>> ", "stderr")
    assert buffer.text == "1\n>>> "
    other = OutputBuffer()
    other.feed(b"Name: ", "stdout")
    other.new_line("stderr")
    other.feed(b"warning\n", "stderr")
    other.feed(b"\n", "stdout")
    assert other.text == "Name: \nwarning\n"


def test_a_long_run_of_carriage_returns_is_one_start_of_the_line() -> None:
    """250,000 carriage returns and no line end among them: the line starts again there,
    once. (Their line-end search is tried where the run begins only: from each of them,
    it took 17 s here, where it now takes milliseconds.)"""
    buffer = fed(b"\r" * 250_000 + b"DONE\n")
    assert buffer.text == "DONE\n"  # (at the start of the output: it moves nothing)
    assert buffer.search(regexes("^DONE$")) is not None
