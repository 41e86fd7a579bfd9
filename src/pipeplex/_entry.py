"""The ``pipeplex`` command's entry point: it loads the CLI, which takes a moment.

The stop signals (SIGINT, SIGTERM, SIGHUP) are held back from the start, as this module
loads (when the command loads it): one that landed in the middle of an import, or of a
class's creation, would come out as a traceback of some other error. So are the signals a
run passes on to its members (SIGUSR1, SIGUSR2...), which would end it before it could.
(What comes before, while the interpreter itself starts, meets its own handling.) The
command lets them in once it can take them: a run once its loop handles them, every other
command once its arguments are parsed (a Ctrl-C then exits 130, as it does later).

A standard stream that was closed (``pipeplex run >&-``) is first opened on /dev/null:
otherwise the next descriptor pipeplex opens (a member's pipe, the control socket) would
take its number and receive what was meant for the stream. Standard output is opened for
reading only, so writing to it fails as on the closed descriptor ("Bad file
descriptor"), and pipeplex says so.

Three things make a run's start shorter. A run's guardian process is started before the
rest loads, so that its interpreter starts on the core the imports leave idle. The
``ssl`` module is kept out: asyncio loads it eagerly (some 6-8 ms, a tenth of the start),
while no command opens a TLS connection; asyncio takes its absence as it does on a Python
built without it. So are ``bz2`` and ``lzma``, which ``shutil`` loads for archives that
pipeplex never makes (1 ms). And the cyclic garbage collector is held off while the command loads
(:func:`release_collector` lets it in): the imports make tens of thousands of objects,
all kept for good, which it would otherwise walk again and again (some 6 ms of a start).

A command that merges its members' output into ours also has malloc keep big buffers for
the next one (:mod:`._allocator`): a flood's reads, lines and writes are each that big.
"""

from __future__ import annotations

import gc
import sys

_LAUNCHERS = ("/pipeplex", "/pipeplex/__main__.py")
_collector_held = False
if str(getattr(sys.modules.get("__main__"), "__file__", "")).endswith(_LAUNCHERS):
    # Loaded by the command (its script, or python -m pipeplex): the signals are held back
    # now, before ``signal`` and its enums load (10-15 ms), with the C module's own call.
    import _signal  # type: ignore[import-not-found]  # (signal's C half: no stubs)

    _signal.pthread_sigmask(_signal.SIG_BLOCK, {
        _signal.SIGINT, _signal.SIGTERM, _signal.SIGHUP, _signal.SIGQUIT,  # (HELD_AT_START)
        _signal.SIGUSR1, _signal.SIGUSR2, _signal.SIGALRM, _signal.SIGVTALRM, _signal.SIGPROF,
        _signal.SIGIO, _signal.SIGPWR})
    gc.disable()
    _collector_held = True

import io  # noqa: E402
import os  # noqa: E402
import signal  # noqa: E402

from ._signals import HELD_AT_START  # noqa: E402

__all__ = ("main", "release_collector")


def main() -> None:
    signal.pthread_sigmask(signal.SIG_BLOCK, HELD_AT_START)
    _open_closed_streams()
    for unused in ("ssl", "bz2", "lzma"):  # loaded eagerly by asyncio and shutil
        sys.modules.setdefault(unused, None)  # type: ignore[arg-type]
    if sys.argv[1:2] in (["run"], ["demo"]):
        from ._guardian_process import start_early_guardian

        start_early_guardian()
    if sys.argv[1:2] in (["run"], ["demo"], ["test"], ["attach"]):  # (they merge output)
        from ._allocator import keep_big_buffers

        keep_big_buffers()
    from .cli import main as cli_main

    cli_main()


def release_collector() -> None:
    """Let the garbage collector in again, once the command has loaded what it runs with
    (a no-op unless the command held it back). What was made until then lives as long as
    the process: it is frozen out of the collector's way rather than walked at every pass."""
    global _collector_held
    if _collector_held:
        _collector_held = False
        gc.freeze()
        gc.enable()


def _open_closed_streams() -> None:
    for fd, flags in ((0, os.O_RDONLY), (1, os.O_RDONLY), (2, os.O_WRONLY)):
        try:
            os.fstat(fd)
        except OSError:
            os.open(os.devnull, flags)  # the lowest free number: this one
    # (Python leaves a stream None when its descriptor was closed: print() to None would
    # quietly go nowhere, or to stdout.)
    if sys.stdin is None:
        sys.stdin = io.TextIOWrapper(io.FileIO(0, "r", closefd=False))
    if sys.stdout is None:
        sys.stdout = io.TextIOWrapper(io.FileIO(1, "w", closefd=False), line_buffering=True)
    if sys.stderr is None:
        sys.stderr = io.TextIOWrapper(io.FileIO(2, "w", closefd=False), line_buffering=True)
