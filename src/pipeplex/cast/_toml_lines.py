"""Find the line of a key in TOML text, so errors can say ``cast.toml:12``.

tomllib reports positions only for syntax errors. This scanner follows table headers and
``key =`` lines well enough for the files people write by hand; when it cannot tell, it
answers ``None`` and the message names the file alone.
"""

from __future__ import annotations

import re

__all__ = ("locate",)

_HEADER = re.compile(r"^\s*\[\[?\s*([^\]]+?)\s*\]\]?\s*(#.*)?$")
_BARE_OR_QUOTED = r"""(?:"[^"]*"|'[^']*'|[A-Za-z0-9_-]+)"""
_KEY = re.compile(rf"^\s*({_BARE_OR_QUOTED}(?:\s*\.\s*{_BARE_OR_QUOTED})*)\s*=")
_PART = re.compile(r""""([^"]*)"|'([^']*)'|([A-Za-z0-9_-]+)""")


def _split_dotted(text: str) -> tuple[str, ...]:
    return tuple(a or b or c for a, b, c in _PART.findall(text))


def locate(text: str, path: tuple[str | int, ...]) -> int | None:
    """The 1-based line where the key at ``path`` is defined, or its closest known parent.

    Integer parts (array indexes) count ``[[name]]`` headers of that array.
    """
    best: tuple[int, int] | None = None  # (matched depth, line)
    table: tuple[str | int, ...] = ()
    array_counts: dict[tuple[str, ...], int] = {}
    for lineno, line in enumerate(text.splitlines(), start=1):
        header = _HEADER.match(line)
        if header and not line.lstrip().startswith("#"):
            keys = _split_dotted(header[1])
            if line.lstrip().startswith("[["):
                index = array_counts.get(keys, 0)
                array_counts[keys] = index + 1
                table = (*keys, index)
            else:
                table = keys
            full: tuple[str | int, ...] = table
        else:
            key = _KEY.match(line)
            if not key:
                continue
            full = (*table, *_split_dotted(key[1]))
        depth = _common_prefix(full, path)
        if depth and (best is None or depth > best[0]):
            best = (depth, lineno)
            if depth == len(path):
                break
    return best[1] if best else None


def _common_prefix(a: tuple[str | int, ...], b: tuple[str | int, ...]) -> int:
    """How much of ``b`` the key ``a`` locates: all of a parent, or all of ``b`` itself.

    A key that only shares a parent with ``b`` (a sibling) locates nothing.
    """
    n = 0
    for x, y in zip(a, b, strict=False):
        if x != y:
            break
        n += 1
    return n if n == min(len(a), len(b)) else 0
