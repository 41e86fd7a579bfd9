"""Run a cast in the foreground: the terminal stream, the run folder and its pipes, signals.

This is what ``pipeplex run`` does; it wires the engine to the outside world and leaves
the decisions to the engine.
"""

from __future__ import annotations

import asyncio
import functools
import os
import resource
import signal
from dataclasses import dataclass
from pathlib import Path

from ._bus import Bus
from ._engine import DEFAULT_GRACE, Engine
from ._events import Note
from .cast.spec import CastSpec
from .inputs import FifoChannel, RunDir, default_run_dir
from .inputs.router import ALL, Router
from .output import ColorMode, Renderer, TerminalSink, Writer, use_color
from .participants import Guardian

__all__ = ("RunOptions", "run_cast")

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


@dataclass(frozen=True, slots=True)
class RunOptions:
    """How to present and host a run (the cast itself says what to run)."""

    run_dir: Path | None = None
    color: ColorMode = "auto"
    timestamps: bool = False
    grace: float = DEFAULT_GRACE
    output_fd: int = 1


def _columns(fd: int, prefix: int) -> int:
    try:
        size = os.get_terminal_size(fd)
    except OSError:
        return 80
    return max(size.columns - prefix, 20)


async def run_cast(cast: CastSpec, options: RunOptions = RunOptions()) -> int:
    """Run ``cast`` until it ends; return pipeplex's exit status.

    Raises:
        RunDirError: the run folder cannot be used (nothing was started).
    """
    loop = asyncio.get_running_loop()
    bus = Bus()
    isatty = os.isatty(options.output_fd)
    color = use_color(options.color, isatty)
    renderer = Renderer(
        cast.names,
        color=color,
        timestamps=options.timestamps,
        sanitize=isatty,
        crlf_names=[p.name for p in cast.procs if p.pty == "full"],
    )
    _raise_fd_limit(len(cast.procs))
    guardian = Guardian()
    engine = Engine(
        cast,
        bus,
        grace=options.grace,
        columns=_columns(options.output_fd, renderer.width + 3),
        # Children see colour only when we show it (their stdout may be a terminal).
        env_overrides={
            "PIPEPLEX_RUN_ID": guardian.token,
            **({} if color or "FORCE_COLOR" in os.environ else {"NO_COLOR": "1"}),
        },
        guardian=guardian,
    )
    writer = Writer(options.output_fd, bus, on_broken=engine.request_stop)
    bus.subscribe(TerminalSink(renderer, writer))
    _install_signal_handlers(loop, engine)
    fifos: list[FifoChannel] = []
    run_dir: RunDir | None = None
    try:
        run_dir = RunDir.open(options.run_dir or default_run_dir())
        if run_dir.stale_pid is not None:
            bus.publish(Note(f"cleaned up after an earlier run (pid {run_dir.stale_pid}) that "
                             "ended without removing its pipes"))
        for name in (*cast.names, ALL):
            deliver = functools.partial(_send, engine.router, name)
            fifos.append(FifoChannel(run_dir, f"{name}.in", deliver, bus, on_crash=engine.crash))
        for fifo in fifos:
            fifo.open()
        bus.publish(Note(f"run folder {run_dir.path}: write a line to NAME.in (or all.in) "
                         "to send it to a member"))
        return await engine.run()
    finally:
        for sig in STOP_SIGNALS:
            loop.remove_signal_handler(sig)
        for fifo in fifos:
            fifo.close()
        if run_dir is not None:
            run_dir.close()
        guardian.close()
        await writer.drain()
        writer.close()


def _raise_fd_limit(members: int) -> None:
    """Each member costs about six descriptors; lift the soft limit when a cast needs it."""
    needed = 64 + 8 * members
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < needed:
        target = needed if hard == resource.RLIM_INFINITY else min(needed, hard)
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))


def _send(router: Router, target: str, data: bytes) -> None:
    router.send(target, data)


def _install_signal_handlers(loop: asyncio.AbstractEventLoop, engine: Engine) -> None:
    def on_signal(sig: signal.Signals) -> None:
        if engine.stopping:
            if sig == signal.SIGINT:
                engine.force_stop()
            return
        hint = "; press Ctrl-C again to skip the grace period" if sig == signal.SIGINT else ""
        engine.request_stop(f"got {sig.name}: stopping the cast{hint}", interrupted_by=sig)

    for sig in STOP_SIGNALS:
        loop.add_signal_handler(sig, on_signal, sig)

