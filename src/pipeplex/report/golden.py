"""Golden transcripts: each member's own stream, normalised, compared line by line.

The golden text lists each member in cast order: its stdout lines (``| ``) and the input
it was sent (``> ``), then its stderr lines (``! ``), then how it ended, run by run. How
members interleave never enters the comparison, nor how one member's stdout and stderr
(two pipes) interleave, so the test cannot flake on scheduling. Before comparing, times
and dates become ``{time}``, captured variables ``{name}`` and pids ``{pid}`` in the
members' lines (see :func:`normalize`), then the scenario's own ``[[normalize]]`` rules
apply.
"""

from __future__ import annotations

import difflib
import os
import re
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

from .._events import Event, Exited, InputSent, Output, Started
from .._plain_text import plain
from .._printable import printable
from .._signals import describe_returncode
from ..errors import PipeplexError
from ..scenario.model import NormalizeRule
from .files import Unsafe, UnsafeWay, check_way, make_folders, replace_file

__all__ = ("DIFF_LINES", "MIN_VARIABLE", "compare_golden", "golden_text", "write_golden")

DIFF_LINES = 200
"""Lines of a golden file's diff shown at most (in the report and in JUnit)."""
MIN_VARIABLE = 3
"""Characters a captured value needs to be replaced by its ``{name}`` in a golden text."""

_MONTH = "(?:Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec)"
_CLOCK = r"\d{2}:\d{2}:\d{2}(?:[.,]\d+)?"
_ZONE = r"(?: ?(?:Z|GMT|UTC|[+-]\d{2}:?\d{2}))?"
_TIME = re.compile(
    rf"\b\d{{4}}([-/])\d{{2}}\1\d{{2}}(?:[T ]{_CLOCK}{_ZONE})?\b"  # ISO, nginx: 2026/11/22
    rf"|\b(?:(?:Mon|Tue|Wed|Thu|Fri|Sat|Sun),? )?"  # HTTP, mail, ctime: Sun, 22 Nov 2026 ...
    rf"(?:\d{{1,2}}[ /]{_MONTH}[ /]\d{{4}}[: ]{_CLOCK}{_ZONE}"  # http.server, CLF, redis
    rf"|{_MONTH} +\d{{1,2}} {_CLOCK}(?:(?: [A-Z]{{2,5}})? \d{{4}})?"  # syslog; ctime, date
    rf"|{_MONTH} \d{{1,2}} \d{{4}} {_CLOCK}(?: GMT[+-]\d{{4}}(?: \([^)]*\))?)?)"  # JS Date
    rf"|\b{_CLOCK}\b"
)
"""Dates and times as servers log them (ISO 8601, HTTP and mail, the common log format,
Python's http.server, nginx, redis, syslog, ctime, date, JavaScript's Date), and a bare clock
time."""


def golden_text(
    events: Iterable[Event],
    names: Sequence[str],
    *,
    variables: Mapping[str, str] = {},
    rules: Sequence[NormalizeRule] = (),
) -> str:
    """The normalised golden text of a run's events."""
    streams: dict[str, dict[str, bytearray]] = {n: {} for n in names}
    lines: dict[str, list[str]] = {n: [] for n in names}
    errors: dict[str, list[str]] = {n: [] for n in names}
    """Per member, the stderr lines of its current run: they follow its stdout."""
    pids: set[int] = set()

    def flush(name: str, kind: str) -> None:
        pending = streams[name].pop(kind, None)
        if pending is not None:
            into = lines[name] if kind == "|" else errors[name]
            text = "".join(plain(pending.decode("utf-8", "replace")))  # (as the screen shows)
            for line in text.split("\n"):
                line = line.rstrip("\r")
                # What a carriage return has the terminal write over is gone from the screen:
                # a progress bar's earlier states, which differ from run to run.
                into.append(f"{kind} {line[line.rfind(chr(13)) + 1:]}")

    def end_run(name: str) -> None:
        flush(name, "|")
        flush(name, "!")
        lines[name] += errors[name]
        errors[name].clear()

    for event in events:
        name = getattr(event, "name", None)
        if name not in lines:
            continue
        if isinstance(event, Output):
            kind = "|" if event.stream == "stdout" else "!"
            if event.new_line and streams[name].get(kind):
                flush(name, kind)  # a prompt again, after a line sent: as the screen shows it
            buffer = streams[name].setdefault(kind, bytearray())
            buffer += event.data
            if buffer.endswith(b"\n"):
                del buffer[-1]
                flush(name, kind)
        elif isinstance(event, InputSent) and event.data and event.data != b"\x04":
            # (^D alone: a full terminal's end of input, such as the stop gives it, no line)
            for line in event.data.decode("utf-8", "replace").rstrip("\n").split("\n"):
                lines[name].append(f"> {line}")
        elif isinstance(event, Started):
            pids.add(event.pid)
        elif isinstance(event, Exited):
            end_run(name)
            # How a stopped member ended (EOF, SIGTERM, SIGKILL) is a race: not compared.
            how = "stopped" if event.stopped else describe_returncode(event.returncode)
            lines[name].append(f"= {how}")
    for name in names:
        end_run(name)
    text = "".join(f"[{n}]\n" + "".join(f"{line}\n" for line in lines[n]) for n in names)
    return _unpadded(normalize(text, variables=variables, pids=pids, rules=rules))


def _unpadded(text: str) -> str:
    """``text`` without spaces and tabs at its lines' ends, which no screen shows and many
    editors strip on save: a golden file so trimmed must still match."""
    return "\n".join(line.rstrip(" \t") for line in text.split("\n"))


def normalize(
    text: str,
    *,
    variables: Mapping[str, str] = {},
    pids: Iterable[int] = (),
    rules: Sequence[NormalizeRule] = (),
) -> str:
    """Times and dates become ``{time}``, captured values ``{name}``, pids ``{pid}``, in the
    members' lines (``| ``, ``! ``, ``> ``: not in ``[name]`` or ``= how it ended``); then
    ``rules``, on the whole text.

    Times come first: neither a pid such as 2024 nor a captured value such as 21 may eat a
    part of a date, which would then stay in the golden file. A pid is replaced where it is
    written as one (``pid 4121``, ``PID: 4121``, ``"pid": 4121``, ``pid is 4121``, syslog's
    ``name[4121]:``), not wherever its number appears: in a container pids are small, and
    ``3 squared``, ``took 12 ms`` or ``items[12]`` must read the same there as on a laptop.
    """
    # A value of one or two characters (a shard 1, an ok) would stand for every 1 or ok
    # of the text, unrelated ones too: it is left as written.
    values = sorted(((k, v) for k, v in variables.items() if len(v) >= MIN_VARIABLE),
                    key=lambda kv: -len(kv[1]))
    # Longest values first, so a value inside another does not break the bigger one.
    substitutions = [(_TIME, "{time}")]
    # (Not inside a placeholder: a value "time" leaves {time} whole.)
    substitutions += [(re.compile(rf"(?<![\w.{{]){re.escape(value)}(?![\w.}}])"),
                       "{" + key.replace("\\", "\\\\") + "}") for key, value in values]
    for pid in sorted(set(pids), key=lambda p: -len(str(p))):
        substitutions += [  # pid 4121, PID: 4121, "pid": 4121, pid is 4121; name[4121]:
            (re.compile(rf"(?i)(\bpids?\b(?:\s+is\b)?[\"'\s:=#]*){pid}\b"), r"\1{pid}"),
            (re.compile(rf"(\w\[){pid}(?=\]:)"), r"\1{pid}"),
            # uvicorn: Started server process [4121]; redis: 4121:M 22 Nov ...
            (re.compile(rf"(?i)(\bprocess \[){pid}(?=\])"), r"\1{pid}"),
            (re.compile(rf"^{pid}(?=:[CMSX] )"), "{pid}"),
            # postgres (log_line_prefix '%m [%p] '): {time} [4121] LOG: ...
            (re.compile(rf"(\{{time\}} \[){pid}(?=\] )"), r"\1{pid}"),
        ]

    def member_line(line: str) -> str:
        if line[:2] not in ("| ", "! ", "> "):
            return line
        body = line[2:]
        for pattern, replacement in substitutions:
            body = pattern.sub(replacement, body)
        return line[:2] + body

    text = "\n".join(member_line(line) for line in text.split("\n"))
    for rule in rules:
        text = re.sub(rule.pattern, rule.replace, text, flags=re.MULTILINE)
    return text


def compare_golden(expected: str, actual: str, *, path: str,
                   update_command: str = "pipeplex test --update") -> str | None:
    """A unified diff when the texts differ, else None. Spaces and tabs at a line's end
    are not compared (see :func:`_unpadded`).

    Lines are split at newlines only (a member's form feed stays inside its line), and
    control characters are shown as ``\\xNN``: the diff goes to a terminal and a JUnit
    report, where a member's escape sequence must neither clear the screen nor vanish. A
    diff longer than :data:`DIFF_LINES` is cut there, saying how much more there was: a
    changed flood of 100,000 lines must not make a 5 MB report.
    """
    expected, actual = _unpadded(expected), _unpadded(actual)
    if expected == actual:
        return None
    lines = list(difflib.unified_diff(
        _lines(expected), _lines(actual),
        fromfile=f"{path} (golden)", tofile="this run", lineterm="",
    ))
    if len(lines) > DIFF_LINES:
        changed = sum(line[:1] in "+-" for line in lines[DIFF_LINES:])
        lines[DIFF_LINES:] = [f"... and {len(lines) - DIFF_LINES} more lines of the diff "
                              f"({changed} of them changed) not shown; {update_command} "
                              "writes this run's text, for git diff to show whole"]
    if expected.endswith("\n") != actual.endswith("\n"):
        which = "golden file" if actual.endswith("\n") else "transcript of this run"
        lines.append(f"(the {which} has no newline at its end)")
    diff = "\n".join(lines)
    shown = printable(diff)
    if shown != diff and "\\x" in diff:
        # A real ESC and the text "\x1b" would read the same: the text's backslash is
        # doubled, as in a Python string.
        shown = printable(diff.replace("\\", "\\\\")) + (
            "\n(backslashes written by the members are shown doubled: \\\\x1b is the text"
            ", \\x1b the character)")
    return shown + "\n"


def _lines(text: str) -> list[str]:
    lines = text.split("\n")
    return lines[:-1] if lines and not lines[-1] else lines


def write_golden(path: str | os.PathLike[str], text: str) -> None:
    """Write a golden file (``pipeplex test --update``), its folder made if need be.

    It replaces the earlier one at once (see :func:`~pipeplex.report.files.replace_file`),
    never writing through a link in its place: a link is refused, since the file it points
    to may not be the user's to overwrite.

    Raises:
        PipeplexError: something other than a regular file of the user's is at ``path``.
        OSError: it cannot be written; an earlier golden file stays whole.
    """
    try:
        check_way(Path(path).parent)  # (before a folder is made for it, then as it is written)
        make_folders(Path(path).parent, mode=0o755)
        # Not private as a run's records are (0600): a golden file is committed for anyone
        # who checks the project out to read. It keeps the mode of the one it replaces, or
        # is made 0644, as files in a repository usually are.
        replace_file(path, text.encode("utf-8"), mode=0o644, keep_mode=True)
    except Unsafe as exc:
        advice = (exc.advice if isinstance(exc, UnsafeWay) else
                  "remove it, or name another file with golden = in the scenario")
        raise PipeplexError(f"cannot write golden file {os.fspath(path)}: {exc}; {advice}"
                            ) from None
