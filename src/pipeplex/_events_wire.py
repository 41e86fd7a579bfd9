"""Events on the wire: what ``attach`` streams, one JSON object per event.

Member output is bytes; JSON carries text. Bytes that are not UTF-8 travel as lone
surrogates U+DC80..U+DCFF (Python's "surrogateescape"), escaped as \\udcXX by json.dumps,
so a Python client gets back exactly the bytes the member wrote.

Apart from the client (``control_client.py``): ``pipeplex send`` and ``status`` need no
events, and loading their classes is a third of such a command's imports.
"""

from __future__ import annotations

import signal
from collections.abc import Mapping
from typing import Any

from ._events import Event, Exited, InputSent, Matched, Note, Output, Ready, Started

__all__ = ("decode_event", "encode_event")


def _text(data: bytes) -> str:
    return data.decode("utf-8", "surrogateescape")


def encode_event(event: Event) -> dict[str, Any] | None:
    """``event`` as a JSON-ready dict (``{"event": "output", ...}``); None if not sent."""
    if isinstance(event, Output):
        message = {"event": "output", "name": event.name, "stream": event.stream,
                   "data": _text(event.data), "partial": event.partial, "t": event.t}
        if event.new_line:  # (rare: only then)
            message["new_line"] = True
        return message
    if isinstance(event, Note):
        return {"event": "note", "name": event.name, "level": event.level, "text": event.text,
                "t": event.t}
    if isinstance(event, Started):
        message = {"event": "started", "name": event.name, "pid": event.pid,
                   "argv": list(event.argv), "t": event.t}
        if event.terminal:
            message["terminal"] = True
        return message
    if isinstance(event, Exited):
        exited = {"event": "exited", "name": event.name, "returncode": event.returncode,
                  "stopped": event.stopped, "runtime": event.runtime, "t": event.t}
        if event.stop_signal != signal.SIGTERM:
            exited["stop_signal"] = event.stop_signal
        return exited
    if isinstance(event, Ready):
        return {"event": "ready", "name": event.name, "variables": dict(event.variables),
                "t": event.t}
    if isinstance(event, Matched):
        return {"event": "matched", "name": event.name, "pattern": event.pattern,
                "text": event.text, "t": event.t}
    if isinstance(event, InputSent):
        return {"event": "input", "name": event.name, "data": _text(event.data),
                "eof": event.eof, "t": event.t}
    return None


def decode_event(message: Mapping[str, Any]) -> Event | None:
    """The event an ``attach`` message carries; None for other messages (``end``, ...)."""
    kind = message.get("event")
    t = float(message.get("t", 0.0))
    name = message.get("name")
    if kind == "output":
        return Output(str(name), "stderr" if message.get("stream") == "stderr" else "stdout",
                      str(message.get("data", "")).encode("utf-8", "surrogateescape"),
                      bool(message.get("partial")), t=t, new_line=bool(message.get("new_line")))
    if kind == "note":
        level = message.get("level")
        return Note(str(message.get("text", "")), None if name is None else str(name),
                    level if level in ("info", "warning", "error") else "info", t=t)
    if kind == "started":
        return Started(str(name), int(message.get("pid", 0)),
                       tuple(map(str, message.get("argv", ()))), t=t,
                       terminal=bool(message.get("terminal")))
    if kind == "exited":
        return Exited(str(name), int(message.get("returncode", 0)),
                      bool(message.get("stopped")), float(message.get("runtime", 0.0)), t=t,
                      stop_signal=int(message.get("stop_signal", signal.SIGTERM)))
    if kind == "ready":
        variables = message.get("variables") or {}
        return Ready(str(name), tuple((str(k), str(v)) for k, v in variables.items()), t=t)
    return None
