"""Whether a folder may hold a run's pipes, and making one that may: the user's own, 0700,
with nothing on the way to it that someone else could move or point elsewhere.

Everything is checked on what is held open, not on a path that could be swapped between
the check and the use, and what a run made for its folder goes with it.
"""

from __future__ import annotations

import contextlib
import os
import stat
from pathlib import Path
from typing import Literal

from .._file_kind import file_kind
from .._path_safety import unsafe_above
from ..errors import RunDirError

__all__ = ("COMMAND", "OPEN_DIR", "check_private", "described", "make_private_dir",
           "private_dir", "remove_empty", "run_folder_at_risk")

COMMAND = "--run-dir"
"""How a run folder is given, for the messages: the command's option (the Python API's
callers pass ``run_dir=``, as ``given_as``)."""
OPEN_DIR = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


def _elsewhere(given_as: str) -> str:
    return (f"leave out {given_as} (the default folder is private to you), or give one in a "
            "folder of your own")


Own = Literal["run", "base"] | None
"""Which folder of pipeplex's own a folder is, where it is one (see :func:`check_private`)."""


def check_private(path: Path, st: os.stat_result, given_as: str = COMMAND, *,
                  own: Own = None) -> None:
    """Refuse ``path`` (its ``lstat``) as a run folder unless it is a private folder of the
    user's. ``own``: it is pipeplex's, a default run folder (which may be removed, to be
    made anew) or their base (which holds other runs' folders)."""
    if stat.S_ISLNK(st.st_mode):
        raise RunDirError(f"refusing run folder {path}: it is a symlink; pass a real folder")
    if not stat.S_ISDIR(st.st_mode):
        raise RunDirError(f"refusing run folder {path}: it is not a folder")
    if st.st_uid != os.geteuid():
        planted = ""
        if own is not None:  # (a name anyone could take first in a shared TMPDIR)
            planted = (f": they may have made it to have your runs' pipes (it is the folder of "
                       f"{'every run' if own == 'base' else 'the runs'} of yours without "
                       f"{given_as}); set TMPDIR to a folder of yours, or give a run folder "
                       f"({given_as})")
        raise RunDirError(
            f"refusing run folder {path}: it belongs to uid {st.st_uid}, not to you "
            f"(uid {os.geteuid()})"
            + (planted or f"; give a folder of your own ({given_as})")
        )
    mode = stat.S_IMODE(st.st_mode)
    if mode & 0o077:
        raise RunDirError(f"refusing run folder {path}: its mode is {mode:04o}, {_open_how(mode)}"
                          f" (a run folder is 0700); {_remedy(path, mode, given_as, own)}")


def _open_how(mode: int) -> str:
    """What a folder's mode lets others do, in words: 'others may plant files there'."""
    who = "others" if mode & 0o007 else "its group"
    if mode & 0o022:
        return f"{who} may plant files there"
    if mode & 0o044:
        return f"{who} may list it"
    return f"{who} may reach the pipes in it by name"


def _remedy(path: Path, mode: int, given_as: str, own: Own) -> str:
    """What to do about an open run folder: a chmod, unless the folder serves others (a
    sticky one such as /tmp, or one holding a project's files): closing it would break them.
    One of pipeplex's own may be removed instead."""
    import shlex  # (only for these messages)

    shown = shlex.quote(os.fspath(path))
    if own == "run":
        return (f"run chmod 700 {shown}, or remove it (rm -r {shown}): it is pipeplex's own, "
                "and made anew")
    if own == "base":
        return f"run chmod 700 {shown} (it holds every run folder of yours without {given_as})"
    if mode & stat.S_ISVTX:  # (/tmp: a name in it might be anyone's first)
        return (f"leave out {given_as} (the default folder is private to you), or give a "
                "folder of your own")
    try:
        with os.scandir(path) as entries:
            holds_files = any(entries)
    except OSError:
        holds_files = True
    if holds_files:
        return (f"give a folder of its own, such as {path / 'run'} (pipeplex makes it), "
                f"with {given_as}")
    return f"run chmod 700 {shown} or give another run folder ({given_as})"


def described(st: os.stat_result) -> str:
    """What a file in the way is, for a message: 'a symbolic link of uid 1001'."""
    return f"{file_kind(st.st_mode)} of uid {st.st_uid}"


def make_private_dir(path: Path, *, in_base: bool, given_as: str = COMMAND
                     ) -> tuple[int, bool, list[Path]]:
    """:func:`private_dir` for ``path``, its parent made first (private too when it is the
    runs' base, ``in_base``: every default run folder's); also the folders above it that were
    made for it, deepest first.

    Raises:
        FileNotFoundError: the folder was removed as it was opened.
        RunDirError: any other reason it cannot be made.
    """
    parents: list[Path] = []
    try:
        if in_base:
            try:
                os.close(private_dir(path.parent, given_as, own="base")[0])  # (kept)
            except RunDirError as exc:
                if not os.path.islink(path.parent):
                    raise
                raise RunDirError(  # (nobody gave it: the message must say what it is)
                    f"refusing {path.parent}, the folder of every run of yours without "
                    f"{given_as}: it is {described(os.lstat(path.parent))}, which "
                    f"someone may have put there; remove it if it is yours, or give a run "
                    f"folder ({given_as})") from exc
        else:
            _check_above(path, given_as)
            missing = path.parent
            while not os.path.lexists(missing) and missing != missing.parent:
                parents.append(missing)
                missing = missing.parent
            for folder in reversed(parents):  # (private whatever the umask, as the run's)
                with contextlib.suppress(FileExistsError):  # (another run made it too)
                    os.mkdir(folder, 0o700)
    except OSError as exc:  # (its parent cannot be: not a race, whatever the error)
        # Those made before a deeper one failed (too long a path), deepest first.
        remove_empty([folder for folder in parents if os.path.lexists(folder)])
        raise RunDirError(f"cannot create run folder {path}: {exc.strerror}") from None
    try:
        fd, created = private_dir(path, given_as, own="run" if in_base else None)
    except FileNotFoundError:
        remove_empty(parents)
        raise
    except OSError as exc:
        remove_empty(parents)
        raise RunDirError(f"cannot create run folder {path}: {exc.strerror}") from None
    if in_base:
        return fd, created, parents
    # Checked again now that it is held open: folders above it that someone else made (or
    # swapped) between the first check and now are theirs, and the path must still name
    # the folder held.
    try:
        _check_above(path, given_as)
        st, held = os.stat(path), os.fstat(fd)
        if (st.st_dev, st.st_ino) != (held.st_dev, held.st_ino):
            raise RunDirError(f"refusing run folder {path}: it was moved away as it was "
                              f"being made; {_elsewhere(given_as)}")
    except (OSError, RunDirError) as exc:
        os.close(fd)
        if created:
            remove_empty([path])
        remove_empty(parents)
        if isinstance(exc, RunDirError):
            raise
        raise RunDirError(f"cannot create run folder {path}: {exc.strerror}") from None
    return fd, created, parents


def _check_above(path: Path, given_as: str) -> None:
    """Refuse a run folder that someone else could move away during the run, to put pipes
    of their own in its place (a script's ``echo secret > RUN/NAME.in`` would then be theirs):
    see :func:`run_folder_at_risk`."""
    why = run_folder_at_risk(path)
    if why is not None:
        raise RunDirError(f"refusing run folder {path}: {why}; {_elsewhere(given_as)}")


def run_folder_at_risk(path: Path) -> str | None:
    """Why someone else could move the run folder ``path`` away during the run, to put
    pipes of their own in its place (see :func:`~pipeplex._path_safety.unsafe_above`)."""
    return unsafe_above(path, "move the run folder away and put pipes of their own in its "
                              "place")


def remove_empty(folders: list[Path]) -> None:
    """Remove ``folders`` (deepest first) as long as they are empty: ones made for a run
    folder go with it, unless something else was put in them meanwhile."""
    for folder in folders:
        try:
            os.rmdir(folder)
        except OSError:
            return


def private_dir(path: Path, given_as: str = COMMAND, *, own: Own = None
                ) -> tuple[int, bool]:
    """Create ``path`` as a 0700 folder, or check the existing one; open it (``own``: see
    :func:`check_private`).

    Returns the folder's descriptor and whether we created it.
    """
    created = False
    try:
        os.mkdir(path, 0o700)
        created = True
    except FileExistsError:
        # (FileNotFoundError: removed meanwhile)
        check_private(path, os.lstat(path), given_as, own=own)
    except FileNotFoundError:  # (not a race: where it goes, no folder can be made)
        raise RunDirError(f"cannot create run folder {path}: no folder can be made in "
                          f"{path.parent}") from None
    try:
        fd = os.open(path, OPEN_DIR)
    except OSError:  # (out of descriptors, say): the folder we made goes
        if created:
            with contextlib.suppress(OSError):
                os.rmdir(path)
        raise
    try:
        if created:  # mkdir honours the umask; set the mode we promise.
            os.fchmod(fd, 0o700)
        check_private(path, os.fstat(fd), given_as, own=own)
    except BaseException:
        os.close(fd)
        raise
    return fd, created
