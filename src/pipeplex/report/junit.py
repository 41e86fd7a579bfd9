"""JUnit XML that GitLab, Jenkins and pytest's reader accept.

One ``testsuite`` per scenario file, one ``testcase`` per scenario; a failure carries the
step, the member, the pattern, how long it waited and the recent output. Child output is
full of escape codes that XML 1.0 forbids even escaped, so those characters are replaced.

The report is private (0600) and replaces an earlier one at once, never written through a
link in its place (see :func:`replace_file`, which golden files use too).
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets
import socket
import stat
import time
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from ..errors import PipeplexError
from .transcript import _open_record, _refusal, _Unsafe

__all__ = ("CaseResult", "check_junit", "replace_file", "write_junit", "xml_safe")

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
    output: str = ""


def check_junit(path: str | os.PathLike[str]) -> None:
    """Refuse ``path`` for the report before the tests run, as :func:`write_junit` would
    once they have.

    Raises:
        PipeplexError: something other than a regular file of the user's is at ``path``.
    """
    try:
        _replaceable(path)
    except _Unsafe as exc:
        raise PipeplexError(_refused(path, exc)) from None


def write_junit(path: str | os.PathLike[str], results: Sequence[CaseResult]) -> None:
    """Write the report of ``results`` to ``path`` (see :func:`replace_file`), 0600.

    Raises:
        PipeplexError: something other than a regular file of the user's is at ``path``.
        OSError: the report cannot be written; an earlier one there stays whole.
    """
    root = ET.Element("testsuites")
    suites: dict[str, list[CaseResult]] = {}
    for result in results:
        suites.setdefault(result.suite, []).append(result)
    for suite_name, cases in suites.items():
        suite = ET.SubElement(root, "testsuite", {
            "name": xml_safe(suite_name),
            "tests": str(len(cases)),
            "failures": str(sum(c.failure is not None for c in cases)),
            "errors": str(sum(c.error is not None for c in cases)),
            "skipped": "0",
            "time": f"{sum(c.seconds for c in cases):.3f}",
            "timestamp": time.strftime("%Y-%m-%dT%H:%M:%S"),
            "hostname": socket.gethostname(),
        })
        for case in cases:
            element = ET.SubElement(suite, "testcase", {
                "classname": xml_safe(suite_name),
                "name": xml_safe(case.name),
                "time": f"{case.seconds:.3f}",
            })
            for kind, text in (("failure", case.failure), ("error", case.error)):
                if text is not None:
                    problem = ET.SubElement(element, kind, {
                        "message": xml_safe(text.splitlines()[0] if text else kind),
                        "type": "pipeplex." + kind,
                    })
                    problem.text = xml_safe(text)
            if case.output:
                ET.SubElement(element, "system-out").text = xml_safe(case.output)
    data = ET.tostring(root, encoding="utf-8", xml_declaration=True)
    try:
        replace_file(path, data)
    except _Unsafe as exc:
        raise PipeplexError(_refused(path, exc)) from None


def _refused(path: str | os.PathLike[str], reason: _Unsafe) -> str:
    return (f"cannot write the JUnit report {os.fspath(path)}: {reason}; remove it, or give "
            "another file")


def replace_file(path: str | os.PathLike[str], data: bytes, *, mode: int = 0o600,
                 keep_mode: bool = False) -> None:
    """Make ``path`` hold ``data``: written whole to a new file in the same folder, then
    renamed over whatever is at ``path``.

    The new file is made as a record is (``O_EXCL``, never through a link, 0600), then given
    ``mode`` (with ``keep_mode``, an earlier file's mode instead). A failed write leaves the
    earlier file whole, and the rename replaces a link rather than writing through it; a
    link, or anything but a regular file of the user's, is refused all the same, so that
    one planted there is said rather than quietly replaced.

    Raises:
        _Unsafe: something else is at ``path`` (the message says what).
        OSError: the file cannot be written (nothing is left behind).
    """
    path = Path(path)
    # The new file and the rename in one folder, whatever is done to the path meanwhile.
    folder = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        earlier = _replaceable(path.name, dir_fd=folder)
        if keep_mode and earlier is not None:
            mode = stat.S_IMODE(earlier.st_mode)
        temporary = f".{path.name}.{secrets.token_hex(8)}.tmp"
        fd = _open_record(temporary, dir_fd=folder)
        try:
            with os.fdopen(fd, "wb") as file:
                file.write(data)
                file.flush()
                os.fchmod(file.fileno(), mode)
                os.fsync(file.fileno())  # (whole on disk before it takes the earlier one's place)
            os.replace(temporary, path.name, src_dir_fd=folder, dst_dir_fd=folder)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(temporary, dir_fd=folder)
            raise
    finally:
        os.close(folder)


def _replaceable(path: str | os.PathLike[str], *, dir_fd: int | None = None
                 ) -> os.stat_result | None:
    """What is at ``path``, if anything, when it is a regular file of the user's.

    Raises:
        _Unsafe: something else is there.
    """
    try:
        st = os.lstat(path, dir_fd=dir_fd)
    except FileNotFoundError:
        return None
    # A file with other hard links is fine: the rename leaves them what they held.
    if stat.S_ISREG(st.st_mode) and st.st_uid == os.geteuid():
        return st
    raise _Unsafe(_refusal(st) or "it is not a regular file")
