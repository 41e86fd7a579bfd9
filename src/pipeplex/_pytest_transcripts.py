"""The transcripts the pytest plugin shows and keeps: a failure's report shows the end of
one; ``--pipeplex-keep-transcripts DIR`` keeps each failed test's whole transcript in a file
of its own, as privately as a run keeps its records."""

from __future__ import annotations

import hashlib
import os
import re
from pathlib import Path

from .report.files import Unsafe, UnsafeWay, check_way, make_folders, open_record

__all__ = ("SHOWN_LINES", "keep", "keep_folder", "shown_tail", "transcript_file_name")

_NAME_CHARS = 100  # readable part of a kept transcript's file name
_UNSAFE_NAME = re.compile(r"[^A-Za-z0-9_.-]+")


SHOWN_LINES = 500
"""The last lines of a transcript a failure's report shows (the kept file has it whole)."""


def shown_tail(text: str, kept: Path | None) -> str:
    """The end of ``text`` that a report shows: its last :data:`SHOWN_LINES` lines, and a
    line that says how many came before and where the whole is (``kept``) or can be."""
    lines = text.splitlines(keepends=True)
    if len(lines) <= SHOWN_LINES:
        return text
    whole = (f"the whole transcript is in {kept}" if kept is not None
             else "--pipeplex-keep-transcripts DIR keeps the whole transcript")
    return (f"[{len(lines) - SHOWN_LINES} earlier lines not shown: {whole}]\n"
            + "".join(lines[-SHOWN_LINES:]))


def keep(folder: Path, nodeid: str, text: str) -> str | None:
    """Write the transcript of ``nodeid`` into ``folder``; the reason it failed, or None.

    As the run's own records: private (0600, the folder 0700 when made), made new, never
    written through a link or into a pipe put at its name (the names are easy to foresee),
    and only in a folder of the user's (in a shared one, another user could read it)."""
    name = transcript_file_name(nodeid)
    folder_fd, reason = keep_folder(folder)
    if folder_fd is None:
        return reason
    try:
        with os.fdopen(open_record(name, dir_fd=folder_fd), "wb") as file:
            file.write(text.encode("utf-8", errors="replace"))
    except Unsafe as exc:
        return f"{name}: {exc}"
    except OSError as exc:
        return exc.strerror or str(exc)
    finally:
        os.close(folder_fd)
    return None


def keep_folder(folder: Path) -> tuple[int, None] | tuple[None, str]:
    """The folder of kept transcripts, made if need be (0700), open; or why it cannot be:
    a link (never followed), another user's (who could read them), not a folder, or on a
    way another user could change (:func:`~pipeplex.report.files.check_way`)."""
    try:
        make_folders(folder, mode=0o700)
        folder_fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError as exc:
        if os.path.islink(folder):
            return None, "it is a symbolic link, which pipeplex does not follow"
        return None, exc.strerror or str(exc)
    if os.fstat(folder_fd).st_uid != os.geteuid():
        os.close(folder_fd)
        return None, "it belongs to another user, who could read what is kept there"
    try:
        check_way(folder)
    except UnsafeWay as exc:
        os.close(folder_fd)
        return None, str(exc)
    return folder_fd, None


def transcript_file_name(nodeid: str) -> str:
    """The file name a test's kept transcript gets: readable, short and unique.

    Every run of characters other than ``A-Z a-z 0-9 _ . -`` becomes ``_``, the result is
    cut to 100 characters, and a hash of the full test id makes it unique::

        tests/test_chat.py::test_hello[a b]  ->  tests_test_chat.py_test_hello_a_b_-bef50ef1f064.txt
    """
    readable = _UNSAFE_NAME.sub("_", nodeid).lstrip(".-")[:_NAME_CHARS] or "test"
    digest = hashlib.sha256(nodeid.encode("utf-8", "surrogatepass")).hexdigest()[:12]
    return f"{readable}-{digest}.txt"
