"""The control socket: ``RUN_DIR/control.sock`` speaks JSON lines to other terminals and scripts.

Each connection is one task of the server's TaskGroup; a request is read (at most
:data:`MAX_REQUEST` bytes), carried out through the engine and its router, and answered
on the same line-oriented connection (see ``docs/control-protocol.md``). A client that
sends nothing costs one idle task; a client that sends garbage gets an error answer; a
client of another user is refused (``SO_PEERCRED``) and the refusal is noted in the run.

This module holds the connections: accepting them, their limits, reading their lines and
writing the answers. What each request does is in ``_control_requests.py``; ``attach``,
which turns a connection into a subscriber of the bus, in ``_control_attach.py``.
"""

from __future__ import annotations

import asyncio
import errno
import os
import resource
import socket
import struct
from typing import TYPE_CHECKING, Any

from .._events import Note
from ._control_attach import AttachClients
from ._control_requests import Refused, Requests, write_answer
from .rundir import MAX_REQUEST, RunDir

if TYPE_CHECKING:
    from ..engine.engine import Engine

__all__ = ("MAX_CONNECTIONS", "REFUSALS", "ControlServer", "connection_room")

MAX_CONNECTIONS = 512
"""Connections served at once; one more is answered ``busy`` and closed."""
REFUSALS = 64
"""Connections past MAX_CONNECTIONS accepted to be told "busy" (each is kept a moment, see
``_linger``); past these, clients wait in the listen backlog, so a flood of connections
cannot take the descriptors a member's start needs."""
BUSY_WAIT = 0.5
"""Seconds a connection past MAX_CONNECTIONS is given to send its request (a stop is carried
out all the same) before it is answered ``busy``."""
_UCRED = struct.Struct("3i")


def _client_waiting(sock: socket.socket) -> bool:
    """Whether a client waits to be accepted on ``sock`` (a poll object takes no
    descriptor, where pipeplex may have none to spare)."""
    import select

    poll = select.poll()
    poll.register(sock, select.POLLIN)
    return bool(poll.poll(0))


def connection_room(members: int) -> tuple[int, int]:
    """How many connections to serve at once, and how many more to accept to answer
    ``busy``: :data:`MAX_CONNECTIONS` and :data:`REFUSALS` where the limit on descriptors
    leaves room for them beside the members (``pipeplex run`` lifts it for that), fewer
    where a hard limit kept it low (``ulimit -n 256``): connections must not take the
    descriptors a member's restart, or the stop's look for what members left, needs."""
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    spare = soft - 64 - 8 * members  # (as descriptor_limit.lift_for counts a member)
    if soft == resource.RLIM_INFINITY or spare >= MAX_CONNECTIONS + REFUSALS:
        return MAX_CONNECTIONS, REFUSALS
    return max(8, spare * 7 // 8), max(2, spare // 8)


class ControlServer:
    """Serves ``control.sock`` of ``run_dir`` for ``engine`` until cancelled.

    Create it (binding happens at once, so clients can connect as soon as the run folder is
    announced), run :meth:`serve` as a task, call :meth:`finish` when the run ended, then
    cancel that task.

    Raises:
        RunDirError: the socket cannot be created.
    """

    def __init__(self, engine: Engine, run_dir: RunDir) -> None:
        self._engine = engine
        self._bus = engine.bus
        self._run_dir = run_dir
        self._sock = run_dir.listen_socket()
        self._uid = os.geteuid()
        self._connections = 0
        self._room = asyncio.Event()
        """Set while a connection may be accepted (see REFUSALS)."""
        self._room.set()
        self._accepting: asyncio.Task[None] | None = None
        self._requests = Requests(engine, run_dir)
        self._attached = AttachClients(engine, self._requests)

    def __repr__(self) -> str:
        return (f"<ControlServer {str(self._run_dir.path)!r} connections={self._connections} "
                f"attached={len(self._attached)}>")

    # Serving ------------------------------------------------------------------------

    async def serve(self) -> None:
        """Accept and serve clients until cancelled."""
        try:
            async with asyncio.TaskGroup() as tg:
                self._accepting = tg.create_task(self._accept(tg), name="control accept")
        finally:
            self.close()

    def close(self) -> None:
        """Stop listening (idempotent); the run folder removes the socket file."""
        self._attached.close()
        self._sock.close()

    async def _accept(self, tg: asyncio.TaskGroup) -> None:
        loop = asyncio.get_running_loop()
        out_of_fds = False
        while True:
            served, refused = connection_room(len(self._engine.members))
            if self._connections >= served + refused:
                self._room.clear()
                await self._room.wait()
                continue  # (the room is looked at anew: members may have come meanwhile)
            try:
                conn, _ = await loop.sock_accept(self._sock)
            except OSError as exc:
                if exc.errno not in (errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM):
                    raise
                # (Linux takes the descriptor before it looks for a client: said only
                # when one waits.)
                if not out_of_fds and _client_waiting(self._sock):
                    self._bus.publish(Note(f"control socket: cannot accept connections: "
                                           f"{exc.strerror}; retrying", level="warning"))
                    out_of_fds = True
                # Pending clients wait in the listen backlog; try again shortly.
                await asyncio.sleep(0.5)
                continue
            out_of_fds = False
            conn.setblocking(False)
            self._connections += 1
            # Decided now, in the order of arrival: when many connect at once, the first
            # ones are served, not refused for those accepted after them.
            busy = served if self._connections > served else None
            tg.create_task(self._client(conn, busy), name="control client")

    async def finish(self, status: int) -> None:
        """The run has ended: stop accepting, give attach clients their last events and end."""
        if self._accepting is not None:
            self._accepting.cancel()
        await self._attached.finish(status)

    async def _client(self, conn: socket.socket, busy: int | None) -> None:
        """Serve one connection (``busy``: the connections served, when this one is past
        them: it is answered so, unless it asks for a stop)."""
        stream: asyncio.StreamWriter | None = None
        try:
            pid, uid = _peer(conn)
            # A stream keeps the socket registered with the loop between requests (no epoll
            # calls per request) and enforces the line limit.
            reader, stream = await asyncio.open_unix_connection(sock=conn, limit=MAX_REQUEST)
            if uid != self._uid:
                self._bus.publish(Note(f"control socket: refused a connection from uid {uid} "
                                       f"(pid {pid}); only uid {self._uid} may use this run",
                                       level="warning"))
                await write_answer(stream, Refused(
                    "permission_denied",
                    f"permission denied for uid {uid}: this run belongs to uid {self._uid}",
                ).answer)
                await _linger(reader, stream)
                return
            if busy is not None:
                # A stop goes through all the same: connections a client leaked must not
                # leave a signal the only way to end the cast.
                stop = await _stop_request(reader, self._requests)
                if stop is not None:
                    await write_answer(stream, await self._requests.carry_out(stop, pid))
                    return
                await write_answer(stream, Refused(
                    "busy", f"too many control connections (more than {busy}); "
                    "try again when some have closed (a stop is carried out even so)").answer)
                await _linger(reader, stream)
                return
            last = False
            while not last:
                try:
                    line = await reader.readuntil(b"\n")
                except asyncio.IncompleteReadError as exc:
                    if not exc.partial.strip():
                        return  # the client left
                    # Its last request without a newline, then its half of the connection
                    # closed (printf '%s' ... | socat): answered, as the console and the
                    # run folder's pipes take a last line. (A client cut off in the middle
                    # of one leaves JSON that does not parse: said to nobody.)
                    line, last = exc.partial + b"\n", True
                except asyncio.LimitOverrunError:
                    await write_answer(stream, Refused(
                        "too_large", f"request exceeds {MAX_REQUEST // 1024} KiB (the limit "
                        "for one line); the connection is closed").answer)
                    return
                if not line.strip():
                    continue
                request, answer = self._requests.parse(line[:-1])
                if answer is None and request is not None and request["op"] == "attach":
                    if await self._attached.attach(reader, stream, request):
                        return  # it was a stream of events until now
                    continue  # refused: the connection stays usable, as after any request
                if answer is None:
                    assert request is not None
                    answer = await self._requests.carry_out(request, pid)
                await write_answer(stream, answer)
        except ConnectionError:
            pass  # the client went away
        except OSError as exc:
            if exc.errno not in (errno.EMFILE, errno.ENFILE):
                self._engine.crash(exc)
                return
            # Out of descriptors for what the request needed (a module to load, say): that
            # request fails, not the run. Said without json, which may be what failed.
            self._bus.publish(Note(f"control socket: a client's request failed: "
                                   f"{exc.strerror}; pipeplex is short of file descriptors "
                                   "(raise the limit with ulimit -n)", level="warning"))
            if stream is not None:
                stream.write(_OUT_OF_DESCRIPTORS)
        except Exception as exc:
            self._engine.crash(exc)
        finally:
            self._connections -= 1
            self._room.set()
            if stream is None:
                conn.close()
            elif _cancelling():
                stream.transport.abort()  # the run is over: nothing more to flush
            else:
                stream.close()  # what is buffered is flushed, then the socket closed


_OUT_OF_DESCRIPTORS = (b'{"ok": false, "error": "failed", "message": "pipeplex is out of file '
                       b'descriptors: try again once it has some to spare"}\n')


def _cancelling() -> bool:
    task = asyncio.current_task()
    return task is not None and task.cancelling() > 0


def _peer(conn: socket.socket) -> tuple[int, int]:
    """The (pid, uid) of the process at the other end, as the kernel recorded them."""
    pid, uid, _gid = _UCRED.unpack(
        conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, _UCRED.size))
    return pid, uid


async def _stop_request(reader: asyncio.StreamReader,
                        requests: Requests) -> dict[str, Any] | None:
    """The first request of a connection past the limit, if it comes within a moment and is
    a stop; else None (then it was read, and the answer is ``busy``)."""
    try:
        async with asyncio.timeout(BUSY_WAIT):
            line = await reader.readuntil(b"\n")
    except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, TimeoutError):
        return None
    request, refused = requests.parse(line[:-1])
    stop = refused is None and request is not None and request["op"] == "stop"
    return request if stop else None


async def _linger(reader: asyncio.StreamReader, stream: asyncio.StreamWriter) -> None:
    """Half-close after a refusal and read what the client sent, briefly, before closing.

    Closing a socket with unread data sends a reset, which can destroy our answer before
    the client reads it.
    """
    try:
        stream.write_eof()
        async with asyncio.timeout(1.0):
            while await reader.read(MAX_REQUEST):
                pass
    except (OSError, TimeoutError):
        pass
