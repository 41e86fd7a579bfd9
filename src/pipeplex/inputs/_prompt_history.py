"""The console's history: the lines typed at its prompt, kept in a file of the user's own.

Apart from the prompt (``_prompt.py``), which only reads and adds to it: where the file
is (``$XDG_STATE_HOME/pipeplex``), the checks that keep what was typed out of a file or a
folder of someone else's (memory only, then), and the lines a member's password was typed
on, which are never kept.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Callable, Iterable
from pathlib import Path

from prompt_toolkit.history import FileHistory, History, InMemoryHistory

from ..report.files import make_folders

__all__ = ("KeptHistory", "console_history")


class KeptHistory(History):
    """``history``, less the entries ``keeps`` refuses (a password typed for a member)."""

    def __init__(self, history: History, keeps: Callable[[str], bool]) -> None:
        super().__init__()
        self._history = history
        self._keeps = keeps

    def append_string(self, string: str) -> None:
        if self._keeps(string):
            super().append_string(string)

    def load_history_strings(self) -> Iterable[str]:
        return self._history.load_history_strings()

    def store_string(self, string: str) -> None:
        self._history.store_string(string)


def console_history() -> History:
    """The console history in ``$XDG_STATE_HOME/pipeplex`` (memory only if unusable).

    A relative XDG_STATE_HOME is ignored, as the XDG spec says. The folders and the file are
    made only in a folder of our own: root with a user's HOME (``sudo -E``) would leave
    folders or a history of root's there, which the user could not write to afterwards."""
    state = os.environ.get("XDG_STATE_HOME", "")
    if not os.path.isabs(state):
        state = os.path.join(Path.home(), ".local", "state")
    folder = Path(state) / "pipeplex"
    path = folder / "console-history"
    try:
        existing = next(f for f in (folder, *folder.parents) if f.exists())
        if existing.stat().st_uid != os.geteuid():
            return InMemoryHistory()
        make_folders(folder, mode=0o700)
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_NOFOLLOW | os.O_CLOEXEC
                     | os.O_NONBLOCK, 0o600)
    except OSError:
        return InMemoryHistory()
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode) or st.st_uid != os.geteuid():
            os.close(fd)
            return InMemoryHistory()  # (not a file of ours: nothing typed goes there)
        if st.st_mode & 0o077:  # what was typed is nobody else's (an older file: 0644)
            os.fchmod(fd, 0o600)
    except OSError:
        os.close(fd)
        return InMemoryHistory()
    return _HeldFileHistory(str(path), fd)


class _HeldFileHistory(FileHistory):
    """prompt_toolkit's history file, read and written through the descriptor that was
    checked, never opened again by name: a link put in its place meanwhile (by whoever
    may write to its folder) takes nothing typed anywhere else."""

    def __init__(self, filename: str, fd: int) -> None:
        super().__init__(filename)
        self._fd = fd

    def load_history_strings(self) -> Iterable[str]:
        strings: list[str] = []
        lines: list[str] = []
        with open(os.dup(self._fd), "rb") as f:  # (its own offset is shared: from the top)
            f.seek(0)
            for raw in f:
                line = raw.decode("utf-8", "surrogateescape")  # (as it was typed)
                if line.startswith("+"):
                    lines.append(line[1:])
                else:
                    if lines:
                        strings.append("".join(lines)[:-1])
                    lines = []
        if lines:
            strings.append("".join(lines)[:-1])
        return reversed(strings)

    def store_string(self, string: str) -> None:
        import datetime

        entry = f"\n# {datetime.datetime.now()}\n" + "".join(
            f"+{line}\n" for line in string.split("\n"))
        # (O_APPEND: at the end, in one write; bytes typed that are not UTF-8, as they were)
        os.write(self._fd, entry.encode("utf-8", "surrogateescape"))
