"""Files pipeplex writes for the user (transcripts, logs, JUnit reports, golden files):
made new, never through a link or into a pipe, a device or another user's file put at
their path, and never on a way another user could change (a folder or a link of theirs
on the way, which they could point at a file of yours)."""

from __future__ import annotations

import contextlib
import errno
import os
import stat
from pathlib import Path

from .._file_kind import file_kind
from .._path_safety import unsafe_way

__all__ = ("Unsafe", "UnsafeWay", "check_way", "make_folders", "open_record", "refusal",
           "replace_file", "replaceable")


class Unsafe(Exception):
    """What is at a record's path must not be written to (the message says why)."""

    advice = "remove it, or give another file"
    """What the user can do about it."""


class UnsafeWay(Unsafe):
    """Another user could change the way to a record's folder (the message says who)."""

    advice = "give a path in a folder of your own"


def check_way(folder: str | os.PathLike[str]) -> None:
    """Refuse to write in ``folder`` when another user could swap it, or a folder or a link
    on the way to it, for a link of theirs between this check and the write, and have the
    record written over a file of the user's elsewhere (see
    :func:`~pipeplex._path_safety.unsafe_way`). Checked again once the folders exist: one
    made meanwhile by someone else is theirs, and refused.

    The owner of the working folder is trusted as the user is: pipeplex runs what their
    files there say (a cast, scenarios), which could do anything a link could. So root in
    a container, on a checkout of the host's user, writes its reports there.

    Raises:
        UnsafeWay: the message says which folder or link, and whose.
    """
    trusted: tuple[int, ...] = ()
    with contextlib.suppress(OSError):  # (a working folder removed under us: no one more)
        trusted = (os.stat(".").st_uid,)
    why = unsafe_way(Path(folder), "put a link of theirs on the way and have this file "
                                   "written elsewhere", trusted)
    if why is not None:
        raise UnsafeWay(why)


def refusal(st: os.stat_result) -> str | None:
    """Why what ``st`` describes must not be written over ("it is a named pipe, ..."), or
    None for a regular file of the user's with a single link."""
    mode = st.st_mode
    if stat.S_ISLNK(mode):
        return "it is a symbolic link, which pipeplex does not follow"
    if stat.S_ISDIR(mode):
        return "it is a folder"
    if not stat.S_ISREG(mode):
        return f"it is {file_kind(mode)}, not a regular file"
    if st.st_uid != os.geteuid():
        return "it belongs to another user"
    if st.st_nlink > 1:
        return "it has other hard links, which would see what is written"
    return None


def open_record(path: str | os.PathLike[str], *, dir_fd: int | None = None) -> int:
    """A descriptor to write ``path`` from its start: a new file of ours, mode 0600.

    An earlier record there (a regular file of ours with a single link) is replaced: it is
    removed, then a file is made that did not exist (``O_EXCL``), so nothing put at the path
    meanwhile (a link to another file, a pipe) is ever opened. Anything else at ``path`` is
    refused, never opened, emptied or chmodded, and so is a way to it that another user
    could change (:func:`check_way`). With ``dir_fd``, ``path`` is a name in that folder,
    whose way the caller checked.

    Raises:
        Unsafe: something else is, or was put, at ``path`` (the message says what).
        OSError: the file cannot be created.
    """
    if dir_fd is None:
        check_way(Path(path).parent)
    try:
        reason = refusal(os.lstat(path, dir_fd=dir_fd))
    except FileNotFoundError:
        pass
    else:
        if reason:
            raise Unsafe(reason)
        os.unlink(path, dir_fd=dir_fd)
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
    try:
        return os.open(path, flags, 0o600, dir_fd=dir_fd)
    except FileExistsError:
        raise Unsafe("something was put in its place while it was being made") from None


def replace_file(path: str | os.PathLike[str], data: bytes, *, mode: int = 0o600,
                 keep_mode: bool = False) -> None:
    """Make ``path`` hold ``data``: written whole to a new file in the same folder, then
    renamed over whatever is at ``path``.

    The new file is made as a record is (``O_EXCL``, never through a link, 0600), then given
    ``mode`` (with ``keep_mode``, an earlier file's mode instead). A failed write leaves the
    earlier file whole, and the rename replaces a link rather than writing through it; a
    link, or anything but a regular file of the user's, is refused all the same, so that
    one planted there is said rather than quietly replaced; so is a way to it that another
    user could change (:func:`check_way`).

    Raises:
        Unsafe: something else is at ``path`` (the message says what).
        OSError: the file cannot be written (nothing is left behind).
    """
    path = Path(path)
    check_way(path.parent)
    # The new file and the rename in one folder, whatever is done to the path meanwhile.
    folder = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        earlier = replaceable(path.name, dir_fd=folder)
        if keep_mode and earlier is not None:
            mode = stat.S_IMODE(earlier.st_mode)
        _remove_left_behind(path.name, folder)
        # (Its writer's pid in it, for the next to know it left behind: secrets loads
        # OpenSSL, 2-7 ms.)
        temporary = f".{path.name}.{os.getpid()}-{os.urandom(8).hex()}.tmp"
        fd = open_record(temporary, dir_fd=folder)
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


def _remove_left_behind(name: str, folder: int) -> None:
    """Remove the new files a writer of ``name`` killed before its rename left in ``folder``
    (``.NAME.PID-RANDOM.tmp``, regular files of the user's whose writer is gone): a golden
    file's beside the scenarios would be committed with them. One whose writer runs (another
    update of the same file) is left to it."""
    prefix = f".{name}."
    for entry in os.listdir(folder):
        if not (entry.startswith(prefix) and entry.endswith(".tmp")):
            continue
        pid, dash, _ = entry[len(prefix):-len(".tmp")].partition("-")
        if not dash or not pid.isdigit() or _alive(int(pid)):
            continue
        with contextlib.suppress(OSError):
            st = os.stat(entry, dir_fd=folder, follow_symlinks=False)
            if stat.S_ISREG(st.st_mode) and st.st_uid == os.geteuid():
                os.unlink(entry, dir_fd=folder)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # (another user's: a pid taken again since)
        return True
    return True


def replaceable(path: str | os.PathLike[str], *, dir_fd: int | None = None
                 ) -> os.stat_result | None:
    """What is at ``path``, if anything, when it is a regular file of the user's.

    Raises:
        Unsafe: something else is there.
    """
    try:
        st = os.lstat(path, dir_fd=dir_fd)
    except FileNotFoundError:
        return None
    # A file with other hard links is fine: the rename leaves them what they held.
    if stat.S_ISREG(st.st_mode) and st.st_uid == os.geteuid():
        return st
    raise Unsafe(refusal(st) or "it is not a regular file")


def make_folders(path: str | os.PathLike[str], *, mode: int, above: int = 0o755) -> None:
    """Make the folder ``path`` (``mode``) and the folders above it that are missing
    (``above``), never looser than that whatever the umask: ``Path.mkdir(parents=True)``
    makes the ones above with the umask's default, 0777 under ``umask 000``, which would let
    anyone put a link or a pipe where the records go. What exists is left as it is (a
    symbolic link in ``path``'s place is for the caller to refuse).

    Raises:
        OSError: a folder cannot be made (FileExistsError: a file is in ``path``'s place).
    """
    path = Path(path)
    missing = []
    folder = path
    while not os.path.lexists(folder) and folder != folder.parent:
        missing.append(folder)
        folder = folder.parent
    if not missing and not os.path.islink(path) and not os.path.isdir(path):
        raise FileExistsError(errno.EEXIST, "File exists", str(path))
    for folder in reversed(missing):
        try:
            os.mkdir(folder, mode if folder == path else above)
        except FileExistsError:
            if folder == path and not os.path.isdir(folder):
                raise
