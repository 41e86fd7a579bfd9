"""The control socket: ``RUN_DIR/control.sock`` speaks JSON lines to other terminals and scripts.

Each connection is one task of the server's TaskGroup; a request is read (at most
:data:`MAX_REQUEST` bytes), carried out through the engine and its router, and answered
on the same line-oriented connection (see ``docs/control-protocol.md``). A client that
sends nothing costs one idle task; a client that sends garbage gets an error answer; a
client of another user is refused (``SO_PEERCRED``) and the refusal is noted in the run.

``attach`` turns a connection into a subscriber of the bus. Its sink only queues events;
the connection's own task encodes and sends them, so the bus (and with it the cast) never
waits for a client. A client that lets more than :data:`ATTACH_BACKLOG` bytes pile up is
dropped with a notice, in the run and (if it still reads) on its connection.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import math
import os
import socket
import struct
from collections import deque
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from .._events import Event, InputSent, Note, Output
from .._signals import parse_signal, signal_name
from ..errors import PipeplexError, SignalRefused, UnknownMember
from .router import ALL
from .rundir import MAX_REQUEST, RunDir

if TYPE_CHECKING:
    from .._engine import Engine
    from ..participants import Process

__all__ = ("ATTACH_BACKLOG", "MAX_CONNECTIONS", "ControlServer")

MAX_CONNECTIONS = 512
REFUSALS = 64
"""Connections past MAX_CONNECTIONS accepted to be told "busy" (each is kept a moment, see
``_linger``); past these, clients wait in the listen backlog, so a flood of connections
cannot take the descriptors a member's start needs."""
"""Connections served at once; one more is answered ``busy`` and closed."""
ATTACH_BACKLOG = 4 * 1024 * 1024
"""Bytes of events waiting for one attach client before it is dropped (as much as the
terminal writer holds before it pauses the cast)."""
DROP_GRACE = 1.0
"""Seconds a dropped (or, at the end, a finished) attach client gets to take its last lines."""
END_GRACE = 2.0
_UCRED = struct.Struct("3i")

Answer = dict[str, Any]


class _Refused(Exception):
    """A request that gets an error answer."""

    def __init__(self, code: str, message: str, **extra: Any) -> None:
        super().__init__(message)
        self.answer: Answer = {"ok": False, "error": code, "message": message, **extra}


class _Subscriber:
    """An attach client's queue of events, fed by the bus and emptied by its connection."""

    def __init__(self, name: str | None) -> None:
        self.name = name
        self.events: deque[Event] = deque()
        self.queued = 0
        self.wake = asyncio.Event()
        self.dropped: str | None = None
        self.end: Answer | None = None
        self.sending: asyncio.Timeout | None = None
        self.unsubscribe: Callable[[], None] = lambda: None
        self.on_drop: Callable[[_Subscriber], None] = lambda sub: None

    def __call__(self, event: Event) -> None:
        if isinstance(event, InputSent) or self.dropped:
            return
        if self.name is not None and getattr(event, "name", None) not in (self.name, None):
            return  # following one member: its events, and notes about the whole run
        self.events.append(event)
        self.queued += (len(event.data) + 64) if isinstance(event, Output) else 128
        if self.queued > ATTACH_BACKLOG:
            self.drop(f"this client fell {self.queued} bytes behind the run")
        self.wake.set()

    def drop(self, reason: str) -> None:
        self.dropped = reason
        self.unsubscribe()
        self.events.clear()
        self.queued = 0
        if self.sending is not None:
            self.sending.reschedule(asyncio.get_running_loop().time() + DROP_GRACE)
        self.on_drop(self)
        self.wake.set()


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
        self._subscribers: set[_Subscriber] = set()
        self._no_subscribers = asyncio.Event()
        self._no_subscribers.set()
        self._accepting: asyncio.Task[None] | None = None
        self._ops: dict[str, Callable[[dict[str, Any], int], Awaitable[Answer]]] = {
            "ping": self._ping,
            "status": self._status,
            "send": self._send,
            "close": self._close,
            "signal": self._signal,
            "restart": self._restart,
            "start": self._start,
            "stop": self._stop,
        }

    def __repr__(self) -> str:
        return (f"<ControlServer {str(self._run_dir.path)!r} connections={self._connections} "
                f"attached={len(self._subscribers)}>")

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
        for sub in list(self._subscribers):
            sub.unsubscribe()
        self._sock.close()

    async def _accept(self, tg: asyncio.TaskGroup) -> None:
        loop = asyncio.get_running_loop()
        out_of_fds = False
        while True:
            if self._connections >= MAX_CONNECTIONS + REFUSALS:
                self._room.clear()
                await self._room.wait()
            try:
                conn, _ = await loop.sock_accept(self._sock)
            except OSError as exc:
                if exc.errno not in (errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM):
                    raise
                if not out_of_fds:
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
            # MAX_CONNECTIONS are served, not refused for those accepted after them.
            busy = self._connections > MAX_CONNECTIONS
            tg.create_task(self._client(conn, busy), name="control client")

    async def finish(self, status: int) -> None:
        """The run has ended: stop accepting, give attach clients their last events and end."""
        if self._accepting is not None:
            self._accepting.cancel()
        for sub in self._subscribers:
            sub.end = {"event": "end", "status": status}
            sub.wake.set()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(END_GRACE):
                await self._no_subscribers.wait()

    async def _client(self, conn: socket.socket, busy: bool) -> None:
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
                await _answer(stream, _Refused(
                    "permission_denied",
                    f"permission denied for uid {uid}: this run belongs to uid {self._uid}",
                ).answer)
                await _linger(reader, stream)
                return
            if busy:
                await _answer(stream, _Refused(
                    "busy", f"too many control connections (more than {MAX_CONNECTIONS}); "
                    "try again when some have closed").answer)
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
                    await _answer(stream, _Refused(
                        "too_large", f"request exceeds {MAX_REQUEST // 1024} KiB (the limit "
                        "for one line); the connection is closed").answer)
                    return
                if not line.strip():
                    continue
                request, answer = self._parse(line[:-1])
                if answer is None and request is not None and request["op"] == "attach":
                    if await self._attach(reader, stream, request):
                        return  # it was a stream of events until now
                    continue  # refused: the connection stays usable, as after any request
                if answer is None:
                    assert request is not None
                    answer = await self._carry_out(request, pid)
                await _answer(stream, answer)
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

    def _parse(self, line: bytes) -> tuple[dict[str, Any] | None, Answer | None]:
        """The request on ``line``, or the error answer it gets."""
        import json  # (loaded by the first request: a run nobody talks to never needs it)

        try:
            request = json.loads(line.decode("utf-8"), parse_constant=_not_json,
                                 parse_float=_finite, parse_int=_int)
        except (UnicodeDecodeError, ValueError) as exc:
            return None, _Refused("bad_json", f"not a JSON object on one UTF-8 line: {exc}").answer
        except RecursionError:
            return None, _Refused("bad_json", "not a JSON object pipeplex can read: it nests "
                                  "too deeply").answer
        if not isinstance(request, dict):
            return None, _Refused("bad_request", "a request is a JSON object with an 'op'").answer
        op = request.get("op")
        if not isinstance(op, str) or (op != "attach" and op not in self._ops):
            ops = ", ".join([*self._ops, "attach"])
            answer = (_Refused("unknown_op", f"unknown op {op!r} (ops: {ops})").answer
                      if isinstance(op, str) else
                      _Refused("bad_request", "a request needs an 'op', the name of what to "
                               f"do (ops: {ops})").answer)
            if "id" in request:
                answer["id"] = request["id"]
            return request, answer
        return request, None

    async def _carry_out(self, request: dict[str, Any], peer_pid: int) -> Answer:
        try:
            answer = await self._ops[request["op"]](request, peer_pid)
        except _Refused as refused:
            answer = refused.answer
        except UnknownMember as exc:
            answer = _Refused("unknown_member", str(exc), members=list(exc.valid)).answer
        if "id" in request:
            answer["id"] = request["id"]
        return answer

    # Operations ---------------------------------------------------------------------

    def _member_name(self, request: dict[str, Any], *, allow_all: bool = True) -> str:
        name = request.get("name")
        if not isinstance(name, str) or not name:
            raise _Refused("bad_request", f"{request['op']} needs a member 'name'")
        if name == ALL and not allow_all:
            raise _Refused("bad_request", f"{request['op']} takes one member, not 'all'")
        if not allow_all and name not in self._engine.members:
            raise UnknownMember(name, self._engine.members, all_too=False)
        self._engine.router.resolve(name)  # raises UnknownMember
        return name

    async def _ping(self, request: dict[str, Any], peer_pid: int) -> Answer:
        return {"ok": True, "pid": os.getpid()}

    async def _status(self, request: dict[str, Any], peer_pid: int) -> Answer:
        members = self._engine.status()
        return {"ok": True, "pid": os.getpid(), "run_dir": str(self._run_dir.path),
                "stopping": self._engine.stopping, "stop_reason": self._engine.stop_cause,
                "members": members}

    async def _send(self, request: dict[str, Any], peer_pid: int) -> Answer:
        name = self._member_name(request)
        text = request.get("data", "")
        eof = request.get("eof", False)
        if not isinstance(text, str) or not isinstance(eof, bool) or (
                "data" not in request and not eof):
            raise _Refused("bad_request", "send takes 'data' (a string) and 'eof' (true/false), "
                                          "at least one of them")
        if not text and not eof:  # (it would answer delivered: 0, as if nobody took it)
            raise _Refused("bad_request", "'data' is empty and 'eof' is not set: nothing to "
                                          "send (a line is \"text\\n\")")
        try:
            data = text.encode("utf-8", "surrogateescape")
        except UnicodeEncodeError:
            raise _Refused("bad_request", "'data' holds a lone surrogate that is not an "
                           "escaped byte (U+DC80..U+DCFF)") from None
        router = self._engine.router
        if name != ALL:
            member = router.resolve(name)[0]
            if not member.input_open:
                raise _Refused("not_running", f"{name} {_why_closed(member)}; nothing was sent")
        full = next((m for m in router.resolve(name) if m.input_open and m.input_full), None)
        if data and full is not None:
            raise _Refused("input_full", f"{full.name} has {full.input_waiting // 1024} KiB of "
                           "input it has not read yet; nothing was sent (send again once it "
                           "reads)")
        delivered = router.send(name, data) if data else 0
        if data and not delivered:
            if name == ALL:
                raise _Refused("not_running", "no member is taking input; nothing was sent")
            raise _Refused("not_running", f"{name} has closed its stdin; nothing was sent")
        if eof:
            if not data:  # (then what it delivered is the EOF)
                delivered = sum(member.input_open for member in router.resolve(name))
            router.close_input(name)
        return {"ok": True, "delivered": delivered}

    async def _close(self, request: dict[str, Any], peer_pid: int) -> Answer:
        name = self._member_name(request)
        router = self._engine.router
        if name != ALL:
            member = router.resolve(name)[0]
            if not member.input_open:
                raise _Refused("not_running", f"{name} {_why_closed(member)}")
        router.close_input(name)
        return {"ok": True}

    async def _signal(self, request: dict[str, Any], peer_pid: int) -> Answer:
        name = self._member_name(request)
        which = request.get("signal")
        if not isinstance(which, (str, int)) or isinstance(which, bool):
            raise _Refused("bad_request", "signal needs a 'signal' (a name like TERM, or a number)")
        try:
            sig = parse_signal(str(which))
        except ValueError as exc:
            raise _Refused("bad_signal", str(exc)) from None
        try:
            reached = self._engine.router.signal(name, sig)
        except SignalRefused as exc:
            raise _Refused("not_permitted", str(exc)) from None
        if not reached:
            if name == ALL:
                raise _Refused("not_running", "no member is running; no signal was sent")
            member = self._engine.router.resolve(name)[0]
            why = _why_closed(member) if member.state in ("pending", "failed") else (
                "is not running")
            raise _Refused("not_running", f"{name} {why}; no signal was sent")
        # Said in the stream, as a stop asked for this way is: a member killed by SIGKILL
        # must not read as one the kernel's OOM killer took.
        whom = "every running member" if name == ALL else name
        self._engine.bus.publish(Note(f"{signal_name(sig)} sent to {whom} through the control "
                                      f"socket (pid {peer_pid})"))  # (pipeplex's line: who sent)
        return {"ok": True, "signalled": reached}

    async def _restart(self, request: dict[str, Any], peer_pid: int) -> Answer:
        name = self._member_name(request, allow_all=False)
        try:
            # (As :restart and pipeplex stop: what was sent just before gets its answer.)
            pid = await self._engine.restart_until_ready(name, stdin_first=True)
        except UnknownMember:
            raise
        except PipeplexError as exc:
            raise _Refused("failed", str(exc)) from None
        return self._ready_answer(name, pid)

    async def _start(self, request: dict[str, Any], peer_pid: int) -> Answer:
        name = self._member_name(request, allow_all=False)
        try:
            await self._engine.start(name)
        except UnknownMember:
            raise
        except PipeplexError as exc:
            raise _Refused("failed", str(exc)) from None
        return self._ready_answer(name, self._engine.members[name].pid)

    def _ready_answer(self, name: str, pid: int | None) -> Answer:
        """A start's or a restart's answer once ``name`` is ready: its pid, and for a step
        (``ready_exit``), ready at its exit, how it exited."""
        member = self._engine.members[name]
        answer: Answer = {"ok": True, "pid": pid}
        if member.spec.ready_exit and member.returncode is not None:
            answer["exited"] = member.returncode
        return answer

    async def _stop(self, request: dict[str, Any], peer_pid: int) -> Answer:
        # As a script's :quit: what was sent just before (pipeplex send db COMMIT; pipeplex
        # stop) gets its answer, and a member that ends at EOF ends on its own.
        self._engine.request_stop(f"stop requested through the control socket (pid {peer_pid}): "
                                  "stopping the cast", asked=True, stdin_first=True)
        return {"ok": True}

    # Attach -------------------------------------------------------------------------

    async def _attach(self, reader: asyncio.StreamReader, stream: asyncio.StreamWriter,
                      request: dict[str, Any]) -> bool:
        """Stream the run's events to this connection until either side ends; False when
        the request was refused (answered, and nothing else happened)."""
        name = request.get("name")
        try:
            if name is not None:
                name = self._member_name(request, allow_all=False)
        except _Refused as refused:
            await _answer(stream, refused.answer)
            return False
        except UnknownMember as exc:
            await _answer(stream, _Refused("unknown_member", str(exc),
                                           members=list(exc.valid)).answer)
            return False
        try:  # (loaded now, not by the pump: a module's file takes a descriptor to read)
            import json  # noqa: F401

            from .. import _events_wire  # noqa: F401
        except OSError as exc:  # out of descriptors: this client is refused, the run goes on
            await _answer(stream, _Refused("failed", f"cannot attach now: {exc.strerror or exc}"
                                           ).answer)
            return False
        sub = _Subscriber(name)
        members = [{"name": spec.name, "pty": spec.pty} for spec in self._engine.cast.procs]
        answer: Answer = {"ok": True, "members": members}
        if "id" in request:
            answer["id"] = request["id"]
        await _answer(stream, answer)
        sub.on_drop = self._dropped
        sub.unsubscribe = self._bus.subscribe(sub)
        self._subscribers.add(sub)
        self._no_subscribers.clear()
        try:
            async with asyncio.TaskGroup() as tg:
                pump = tg.create_task(self._pump(stream, sub), name="attach pump")
                watch = tg.create_task(_until_eof(reader), name="attach watch")
                # Either ends the other: the client left, or the stream is over.
                pump.add_done_callback(lambda _: watch.cancel())
                watch.add_done_callback(lambda _: pump.cancel())
        finally:
            sub.unsubscribe()
            self._subscribers.discard(sub)
            if not self._subscribers:
                self._no_subscribers.set()
        return True

    def _dropped(self, sub: _Subscriber) -> None:
        self._bus.publish(Note(f"control socket: an attach client was too slow and was "
                               f"dropped ({sub.dropped}); the run goes on", level="warning"))

    async def _pump(self, stream: asyncio.StreamWriter, sub: _Subscriber) -> None:
        """Send the subscriber's events until the run ends, or it is dropped, or it leaves.

        Batches are written whole, so the transport only ever holds whole lines: a dropped
        client that still reads gets the notice on a line of its own; one that does not
        read within DROP_GRACE is disconnected, and what was buffered for it freed.
        """
        try:
            while True:
                await sub.wake.wait()
                sub.wake.clear()
                if sub.dropped:
                    break
                if sub.events:
                    import json

                    from .._events_wire import encode_event

                    batch, sub.events = sub.events, deque()
                    sub.queued = 0
                    stream.write("".join(json.dumps(message) + "\n" for e in batch
                                         if (message := encode_event(e)) is not None).encode())
                    async with asyncio.timeout(None) as sub.sending:
                        await stream.drain()
                    sub.sending = None
                    if sub.dropped:
                        break
                if sub.end is not None and not sub.events:
                    async with asyncio.timeout(DROP_GRACE):
                        await _answer(stream, sub.end)
                    return
            async with asyncio.timeout(DROP_GRACE):
                await _answer(stream, {"event": "dropped", "reason": sub.dropped})
        except TimeoutError:
            stream.transport.abort()  # it stopped reading: let go of what is buffered for it
        except ConnectionError:
            pass  # it left


async def _until_eof(reader: asyncio.StreamReader) -> None:
    """Return when the client closes its side (whatever else it sends is ignored)."""
    with contextlib.suppress(ConnectionError):
        while await reader.read(64 * 1024):
            pass


_OUT_OF_DESCRIPTORS = (b'{"ok": false, "error": "failed", "message": "pipeplex is out of file '
                       b'descriptors: try again once it has some to spare"}\n')


async def _answer(stream: asyncio.StreamWriter, answer: Answer) -> None:
    import json

    stream.write(json.dumps(answer).encode() + b"\n")
    await stream.drain()


def _cancelling() -> bool:
    task = asyncio.current_task()
    return task is not None and task.cancelling() > 0


def _peer(conn: socket.socket) -> tuple[int, int]:
    """The (pid, uid) of the process at the other end, as the kernel recorded them."""
    pid, uid, _gid = _UCRED.unpack(
        conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, _UCRED.size))
    return pid, uid


def _why_closed(member: Process) -> str:
    state = member.state
    if state == "pending":
        return ("has not started yet" if member.spec.autostart else
                f"has not started (autostart = false: pipeplex start {member.name} starts it)")
    if state == "failed":
        return "could not start"
    if member.returncode is not None:
        return "is not running"
    return "has its stdin closed"


def _int(text: str) -> int:
    """An integer of the request; one no field could use is refused in plain words (not
    with Python's advice on its digit limit)."""
    if len(text) > 20:
        raise ValueError(f"a number of {len(text)} digits")
    return int(text)


def _not_json(constant: str) -> None:
    """``NaN``, ``Infinity``: Python's json reads them, but they are not JSON (an ``id``
    echoed back would make the answer unreadable)."""
    raise ValueError(f"{constant} is not JSON")


def _finite(text: str) -> float:
    """A JSON number, unless it is too large for a float (``1e999``: infinity, not JSON)."""
    value = float(text)
    if math.isinf(value):
        raise ValueError(f"{text} is too large a number")
    return value


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
