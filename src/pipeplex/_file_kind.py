"""What a file is, in words, for messages about a file in the way ("a named pipe"); and
whether two paths name one file (a report that would take a cast file's place)."""

from __future__ import annotations

import os
import stat
from collections.abc import Sequence
from pathlib import Path

__all__ = ("file_kind", "records_apart", "same_file")


def file_kind(mode: int) -> str:
    """What a file of ``mode`` is: "a regular file", "a folder", "a named pipe"..."""
    return ("a regular file" if stat.S_ISREG(mode) else
            "a folder" if stat.S_ISDIR(mode) else
            "a symbolic link" if stat.S_ISLNK(mode) else
            "a named pipe" if stat.S_ISFIFO(mode) else
            "a socket" if stat.S_ISSOCK(mode) else
            "a device" if stat.S_ISCHR(mode) or stat.S_ISBLK(mode) else "a special file")


def same_file(one: Path, other: Path) -> bool:
    """Whether ``one`` and ``other`` name the same file: its device and inode when both
    exist, its path with links and ``..`` resolved when one does not (yet)."""
    try:
        try:
            return os.path.samefile(one, other)
        except OSError:
            return os.path.realpath(one) == os.path.realpath(other)
    except (ValueError, OSError):  # (a NUL in a name; a link that may not be read)
        return False


def records_apart(written: Sequence[tuple[str, str, Path]]) -> str | None:
    """Why two of the files a command is to write (each: what it is, the option that names
    it, its path) are one file, the later one's option to be changed; None if none are.
    Paths compare with their links and ``..`` resolved (most are not made yet)."""
    seen: dict[str, str] = {}
    for what, option, path in written:
        try:
            key = os.path.realpath(path)
        except (OSError, ValueError):  # (a link that may not be read; a NUL in a name)
            continue
        if key in seen:
            return (f"cannot write {path}, {what}: it is {seen[key]}; give {option} a path "
                    "of its own")
        seen[key] = what
    return None
