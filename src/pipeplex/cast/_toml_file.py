"""A cast or scenario file read as TOML: a regular file (a named pipe is refused, never
waited on), UTF-8, tomllib's slips said in words at their line and column; and
:class:`_Where`, which finds the line of a key for the messages about its value. Apart from
:mod:`.load`, which builds members from what is read here: this is about the file, not about
what a cast says."""


from __future__ import annotations

import errno
import os
import re
import stat
import sys
from typing import TYPE_CHECKING, Any

from .._file_kind import file_kind
from ..errors import CastError, ours_in_tracebacks

if TYPE_CHECKING:
    import tomllib

    from ._toml_lines import KeyLines


__all__ = ("parse_toml", "read_toml")
__tracebackhide__ = ours_in_tracebacks  # (pytest: see there)


MAX_FILE = 16 * 2**20
"""The most a cast or scenario file may hold: its text is kept for messages."""


class _Where:
    """Turns a key path into ``file:line`` for messages."""

    def __init__(self, path: str | None, text: str | None) -> None:
        self.path = path
        self.text = text
        self._lines: KeyLines | None = None

    def __call__(self, *keys: str | int) -> str | None:
        if self.path is None:
            return None
        if self.text is None:
            return self.path
        if self._lines is None:  # read once: a loader asks for every key of the file
            from ._toml_lines import KeyLines  # only with a file: kept out of -p runs

            self._lines = KeyLines(self.text)
        line = self._lines.line(keys)
        return f"{self.path}:{line}" if line else self.path


def read_toml(path: str | os.PathLike[str], what: str) -> tuple[str, str, dict[str, Any]]:
    """The file's name as shown in messages, its text, and its parsed TOML.

    Raises:
        CastError: missing, not a regular file (a named pipe is refused, never waited
            on), unreadable, or not TOML (with line and column).
    """
    shown = os.fspath(path)
    try:
        # Not blocking: opening a named pipe (run/all.in, given by mistake) would wait for a
        # writer, and the stop signals are held while the cast loads, so Ctrl-C could not
        # end the wait. What is open is then known by fstat, before anything is read.
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except FileNotFoundError:
        raise CastError(f"no such {what}{_dangling(path)}", source=shown) from None
    except OSError as exc:
        kind = _kind_at(path) if exc.errno == errno.ENXIO else None  # (a socket)
        raise CastError(f"this is {kind}, not a {what}" if kind else
                        f"cannot read the {what}: {exc.strerror or exc}", source=shown) from None
    try:
        kind = _kind(os.fstat(fd).st_mode)
        if kind:
            raise CastError(f"this is {kind}, not a {what}", source=shown)
        os.set_blocking(fd, True)
        with open(fd, "rb", closefd=False) as file:
            data = file.read(MAX_FILE + 1)  # (a file that grows as it is read)
    except OSError as exc:
        raise CastError(f"cannot read the {what}: {exc.strerror or exc}", source=shown) from None
    finally:
        os.close(fd)
    if len(data) > MAX_FILE:
        raise CastError(f"the {what} is longer than {MAX_FILE // 2**20} MiB: is it the right "
                        "file?", source=shown)
    try:
        text = data.decode("utf-8-sig")  # (a byte order mark, as some editors write, is no key)
    except UnicodeDecodeError as exc:
        line = data[:exc.start].count(b"\n") + 1
        raise CastError(f"not UTF-8 text (byte 0x{data[exc.start]:02x}); save the {what} as "
                        "UTF-8", source=f"{shown}:{line}") from None
    return shown, text, parse_toml(text, shown)


def _dangling(path: str | os.PathLike[str]) -> str:
    """For a path that is not there: that it is a symbolic link to nowhere, if it is; that
    '-' is no way to say standard input here."""
    if os.fspath(path) == "-":
        return " ('-' is a file's name here: pipeplex reads a cast file by its path, not from "\
            "standard input; save it to a file)"
    try:
        target = os.readlink(path)
    except (OSError, ValueError):
        return ""
    return f" (a symbolic link to {target}, which does not exist)"


def _kind(mode: int) -> str | None:
    """What a file of ``mode`` is, for a message, unless it is a regular file."""
    return None if stat.S_ISREG(mode) else file_kind(mode)


def _kind_at(path: str | os.PathLike[str]) -> str | None:
    try:
        return _kind(os.stat(path).st_mode)
    except OSError:
        return None


def parse_toml(text: str, shown: str) -> dict[str, Any]:
    """Parse TOML; a syntax error becomes a CastError with ``file:line:column``.

    So does what tomllib fails on with another error: arrays or inline tables nested too
    deeply for Python's stack, and a number with more digits than Python converts.
    """
    import tomllib  # only with a file: ``pipeplex run -p ...`` does without it

    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        message, source = _toml_error(exc, shown)
        raise CastError(message + _toml_hint(message, text, exc), source=source) from None
    except RecursionError:
        raise CastError("cannot read this TOML: its arrays or inline tables are nested too "
                        "deeply (hundreds of levels)", source=shown) from None
    except ValueError as exc:  # (int's limit: the only ValueError tomllib lets through)
        raise CastError(f"cannot read this TOML: it has a number with too many digits "
                        f"(more than the {sys.get_int_max_str_digits()} Python reads)"
                        if "digits" in str(exc) else f"cannot read this TOML: {exc}",
                        source=shown) from None


def _toml_error(exc: tomllib.TOMLDecodeError, path: str) -> tuple[str, str]:
    message = str(exc)
    m = re.search(r"\s*\(at line (\d+), column (\d+)\)$", message)
    if m:
        return _toml_table_twice(message[: m.start()]), f"{path}:{m[1]}:{m[2]}"
    m = re.search(r"\s*\(at end of document\)$", message)
    if m:
        return message[: m.start()] + " at the end of the file", path
    return message, path


def _toml_table_twice(message: str) -> str:
    """tomllib's "Cannot declare ('procs', 'a') twice" (a Python tuple) as the file writes
    the table: "[procs.a] is declared twice"."""
    m = re.fullmatch(r"Cannot declare \((.*)\) twice", message)
    if m is None:
        return message
    keys = re.findall(r"'((?:[^'\\]|\\.)*)'|\"((?:[^\"\\]|\\.)*)\"", m[1])
    names = [single or double for single, double in keys]
    dotted = ".".join(n if re.fullmatch(r"[A-Za-z0-9_-]+", n) else f'"{n}"' for n in names)
    return f"[{dotted}] is declared twice"


def _toml_hint(message: str, text: str, exc: tomllib.TOMLDecodeError) -> str:
    """What to write instead, for the slips tomllib names only by their effect."""
    if message == "Invalid value":
        at = re.search(r"\(at line (\d+), column (\d+)\)$", str(exc))
        line = text.split("\n")[int(at[1]) - 1] if at else ""  # (as TOML counts lines)
        word = re.match(r"[^\s,\]}#]*", line[int(at[2]) - 1:] if at else "")
        if word is not None and word[0].lower() in ("true", "false"):
            return f"; write {word[0].lower()} in lowercase, as TOML does"
        return "; put text in quotes: \"...\" (or '...', where a backslash stays as written)"
    if message.startswith("Unescaped '\\'"):
        return ("; in \"...\" a backslash begins an escape such as \\n: write the value in "
                "single quotes, where it stays as written (a regular expression: '\\d+')")
    if message.startswith("Unterminated string") or message == "Illegal character '\\n'":
        return ("; close the string on its line with the quote it began with (text over "
                "several lines goes in \"\"\"...\"\"\" or '''...''')")
    if message.startswith("Expected newline or end of document"):
        value = _error_line(text, exc).partition("=")[2].strip()
        if value[:1].isdigit() or value[:2] in ("-0", "+0", "-1", "+1"):
            return ("; a number is written 5, 0.5 or 1_000 (no leading zero, digits after "
                    "its point, an underscore only between digits)")
        if value.startswith('"') and value.count('"') > 2:  # cmd = "sh -c "echo hi""
            return ("; a \" inside \"...\" ends the text: write it in single quotes "
                    "('sh -c \"echo hi\"'), or the inner quotes as \\\"")
        return "; write one key = value a line, with text in quotes"
    if message == "Invalid initial character for a key part" and _in_inline_table(text, exc):
        return ("; an inline table { A = \"1\", B = \"2\" } stays on one line, with no comma "
                "after its last item (or write it as a table of its own: [procs.NAME.env])")
    if message == "Unclosed array":
        return "; an array's items are separated by commas, and it ends with ]: [\"a\", \"b\"]"
    if message.endswith("is declared twice"):
        return "; a table may be given once: merge the two"
    if message.startswith("Cannot overwrite a value"):
        return "; a key may be given once in its table"
    return ""


def _error_line(text: str, exc: tomllib.TOMLDecodeError) -> str:
    """The line of ``text`` where tomllib's error is ("" at the end of the document)."""
    at = re.search(r"\(at line (\d+), column \d+\)$", str(exc))
    lines = text.split("\n")  # (as TOML counts lines)
    return lines[int(at[1]) - 1] if at and int(at[1]) <= len(lines) else ""


def _in_inline_table(text: str, exc: tomllib.TOMLDecodeError) -> bool:
    """Whether tomllib's error is inside an inline table ``{ ... }`` left open before it."""
    at = re.search(r"\(at line (\d+), column (\d+)\)$", str(exc))
    if at is None:
        return False
    lines = text.split("\n")
    before = "\n".join([*lines[: int(at[1]) - 1], lines[int(at[1]) - 1][: int(at[2]) - 1]])
    start = before.rfind("\n[")  # (from the table's header on: a header's brackets aside)
    return before[start + 1:].count("{") > before[start + 1:].count("}")
