"""The control socket's requests: a line read becomes a request, carried out, answered.

Apart from the connections (``control.py``), which read the lines and write the answers:
here a line is parsed (one JSON object with an ``op``, or the error answer it gets), and
each op (``ping``, ``status``, ``send``, ``close``, ``signal``, ``restart``, ``start``,
``stop``) is carried out through the engine and its router, and answered as
``docs/control-protocol.md`` says. A request that cannot be carried out raises
:class:`Refused`, which becomes its error answer.
"""

from __future__ import annotations

import asyncio
import math
import os
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from .._events import Note
from .._signals import parse_signal, signal_name
from ..errors import PipeplexError, SignalRefused, UnknownMember
from .router import ALL
from .rundir import RunDir

if TYPE_CHECKING:
    from ..engine.engine import Engine

__all__ = ("Answer", "Refused", "Requests", "write_answer")

Answer = dict[str, Any]


class Refused(Exception):
    """A request that gets an error answer."""

    def __init__(self, code: str, message: str, **extra: Any) -> None:
        super().__init__(message)
        self.answer: Answer = {"ok": False, "error": code, "message": message, **extra}


class Requests:
    """The ops of the control socket for ``engine``, whose run folder is ``run_dir``."""

    def __init__(self, engine: Engine, run_dir: RunDir) -> None:
        self._engine = engine
        self._run_dir = run_dir
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

    def parse(self, line: bytes) -> tuple[dict[str, Any] | None, Answer | None]:
        """The request on ``line``, or the error answer it gets."""
        import json  # (loaded by the first request: a run nobody talks to never needs it)

        try:
            request = json.loads(line.decode("utf-8"), parse_constant=_not_json,
                                 parse_float=_finite, parse_int=_int)
        except (UnicodeDecodeError, ValueError) as exc:
            return None, Refused("bad_json", f"not a JSON object on one UTF-8 line: {exc}").answer
        except RecursionError:
            return None, Refused("bad_json", "not a JSON object pipeplex can read: it nests "
                                 "too deeply").answer
        if not isinstance(request, dict):
            return None, Refused("bad_request", "a request is a JSON object with an 'op'").answer
        op = request.get("op")
        if not isinstance(op, str) or (op != "attach" and op not in self._ops):
            ops = ", ".join([*self._ops, "attach"])
            answer = (Refused("unknown_op", f"unknown op {op!r} (ops: {ops})").answer
                      if isinstance(op, str) else
                      Refused("bad_request", "a request needs an 'op', the name of what to "
                              f"do (ops: {ops})").answer)
            if "id" in request:
                answer["id"] = request["id"]
            return request, answer
        return request, None

    async def carry_out(self, request: dict[str, Any], peer_pid: int) -> Answer:
        try:
            answer = await self._ops[request["op"]](request, peer_pid)
        except Refused as refused:
            answer = refused.answer
        except UnknownMember as exc:
            answer = Refused("unknown_member", str(exc), members=list(exc.valid)).answer
        if "id" in request:
            answer["id"] = request["id"]
        return answer

    # Operations ---------------------------------------------------------------------

    def member_name(self, request: dict[str, Any], *, allow_all: bool = True) -> str:
        name = request.get("name")
        if not isinstance(name, str) or not name:
            raise Refused("bad_request", f"{request['op']} needs a member 'name'")
        if name == ALL and not allow_all:
            raise Refused("bad_request", f"{request['op']} takes one member, not 'all'")
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
        name = self.member_name(request)
        text = request.get("data", "")
        eof = request.get("eof", False)
        if not isinstance(text, str) or not isinstance(eof, bool) or (
                "data" not in request and not eof):
            raise Refused("bad_request", "send takes 'data' (a string) and 'eof' (true/false), "
                                         "at least one of them")
        if not text and not eof:  # (it would answer delivered: 0, as if nobody took it)
            raise Refused("bad_request", "'data' is empty and 'eof' is not set: nothing to "
                                         "send (a line is \"text\\n\")")
        try:
            data = text.encode("utf-8", "surrogateescape")
        except UnicodeEncodeError:
            raise Refused("bad_request", "'data' holds a lone surrogate that is not an "
                          "escaped byte (U+DC80..U+DCFF)") from None
        router = self._engine.router
        if name != ALL:
            member = router.resolve(name)[0]
            if not member.input_open:
                raise Refused("not_running",
                              f"{name} {router.why_closed(member)}; nothing was sent")
        full = next((m for m in router.resolve(name) if m.input_open and m.input_full), None)
        if data and full is not None:
            raise Refused("input_full", f"{full.name} has {full.input_waiting // 1024} KiB of "
                          "input it has not read yet; nothing was sent (send again once it "
                          "reads)")
        delivered = router.send(name, data) if data else 0
        if data and not delivered:
            if name == ALL:
                raise Refused("not_running", "no member is taking input; nothing was sent")
            raise Refused("not_running", f"{name} has closed its stdin; nothing was sent")
        if eof:
            if not data:  # (then what it delivered is the EOF)
                delivered = sum(member.input_open for member in router.resolve(name))
            router.close_input(name)
        return {"ok": True, "delivered": delivered}

    async def _close(self, request: dict[str, Any], peer_pid: int) -> Answer:
        name = self.member_name(request)
        router = self._engine.router
        if name != ALL:
            member = router.resolve(name)[0]
            if not member.input_open:
                raise Refused("not_running",
                              f"{name} {router.why_closed(member)}; nothing was closed")
        router.close_input(name)
        return {"ok": True}

    async def _signal(self, request: dict[str, Any], peer_pid: int) -> Answer:
        name = self.member_name(request)
        which = request.get("signal")
        if not isinstance(which, (str, int)) or isinstance(which, bool):
            raise Refused("bad_request", "signal needs a 'signal' (a name like TERM, or a number)")
        try:
            sig = parse_signal(str(which))
        except ValueError as exc:
            raise Refused("bad_signal", str(exc)) from None
        try:
            reached = self._engine.router.signal(name, sig)
        except SignalRefused as exc:
            raise Refused("not_permitted", str(exc)) from None
        if not reached:
            raise Refused("not_running", self._engine.router.not_signalled(name, sig))
        # Said in the stream, as a stop asked for this way is: a member killed by SIGKILL
        # must not read as one the kernel's OOM killer took.
        whom = "every running member" if name == ALL else name
        self._engine.bus.publish(Note(f"{signal_name(sig)} sent to {whom} through the control "
                                      f"socket (pid {peer_pid})"))  # (pipeplex's line: who sent)
        return {"ok": True, "signalled": reached}

    async def _restart(self, request: dict[str, Any], peer_pid: int) -> Answer:
        name = self.member_name(request, allow_all=False)
        try:
            # (As :restart and pipeplex stop: what was sent just before gets its answer.)
            pid = await self._engine.restart_until_ready(name, stdin_first=True)
        except UnknownMember:
            raise
        except PipeplexError as exc:
            raise Refused("failed", str(exc)) from None
        return self._ready_answer(name, pid)

    async def _start(self, request: dict[str, Any], peer_pid: int) -> Answer:
        name = self.member_name(request, allow_all=False)
        try:
            await self._engine.start(name)
        except UnknownMember:
            raise
        except PipeplexError as exc:
            raise Refused("failed", str(exc)) from None
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


async def write_answer(stream: asyncio.StreamWriter, answer: Answer) -> None:
    import json

    stream.write(json.dumps(answer).encode() + b"\n")
    await stream.drain()


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
