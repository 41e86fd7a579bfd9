"""What a file is, in words, for messages about a file in the way ("a named pipe")."""

from __future__ import annotations

import stat

__all__ = ("file_kind",)


def file_kind(mode: int) -> str:
    """What a file of ``mode`` is: "a regular file", "a folder", "a named pipe"..."""
    return ("a regular file" if stat.S_ISREG(mode) else
            "a folder" if stat.S_ISDIR(mode) else
            "a symbolic link" if stat.S_ISLNK(mode) else
            "a named pipe" if stat.S_ISFIFO(mode) else
            "a socket" if stat.S_ISSOCK(mode) else
            "a device" if stat.S_ISCHR(mode) or stat.S_ISBLK(mode) else "a special file")
