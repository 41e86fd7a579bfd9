"""The run folder: where a running cast can be reached from other terminals and scripts.

It holds ``NAME.in`` (a FIFO per member), ``all.in`` (to everyone), ``control.sock``
(the control socket) and ``run.lock`` (the pid of the run holding it, and of its
guardian). Everything here is private to the user: the folder is 0700, the pipes and the
socket 0600, and we refuse to use anything that someone else could have planted: a
symlink, a folder owned by another user, or one that others may write to. All work
inside the folder goes through a descriptor of the folder itself, so its path cannot be
swapped under us between the check and the use.
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

from ..errors import RunDirError
from ._private_dir import (
    COMMAND,
    described,
    make_private_dir,
    remove_empty,
    run_folder_at_risk,
)

__all__ = ("LOCK_NAME", "MAX_REQUEST", "SOCKET_NAME", "SUN_PATH_MAX", "RunDir", "default_run_dir",
           "default_run_dirs", "live_run_elsewhere", "refuse_a_second_run")

LOCK_NAME = "run.lock"
SOCKET_NAME = "control.sock"
SUN_PATH_MAX = 107
"""Longest path a Unix socket address holds on Linux (``sun_path`` is 108 bytes with its NUL)."""
MAX_REQUEST = 64 * 1024
"""Longest request line the control socket reads (without its newline)."""
OPEN_ATTEMPTS = 5  # a folder removed as it is opened (a run there ending) is made anew


_BASE_NAMES = ("pipeplex", f"pipeplex-{os.geteuid()}")
"""The names :func:`_runtime_base` gives: a folder of another name is not it."""


def _runtime_base() -> Path:
    """``$XDG_RUNTIME_DIR/pipeplex`` when that folder is usable, else ``$TMPDIR/pipeplex-UID``
    (``/tmp/pipeplex-UID`` without an absolute TMPDIR). Usable: the user's, private, and
    on a path nobody else could move it off (a folder above it of another user's would let
    them swap the runs for folders of theirs, as for a TMPDIR)."""
    xdg = os.environ.get("XDG_RUNTIME_DIR")
    if xdg and os.path.isabs(xdg):  # (a relative one is to be ignored, says the XDG spec)
        try:
            st = os.stat(xdg)
        except OSError:
            st = None
        if (st and stat.S_ISDIR(st.st_mode) and st.st_uid == os.geteuid()
                and not st.st_mode & 0o077 and run_folder_at_risk(Path(xdg, "pipeplex")) is None):
            return Path(xdg) / "pipeplex"
    return _temp_base(os.environ.get("TMPDIR"))


def _temp_base(tmpdir: str | None) -> Path:
    """``$TMPDIR/pipeplex-UID`` where TMPDIR is a folder the user may write to, which nobody
    else could move the runs' base out of (one kept across ``su`` or ``sudo -E`` may be
    another user's); else ``/tmp/pipeplex-UID``."""
    base = f"pipeplex-{os.geteuid()}"
    if (tmpdir and os.path.isabs(tmpdir) and os.path.isdir(tmpdir)
            and os.access(tmpdir, os.W_OK | os.X_OK)
            and run_folder_at_risk(Path(tmpdir, base)) is None):
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


def live_run_elsewhere(cwd: Path | None = None) -> tuple[Path, str | None] | None:
    """A run of ``cwd`` that another environment put in another of
    :func:`default_run_dirs` (a terminal with XDG_RUNTIME_DIR, an ssh shell without it), and
    that is running there: its folder and its pid (None if its lock does not say); None if
    there is none. A second run of the folder is refused, as it is in the same folder: the
    clients of this folder would reach one run or the other.

    Running: its control socket takes a connection (a listener is there; one that died
    left a socket that refuses it). Only in a private folder of the user's, where the socket
    is theirs: something another user put in a shared TMPDIR does not stop a run."""
    own = default_run_dir(cwd)
    for folder in default_run_dirs(cwd):
        if folder == own:
            continue
        try:
            held = os.lstat(folder)
            sock = os.lstat(folder / SOCKET_NAME)
        except OSError:
            continue
        if (not stat.S_ISDIR(held.st_mode) or held.st_uid != os.geteuid()
                or held.st_mode & 0o077 or not stat.S_ISSOCK(sock.st_mode)
                or sock.st_uid != os.geteuid() or run_folder_at_risk(folder) is not None):
            continue
        if _listening(folder):
            return folder, _pid_in_lock(folder)
    return None


def refuse_a_second_run(given_as: str = COMMAND) -> None:
    """Refuse to start a run of this folder while one runs where another environment put
    it (:func:`live_run_elsewhere`), as a second run in the same folder is refused.

    Raises:
        RunDirError: there is one; the message says where, and what to do.
    """
    found = live_run_elsewhere()
    if found is not None:
        folder, pid = found
        who = f" (pid {pid})" if pid is not None else ""
        raise RunDirError(
            f"a run of this folder is already going at {folder}{who}, where a shell with "
            f"another XDG_RUNTIME_DIR or TMPDIR put it; stop it first (pipeplex stop "
            f"--run-dir {folder}), or give this run a folder of its own ({given_as})")


def _listening(folder: Path) -> bool:
    """Whether a run listens on the control socket in ``folder``: it takes a connection, or
    would once its backlog drains (a run that is busy, or stopped with SIGSTOP, is there).
    Reached through the folder's descriptor, as :meth:`RunDir.listen_socket` binds it."""
    try:
        dir_fd = os.open(folder, os.O_PATH | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError:
        return False
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
            probe.setblocking(False)
            try:
                via_proc = f"/proc/self/fd/{dir_fd}"
                probe.connect(f"{via_proc}/{SOCKET_NAME}" if os.path.isdir(via_proc)
                              else os.fspath(folder / SOCKET_NAME))
            except BlockingIOError:
                return True  # (its backlog is full)
            except OSError:
                return False  # refused (no listener: a dead run's), or gone
            return True
    finally:
        os.close(dir_fd)


def _pid_in_lock(folder: Path) -> str | None:
    """The pid a run's lock file in ``folder`` names (never through a link); None if none."""
    try:
        fd = os.open(folder / LOCK_NAME, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK
                     | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        text = os.pread(fd, LOCK_MAX, 0).decode("ascii", "replace")
    except OSError:  # (no regular file: a pipe put there)
        return None
    finally:
        os.close(fd)
    pid = text.split()[0] if text.split() else ""
    return pid if pid.isdigit() else None


_LOCK_TEXT = re.compile(r"\d+ [\w.-]{1,40}( \d+ \d+)?")
"""What a run writes in its lock file: its pid, its ``PIPEPLEX_RUN_ID`` (``-`` when it
has none), and its guardian's pid and start time (none where that start time could not be
read, nor in the lock of an earlier version). The first two at least: a pid file of
another program (a pid alone) is not taken for a dead run's lock, whose pipes and socket
would be removed."""
_NO_RUN_ID = "-"
LOCK_MAX = 128
"""Bytes a lock file may hold (a run's takes 80 at most)."""


class RunDir:
    """A locked, private run folder. Use :meth:`open`, then :meth:`close` at the end."""

    def __init__(self, path: Path, dir_fd: int, lock_fd: int, *, created: bool,
                 stale_pid: int | None, parents: list[Path] | None = None,
                 stale_run_id: str | None = None,
                 stale_guardian: tuple[int, int] | None = None, given_as: str = COMMAND,
                 run_id: str = _NO_RUN_ID) -> None:
        self.path = path
        self.given_as = given_as
        """How the caller gives a run folder, for the messages: ``--run-dir``, ``run_dir=``."""
        self.dir_fd = dir_fd
        self._lock_fd = lock_fd
        self._created = created
        self._parents = parents or []
        """The folders above it made for it (``--run-dir a/b/run`` in a fresh place)."""
        self.stale_pid = stale_pid
        """The pid of an earlier run that died without cleaning up, if there was one."""
        self.stale_run_id = stale_run_id
        """That run's ``PIPEPLEX_RUN_ID``, if it wrote one: what it left running has it."""
        self.stale_guardian = stale_guardian
        """That run's guardian process, by pid and start time (a pid alone may be a
        stranger's by now), if it wrote it: while it lives, it is stopping what that run
        left; once it is gone, what is left stays."""
        self._run_id = run_id
        self._entries: dict[str, tuple[int, int]] = {}
        """What this run made in the folder, by name: (device, inode), so that only that
        very file is removed at the end, never what someone put in its place."""
        self._closed = False

    @classmethod
    def open(cls, path: Path | str, run_id: str | None = None, *,
             guardian: tuple[int, int] | None = None, given_as: str = COMMAND) -> RunDir:
        """Create or take over the run folder at ``path`` (``run_id``: this run's
        ``PIPEPLEX_RUN_ID``, and ``guardian``: its guardian process's pid and start time,
        both kept in the lock file for the next run, should this one die; ``given_as``: how
        the caller gives another folder, ``--run-dir`` or ``run_dir=``).

        Raises:
            RunDirError: unsafe, busy (another live run holds it), or cannot be created.
        """
        path = Path(path).absolute()
        for _ in range(OPEN_ATTEMPTS):
            try:
                in_base = path.parent.name in _BASE_NAMES and path.parent == _runtime_base()
                dir_fd, created, parents = make_private_dir(path, in_base=in_base,
                                                            given_as=given_as)
                try:
                    lock_fd, earlier = cls._lock(path, dir_fd, given_as)
                except BaseException:
                    os.close(dir_fd)
                    if created:  # (nothing of ours left behind: an empty folder)
                        remove_empty([path, *parents])
                    raise
                break
            except FileNotFoundError:
                continue  # a run ending there removed the folder as we came: make it anew
        else:
            raise RunDirError(f"cannot create run folder {path}: something keeps removing it")
        # A shared lock on the folder itself: a cleaner of temporary files (systemd-tmpfiles)
        # leaves a locked folder's contents alone, however long the run leaves its pipes
        # untouched. (Not had only while such a cleaner holds it, for a moment.)
        with contextlib.suppress(BlockingIOError):
            fcntl.flock(dir_fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        # A default folder is pipeplex's own, whoever made it (a run killed there): it goes
        # at the end, once empty, as one made now would.
        stale = int(earlier[0]) if earlier else None
        run_dir = cls(
            path, dir_fd, lock_fd, created=created or in_base, stale_pid=stale,
            parents=parents, given_as=given_as,
            stale_run_id=earlier[1] if len(earlier) > 1 and earlier[1] != _NO_RUN_ID else None,
            stale_guardian=(int(earlier[2]), int(earlier[3])) if len(earlier) > 3 else None,
            run_id=run_id if run_id and _LOCK_TEXT.fullmatch(f"0 {run_id}") else _NO_RUN_ID)
        try:
            run_dir.record_guardian(guardian)
        except RunDirError:
            run_dir.close()  # (what it made goes: the folder a run there would have used)
            raise
        if stale is not None:
            run_dir._clean_stale()
        return run_dir

    def record_guardian(self, guardian: tuple[int, int] | None) -> None:
        """Write this run's record in its lock file: its pid, its run id, and ``guardian``
        (its guardian process's pid and start time; None: not known), for the next run
        should this one die. Again each time a guardian starts in place of one gone: the
        next run must not take a dead one's pid for the guardian at work, nor wait for it.

        Never shorter than the record it replaces (padded with spaces), and in one write:
        another run trying the folder meanwhile reads one record or the other, never a
        truncated one (which it would take for another program's file).

        Raises:
            RunDirError: it cannot be written (its file system is full).
        """
        if self._closed:
            return
        record = f"{os.getpid()} {self._run_id}"
        if guardian is not None:
            record += f" {guardian[0]} {guardian[1]}"
        try:
            size = os.fstat(self._lock_fd).st_size
            os.pwrite(self._lock_fd, f"{record.ljust(size - 1)}\n".encode(), 0)
        except OSError as exc:
            raise RunDirError(f"cannot write {self.path / LOCK_NAME}: {exc.strerror} (free some "
                              f"space there, or give another run folder with {self.given_as})"
                              ) from None

    @staticmethod
    def _lock(path: Path, dir_fd: int, given_as: str) -> tuple[int, list[str]]:
        """The lock file, held and emptied; the words of the record an earlier run left
        in it (none if none did), checked against :data:`_LOCK_TEXT`."""
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
        previous = os.pread(fd, LOCK_MAX, 0).decode("ascii", "replace").strip()
        fields = previous.split()  # (a run writes its pid, its run id, its guardian's)
        pid = fields[0] if fields and fields[0].isdigit() else None
        if (previous and not _LOCK_TEXT.fullmatch(previous)) or st.st_size > LOCK_MAX:
            os.close(fd)
            raise RunDirError(f"refusing {path / LOCK_NAME}: it is a file that no pipeplex run "
                              "wrote (a run writes its pid and its run id), which would be "
                              "emptied and removed, with the pipes and the socket of the "
                              "run it seems to be; move it away or give another run folder")
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            if pid == str(os.getpid()):
                raise RunDirError(
                    f"run folder {path} is in use by another plex of this process; close it "
                    "first or give this one another run_dir") from None
            who = f" (pid {pid})" if pid is not None else ""
            raise RunDirError(
                f"run folder {path} is in use by another pipeplex run{who}; stop that run "
                f"first or give another run folder ({given_as})"
            ) from None
        # A run that ends removes the lock file while it holds the lock: ours may be that
        # removed file. Then the folder belongs to whoever opened the new one; ask again.
        try:
            current = os.stat(LOCK_NAME, dir_fd=dir_fd, follow_symlinks=False)
        except FileNotFoundError:
            current = None
        if current is None or (current.st_ino, current.st_dev) != (st.st_ino, st.st_dev):
            os.close(fd)
            return RunDir._lock(path, dir_fd, given_as)
        os.fchmod(fd, 0o600)
        os.ftruncate(fd, 0)
        return fd, fields

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
        """Create the FIFO ``name`` (0600); its path.

        Raises:
            RunDirError: ``name`` is taken by something else (a file of yours is never
                removed), or the FIFO cannot be created.
        """
        if "/" in name or name in (".", ".."):
            raise RunDirError(f"refusing {name!r} as a file name in the run folder")
        try:
            try:
                os.mkfifo(name, 0o600, dir_fd=self.dir_fd)
            except FileExistsError:
                # Not an earlier run's: a killed run's pipes went as the folder was taken
                # over, and a run that ended removed its own. A pipe of the user's, say, in
                # the project folder given as --run-dir: theirs, never removed.
                st = os.stat(name, dir_fd=self.dir_fd, follow_symlinks=False)
                raise RunDirError(f"{self.path / name} exists already ({described(st)}), and "
                                  "no earlier run left it; move it away or use another run "
                                  "folder") from None
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
                                  f"earlier run ({described(st)}); move it away or use another "
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
                    f"is not mounted to reach it another way; give a shorter one ({self.given_as})"
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
            remove_empty([self.path, *self._parents])

