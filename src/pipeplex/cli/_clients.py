"""The clients of a running cast: ``send``, ``status``, ``signal``, ``restart``, ``start``,
``stop`` and ``attach``, each a request over the run's control socket.

:func:`_talking` finds the run (that of this folder, or the one ``--run-dir`` names) and
turns what goes wrong on the way into a message and an exit code: 4 when there is no run
to talk to (or it is stopped: SIGSTOP, Ctrl-Z), 1 when the run refused or could not carry
out the request, 2 for one it calls malformed (a bad request or signal). Scripts call
these commands in loops: they load neither the engine nor the cast, nor the code of the
commands that do.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from .._stdout import StdoutRefused, printing
from . import INTERRUPTED, NO_RUN, REQUEST_FAILED, USAGE_ERROR, _error, _fail, _reader_left
from ._options import _color, _color_options, _run_dir_option, _timestamps_option

if TYPE_CHECKING:
    from ..control_client import ControlClient
    from . import Command, Options

__all__ = ("COMMANDS",)


@contextlib.contextmanager
def _talking(run_dir: Path | None, *, timeout: float | None = 60.0) -> Iterator[ControlClient]:
    """A connection to the run; its errors become messages and exit codes."""
    from ..errors import NoRun, RequestFailed
    from ..inputs.rundir import SOCKET_NAME, default_run_dirs

    if run_dir is None:  # (the run of this folder, wherever its environment put it)
        candidates = default_run_dirs()
        found = [c for c in candidates if os.path.lexists(c / SOCKET_NAME)]
    else:
        candidates = found = [run_dir]
    folder = (found or candidates)[0]
    try:
        with _first_answering(found or candidates, timeout) as client:
            folder = client.run_dir
            yield client
    except NoRun as exc:
        hint = ""
        if exc.absent and run_dir is None:
            above = _run_started_above()
            hint = (f" (none was started from {Path.cwd()}; one started from {above[0]} is at "
                    f"{above[1]}: pass --run-dir {above[1]})" if above is not None else
                    " (start one with pipeplex run, or pass --run-dir)")
        elif exc.absent:
            hint = " (has its run ended? A run prints its folder as its first line)"
        _error(f"{exc}{hint}")
        sys.exit(NO_RUN)
    except RequestFailed as exc:
        _error(str(exc))
        sys.exit(USAGE_ERROR if exc.code in ("bad_request", "bad_signal") else REQUEST_FAILED)
    except TimeoutError:
        _error(f"the run at {folder} did not answer within {timeout} s")
        sys.exit(REQUEST_FAILED)
    except OSError as exc:
        _error(f"lost the connection to the run at {folder}: {exc.strerror or exc}")
        sys.exit(REQUEST_FAILED)


def _run_started_above() -> tuple[Path, Path] | None:
    """The nearest folder above this one that a run was started from, and that run's
    folder: a client in a project's subfolder is told of it (and not sent there: the
    person says which run to talk to)."""
    from ..inputs.rundir import SOCKET_NAME, default_run_dirs

    for folder in Path.cwd().resolve().parents:
        for candidate in default_run_dirs(folder):
            if os.path.lexists(candidate / SOCKET_NAME):
                return folder, candidate
    return None


def _answers(run_dir: Path) -> bool:
    """Whether a run at ``run_dir`` answers a ping (within a few seconds)."""
    from ..control_client import ControlClient
    from ..errors import PipeplexError

    try:
        with ControlClient(run_dir, timeout=5.0) as client:
            return bool(client.request("ping").get("ok"))
    except (PipeplexError, OSError):
        return False


def _first_answering(folders: Sequence[Path], timeout: float | None) -> ControlClient:
    """A client connected to the first of ``folders`` whose run answers (one killed there
    may have left its socket behind); else the first one's NoRun."""
    from ..control_client import ControlClient
    from ..errors import NoRun

    first: NoRun | None = None
    for folder in folders:
        client = ControlClient(folder, timeout=timeout)
        try:
            client.connect()
        except NoRun as exc:
            first = first or exc
            continue
        return client
    assert first is not None
    raise first


def _send_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("name", metavar="NAME", help="the member, or all for every member")
    parser.add_argument("text", nargs="*", default=[], metavar="TEXT",
                        help="the words to send, joined by spaces")
    parser.add_argument("-n", "--no-newline", action="store_true",
                        help="do not end the text with a newline")
    parser.add_argument("--eof", action="store_true",
                        help="then close NAME's stdin (without TEXT: only close it)")
    _run_dir_option(parser)


def send(args: argparse.Namespace) -> None:
    """Send TEXT (words joined by spaces, then a newline) to member NAME of a running cast.

    NAME 'all' sends to every member. Put -- before text that starts with a dash.
    """
    text, eof = args.text, args.eof
    data = " ".join(text) if text or eof else ""
    if (text or not eof) and not args.no_newline:
        data += "\n"
    if not data and not eof:
        _fail("nothing to send: -n with no TEXT (or an empty one) sends nothing; give TEXT, "
              "or leave out -n to send an empty line")
    with _talking(args.run_dir) as client:
        client.request("send", name=args.name, data=data, eof=eof or None)


def _status_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", dest="as_json", action="store_true",
                        help="print the status as JSON")
    _run_dir_option(parser)


def status(args: argparse.Namespace) -> None:
    """Show the members of a running cast: pid, state, uptime, restarts, last exit code."""
    with _talking(args.run_dir) as client:
        answer = client.request("status")
    if args.as_json:
        import json

        answer.pop("ok", None)
        text = json.dumps(answer, indent=2)
    else:
        from ..output.status import format_status

        text = format_status(answer["members"], stopping=bool(answer.get("stopping")),
                             stop_reason=answer.get("stop_reason"))
    with printing():
        print(text)


def _signal_options(parser: argparse.ArgumentParser) -> None:
    from .._signals import parse_signal

    def signal_number(text: str) -> int:
        try:
            return parse_signal(text)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None

    parser.add_argument("name", metavar="NAME", help="the member, or all for every member")
    parser.add_argument("signal", type=signal_number, metavar="SIGNAL",
                        help="a name (TERM, SIGTERM, term) or a number (15)")
    _run_dir_option(parser)


def signal_command(args: argparse.Namespace) -> None:
    """Send SIGNAL (TERM, INT, HUP, USR1, ... or a number) to member NAME's process group."""
    with _talking(args.run_dir) as client:
        client.request("signal", name=args.name, signal=args.signal)


def _one_member_options(what: str) -> Options:
    def options(parser: argparse.ArgumentParser) -> None:
        def one_member(text: str) -> str:
            if text == "all":  # (the run would refuse it; said here, with the usage)
                raise argparse.ArgumentTypeError(f"{what} takes one member, not 'all'")
            return text

        parser.add_argument("name", type=one_member, metavar="NAME", help="the member")
        _run_dir_option(parser)

    return options


@contextlib.contextmanager
def _said_if_slow(text: str) -> Iterator[None]:
    """``text`` on a terminal's stderr if what the block waits for takes more than a
    second (a member's grace, its readiness): a silent client looks hung, and gets a
    Ctrl-C. Nothing for a script, whose stderr is not a terminal."""
    if not sys.stderr.isatty():
        yield
        return
    import threading

    timer = threading.Timer(SLOW_ANSWER, lambda: print(f"pipeplex: {text}", file=sys.stderr,
                                                       flush=True))
    timer.daemon = True
    timer.start()
    try:
        yield
    finally:
        timer.cancel()


SLOW_ANSWER = 1.0
"""Seconds a client command waits in silence before it says what it waits for."""


def restart(args: argparse.Namespace) -> None:
    """Stop member NAME (stdin closed, SIGTERM or its stop_signal, then SIGKILL), start it again
    and wait until it is ready."""
    from ..output.status import started_and_ready

    with _talking(args.run_dir, timeout=None) as client, _said_if_slow(
            f"waiting for {args.name} to stop (SIGTERM or its stop_signal, its grace, then "
            "SIGKILL), start again and be ready (pipeplex status says what it waits for)..."):
        answer = client.request("restart", name=args.name)
    with printing():
        print(started_and_ready(args.name, answer.get("pid"), answer.get("exited"),
                                done="restarted"))


def start(args: argparse.Namespace) -> None:
    """Start member NAME, declared with autostart = false, and wait until it is ready."""
    from ..output.status import started_and_ready

    with _talking(args.run_dir, timeout=None) as client, _said_if_slow(
            f"waiting for {args.name} to be ready (pipeplex status says for what)..."):
        answer = client.request("start", name=args.name)
    with printing():
        print(started_and_ready(args.name, answer.get("pid"), answer.get("exited")))


def _stop_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--no-wait", action="store_true",
                        help="return at once instead of when the run ended")
    _run_dir_option(parser)


def stop(args: argparse.Namespace) -> None:
    """Stop the whole cast gracefully, as the console's :quit does; wait until it ended.

    Each member's stdin is closed first, with 0.3 s to end at EOF, then come its stop signal,
    the grace and SIGKILL."""
    from ..errors import RequestFailed
    from ..inputs.rundir import SOCKET_NAME

    with _talking(args.run_dir, timeout=None) as client:
        try:
            client.request("stop")
        except RequestFailed as exc:
            # The run ended as the request came: what was asked is done, if it ended well
            # (a run that ends gives up its folder's socket before it lets clients go).
            if exc.code != "closed" or os.path.lexists(client.run_dir / SOCKET_NAME):
                raise
            return
        if not args.no_wait:
            with _said_if_slow("waiting for the cast to stop (each member has its grace "
                               "before SIGKILL)..."):
                ended = client.wait_ended()
            if not ended:
                _error("the connection to the run ended before the run did: " + (
                    "the run goes on (pipeplex status says where it stands)"
                    if _answers(client.run_dir) else
                    "was the run killed? Its guardian stops its members, and the next run "
                    "in that folder cleans it up"))
                sys.exit(REQUEST_FAILED)


def _attach_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--name", help="follow only this member (and notes about the whole run)")
    _color_options(parser, "show")
    _timestamps_option(parser)
    _run_dir_option(parser)


def attach(args: argparse.Namespace) -> None:
    """Show the merged output of a running cast from now on, until it ends or Ctrl-C."""
    from .._events_wire import decode_event
    from ..output.render import Renderer, use_color

    out = sys.stdout.buffer
    isatty = out.isatty()

    def show(data: bytes = b"", *, flush: bool = False) -> None:
        try:
            out.write(data)
            if flush:
                out.flush()
        except BrokenPipeError:  # (not the run's connection: _talking must not take it)
            raise _ReaderLeft from None
        except OSError as exc:
            raise StdoutRefused(exc) from None

    try:
        with _talking(args.run_dir, timeout=None) as client:
            answer = client.request("attach", name=args.name)
            members = answer.get("members", [])
            renderer = Renderer(
                [m["name"] for m in members],
                color=use_color(_color(args), isatty),
                timestamps=args.timestamps,
                sanitize=isatty,
                crlf_names=[m["name"] for m in members if m.get("pty") == "full"],
            )
            print(f"pipeplex: attached to the run at {client.run_dir} (Ctrl-C to detach)",
                  file=sys.stderr)
            for message in client.events():
                event = decode_event(message)
                if event is not None:
                    show(renderer.render(event), flush=not client.has_message())
                elif message.get("event") == "dropped":
                    show(flush=True)
                    _error(f"the run dropped this client: {message.get('reason')}")
                    sys.exit(REQUEST_FAILED)
                elif message.get("event") == "end":
                    show(flush=True)
                    return
            run_dir = client.run_dir
        # No end, and no word of a drop (that came while this client was not reading): a
        # run that still answers dropped it; one that does not was killed.
        _error("the connection to the run ended without its end: " + (
            "the run goes on, and dropped this client, which fell more than 4 MiB behind "
            "(read its output as it comes, or follow one member with --name)"
            if _answers(run_dir) else "was the run killed?"))
        sys.exit(REQUEST_FAILED)
    except KeyboardInterrupt:
        sys.exit(INTERRUPTED)
    except _ReaderLeft:  # attach | head: following is over, as the reader wished
        _reader_left(0)


class _ReaderLeft(Exception):
    """Whoever read our standard output closed it."""


COMMANDS: dict[str, tuple[Options, Command]] = {
    "send": (_send_options, send),
    "status": (_status_options, status),
    "signal": (_signal_options, signal_command),
    "restart": (_one_member_options("restart"), restart),
    "start": (_one_member_options("start"), start),
    "stop": (_stop_options, stop),
    "attach": (_attach_options, attach),
}
