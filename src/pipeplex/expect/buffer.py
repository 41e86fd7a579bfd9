"""A member's output as text, with a cursor, searched in time linear in the output.

pexpect's model: each expectation searches from the cursor; on a match the cursor moves past
it, and ``before`` (what came between), ``after`` (the matched text) and ``match`` are kept.
Patterns (:mod:`.patterns`) see ``^`` and ``$`` at line boundaries; a line is what the
member wrote up to ``\\n``, without a ``\\r`` before it, or up to a carriage return in it
(a progress line's: the screen shows what follows it on a line of its own, as pipeplex
does). As in pexpect, ``$`` also matches at the end of the text received so far, in the
middle of a line still being written: a pattern ends in ``\\n`` to wait for the whole line.

Searching again from the cursor every time a few bytes arrive would cost O(n²) on a big
output. Instead each search starts ``LOOKBEHIND`` characters before where the previous one
ended, so a match may reach that far back into text already searched; a longer one is not
found: a documented limit, like pexpect's ``searchwindowsize``, that keeps the cost linear
however long the wait. Only that window stays in the searched string (so appending is cheap);
older unmatched text is kept aside for ``before``, up to ``MAX_BEFORE`` characters, so memory
stays bounded too.

A buffer nobody searches (a member's stream that no expectation names, another member's
output during a long wait) keeps its newest ``MAX_BEFORE`` characters for the next search,
taken in piece by piece as they come: never joined into one string to be cut again, nor
kept as text beside the bytes it was decoded from (on a flood, those held two to three times
what was kept).
"""

from __future__ import annotations

import codecs
import re
import threading
from collections import deque
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Final

from .._plain_text import LINE_END, plain
from ..errors import ours_in_tracebacks
from .patterns import search_regex

__all__ = (
    "CHUNK_COST",
    "LOOKBEHIND",
    "MAX_BEFORE",
    "Found",
    "OutputBuffer",
    "SharedOutputBuffer",
)
__tracebackhide__ = ours_in_tracebacks  # (pytest: see there)

LOOKBEHIND = 4096
MAX_BEFORE = 8 * 1024 * 1024
CHUNK_COST = 96
"""About what a chunk fed takes besides its bytes, counted against MAX_BEFORE until it is
taken into the text: a member writing a few bytes at a time fills memory with the chunks'
objects, not their bytes."""
_PIECE = 1024 * 1024
"""About how much fresh input a buffer nobody searches decodes at once: what it holds besides
what it keeps."""

_CR_AT_LINE_START = re.compile(r"(?<=\n)\r+")
"""Carriage returns at a line's start (after the line ends are made ``\\n``)."""
_CR = re.compile(r"\r+")
"""Carriage returns within a line (the others gone by then): each starts the line again."""


class _Release:
    """In a buffer's fresh input: where its stream paused (or ended, ``final``)."""

    __slots__ = ("final",)

    def __init__(self, final: bool) -> None:
        self.final = final


_PAUSE: Final = _Release(False)
_END: Final = _Release(True)
_NEW_LINE: Final = _Release(False)
"""Where the stream's next text starts a line of its own (see :meth:`OutputBuffer.new_line`)."""
_DECODED: Final = _Release(False)
"""Where the text taken in while nobody searched goes (first in the fresh input, whose
older part it is: see :meth:`OutputBuffer._keep_newest`)."""


@dataclass(slots=True)  # made on every successful search, read once: not frozen (slower)
class Found:
    """A successful search: which pattern, its match, and the text before it."""

    index: int
    match: re.Match[str]
    before: str


class OutputBuffer:
    """One member's decoded output (one stream, or both interleaved) and its cursor.

    Used from one thread only (the loop's); :class:`SharedOutputBuffer` is the one that a
    synchronous caller may search from its own thread.

    The search window ``_text`` may start with one *context* character (``_ctx``): the
    character just before the window, kept so that ``^`` and ``\b`` see the real line
    around the cursor. Searches start after it.
    """

    def __init__(self) -> None:
        self._text = ""
        self._ctx = 0
        """1 when ``_text[0]`` is a context character, else 0."""
        self._scan_from = 0
        """Where the next search starts in the window."""
        self._fresh: list[tuple[str, bytes | _Release]] = []
        """Bytes fed since the last search, decoded into the window only when searching:
        feeding costs nothing while no expectation looks at this buffer. Releases go in
        between them, in order."""
        self._fresh_size = 0
        self._fresh_limit = MAX_BEFORE
        """How much fresh input is taken in, once nobody searched it (see
        :meth:`_keep_newest`): less while the text taken in so takes room."""
        self._decoded: deque[str] = deque()
        """Fresh input taken in while nobody searched, oldest first: the window's next text,
        where ``_DECODED`` is in the fresh input."""
        self._decoded_size = 0
        self._aside: deque[str] = deque()
        """Searched, unmatched text before the window, oldest first (for ``before``)."""
        self._aside_size = 0
        self._decoders: dict[str, codecs.IncrementalDecoder] = {}
        """Per stream, a decoder holding the start of a character cut at a chunk's end."""
        self._line_started: dict[str, bool] = {}
        """Per stream, whether its text so far ends at a line's start."""
        self._held: dict[str, str] = {}
        """Per stream, the end of its text that what follows may change: "\\r" that may be
        the first half of "\\r\\n", an escape sequence cut short."""
        self._stream: str | None = None
        """The stream of the last text taken in (see :meth:`_absorb`)."""
        self._ended: set[str] = set()
        """Streams whose unfinished line the other's text ended: their own line end, when
        it comes, is not a second one."""
        self.dropped = 0
        """Characters of unmatched output dropped to keep memory bounded."""
        self.dropped_unsearched = 0
        """Of those, the ones dropped since the last match (what a failed search missed)."""
        self.waited_on = False
        """Whether an expectation waits on this cursor (a second one would race it)."""

    def __len__(self) -> int:
        self._absorb()
        return self._aside_size + len(self._text) - self._ctx

    @property
    def text(self) -> str:
        """What is after the cursor (less what was dropped beyond MAX_BEFORE)."""
        self._absorb()
        return "".join([*self._aside, self._text[self._ctx :]])  # (one copy of it all)

    def feed(self, data: bytes, stream: str = "stdout") -> None:
        self._fresh.append((stream, data))
        self._fresh_size += len(data) + CHUNK_COST
        if self._fresh_size > self._fresh_limit:
            self._keep_newest()

    def _keep_newest(self) -> None:
        """Nobody is searching: take the fresh input in as text, keeping the newest
        MAX_BEFORE characters after the cursor (set aside, in the window, or taken in here).

        About a megabyte is decoded at a time, its bytes let go as it is, and the oldest
        text goes in whole pieces: what is kept is never joined into one string here (the
        next search does that), and never held twice. Once that text takes room, less fresh
        input is held before it is taken in (``_fresh_limit``): the bytes and the text of a
        flood are not both kept.
        """
        fresh = self._fresh
        start = 1 if fresh and fresh[0][1] is _DECODED else 0
        while len(fresh) > start:
            end, size = start, 0
            while end < len(fresh) and size < _PIECE:
                data = fresh[end][1]
                size += CHUNK_COST + (len(data) if type(data) is bytes else 0)
                end += 1
            after = self._decoded[-1] if self._decoded else self._text
            text = "".join(self._taken(fresh[start:end], after))
            del fresh[start:end]
            if text:
                self._decoded.append(text)
                self._decoded_size += len(text)
            excess = (self._aside_size + len(self._text) - self._ctx + self._decoded_size
                      - MAX_BEFORE)
            if excess > 0:
                self._drop_oldest(excess)
        fresh[:] = [(self._stream or "stdout", _DECODED)] if self._decoded else []
        self._fresh_size = len(fresh) * CHUNK_COST
        self._fresh_limit = max(MAX_BEFORE // 8, MAX_BEFORE - self._decoded_size)

    def _drop_oldest(self, count: int) -> None:
        """Drop the oldest ``count`` characters after the cursor: set aside, then the
        window's, then those taken in while nobody searched. When the window's go, the
        last of them stays as its context character."""
        self.dropped += count
        self.dropped_unsearched += count
        gone, _ = _cut_front(self._aside, count)
        self._aside_size -= gone
        count -= gone
        if count <= 0:
            return
        window = len(self._text) - self._ctx
        if count < window:
            cut = self._ctx + count - 1  # (the last character to go: the context)
            self._text = self._text[cut:]
            self._scan_from = max(1, self._scan_from - cut)
            self._ctx = 1
            return
        gone, last = _cut_front(self._decoded, count - window)
        self._decoded_size -= gone
        self._text = last or self._text[-1:]
        self._ctx = self._scan_from = len(self._text)

    def _decode(self, data: bytes, stream: str) -> str:
        if stream in self._decoders:  # it holds the start of a character from a chunk before
            text = self._decode_rest(data, stream)
        else:
            try:  # the common case, whole characters: bytes.decode is several times faster
                text = data.decode()
            except UnicodeDecodeError:  # a character cut at the end, or invalid bytes
                text = self._decode_rest(data, stream)
        if self._held and stream in self._held:
            text = self._held.pop(stream) + text
        if "\r" in text or "\x1b" in text:
            text = self._settle(text, stream)
        if text:
            self._line_started[stream] = text[-1] == "\n"
        return text

    def _settle(self, text: str, stream: str) -> str:
        """The text as read (see :mod:`.._plain_text`): escape sequences out, "\\r\\n" (and
        "\\r\\r\\n") a line end; its end held back when the next chunk may change it."""
        text, held = plain(text)
        if text.endswith("\r"):
            body = text.rstrip("\r")
            text, held = body, text[len(body) :] + held
        if held:
            self._held[stream] = held
        if "\r" not in text:
            return text
        text = LINE_END.sub("\n", text)
        # A carriage return at a line's start moves nothing on the screen: bash on a full
        # terminal writes its answer after one (once its escape sequences are out), and
        # ^42$ must match it. One in a line starts the line again (a progress line's
        # "loading 20%\rServer started": ^Server must match); what it overwrote stays, a
        # line of its own, to be waited for too.
        text = _CR_AT_LINE_START.sub("", text)
        if text[:1] == "\r" and self._line_started.get(stream, True):
            text = text.lstrip("\r")
        return _CR.sub("\n", text)

    def release(self, stream: str, *, final: bool = False) -> None:
        """Stop holding back the end of ``stream``'s output: a "\\r" that may have been the
        first half of "\\r\\n" (the member paused after it, or ended) and, when its output
        is over (``final``), the start of a character that will never be completed.

        Taken in order with the bytes when the buffer is next searched, like them: a buffer
        nobody searches keeps only its newest ``MAX_BEFORE``, however often it is released
        (an over-long line is released at each of its pieces).
        """
        self._fresh.append((stream, _END if final else _PAUSE))
        self._fresh_size += CHUNK_COST
        if self._fresh_size > self._fresh_limit:
            self._keep_newest()

    def new_line(self, stream: str) -> None:
        """``stream``'s next text starts a line of its own: a prompt again, right after a
        line sent answered the one before, with no terminal to echo that line
        (:attr:`Output.new_line`). The stream's unfinished line, if the text still ends in
        it, ends there."""
        self._fresh.append((stream, _NEW_LINE))
        self._fresh_size += CHUNK_COST

    def _let_go(self, stream: str, final: bool) -> tuple[str, bool]:
        """What ``stream`` held back, now (a pause, or its ``final`` end); and whether it
        ended a line with a carriage return (a "\\n" that comes next is not a second end)."""
        text = self._held.pop(stream, "") if self._held else ""
        if text and not final and (escape := text.find("\x1b")) >= 0:
            # (a sequence cut short waits for the rest)
            text, self._held[stream] = text[:escape], text[escape:]
        if final and stream in self._decoders:
            text += self._decoders.pop(stream).decode(b"", final=True)
        if text[:1] != "\r":
            return text, False
        # A "\r" the member paused after (or ended at), not "\r\n": the line starts again.
        body = text.lstrip("\r")
        if self._line_started.get(stream, True):
            return body, False
        return "\n" + body, True

    def _decode_rest(self, data: bytes, stream: str) -> str:
        """Decode with the stream's incremental decoder, kept only while it holds the start
        of a character (so the common path is one dict test)."""
        decoder = self._decoders.pop(stream, None)
        if decoder is None:
            decoder = codecs.getincrementaldecoder("utf-8")("replace")
        text = decoder.decode(data)
        if decoder.getstate()[0]:
            self._decoders[stream] = decoder
        return text

    def _absorb(self) -> None:
        """Take the fresh input into the window. When one stream's text follows the
        other's unfinished line (a prompt on stderr, then the answer on stdout), that line
        ends there, as it is shown: ``^answer$`` matches."""
        fresh = self._fresh
        if fresh:
            if len(fresh) == 1 and type(data := fresh[0][1]) is bytes and (
                    fresh[0][0] == self._stream) and not self._ended:
                self._text += self._decode(data, fresh[0][0])  # a round trip's answer
            else:
                self._text += "".join(self._taken(fresh, self._text))
            fresh.clear()
            self._fresh_size = 0

    def _taken(self, fresh: Iterable[tuple[str, bytes | _Release]], after: str) -> Iterator[str]:
        """The text of ``fresh``, which follows the text ``after`` (the window's, or what
        was taken in after it)."""
        last, text = self._stream, after
        unfinished = bool(text) and text[-1] != "\n"
        for stream, data in fresh:
            cr_ended = False
            if type(data) is bytes:
                text = self._decode(data, stream)
            elif data is _DECODED:  # (taken in already: its line ends are settled)
                if self._decoded:
                    unfinished = self._decoded[-1][-1] != "\n"
                    yield from self._decoded
                self._decoded.clear()
                self._decoded_size = 0
                self._fresh_limit = MAX_BEFORE
                continue
            elif data is _NEW_LINE:
                if unfinished and stream == last:  # (the other's line: see below)
                    yield "\n"
                    unfinished = False
                continue
            else:
                text, cr_ended = self._let_go(stream, data.final)  # type: ignore[union-attr]
                if text:
                    self._line_started[stream] = text[-1] == "\n"
            if text and self._ended and stream in self._ended:
                self._ended.discard(stream)
                text = text.removeprefix("\n")
            if cr_ended:
                self._ended.add(stream)
            if text:
                if unfinished and stream != last:
                    assert last is not None
                    self._ended.add(last)
                    yield "\n"
                yield text
                last, unfinished = stream, text[-1] != "\n"
        self._stream = last

    def search(self, patterns: Sequence[re.Pattern[str]]) -> Found | None:
        """Search from the cursor; on a match, advance the cursor past it.

        The earliest match in the output wins; between matches at the same place, the
        pattern listed first (as in pexpect). With no patterns (an expectation of EOF or
        TIMEOUT only) nothing is found.
        """
        if not self._fresh and len(self._text) <= self._scan_from:
            # Nothing new past the cursor (a round trip's first look, before the answer):
            # only an empty match is possible, and there is nothing to set aside.
            for index, regex in enumerate(patterns):
                match = regex.search(self._text, self._scan_from)
                if match is not None:
                    return self._found(index, match)
            return None
        self._absorb()
        text, scan_from = self._text, self._scan_from
        if len(patterns) == 1:
            index = 0
            match = search_regex(patterns[0], text, scan_from)
        else:
            index, match = 0, None
            for i, regex in enumerate(patterns):
                found = search_regex(regex, text, scan_from)
                if found and (match is None or found.start() < match.start()):
                    index, match = i, found
        if match is None:
            self._slide()
            return None
        return self._found(index, match)

    def _found(self, index: int, match: re.Match[str]) -> Found:
        self.dropped_unsearched = 0
        before = self._text[self._ctx : match.start()]
        if self._aside:  # (one join: the text set aside is up to MAX_BEFORE)
            before = "".join([*self._aside, before])
            self._aside.clear()
            self._aside_size = 0
        end = match.end()
        if end > 0:
            # The last matched character stays as context for the next search.
            self._text = self._text[end - 1 :]
            self._ctx = self._scan_from = 1
        return Found(index, match, before)

    def _slide(self) -> None:
        """After a failed search: keep LOOKBEHIND characters to search again (plus one of
        context) and set the rest aside, dropping the oldest beyond MAX_BEFORE."""
        keep_from = len(self._text) - LOOKBEHIND - 1
        if keep_from <= self._ctx:
            return
        # text[keep_from] goes aside and also stays as the window's context character.
        self._aside.append(self._text[self._ctx : keep_from + 1])
        self._aside_size += keep_from + 1 - self._ctx
        self._text = self._text[keep_from:]
        self._ctx = self._scan_from = 1
        excess = self._aside_size - MAX_BEFORE
        if excess > 0:
            self._drop_oldest(excess)  # (set aside only: it holds more than that)


def _cut_front(pieces: deque[str], count: int) -> tuple[int, str]:
    """Take up to ``count`` characters off the front of ``pieces``: how many went, and the
    last of them ("" when none)."""
    gone, last = 0, ""
    while pieces and gone < count:
        oldest = pieces[0]
        cut = min(len(oldest), count - gone)
        last = oldest[cut - 1]
        if cut == len(oldest):
            pieces.popleft()
        else:
            pieces[0] = oldest[cut:]
        gone += cut
    return gone, last


class SharedOutputBuffer(OutputBuffer):
    """An :class:`OutputBuffer` that the loop feeds while a synchronous API caller searches
    it from its own thread: every access holds a lock.

    A class of its own so that the loop-only buffer, on every round trip's path, neither
    takes a lock (a quarter of a microsecond each) nor tests whether it has one.
    """

    def __init__(self) -> None:
        super().__init__()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        with self._lock:
            return super().__len__()

    @property
    def text(self) -> str:
        with self._lock:
            return super().text

    def feed(self, data: bytes, stream: str = "stdout") -> None:
        with self._lock:
            super().feed(data, stream)

    def search(self, patterns: Sequence[re.Pattern[str]]) -> Found | None:
        with self._lock:
            return super().search(patterns)

    def release(self, stream: str, *, final: bool = False) -> None:
        with self._lock:
            super().release(stream, final=final)

    def new_line(self, stream: str) -> None:
        with self._lock:
            super().new_line(stream)
