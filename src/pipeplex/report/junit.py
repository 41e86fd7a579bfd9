"""JUnit XML that GitLab, Jenkins and pytest's reader accept.

One ``testsuite`` per scenario file, one ``testcase`` per scenario; a failure carries the
step, the member, the pattern, how long it waited and the recent output. Child output is
full of escape codes that XML 1.0 forbids even escaped, so those characters are replaced.

The report is private (0600) and replaces an earlier one at once, never written through a
link in its place (see :func:`~pipeplex.report.files.replace_file`).
"""

from __future__ import annotations

import os
import re
import socket
import time
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from ..errors import PipeplexError
from .files import Unsafe, check_way, replace_file, replaceable

__all__ = ("CaseResult", "check_junit", "classname", "write_junit", "xml_safe")

_ILLEGAL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")


def xml_safe(text: str) -> str:
    """Replace characters XML 1.0 cannot carry (ESC, NUL, ...) with a visible form."""
    return _ILLEGAL.sub(lambda m: f"\\x{ord(m[0]):02x}" if ord(m[0]) < 0x20 else "\ufffd", text)


@dataclass(frozen=True, slots=True)
class CaseResult:
    """One scenario's outcome."""

    suite: str
    name: str
    seconds: float
    failure: str | None = None
    """The failure message (first line: the summary)."""
    error: str | None = None
    """Set when the scenario could not run at all."""
    skipped: str | None = None
    """Why it did not run (the run was interrupted before it)."""
    output: str = ""
    began_at: float | None = None
    """When it began (``time.time()``); None if it never ran."""


def classname(suite: str) -> str:
    """A scenario file's path as a dotted class name, as pytest names a test module's
    (``suite/chat.toml``: ``suite.chat``): Jenkins takes what follows the last dot for the
    class, which a ``.toml`` would be for every scenario. The path itself is the case's
    ``file`` (GitLab reads it)."""
    path = re.sub(r"(?i)\.toml$", "", suite)
    return ".".join(part for part in path.split("/") if part not in ("", ".", "..")) or suite


def check_junit(path: str | os.PathLike[str]) -> None:
    """Refuse ``path`` for the report before the tests run, as :func:`write_junit` would
    once they have.

    Raises:
        PipeplexError: something other than a regular file of the user's is at ``path``.
    """
    try:
        check_way(Path(path).parent)
        replaceable(path)
    except Unsafe as exc:
        raise PipeplexError(_refused(path, exc)) from None


def write_junit(path: str | os.PathLike[str], results: Sequence[CaseResult]) -> None:
    """Write the report of ``results`` to ``path``, 0600 (see
    :func:`~pipeplex.report.files.replace_file`).

    Raises:
        PipeplexError: something other than a regular file of the user's is at ``path``.
        OSError: the report cannot be written; an earlier one there stays whole.
    """
    # The totals on the root too, as JUnit's schema allows: some CI tools read only those.
    root = ET.Element("testsuites", {
        "name": "pipeplex test",
        "tests": str(len(results)),
        "failures": str(sum(c.failure is not None for c in results)),
        "errors": str(sum(c.error is not None for c in results)),
        "time": f"{sum(c.seconds for c in results):.3f}",
    })
    suites: dict[str, list[CaseResult]] = {}
    for result in results:
        suites.setdefault(result.suite, []).append(result)
    for suite_name, cases in suites.items():
        suite = ET.SubElement(root, "testsuite", {
            "name": xml_safe(suite_name),
            "tests": str(len(cases)),
            "failures": str(sum(c.failure is not None for c in cases)),
            "errors": str(sum(c.error is not None for c in cases)),
            "skipped": str(sum(c.skipped is not None for c in cases)),
            "time": f"{sum(c.seconds for c in cases):.3f}",
            "timestamp": time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(min(
                (c.began_at for c in cases if c.began_at is not None), default=None))),
            "hostname": socket.gethostname(),
        })
        for case in cases:
            element = ET.SubElement(suite, "testcase", {
                "classname": xml_safe(classname(suite_name)),
                "name": xml_safe(case.name),
                "file": xml_safe(suite_name),
                "time": f"{case.seconds:.3f}",
            })
            for kind, text in (("failure", case.failure), ("error", case.error)):
                if text is not None:
                    problem = ET.SubElement(element, kind, {
                        "message": xml_safe(text.splitlines()[0] if text else kind),
                        "type": "pipeplex." + kind,
                    })
                    problem.text = xml_safe(text)
            if case.skipped is not None:
                ET.SubElement(element, "skipped", {"message": xml_safe(case.skipped)})
            if case.output:
                ET.SubElement(element, "system-out").text = xml_safe(case.output)
    data = ET.tostring(root, encoding="utf-8", xml_declaration=True)
    try:
        replace_file(path, data)
    except Unsafe as exc:
        raise PipeplexError(_refused(path, exc)) from None


def _refused(path: str | os.PathLike[str], reason: Unsafe) -> str:
    return f"cannot write the JUnit report {os.fspath(path)}: {reason}; {reason.advice}"
