"""Which scenarios failed the last time they ran, for ``pipeplex test --lf``.

Kept per folder the tests run from, in ``$XDG_CACHE_HOME/pipeplex/last-failed/`` (else
``~/.cache``): nothing is written into the project. As pytest's ``--lf`` does, a run
changes only what it ran: a scenario that passed is forgotten, one that failed (or could not
be loaded) is remembered, and the others stay as they were. The cache is a convenience:
one that cannot be read or written is as good as empty, and never fails a run.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterable
from pathlib import Path

from ..report.files import Unsafe, make_folders, replace_file

__all__ = ("last_failed", "remember")


def _cache_file() -> Path | None:
    """This folder's file, or None where the cache folder is not the user's (root with a
    user's HOME would leave files there the user cannot write)."""
    cache = os.environ.get("XDG_CACHE_HOME", "")
    if not os.path.isabs(cache):  # (a relative one is ignored, as the XDG spec says)
        cache = os.path.join(Path.home(), ".cache")
    folder = Path(cache) / "pipeplex" / "last-failed"
    try:
        existing = next(f for f in (folder, *folder.parents) if f.exists())
        if existing.stat().st_uid != os.geteuid():
            return None
    except OSError:
        return None
    key = hashlib.blake2b(os.fsencode(os.getcwd()), digest_size=8).hexdigest()
    return folder / f"{key}.json"


def last_failed() -> set[str]:
    """The scenario files (absolute paths) that failed the last time they ran from here."""
    path = _cache_file()
    try:
        if path is None or not path.is_file() or path.is_symlink():
            return set()
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return set()
    failed = data.get("failed") if isinstance(data, dict) else None
    return {name for name in failed if isinstance(name, str)} if isinstance(failed, list) else set()


def remember(failed: Iterable[str | os.PathLike[str]],
             passed: Iterable[str | os.PathLike[str]]) -> None:
    """Record this run: ``failed`` are remembered, ``passed`` forgotten, the rest kept."""
    path = _cache_file()
    if path is None:
        return
    kept = (last_failed() - {os.path.abspath(p) for p in passed}) | {
        os.path.abspath(p) for p in failed}
    try:
        make_folders(path.parent, mode=0o700, above=0o700)
        replace_file(path, json.dumps({"cwd": os.getcwd(), "failed": sorted(kept)},
                                      indent=1).encode())
    except (OSError, Unsafe):
        pass  # (no cache: --lf runs everything, as with nothing recorded)
