"""Find the line of a key in TOML text, so errors can say ``cast.toml:12``.

tomllib reports positions only for syntax errors. This scanner follows table headers and
``key =`` lines well enough for the files people write by hand; when it cannot tell, it
answers ``None`` and the message names the file alone.
"""

from __future__ import annotations

import re

__all__ = ("KeyLines", "locate")

# A name neither starts nor ends in blanks, so that only one way to match a line is tried:
# a lazy ``+?`` name, or blanks two parts may take, scanned a run of blanks again from each
# of its characters, minutes for a long line in a multi-line string (``"[" + spaces``).
_HEADER = re.compile(r"^\s*\[\[?\s*+([^\]]*[^\]\s])\s*\]\]?\s*(#.*)?$")
_BARE_OR_QUOTED = r"""(?:"[^"]*"|'[^']*'|[A-Za-z0-9_-]+)"""
_KEY = re.compile(rf"^\s*({_BARE_OR_QUOTED}(?:\s*\.\s*{_BARE_OR_QUOTED})*)\s*=")
_PART = re.compile(r""""([^"]*)"|'([^']*)'|([A-Za-z0-9_-]+)""")

KeyPath = tuple[str | int, ...]


def _split_dotted(text: str) -> tuple[str, ...]:
    return tuple(a or b or c for a, b, c in _PART.findall(text))


class KeyLines:
    """The lines of the keys of one TOML text: read once, then each lookup is a few dict
    lookups, so a loader may ask for every key of a large cast.

    Integer parts of a path (array indexes) count ``[[name]]`` headers of that array.
    """

    def __init__(self, text: str) -> None:
        self._keys: list[tuple[KeyPath, int]] = []  # (a header's or key's path, its line)
        self._first: dict[KeyPath, int] = {}
        self._by_prefix: dict[int, dict[KeyPath, int]] = {}
        table: KeyPath = ()
        array_counts: dict[tuple[str, ...], int] = {}
        # Lines end at "\n" only, as TOML's do: str.splitlines() would also end one at a
        # U+2028 in a string, and count the lines after it wrong.
        for lineno, line in enumerate(text.split("\n"), start=1):
            header = _HEADER.match(line)
            if header and not line.lstrip().startswith("#"):
                keys = _split_dotted(header[1])
                if line.lstrip().startswith("[["):
                    index = array_counts.get(keys, 0)
                    array_counts[keys] = index + 1
                    table = (*keys, index)
                else:
                    table = keys
                full = table
            else:
                key = _KEY.match(line)
                if not key:
                    continue
                full = (*table, *_split_dotted(key[1]))
            if full:
                self._keys.append((full, lineno))
                self._first.setdefault(full, lineno)

    def line(self, path: KeyPath) -> int | None:
        """The 1-based line where the key at ``path`` is defined, or its closest known
        parent: the first line of a key at ``path`` or inside it (a table implied by a
        deeper header), else the first of its longest parent that has one."""
        if not path:
            return None
        found = self._prefixes(len(path)).get(path)
        if found is not None:
            return found
        for depth in range(len(path) - 1, 0, -1):
            found = self._first.get(path[:depth])
            if found is not None:
                return found
        return None

    def _prefixes(self, depth: int) -> dict[KeyPath, int]:
        """Each key's first ``depth`` parts, to the first line of a key that has them: made
        once per depth asked for (a loader asks for a few)."""
        if depth not in self._by_prefix:
            table: dict[KeyPath, int] = {}
            for full, lineno in self._keys:
                if len(full) >= depth:
                    table.setdefault(full[:depth], lineno)
            self._by_prefix[depth] = table
        return self._by_prefix[depth]


def locate(text: str, path: KeyPath) -> int | None:
    """The 1-based line where the key at ``path`` is defined, or its closest known parent.

    Integer parts (array indexes) count ``[[name]]`` headers of that array. To look up
    many keys of one text, make one :class:`KeyLines` and ask it.
    """
    return KeyLines(text).line(path)
