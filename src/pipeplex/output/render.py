"""How the merged stream looks: ``NAME | text``, one member's lines under its own prefix.

Rendering works on whole chunks: a chunk of complete lines gets its prefixes with one
``bytes.replace``, which is what keeps pipeplex fast under a flood of output. The format:

- ``NAME | text`` for stdout, ``NAME ! text`` for stderr, ``NAME * text`` for pipeplex's
  own notes about a member, ``pipeplex * text`` for notes about the run;
- names left-aligned and padded to the longest member name;
- with ``timestamps``, ``HH:MM:SS.mmm`` before the name;
- with colour, each member's prefix in its own colour, the stderr marker in red, and a
  reset before every prefix so a member's colours never leak into the next line.

A line that was cut (a prompt, a piece of an over-long line, an unfinished last line)
still ends the rendered line: the next piece starts under a fresh prefix.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Iterable, Mapping
from typing import Literal

from .._events import Event, Exited, InputSent, Note, Output, Ready, Started
from .._printable import printable
from .._signals import describe_returncode, stopped_by

__all__ = ("ColorMode", "Renderer", "forces_color", "use_color")

ColorMode = Literal["auto", "always", "never"]

RESET = b"\x1b[0m"
PALETTE = (b"36", b"33", b"32", b"35", b"34", b"96", b"93", b"92", b"95", b"94")
ERR_MARK = b"\x1b[1;31m!\x1b[0m"
NOTE_STYLE = {"info": b"2", "warning": b"33", "error": b"1;31"}

# What a member writes that would move the cursor or rewrite the screen. Colours (SGR,
# ESC [ ... m), erasing the rest of the line (ESC [ K, which grep and compilers write after
# each colour) and tabs pass through. Other escape sequences (cursor moves, titles, modes:
# a REPL drawing its prompt) are left out, as they mean nothing in a merged stream; a lone
# ESC, other control characters and C1 ones (U+0080 to U+009F, in UTF-8: U+009B is a CSI to
# some terminals) are shown escaped (^[, ^G, \x9b); a lone CR ends the line on display. A
# string (a title, a link) missing its terminator ends no later than its line: it must not
# take the lines after it.
_UNSAFE = re.compile(
    rb"\r\n|(?P<kept>\x1b\[[0-9;:]*m|\x1b\[0?K)"
    rb"|\x1b(?:\[[0-?]*[ -/]*[@-~]|[\]P^_X][^\x07\x1b\n]*(?:\x07|\x1b\\)|[ -/]*[0-~])"
    rb"|[\x00-\x08\x0b-\x1f\x7f]|\xc2[\x80-\x9f]"
)

_CR_AT_END = re.compile(rb"(?<!\r)\r+(?=\n|\Z)")
"""Carriage returns before a line's end: they end no line of their own. (Tried only where a
run of them begins: from every CR of a long run, the search was quadratic in it.)"""


def _last_states(data: bytes) -> bytes:
    """Each line as a terminal leaves it: without what a carriage return in it has the
    terminal write over (a progress bar's earlier states: the last one shows, once a line,
    not a line per update). Linear in the data, whatever a member writes."""
    data = _CR_AT_END.sub(b"", data)
    if b"\r" not in data:
        return data
    return b"\n".join(line[line.rfind(b"\r") + 1:] for line in data.split(b"\n"))


SHOWN_VALUE = 200
"""Characters of a captured value shown in a member's ``ready:`` line; the rest is counted."""


def _value(value: str, *, escape: bool) -> str:
    """A captured value as a ``ready:`` line shows it: a long one cut, and, where the note
    itself is not made safe (a file or a pipe, where members' lines are left as written),
    its control characters escaped: it is a program's output, in pipeplex's own line."""
    if len(value) > SHOWN_VALUE:
        value = f"{value[:SHOWN_VALUE]}... ({len(value):,} characters)"
    return printable(value) if escape else value


def use_color(mode: ColorMode, isatty: bool, environ: Mapping[str, str] = os.environ) -> bool:
    """Decide whether to colour: the flag, then NO_COLOR, then FORCE_COLOR, then the tty."""
    if mode != "auto":
        return mode == "always"
    if environ.get("NO_COLOR"):
        return False
    if forces_color(environ):
        return True
    return isatty and environ.get("TERM") != "dumb"


def forces_color(environ: Mapping[str, str] = os.environ) -> bool:
    """Whether ``FORCE_COLOR`` asks for colours: set, and not empty, ``0`` or ``false``,
    which the tools that read it (Node's among them) take for "off"."""
    return environ.get("FORCE_COLOR", "").strip().lower() not in ("", "0", "false")


_FONT_PARAM = re.compile(rb"(?<![0-9:])(?:0*1[0-9]|[0-9]{10,})(?![0-9:])")
"""An SGR parameter from 10 to 19, perhaps (a colour's index, as in ``38;5;11``, too; or
one so long that the Linux console's count wraps around to it)."""


def _without_fonts(sgr: bytes) -> bytes:
    """``sgr`` without its parameters 10 to 19 (``012`` too): fonts, and on the Linux
    console the character mapping and the display of control characters (11, 12), which
    the reset at a line's end does not undo. A colour's own numbers (``38;5;N``,
    ``38;2;R;G;B``) stay; a colour cut short (``38;2;10;11``) is not one, nor is the
    underline colour ``58;...``, which the Linux console does not know: it reads the
    numbers after those as they are, and an unsigned count wraps (4294967308 is 12)."""
    params = sgr[2:-1].split(b";")
    kept: list[bytes] = []
    i = 0
    while i < len(params):
        param = params[i]
        if param in (b"38", b"48") and i + 1 < len(params):
            size = {b"5": 3, b"2": 5}.get(params[i + 1], 0)
            if size and i + size <= len(params):
                kept += params[i:i + size]
                i += size
                continue
        if not (param.isdigit() and 10 <= int(param) % 2**32 <= 19):
            kept.append(param)
        i += 1
    return b"\x1b[" + b";".join(kept) + b"m" if kept else b""


def _escape_control(m: re.Match[bytes]) -> bytes:
    found = m[0]
    if found == b"\r\n":
        return b"\n"
    if m.lastgroup == "kept":
        if found[-1] == 0x6D and _FONT_PARAM.search(found, 2):  # (m: an SGR)
            return _without_fonts(found)
        return found
    code = found[0]
    if code == 0x1B and len(found) > 1:
        return b""
    if code == 0x0D:
        return b"\n"
    if code == 0x1B:
        return b"^["
    if code == 0xC2:  # a C1 control character
        return b"\\x" + b"%02x" % found[1]
    return b"^" + bytes([code ^ 0x40])


class Renderer:
    """Formats events as bytes for a terminal or a file."""

    def __init__(
        self,
        names: Iterable[str],
        *,
        color: bool = False,
        timestamps: bool = False,
        sanitize: bool = False,
        crlf_names: Iterable[str] = (),
    ) -> None:
        names = list(names)
        self.width = max((len(n) for n in names), default=0)
        self.color = color
        self.timestamps = timestamps
        self.sanitize = sanitize
        """Escape cursor-moving control sequences (for a terminal)."""
        self._crlf = set(crlf_names)
        self._out: dict[str, bytes] = {}
        self._err: dict[str, bytes] = {}
        self._note: dict[str, bytes] = {}
        self._input: dict[str, bytes] = {}
        self._cut_out: set[str] = set()
        self._cut_err: set[str] = set()
        """Members whose last stdout (stderr) piece was cut before its line's end: that
        piece was shown as a line, so the newline that ends it later is not another."""
        self._colors = {name: PALETTE[i % len(PALETTE)] for i, name in enumerate(names)}
        for name in names:
            self._add(name)
        self._stamp_second = -1
        self._stamp_text = ""

    @property
    def prefix_width(self) -> int:
        """Columns before a member's text: its name's column, the mark, and the timestamp
        (a member's terminal is as wide as ours, less these)."""
        return self.width + 3 + (len("HH:MM:SS.mmm ") if self.timestamps else 0)

    def _add(self, name: str) -> str:
        label = name.ljust(self.width).encode()
        if self.color:
            code = self._colors.setdefault(name, PALETTE[len(self._colors) % len(PALETTE)])
            colored = b"\x1b[" + code + b"m" + label + RESET
            self._out[name] = RESET + colored + b" | "
            self._err[name] = RESET + colored + b" " + ERR_MARK + b" "
            self._note[name] = RESET + colored + b" * "
            self._input[name] = RESET + colored + b" > "
        else:
            self._out[name] = label + b" | "
            self._err[name] = label + b" ! "
            self._note[name] = label + b" * "
            self._input[name] = label + b" > "
        return name

    def _stamp(self, t: float) -> bytes:
        second = int(t)
        if second != self._stamp_second:
            self._stamp_second = second
            self._stamp_text = time.strftime("%H:%M:%S", time.localtime(t))
        stamp = f"{self._stamp_text}.{int((t - second) * 1000):03d} ".encode()
        return RESET + b"\x1b[2m" + stamp + RESET if self.color else stamp

    def render(self, event: Event) -> bytes:
        """The bytes to show for ``event`` (possibly empty)."""
        if isinstance(event, Output):
            return self.render_output(event)
        if isinstance(event, Note):
            return self.render_note(event.text, event.name, event.level, event.t)
        if isinstance(event, Started):
            self._cut_out.discard(event.name)  # (a new run's lines are its own)
            self._cut_err.discard(event.name)
            if event.terminal:  # (one spawned as the cast runs: an API's plex)
                self._crlf.add(event.name)
            return self.render_note(f"started (pid {event.pid})", event.name, "info", event.t)
        if isinstance(event, Exited):
            level = "info" if event.returncode == 0 or event.stopped else "warning"
            text = describe_returncode(event.returncode)
            if event.stopped:
                by = stopped_by(event.returncode, event.stop_signal)
                text = f"stopped by {by}" if by else f"stopped: {text}"
                if by is None and event.returncode < 0:  # (a crash on its way out)
                    level = "warning"
            return self.render_note(text, event.name, level, event.t)
        if isinstance(event, Ready):
            found = ", ".join(f"{k}={_value(v, escape=not self.sanitize)}"
                              for k, v in event.variables)
            return self.render_note(f"ready{': ' + found if found else ''}", event.name,
                                    "info", event.t)
        return b""

    def render_output(self, event: Output) -> bytes:
        name = event.name
        table = self._err if event.stream == "stderr" else self._out
        prefix = table.get(name)
        if prefix is None:
            self._add(name)
            prefix = table[name]
        data = event.data
        if name in self._crlf:
            data = data.replace(b"\r\n", b"\n")
        cut = self._cut_err if event.stream == "stderr" else self._cut_out
        if data[:1] == b"\r" and self.sanitize:
            # A progress bar's "\r" first: the line it would end is empty, or ended already.
            data = data.lstrip(b"\r")
        if cut and name in cut:
            # The end of the line shown in pieces (a prompt's, a slow one): no line of its own.
            if data[:1] == b"\n":
                data = data[1:]
            elif data[:2] == b"\r\n":
                data = data[2:]
        if event.partial:
            cut.add(name)
        elif name in cut:
            cut.discard(name)
        if not data:
            return b""
        colored = False
        if self.sanitize:  # (a file or a pipe gets the bytes as they were written)
            if not data.isascii():
                data = data.decode("utf-8", "replace").encode("utf-8")
            if b"\r" in data:
                data = _last_states(data)
            if _UNSAFE.search(data):
                data = _UNSAFE.sub(_escape_control, data)
                colored = b"\x1b[" in data
        if self.timestamps:
            prefix = self._stamp(event.t) + prefix
        if colored:  # a colour ends with its line, not in the next one's prefix
            each = data.split(b"\n")
            if data.endswith(b"\n"):
                each.pop()
            return b"".join(prefix + line + (RESET + b"\n" if b"\x1b[" in line else b"\n")
                            for line in each)
        end = b"\n"
        # Two copies of a flood's chunk, not four: the prefix goes after every line end
        # (one), the last one's taken off again (a view), and a join puts one before the
        # first (two).
        if data.endswith(b"\n"):
            lines = memoryview(data.replace(b"\n", end + prefix))[:-len(prefix)]
            return b"".join((prefix, lines))
        return b"".join((prefix, data.replace(b"\n", end + prefix), end))

    def render_input(self, event: InputSent) -> bytes:
        """What was sent to a member's stdin, as ``NAME > line`` (``NAME > [EOF]`` for its
        end; ``NAME > text [no newline]`` for a send that did not end its line, which the
        member may still be waiting to finish): for reports, where what a test sent
        belongs beside what came back."""
        prefix = self._input.get(event.name) or self._input[self._add(event.name)]
        if self.timestamps:
            prefix = self._stamp(event.t) + prefix
        if event.eof:
            return prefix + b"[EOF]\n"
        data = event.data.decode("utf-8", "replace").encode("utf-8")
        if self.sanitize and _UNSAFE.search(data):
            data = _UNSAFE.sub(_escape_control, data)
        if data.endswith(b"\n"):
            data = data[:-1]
        else:
            data += b" [no newline]"
        return prefix + data.replace(b"\n", b"\n" + prefix) + b"\n"

    def render_note(self, text: str, name: str | None, level: str, t: float) -> bytes:
        if name is None:
            prefix = b"pipeplex * "
            if self.color:
                prefix = RESET + b"\x1b[1mpipeplex" + RESET + b" * "
        else:
            prefix = self._note.get(name) or self._note[self._add(name)]
        body = text.encode("utf-8", "replace")
        if self.sanitize and _UNSAFE.search(body):  # (a member's text: a ready's values...)
            body = _UNSAFE.sub(_escape_control, body)
        if self.color:
            body = b"\x1b[" + NOTE_STYLE.get(level, b"2") + b"m" + body + RESET
        if self.timestamps:
            prefix = self._stamp(t) + prefix
        return prefix + body.replace(b"\n", b"\n" + prefix) + b"\n"
