"""The run folder: where a running cast can be reached from other terminals and scripts.

It holds ``NAME.in`` (a FIFO per member), ``all.in`` (to everyone), ``control.sock``
(the control socket) and ``run.lock`` (the pid of the run holding it). Everything here is
private to the user: the folder is 0700, the pipes and the socket 0600, and we refuse to
use anything that someone else could have planted: a symlink, a folder owned by another
user, or one that others may write to. All work inside the folder goes through a
descriptor of the folder itself, so its path cannot be swapped under us between the check
and the use.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import re
import socket
import stat
import zlib
from collections.abc import Callable
from pathlib import Path

from .._file_kind import file_kind
from ..errors import RunDirError

__all__ = ("LOCK_NAME", "MAX_REQUEST", "SOCKET_NAME", "SUN_PATH_MAX", "RunDir", "default_run_dir",
           "default_run_dirs")

LOCK_NAME = "run.lock"
SOCKET_NAME = "control.sock"
SUN_PATH_MAX = 107
"""Longest path a Unix socket address holds on Linux (``sun_path`` is 108 bytes with its NUL)."""
MAX_REQUEST = 64 * 1024
"""Longest request line the control socket reads (without its newline)."""
_GIVE = "--run-dir, or run_dir= in Python"
"""How a run folder is given, for the messages (the command's option, the API's argument)."""
_ELSEWHERE = (f"leave out {_GIVE} (the default folder is private to you), or give one in a "
              "folder of your own")
OPEN_ATTEMPTS = 5  # a folder removed as it is opened (a run there ending) is made anew
_OPEN_DIR = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


_BASE_NAMES = ("pipeplex", f"pipeplex-{os.geteuid()}")
"""The names :func:`_runtime_base` gives: a folder of another name is not it."""


def _runtime_base() -> Path:
    """``$XDG_RUNTIME_DIR/pipeplex`` when that folder is usable, else ``$TMPDIR/pipeplex-UID``
    (``/tmp/pipeplex-UID`` without an absolute TMPDIR)."""
    xdg = os.environ.get("XDG_RUNTIME_DIR")
    if xdg and os.path.isabs(xdg):  # (a relative one is to be ignored, says the XDG spec)
        try:
            st = os.stat(xdg)
        except OSError:
            st = None
        if st and stat.S_ISDIR(st.st_mode) and st.st_uid == os.geteuid() and not st.st_mode & 0o077:
            return Path(xdg) / "pipeplex"
    return _temp_base(os.environ.get("TMPDIR"))


def _temp_base(tmpdir: str | None) -> Path:
    """``$TMPDIR/pipeplex-UID`` where TMPDIR is a folder the user may write to, which nobody
    else could move the runs' base out of (one kept across ``su`` or ``sudo -E`` may be
    another user's); else ``/tmp/pipeplex-UID``."""
    base = f"pipeplex-{os.geteuid()}"
    if (tmpdir and os.path.isabs(tmpdir) and os.path.isdir(tmpdir)
            and os.access(tmpdir, os.W_OK | os.X_OK)
            and _unsafe_above(Path(tmpdir, base)) is None):
        return Path(tmpdir, base)
    return Path("/tmp", base)


def _run_dir_name(cwd: Path | None) -> str:
    cwd = (cwd or Path.cwd()).resolve()
    label = re.sub(r"[^A-Za-z0-9_.-]", "_", cwd.name)[:24] or "root"
    digest = f"{zlib.crc32(os.fsencode(cwd)):08x}"  # tells folders apart (hashlib: 1 ms to load)
    return f"{label}-{digest}"


def default_run_dir(cwd: Path | None = None) -> Path:
    """The run folder used when none is given: one per working folder, so clients find it.

    ``$XDG_RUNTIME_DIR/pipeplex/<folder name>-<hash of its path>``, or the same under
    ``$TMPDIR/pipeplex-UID`` (``/tmp/...``) when there is no usable runtime folder.
    """
    return _runtime_base() / _run_dir_name(cwd)


def default_run_dirs(cwd: Path | None = None) -> list[Path]:
    """Where a run started in ``cwd`` without a run folder may be: :func:`default_run_dir`
    first, then where it goes in another environment (a shell without XDG_RUNTIME_DIR, or
    with another TMPDIR, as cron's, sudo's or another ``su`` session's), so that a client
    finds the run that this one's environment would not have put there."""
    name = _run_dir_name(cwd)
    bases = [_runtime_base(), Path(f"/run/user/{os.geteuid()}/pipeplex"),
             _temp_base(os.environ.get("TMPDIR")), _temp_base(None)]
    return list(dict.fromkeys(base / name for base in bases))


def _check_private(path: Path, st: os.stat_result) -> None:
    if stat.S_ISLNK(st.st_mode):
        raise RunDirError(f"refusing run folder {path}: it is a symlink; pass a real folder")
    if not stat.S_ISDIR(st.st_mode):
        raise RunDirError(f"refusing run folder {path}: it is not a folder")
    if st.st_uid != os.geteuid():
        raise RunDirError(
            f"refusing run folder {path}: it belongs to uid {st.st_uid}, not to you "
            f"(uid {os.geteuid()}); give a folder of your own ({_GIVE})"
        )
    mode = stat.S_IMODE(st.st_mode)
    if mode & 0o077:
        raise RunDirError(f"refusing run folder {path}: its mode is {mode:04o}, {_open_how(mode)}"
                          f" (a run folder is 0700); {_remedy(path, mode)}")


def _open_how(mode: int) -> str:
    """What a folder's mode lets others do, in words: 'others may plant files there'."""
    who = "others" if mode & 0o007 else "its group"
    if mode & 0o022:
        return f"{who} may plant files there"
    if mode & 0o044:
        return f"{who} may list it"
    return f"{who} may reach the pipes in it by name"


def _remedy(path: Path, mode: int) -> str:
    """What to do about an open run folder: a chmod, unless the folder serves others (a
    sticky one such as /tmp, or one holding a project's files): closing it would break them."""
    if mode & stat.S_ISVTX:  # (/tmp: a name in it might be anyone's first)
        return (f"leave out {_GIVE} (the default folder is private to you), or give a "
                "folder of your own")
    try:
        with os.scandir(path) as entries:
            holds_files = any(entries)
    except OSError:
        holds_files = True
    if holds_files:
        return (f"give a folder of its own, such as {path / 'run'} (pipeplex makes it), "
                f"with {_GIVE}")
    import shlex  # (only for this message)

    return f"run chmod 700 {shlex.quote(os.fspath(path))} or give another run folder ({_GIVE})"


def _what(st: os.stat_result) -> str:
    """What a file in the way is, for a message: 'a symbolic link of uid 1001'."""
    return f"{file_kind(st.st_mode)} of uid {st.st_uid}"


def _make_private_dir(path: Path) -> tuple[int, bool, list[Path]]:
    """:func:`_private_dir` for ``path``, its parent made first (private too when it is the
    runtime base); also the folders above it that were made for it, deepest first.

    Raises:
        FileNotFoundError: the folder was removed as it was opened.
        RunDirError: any other reason it cannot be made.
    """
    parents: list[Path] = []
    try:
        if path.parent.name in _BASE_NAMES and path.parent == _runtime_base():
            try:
                os.close(_private_dir(path.parent)[0])  # (shared by every run: kept)
            except RunDirError as exc:
                if not os.path.islink(path.parent):
                    raise
                raise RunDirError(  # (nobody gave it: the message must say what it is)
                    f"refusing {path.parent}, the folder of every run of yours without "
                    f"{_GIVE.split(',')[0]}: it is {_what(os.lstat(path.parent))}, which someone "
                    f"may have put there; remove it if it is yours, or give a run folder "
                    f"({_GIVE})") from exc
        else:
            _check_above(path)
            missing = path.parent
            while not os.path.lexists(missing) and missing != missing.parent:
                parents.append(missing)
                missing = missing.parent
            for folder in reversed(parents):  # (private whatever the umask, as the run's)
                with contextlib.suppress(FileExistsError):  # (another run made it too)
                    os.mkdir(folder, 0o700)
    except OSError as exc:  # (its parent cannot be: not a race, whatever the error)
        raise RunDirError(f"cannot create run folder {path}: {exc.strerror}") from None
    try:
        fd, created = _private_dir(path)
    except FileNotFoundError:
        _remove_empty(parents)
        raise
    except OSError as exc:
        _remove_empty(parents)
        raise RunDirError(f"cannot create run folder {path}: {exc.strerror}") from None
    if path.parent.name in _BASE_NAMES and path.parent == _runtime_base():
        return fd, created, parents
    # Checked again now that it is held open: folders above it that someone else made (or
    # swapped) between the first check and now are theirs, and the path must still name
    # the folder held.
    try:
        _check_above(path)
        st, held = os.stat(path), os.fstat(fd)
        if (st.st_dev, st.st_ino) != (held.st_dev, held.st_ino):
            raise RunDirError(f"refusing run folder {path}: it was moved away as it was "
                              f"being made; {_ELSEWHERE}")
    except (OSError, RunDirError) as exc:
        os.close(fd)
        if created:
            _remove_empty([path])
        _remove_empty(parents)
        if isinstance(exc, RunDirError):
            raise
        raise RunDirError(f"cannot create run folder {path}: {exc.strerror}") from None
    return fd, created, parents


def _check_above(path: Path) -> None:
    """Refuse a run folder that someone else could move away during the run, to put pipes
    of their own in its place (a script's ``echo secret > RUN/NAME.in`` would then be theirs):
    see :func:`_unsafe_above`."""
    why = _unsafe_above(path)
    if why is not None:
        raise RunDirError(f"refusing run folder {path}: {why}; {_ELSEWHERE}")


def _unsafe_above(path: Path) -> str | None:
    """Why someone else could move ``path`` away (or swap a folder or a link on the way to
    it): a folder on the way that belongs to another user, or that others may write to and
    is not sticky (as /tmp is), or a symbolic link of another user, who could point it
    elsewhere. The path is followed as the kernel follows it, link by link, so every folder
    it goes through counts, those a link leads through too. Root's folders and links and
    the user's own are safe. None if nothing is in the way."""
    safe = (0, os.geteuid())
    todo = list(path.parent.parts[1:])
    current = "/"
    why = _open_to_others(current)
    hops = 0
    while todo and why is None:
        name = todo.pop(0)
        if name in ("", "."):
            continue
        if name == "..":
            current = os.path.dirname(current)
            continue
        step = os.path.join(current, name)
        try:
            st = os.lstat(step)
        except OSError:
            return None  # (missing: what is below is made by us)
        if stat.S_ISLNK(st.st_mode):
            if st.st_uid not in safe:
                return (f"{step} is a symbolic link of uid {st.st_uid}, who could point it "
                        "elsewhere during the run")
            hops += 1
            if hops > 40:
                return f"{step} leads through more than 40 symbolic links"
            target = os.readlink(step)
            if os.path.isabs(target):
                current = "/"
            todo[:0] = Path(target).parts[1 if os.path.isabs(target) else 0:]
            continue
        if not stat.S_ISDIR(st.st_mode):
            return None  # (no folder: said where the run folder is made)
        current = step
        why = _open_to_others(current, st)
    return why


def _open_to_others(folder: str, st: os.stat_result | None = None) -> str | None:
    """Why someone else could rename what is in ``folder``, or None."""
    if st is None:
        st = os.stat(folder)
    if st.st_uid not in (0, os.geteuid()):
        return (f"{folder} belongs to uid {st.st_uid}, who could move the run folder away "
                "and put pipes of their own in its place")
    if _others_may_write(folder, st) and not st.st_mode & stat.S_ISVTX:
        return (f"others may write to {folder} (mode {stat.S_IMODE(st.st_mode):04o}), and so "
                "move the run folder away and put pipes of their own in its place")
    return None


def _others_may_write(folder: str, st: os.stat_result) -> bool:
    """Whether anyone but the user may write to ``folder``: others, or its group, unless
    that is the user's own (of the user's name, with no other members, and nobody else's
    as theirs), and with no ACL that may name other users."""
    if st.st_mode & 0o002:
        return True
    if not st.st_mode & 0o020:
        return False
    import grp
    import pwd

    try:
        os.getxattr(folder, "system.posix_acl_access")
        return True  # (the group bits are then the mask of entries that may name others)
    except OSError:
        pass
    try:
        group = grp.getgrgid(st.st_gid)
        me = pwd.getpwuid(os.geteuid())
    except KeyError:
        return True
    return not (st.st_gid == me.pw_gid and group.gr_name == me.pw_name and not group.gr_mem
                and all(user.pw_gid != st.st_gid or user.pw_uid == me.pw_uid
                        for user in pwd.getpwall()))


def _remove_empty(folders: list[Path]) -> None:
    """Remove ``folders`` (deepest first) as long as they are empty: ones made for a run
    folder go with it, unless something else was put in them meanwhile."""
    for folder in folders:
        try:
            os.rmdir(folder)
        except OSError:
            return


def _private_dir(path: Path) -> tuple[int, bool]:
    """Create ``path`` as a 0700 folder, or check the existing one; open it.

    Returns the folder's descriptor and whether we created it.
    """
    created = False
    try:
        os.mkdir(path, 0o700)
        created = True
    except FileExistsError:
        _check_private(path, os.lstat(path))  # (FileNotFoundError: removed as we came)
    except FileNotFoundError:  # (not a race: where it goes, no folder can be made)
        raise RunDirError(f"cannot create run folder {path}: no folder can be made in "
                          f"{path.parent}") from None
    try:
        fd = os.open(path, _OPEN_DIR)
    except OSError:  # (out of descriptors, say): the folder we made goes
        if created:
            with contextlib.suppress(OSError):
                os.rmdir(path)
        raise
    try:
        if created:  # mkdir honours the umask; set the mode we promise.
            os.fchmod(fd, 0o700)
        _check_private(path, os.fstat(fd))
    except BaseException:
        os.close(fd)
        raise
    return fd, created


class RunDir:
    """A locked, private run folder. Use :meth:`open`, then :meth:`close` at the end."""

    def __init__(self, path: Path, dir_fd: int, lock_fd: int, *, created: bool,
                 stale_pid: int | None, parents: list[Path] | None = None) -> None:
        self.path = path
        self.dir_fd = dir_fd
        self._lock_fd = lock_fd
        self._created = created
        self._parents = parents or []
        """The folders above it made for it (``--run-dir a/b/run`` in a fresh place)."""
        self.stale_pid = stale_pid
        """The pid of an earlier run that died without cleaning up, if there was one."""
        self._entries: dict[str, tuple[int, int]] = {}
        """What this run made in the folder, by name: (device, inode), so that only that
        very file is removed at the end, never what someone put in its place."""
        self._closed = False

    @classmethod
    def open(cls, path: Path | str) -> RunDir:
        """Create or take over the run folder at ``path``.

        Raises:
            RunDirError: unsafe, busy (another live run holds it), or cannot be created.
        """
        path = Path(path).absolute()
        for _ in range(OPEN_ATTEMPTS):
            try:
                dir_fd, created, parents = _make_private_dir(path)
                try:
                    lock_fd, stale = cls._lock(path, dir_fd)
                except BaseException:
                    os.close(dir_fd)
                    if created:  # (nothing of ours left behind: an empty folder)
                        _remove_empty([path, *parents])
                    raise
                break
            except FileNotFoundError:
                continue  # a run ending there removed the folder as we came: make it anew
        else:
            raise RunDirError(f"cannot create run folder {path}: something keeps removing it")
        run_dir = cls(path, dir_fd, lock_fd, created=created, stale_pid=stale, parents=parents)
        if stale is not None:
            run_dir._clean_stale()
        return run_dir

    @staticmethod
    def _lock(path: Path, dir_fd: int) -> tuple[int, int | None]:
        flags = os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC
        try:
            fd = os.open(LOCK_NAME, flags, 0o600, dir_fd=dir_fd)
        except FileNotFoundError:
            raise  # the folder itself was removed (a run ending there): open() tries anew
        except OSError as exc:
            if exc.errno == errno.ELOOP:  # (O_NOFOLLOW: a link in its place, never followed)
                raise RunDirError(f"refusing {path / LOCK_NAME}: it is a symbolic link, not "
                                  "a lock file of a run; move it away") from None
            raise RunDirError(f"cannot create {path / LOCK_NAME}: {exc.strerror}") from None
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode) or st.st_uid != os.geteuid():
            os.close(fd)
            raise RunDirError(f"refusing {path / LOCK_NAME}: not a regular file of yours")
        previous = os.pread(fd, 64, 0).decode("ascii", "replace").strip()
        if (previous and not previous.isdigit()) or st.st_size > 64:  # (a run writes a pid)
            os.close(fd)
            raise RunDirError(f"refusing {path / LOCK_NAME}: it is a file that no pipeplex run "
                              "wrote (it holds no pid), which would be emptied and removed; "
                              "move it away or give another run folder")
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            if previous == str(os.getpid()):
                raise RunDirError(
                    f"run folder {path} is in use by another plex of this process; close it "
                    "first or give this one another run_dir") from None
            who = f" (pid {previous})" if previous.isdigit() else ""
            raise RunDirError(
                f"run folder {path} is in use by another pipeplex run{who}; stop that run "
                f"first or give another run folder ({_GIVE})"
            ) from None
        # A run that ends removes the lock file while it holds the lock: ours may be that
        # removed file. Then the folder belongs to whoever opened the new one; ask again.
        try:
            current = os.stat(LOCK_NAME, dir_fd=dir_fd, follow_symlinks=False)
        except FileNotFoundError:
            current = None
        if current is None or (current.st_ino, current.st_dev) != (st.st_ino, st.st_dev):
            os.close(fd)
            return RunDir._lock(path, dir_fd)
        os.fchmod(fd, 0o600)
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        return fd, int(previous) if previous.isdigit() else None

    def _clean_stale(self) -> None:
        """Remove the pipes and the socket a dead run left: FIFOs and sockets of ours only
        (the folder may be a project's, with a ``Makefile.in`` of its own)."""
        for entry in os.listdir(self.dir_fd):
            if entry.endswith(".in"):
                kind = stat.S_ISFIFO
            elif entry == SOCKET_NAME:
                kind = stat.S_ISSOCK
            else:
                continue
            if self._is_ours(entry, kind):
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(entry, dir_fd=self.dir_fd)

    def _is_ours(self, name: str, kind: Callable[[int], bool]) -> bool:
        """Whether ``name`` itself (a link is not followed) is a ``kind`` of the user's."""
        try:
            st = os.stat(name, dir_fd=self.dir_fd, follow_symlinks=False)
        except FileNotFoundError:
            return False
        return kind(st.st_mode) and st.st_uid == os.geteuid()

    def _made(self, name: str) -> None:
        st = os.stat(name, dir_fd=self.dir_fd, follow_symlinks=False)
        self._entries[name] = (st.st_dev, st.st_ino)

    def make_fifo(self, name: str) -> str:
        """Create the FIFO ``name`` (0600), replacing a pipe an earlier run left; its path.

        Raises:
            RunDirError: ``name`` is taken by something else (a file of yours is never
                removed), or the FIFO cannot be created.
        """
        if "/" in name or name in (".", ".."):
            raise RunDirError(f"refusing {name!r} as a file name in the run folder")
        try:
            try:
                os.mkfifo(name, 0o600, dir_fd=self.dir_fd)
            except FileExistsError:  # the folder was cleaned when opened: rare, so second
                st = os.stat(name, dir_fd=self.dir_fd, follow_symlinks=False)
                if not stat.S_ISFIFO(st.st_mode) or st.st_uid != os.geteuid():
                    raise RunDirError(f"{self.path / name} exists and is not a pipe of an "
                                      f"earlier run ({_what(st)}); move it away or use "
                                      "another run folder") from None
                os.unlink(name, dir_fd=self.dir_fd)
                os.mkfifo(name, 0o600, dir_fd=self.dir_fd)
            self._made(name)
        except OSError as exc:
            raise RunDirError(f"cannot create {self.path / name}: {exc.strerror}") from None
        return str(self.path / name)

    def open_fifo(self, name: str) -> int:
        """Open our FIFO ``name`` for non-blocking reading, checking it is still ours."""
        fd = os.open(name, os.O_RDONLY | os.O_NONBLOCK | os.O_NOFOLLOW | os.O_CLOEXEC,
                     dir_fd=self.dir_fd)
        st = os.fstat(fd)
        if not stat.S_ISFIFO(st.st_mode) or st.st_uid != os.geteuid():
            os.close(fd)
            raise RunDirError(f"refusing {self.path / name}: not a FIFO of yours")
        # mkfifo honours the umask; make the mode exactly 0600 whatever the umask was.
        os.fchmod(fd, 0o600)
        return fd

    def listen_socket(self, name: str = SOCKET_NAME, *, backlog: int = 1024) -> socket.socket:
        """Create, bind (0600) and listen on the Unix socket ``name``; removed by :meth:`close`.

        The address goes through ``/proc/self/fd/<folder descriptor>``: it is short whatever
        the folder's path, and it names the folder we checked, not whatever its path points
        to now. Without ``/proc``, the plain path is used if it fits; never the abstract
        namespace, which has no permissions.

        Raises:
            RunDirError: the socket cannot be created (path too long without /proc, ...).
        """
        try:
            st = os.stat(name, dir_fd=self.dir_fd, follow_symlinks=False)
        except FileNotFoundError:
            pass
        else:
            if not stat.S_ISSOCK(st.st_mode) or st.st_uid != os.geteuid():
                raise RunDirError(f"{self.path / name} exists and is not the socket of an "
                                  f"earlier run ({_what(st)}); move it away or use another "
                                  "run folder")
            os.unlink(name, dir_fd=self.dir_fd)
        via_proc = f"/proc/self/fd/{self.dir_fd}"
        if os.path.isdir(via_proc):
            address = f"{via_proc}/{name}"
        else:
            address = str(self.path / name)
            length = len(os.fsencode(address))
            if length > SUN_PATH_MAX:
                raise RunDirError(
                    f"socket path too long ({length} > {SUN_PATH_MAX}): {address}, and /proc "
                    f"is not mounted to reach it another way; give a shorter one ({_GIVE})"
                )
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        # bind() creates the file with the umask's mode: start private, then set it exactly.
        old_umask = os.umask(0o177)
        try:
            sock.bind(address)
        except OSError as exc:
            sock.close()
            raise RunDirError(f"cannot create {self.path / name}: {exc.strerror}") from None
        finally:
            os.umask(old_umask)
        try:
            self._made(name)
            os.chmod(name, 0o600, dir_fd=self.dir_fd)
            sock.listen(backlog)
            sock.setblocking(False)
        except OSError as exc:
            sock.close()
            raise RunDirError(f"cannot listen on {self.path / name}: {exc.strerror}") from None
        return sock

    def remove(self, name: str) -> None:
        """Remove ``name``, which this run made: that very file, never one put in its place."""
        made = self._entries.pop(name, None)
        if made is None:
            return
        try:
            st = os.stat(name, dir_fd=self.dir_fd, follow_symlinks=False)
        except FileNotFoundError:
            return
        if (st.st_dev, st.st_ino) == made:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(name, dir_fd=self.dir_fd)

    def close(self) -> None:
        """Remove what this run created; the folder too if we made it and it is empty
        (idempotent)."""
        if self._closed:
            return
        self._closed = True
        for entry in list(self._entries):
            self.remove(entry)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(LOCK_NAME, dir_fd=self.dir_fd)
        os.close(self._lock_fd)
        os.close(self.dir_fd)
        if self._created:
            _remove_empty([self.path, *self._parents])

