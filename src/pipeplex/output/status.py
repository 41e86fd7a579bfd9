"""A cast's status as people read it: the table of ``pipeplex status`` and the console's
``:list``, and what a start or a restart says once the member is ready. Made from the
records the engine answers with (``Engine.status``), on either side of the control socket."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from .._printable import printable

__all__ = ("format_status", "started_and_ready")


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    if seconds < 60:
        return f"{seconds:.1f}s"
    minutes, secs = divmod(int(seconds), 60)
    if minutes < 60:
        return f"{minutes}m{secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m"


def _exit_code(code: object) -> str:
    if not isinstance(code, int):
        return "-"
    if code < 0:
        from .._signals import signal_name

        return signal_name(-code)
    return str(code)


def started_and_ready(name: str, pid: object, step_exit: object = None, *,
                      done: str = "started") -> str:
    """What ``pipeplex start`` and ``:start`` (``done``: ``"restarted"`` for a restart) say
    once ``name`` is ready: for a step (``ready_exit``), ready at its exit, that it has run."""
    if step_exit is None:
        return f"{name} {done} (pid {pid}) and ready"
    return f"{name} {done} (pid {pid}) and exited with code {step_exit}: its step is done"


_LIVE = frozenset({"starting", "running", "suspended", "stopping"})
"""The states whose pid a status table shows: an exited member's last pid (one waiting to
restart, or pending) is a process that is gone, and may be another's by now."""


def format_status(records: Iterable[Mapping[str, Any]], *, stopping: bool = False,
                  stop_reason: object = None) -> str:
    """A table of members: name, pid (while it runs), state, uptime, restarts, last exit
    code; then, for each member still starting, what it waits for; and whether the cast
    is stopping, and why."""
    records = list(records)
    headers = ("NAME", "PID", "STATE", "UPTIME", "RESTARTS", "LAST EXIT")
    rows = [
        tuple(printable(cell) for cell in (  # (what a run answers reaches a terminal)
            str(r["name"]),
            str(r["pid"]) if r.get("pid") is not None and r.get("state") in _LIVE else "-",
            str(r.get("state", "?")),
            _duration(r.get("uptime")),
            str(r.get("restarts", 0)),
            _exit_code(r["last_exit"] if "last_exit" in r else r.get("returncode")),
        ))
        for r in records
    ]
    widths = [max(len(h), *(len(row[i]) for row in rows)) if rows else len(h)
              for i, h in enumerate(headers)]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip()
             for row in (headers, *rows)]
    lines += [printable(f"{r['name']} is waiting for {r['waiting_for']}") for r in records
              if r.get("waiting_for")]
    if stopping:
        why = f" ({stop_reason})" if isinstance(stop_reason, str) and stop_reason else ""
        lines.append(printable(f"the cast is stopping{why}"))
    return "\n".join(lines)
