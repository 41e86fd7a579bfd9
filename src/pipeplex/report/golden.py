"""Golden transcripts: each member's own stream, normalised, compared line by line.

The golden text lists each member in cast order: its stdout lines (``| ``) and the input
it was sent (``> ``), then its stderr lines (``! ``), then how it ended, run by run. How
members interleave never enters the comparison, nor how one member's stdout and stderr
(two pipes) interleave, so the test cannot flake on scheduling. Before comparing,
captured variables become ``{name}``, pids ``{pid}``, times and dates ``{time}``, then the
scenario's own ``[[normalize]]`` rules apply.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable, Mapping, Sequence

from .._events import Event, Exited, InputSent, Output, Started
from .._signals import describe_returncode
from ..scenario.model import NormalizeRule

__all__ = ("compare_golden", "golden_text")

_TIME = re.compile(
    r"\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}:\d{2}(?:[.,]\d+)?(?:Z|[+-]\d{2}:?\d{2})?"
    r"|\b\d{2}:\d{2}:\d{2}(?:[.,]\d+)?\b"
)


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
            for line in pending.decode("utf-8", "replace").split("\n"):
                into.append(f"{kind} {line.removesuffix(chr(13))}")

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
            buffer = streams[name].setdefault(kind, bytearray())
            buffer += event.data
            if buffer.endswith(b"\n"):
                del buffer[-1]
                flush(name, kind)
        elif isinstance(event, InputSent) and event.data:
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
    return normalize(text, variables=variables, pids=pids, rules=rules)


def normalize(
    text: str,
    *,
    variables: Mapping[str, str] = {},
    pids: Iterable[int] = (),
    rules: Sequence[NormalizeRule] = (),
) -> str:
    # Longest values first, so a value inside another does not break the bigger one.
    for key, value in sorted(variables.items(), key=lambda kv: -len(kv[1])):
        if value:
            text = re.sub(rf"(?<![\w.]){re.escape(value)}(?![\w.])", "{" + key + "}", text)
    # Times first: a pid such as 2024 must not eat the year of a date.
    text = _TIME.sub("{time}", text)
    for pid in sorted(pids, key=lambda p: -len(str(p))):
        text = re.sub(rf"\b{pid}\b", "{pid}", text)
    for rule in rules:
        text = re.sub(rule.pattern, rule.replace, text, flags=re.MULTILINE)
    return text


def compare_golden(expected: str, actual: str, *, path: str) -> str | None:
    """A unified diff when the texts differ, else None."""
    if expected == actual:
        return None
    diff = difflib.unified_diff(
        expected.splitlines(keepends=True), actual.splitlines(keepends=True),
        fromfile=f"{path} (golden)", tofile="this run",
    )
    return "".join(diff)
