"""A blocking client for a run's control socket: what ``pipeplex send``, ``status`` and
the other client commands use.

Plain sockets and :mod:`json`, no event loop, so a client command costs little more than
starting Python. The protocol is described in ``docs/control-protocol.md``: one JSON
object per line each way; every request gets one answer, ``{"ok": true, ...}`` or
``{"ok": false, "error": CODE, "message": TEXT}``; ``attach`` then streams events.

Example::

    with ControlClient(run_dir) as client:
        client.request("send", name="alice", data="hello\\n")
        for record in client.request("status")["members"]:
            print(record["name"], record["state"])
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import socket
import stat
import struct
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from types import TracebackType
from typing import Any

from ._run_process import RunProcess
from .errors import NoRun, RequestFailed, RunStopped
from .inputs.rundir import LOCK_NAME, MAX_REQUEST, SOCKET_NAME, SUN_PATH_MAX
from .output.status import format_status, started_and_ready

__all__ = ("MAX_REQUEST", "ControlClient", "format_status", "started_and_ready")

CONNECT_TIMEOUT = 10.0
ANSWER_TIMEOUT = 60.0
STOPPED_LOOK = 0.5
"""Seconds between two looks at whether the run is stopped while its answer has not come
(and between the two looks before a request is sent that find it so)."""
ENDED_LOOK = 0.1
"""Seconds between looks at a run's socket once it has closed a stop's connection before
its end (see :meth:`ControlClient.wait_ended`)."""
_UCRED = struct.Struct("3i")  # struct ucred: pid, uid, gid (SO_PEERCRED)


class ControlClient:
    """One connection to the control socket of the run at ``run_dir``.

    Raises (from :meth:`connect`, which the context manager calls):
        NoRun: no run at ``run_dir``, or a stale one.
        RunStopped: the run is stopped (SIGSTOP, Ctrl-Z, a debugger); nothing was sent.
    """

    def __init__(self, run_dir: Path | str, *, timeout: float | None = ANSWER_TIMEOUT) -> None:
        self.run_dir = Path(run_dir).absolute()
        self.timeout = timeout
        self._sock: socket.socket | None = None
        self._run: RunProcess | None = None
        self._buffer = b""
        self._next_id = 0

    def __repr__(self) -> str:
        state = "connected" if self._sock is not None else "closed"
        return f"<ControlClient {str(self.run_dir)!r} {state}>"

    def __enter__(self) -> ControlClient:
        self.connect()
        return self

    def __exit__(self, et: type[BaseException] | None, ev: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    def connect(self) -> None:
        """Connect to the run's socket, checking first that the folder is a run folder of
        ours and then that a process of ours serves it: in a shared ``/tmp``, or below a
        folder of someone else's, another user could have put one there to read what is
        sent. Then that the run is not stopped: it would take the connection (the kernel
        does, into the socket's backlog) and answer nothing."""
        if self._sock is not None:
            return
        dir_fd: int | None = None
        run: RunProcess | None = None
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            # (O_RDONLY, not O_PATH: with O_PATH a link would be opened, not refused.)
            dir_fd = os.open(self.run_dir,
                             os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
            self._check_folder(os.fstat(dir_fd))
            # Through the descriptor: the folder just checked, whatever its path names now
            # (and any length of path).
            address = f"/proc/self/fd/{dir_fd}/{SOCKET_NAME}"
            if not os.path.isdir(f"/proc/self/fd/{dir_fd}"):  # (no /proc)
                address = str(self.run_dir / SOCKET_NAME)
                if len(os.fsencode(address)) > SUN_PATH_MAX:
                    raise OSError(errno.ENAMETOOLONG, "socket path too long, and no /proc")
            folder_fd = dir_fd

            def look_at_run() -> None:  # (the backlog is full: is the run stopped?)
                nonlocal run
                run = run or RunProcess.hold(_lock_pid(self.run_dir) or 0, folder_fd)
                self._check_stopped(run)

            _connect(sock, address, look_at_run)
            if run is not None:  # (the lock file's: the socket's own is the one to trust)
                run.close()
            run = RunProcess.hold(self._check_server(sock), dir_fd)
            self._check_stopped(run)
        except BaseException as exc:
            sock.close()
            if run is not None:
                run.close()
            if isinstance(exc, OSError):
                raise self._no_run(exc, dir_fd) from None
            raise
        finally:
            if dir_fd is not None:
                os.close(dir_fd)
        sock.settimeout(self.timeout)
        self._sock, self._run = sock, run

    def _check_stopped(self, run: RunProcess | None) -> None:
        """Raise :class:`RunStopped` if ``run`` is stopped, and still is a moment later (a
        look can catch a traced run in a stop of an instant, as under ``strace``, or one
        stopped and continued at once); nothing was sent."""
        if run is None or run.stopped() is None:
            return
        time.sleep(STOPPED_LOOK)
        if (state := run.stopped()) is not None:
            raise RunStopped(run_dir=str(self.run_dir), pid=run.pid, traced=state == "t")

    def _check_folder(self, st: os.stat_result) -> None:
        uid = os.geteuid()
        if st.st_uid != uid:
            raise NoRun(f"refusing {self.run_dir}: it belongs to uid {st.st_uid}, so no "
                        "pipeplex run of yours made it (someone else's, or put there by "
                        "someone else); nothing was sent", run_dir=str(self.run_dir))
        if st.st_mode & 0o077:
            raise NoRun(f"refusing {self.run_dir}: its mode is {st.st_mode & 0o777:04o}, and a "
                        "pipeplex run makes its folder 0700; nothing was sent",
                        run_dir=str(self.run_dir))

    def _check_server(self, sock: socket.socket) -> int:
        """The pid of the process serving the socket, once it is known to run as us."""
        pid, uid, _gid = _UCRED.unpack(
            sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, _UCRED.size))
        if uid != os.geteuid():
            raise NoRun(f"refusing the control socket in {self.run_dir}: uid {uid} serves it, "
                        "not a pipeplex run of yours; nothing was sent",
                        run_dir=str(self.run_dir))
        return int(pid)

    def _no_run(self, exc: OSError, dir_fd: int | None) -> NoRun:
        """Why nothing answered at the run folder (open at ``dir_fd``, if it could be)."""
        where = str(self.run_dir)
        if exc.errno in (errno.ELOOP, errno.ENOTDIR) and self.run_dir.is_symlink():
            return NoRun(f"refusing {where}: it is a symbolic link, and a pipeplex run never "
                         "makes its folder one; pass the folder itself", run_dir=where)
        pid = _lock_pid(self.run_dir)
        alive = pid is not None and dir_fd is not None and _is_run(pid, dir_fd)
        with contextlib.suppress(OSError):
            mode = os.lstat(self.run_dir / SOCKET_NAME).st_mode
            if not stat.S_ISSOCK(mode):  # (no run's leftover: one would not clean it up)
                from ._file_kind import file_kind

                return NoRun(f"{self.run_dir / SOCKET_NAME} is {file_kind(mode)}, not the "
                             "socket of a pipeplex run; move it away or use another run "
                             "folder", run_dir=where)
        if exc.errno == errno.ECONNREFUSED or (pid is not None and not alive):
            who = f" (pid {pid})" if pid is not None else ""
            return NoRun(
                f"the pipeplex run at {where}{who} is gone: it ended without cleaning up its "
                "files; the next 'pipeplex run' there cleans them up",
                run_dir=where, stale=True,
            )
        if exc.errno in (errno.ENOENT, errno.ENOTDIR):
            if alive:
                return NoRun(f"the pipeplex run at {where} (pid {pid}) has no control socket "
                             "yet; it may still be starting", run_dir=where)
            return NoRun(f"no pipeplex run at {where}", run_dir=where, absent=True)
        if exc.errno in (errno.EACCES, errno.EPERM):
            return NoRun(f"cannot reach the pipeplex run at {where}: permission denied "
                         "(it belongs to another user)", run_dir=where)
        if isinstance(exc, TimeoutError):
            return NoRun(f"the pipeplex run at {where} does not accept connections (is it "
                         "stopped, or overloaded?)", run_dir=where)
        return NoRun(f"cannot reach the pipeplex run at {where}: {exc.strerror or exc}",
                     run_dir=where)

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None
        if self._run is not None:
            self._run.close()
            self._run = None

    # Requests -----------------------------------------------------------------------

    def request(self, op: str, **fields: Any) -> dict[str, Any]:
        """Send one request and return its answer.

        Raises:
            RequestFailed: the run answered with an error, or closed the connection first.
            RunStopped: the run is stopped (see :meth:`read_message`).
        """
        self.send_request(op, **fields)
        return self.read_answer()

    def send_request(self, op: str, **fields: Any) -> None:
        """Send a request without waiting for its answer (see :meth:`read_answer`).

        Raises:
            RequestFailed: the request is too large, or the run closed the connection
                (``code`` "closed").
        """
        self.connect()
        assert self._sock is not None
        message = {"op": op, **{k: v for k, v in fields.items() if v is not None}}
        try:
            line = json.dumps(message, ensure_ascii=False).encode()
        except UnicodeEncodeError:  # bytes that are not UTF-8, as surrogateescape keeps them
            line = json.dumps(message).encode()  # (escaped: "\udcff", which the run takes)
        if len(line) > MAX_REQUEST:
            raise RequestFailed("too_large", f"request of {len(line)} bytes exceeds "
                                f"{MAX_REQUEST // 1024} KiB; send less at a time, or write "
                                "a longer line to NAME.in in the run folder, which takes "
                                "lines of up to 1 MiB")
        try:
            self._sock.sendall(line + b"\n")
        except (BrokenPipeError, ConnectionResetError):
            raise RequestFailed("closed", "the run closed the connection before the request "
                                "was sent (it may have ended)") from None

    def read_answer(self) -> dict[str, Any]:
        """The next answer on this connection.

        Raises:
            RequestFailed: an error answer, or the connection closed first.
            RunStopped: the run is stopped (see :meth:`read_message`).
        """
        answer = self.read_message()
        if answer is None:
            raise RequestFailed("closed", "the run closed the connection before answering "
                                "(it may have ended)")
        if not answer.get("ok"):
            raise RequestFailed(str(answer.get("error", "failed")),
                                str(answer.get("message", "the request failed")), answer)
        return answer

    def read_message(self) -> dict[str, Any] | None:
        """The next JSON line from the run, or None at the end of the connection.

        Raises:
            TimeoutError: nothing came for :attr:`timeout` seconds.
            RunStopped: meanwhile, the run was found stopped (SIGSTOP, Ctrl-Z, a debugger)
                at two looks in a row; it carries out what it was sent once it goes on.
        """
        return self._read_message(watch=True)

    def _read_message(self, *, watch: bool) -> dict[str, Any] | None:
        assert self._sock is not None
        while b"\n" not in self._buffer:
            data = self._receive() if watch else self._recv()
            if not data:
                return None
            self._buffer += data
        line, _, self._buffer = self._buffer.partition(b"\n")
        message: dict[str, Any] = json.loads(line.decode("utf-8", "surrogateescape"))
        return message

    def has_message(self) -> bool:
        """True when a whole message is already buffered (reading it will not wait)."""
        return b"\n" in self._buffer

    def events(self) -> Iterator[dict[str, Any]]:
        """Messages until the run closes the connection (after ``attach`` or ``stop``)."""
        assert self._sock is not None
        self._sock.settimeout(None)
        # Not watched: a run stopped while it is followed is followed again once it goes on.
        while (message := self._read_message(watch=False)) is not None:
            yield message

    def wait_ended(self) -> bool:
        """Wait until the run has ended, as a run ends: it gives up its folder's socket,
        then closes its connections. Whether it did: False for a run that was killed, its
        connection closed and its socket left (or, with no process held, one that closed
        this connection and goes on). A run may close a connection before it ends (one
        past its limit of connections): then, while its process lives (a program using the
        API lives on after its run), this waits for the socket to go, looking every
        :data:`ENDED_LOOK` seconds.

        Raises:
            RunStopped: the run was stopped at two looks in a row.
        """
        socket_path = self.run_dir / SOCKET_NAME
        ours = _identity(socket_path)  # (not a socket the next run in the folder made)

        def still_there() -> bool:
            return ours is not None and _identity(socket_path) == ours

        for _ in self.events():  # (until the run closes this connection)
            pass
        run = self._run
        stopped_at: float | None = None
        while still_there():
            if run is None or run.exited(ENDED_LOOK):
                return not still_there()
            if run.stopped() is None:
                stopped_at = None
            elif stopped_at is None:
                stopped_at = time.monotonic()
            elif time.monotonic() - stopped_at >= STOPPED_LOOK:
                raise RunStopped(run_dir=str(self.run_dir), pid=run.pid,
                                 traced=run.stopped() == "t", sent=True)
        return True

    def _receive(self) -> bytes:
        """The next bytes from the run (none at the end of the connection), waiting
        :attr:`timeout` seconds at most, and looking every :data:`STOPPED_LOOK` seconds
        meanwhile whether the run is stopped: a run stopped after it took the request
        would leave the client waiting in silence; one that goes on meanwhile answers.

        Raises:
            TimeoutError: nothing came in time.
            RunStopped: the run was stopped at two looks in a row.
        """
        assert self._sock is not None
        if self._run is None:  # (no pidfd, another pid namespace: nothing to look at)
            return self._recv()
        deadline = None if self.timeout is None else time.monotonic() + self.timeout
        stopped: str | None = None
        try:
            while True:
                left = STOPPED_LOOK if deadline is None else min(deadline - time.monotonic(),
                                                                 STOPPED_LOOK)
                if left <= 0:
                    raise TimeoutError(errno.ETIMEDOUT, "timed out")
                self._sock.settimeout(left)
                with contextlib.suppress(TimeoutError):
                    return self._recv()
                before, stopped = stopped, self._run.stopped()
                if before is not None and stopped is not None:
                    raise RunStopped(run_dir=str(self.run_dir), pid=self._run.pid,
                                     traced=stopped == "t", sent=True)
        finally:
            self._sock.settimeout(self.timeout)

    def _recv(self) -> bytes:
        assert self._sock is not None
        try:
            return self._sock.recv(64 * 1024)  # see READ_SIZE in participants/_output.py
        except ConnectionResetError:
            return b""


def _identity(path: Path) -> tuple[int, int] | None:
    """The device and inode of the file at ``path`` (not followed), None if there is none."""
    try:
        st = os.lstat(path)
    except OSError:
        return None
    return st.st_dev, st.st_ino


def _connect(sock: socket.socket, address: str, look: Callable[[], None]) -> None:
    """Connect, waiting (up to CONNECT_TIMEOUT) while the run's listen backlog is full.

    A Unix socket's non-blocking connect fails with EAGAIN instead of waiting when the
    backlog is full, and a blocking one could wait forever on a stopped run. A stopped
    run's backlog fills up with the clients that gave up on it: while it is full, ``look``
    (which raises if the run is stopped) runs every STOPPED_LOOK seconds.
    """
    sock.setblocking(False)
    now = time.monotonic()
    deadline, look_at = now + CONNECT_TIMEOUT, now + STOPPED_LOOK
    pause = 0.002
    while True:
        try:
            sock.connect(address)
            return
        except BlockingIOError:
            if (now := time.monotonic()) >= look_at:
                look()
                look_at = time.monotonic() + STOPPED_LOOK
            if now + pause > deadline:
                raise TimeoutError(errno.ETIMEDOUT, "connect timed out") from None
            time.sleep(pause)
            pause = min(pause * 2, 0.05)


def _lock_pid(run_dir: Path) -> int | None:
    """The pid in the run's lock file (its first word), if it is a regular file of ours in
    a folder of ours: read without following a link or waiting on a pipe put there (the
    default folder's name is easy to foresee), and no more than a pid's worth of it."""
    with contextlib.suppress(OSError, ValueError):
        folder = os.open(run_dir, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
        try:
            if os.fstat(folder).st_uid != os.geteuid():
                return None
            fd = os.open(LOCK_NAME, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC,
                         dir_fd=folder)
        finally:
            os.close(folder)
        try:
            st = os.fstat(fd)
            if not stat.S_ISREG(st.st_mode) or st.st_uid != os.geteuid():
                return None
            text = os.read(fd, 64).decode("ascii").split()  # (its pid, then its run id)
        finally:
            os.close(fd)
        return int(text[0]) if text else None
    return None


def _is_run(pid: int, dir_fd: int) -> bool:
    """Whether ``pid``, named by the lock file of the run folder open at ``dir_fd``, is
    that folder's run: a run that ended without cleaning up left its pid there, which may
    be a stranger's by now (see :class:`RunProcess`)."""
    run = RunProcess.hold(pid, dir_fd)
    if run is None:
        return False
    try:
        return run.is_the_run()
    finally:
        run.close()
