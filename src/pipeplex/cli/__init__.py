"""The ``pipeplex`` command: parse arguments, call the library, map errors to exit codes.

Exit codes of ``pipeplex run``: 0 success; the status of the first member that failed on
its own (128+N for a signal); 2 for a usage or configuration error (nothing was started);
130 / 143 when stopped by Ctrl-C / SIGTERM.

Exit codes of the clients of a running cast (``send``, ``status``, ``signal``, ``restart``,
``start``, ``stop``, ``attach``): 0 success; 1 the run refused or could not carry out the request
(an unknown member, one that is not running, an attach client dropped for being slow);
2 a usage error; 4 no run to talk to at that folder (none, or a stale one); 130 when an
``attach`` is ended with Ctrl-C.

Every start of the command pays for what it loads, and scripts run ``pipeplex send`` in
loops: the parser is the standard library's (1.5 ms to load, where click took 9), only the
command given gets its options, and each command loads its own modules.
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import os
import signal
import sys
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

from .. import __version__
from .._command_parser import CommandParser
from .._entry import release_collector
from .._printable import printable, quoted
from .._signals import HELD_AT_START
from .._stdout import StdoutRefused, printing
from ._options import (
    _color,
    _color_options,
    _existing_file,
    _factor,
    _file,
    _folder,
    _log_folder,
    _path,
    _records_path,
    _report_file,
    _run_dir_option,
    _seconds,
    _selection,
    _timestamps_option,
)

if TYPE_CHECKING:
    from .._run import RunOptions
    from ..cast import CastSpec
    from ..cast.spec import OnExit
    from ..control_client import ControlClient
    from ..scenario import Scenario

__all__ = ("main",)

REQUEST_FAILED = 1
USAGE_ERROR = 2
NO_RUN = 4
INTERRUPTED = 130
PTY_CHOICES = {"stdout": "stdout", "true": "full", "false": "pipes"}


def _fail(message: str) -> NoReturn:
    _error(message)
    sys.exit(USAGE_ERROR)


def _error(message: str) -> None:
    """Say what went wrong, on stderr: a name somebody typed in it (a file's, a folder's)
    shown with its control characters escaped, never moving the cursor or clearing the
    screen, and its bytes that are not UTF-8 as ``\\xNN``."""
    print(f"pipeplex: error: {printable(message)}", file=sys.stderr)


def _stdout_refused(exc: OSError) -> NoReturn:
    """A write to stdout failed for another reason than the reader leaving: one line on
    stderr (it may be gone too), status 1."""
    with contextlib.suppress(OSError):
        _error(f"cannot write to standard output: {exc.strerror or exc}")
    os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # (the flush at exit)
    sys.exit(REQUEST_FAILED)


# pipeplex run ---------------------------------------------------------------------------


def _run_options(parser: argparse.ArgumentParser) -> None:
    from ..cast.spec import DEFAULT_GRACE

    parser.add_argument("cast_file", nargs="?", type=_file, metavar="CAST_FILE",
                        help="the cast file (TOML)")
    parser.add_argument("-p", "--proc", dest="procs", action="append", default=[],
                        metavar="NAME=COMMAND",
                        help="a member to run (repeatable); added to those of CAST_FILE")
    parser.add_argument("--run-dir", type=_folder, metavar="DIR",
                        help="folder for the named pipes (default: one per working folder "
                             "under $XDG_RUNTIME_DIR/pipeplex or $TMPDIR/pipeplex-UID)")
    _color_options(parser)
    _timestamps_option(parser)
    parser.add_argument("--on-exit", choices=("stop", "ignore", "restart"),
                        help="what to do when any member exits (overrides each member's "
                             "on_exit)")
    parser.add_argument("--grace", type=_seconds, default=DEFAULT_GRACE, metavar="SECONDS",
                        help="how long a member may take to exit after SIGTERM before SIGKILL "
                             f"(default: {DEFAULT_GRACE:g})")
    parser.add_argument("--pty", choices=tuple(PTY_CHOICES),
                        help="default terminal mode for members that do not set pty: stdout "
                             "(stdout on a pseudo-terminal; the default), true (a full "
                             "terminal) or false (pipes)")
    parser.add_argument("--stderr", choices=("apart", "stdout"),
                        help="default for members that do not set stderr: apart (its own "
                             "stream, marked !; the default) or stdout (into stdout, in the "
                             "order written)")
    parser.add_argument("--no-console", action="store_true",
                        help="do not read commands and lines for members from standard input")
    parser.add_argument("--transcript", type=_file, metavar="PATH",
                        help="record every event as JSON Lines (see pipeplex replay)")
    parser.add_argument("--log-dir", type=_log_folder, metavar="DIR",
                        help="write one plain log per member into this folder")


def run(args: argparse.Namespace) -> None:
    """Run a cast: members from CAST_FILE (TOML) and from -p options.

    Output comes back as one stream, each line under its member's name. Type NAME: TEXT
    (on a terminal, or through a pipe into pipeplex) to send TEXT to NAME, :help for the
    console's commands. From elsewhere: pipeplex send NAME TEXT, or write a line to
    RUN_DIR/NAME.in (RUN_DIR/all.in for everyone).
    """
    from ..errors import PipeplexError

    defaults: dict[str, Any] = {"pty": PTY_CHOICES[args.pty]} if args.pty else {}
    if args.stderr:
        defaults["stderr"] = args.stderr
    try:
        if args.transcript is not None:
            from ..report.transcript import check_given_descriptor

            check_given_descriptor(args.transcript)  # before pipeplex opens descriptors
        cast, scenario = _build_cast(args.cast_file, args.procs, defaults, args.on_exit)
    except PipeplexError as exc:
        _fail(str(exc))
    if args.transcript is not None:
        _check_transcript_takes_no_file_of_the_cast(args.transcript, args.cast_file, scenario)
        if args.log_dir is not None:
            from .._file_kind import records_apart

            refusal = records_apart([("the transcript", "--transcript", args.transcript)] + [
                (f"the log of {name}", "--log-dir", args.log_dir / f"{name}.log")
                for name in cast.names])
            if refusal is not None:
                _fail(printable(refusal))
    from .._run import RunOptions  # the engine loads only for commands that run a cast

    options = RunOptions(
        run_dir=args.run_dir,
        color=_color(args),
        timestamps=args.timestamps,
        grace=args.grace,
        console=not args.no_console,
        scenario=scenario,
        transcript=args.transcript,
        log_dir=args.log_dir,
        run_dir_option="--run-dir",
        adopt_orphans=True,
    )
    sys.exit(_run(cast, options))


def _check_transcript_takes_no_file_of_the_cast(transcript: Path, cast_file: Path | None,
                                                scenario: Scenario | None) -> None:
    """Refuse a transcript that would replace the cast file or its golden file, or any
    ``.toml`` file (``--transcript *.toml`` would take the glob's first match)."""
    from .._file_kind import same_file

    theirs = [("the cast file", cast_file)] if cast_file is not None else []
    if scenario is not None and scenario.golden is not None:
        theirs.append((f"the golden file of {cast_file}", Path(scenario.golden)))
    whose = next((whose for whose, path in theirs if same_file(transcript, path)), None)
    why = (f"it is {whose}" if whose is not None else
           "it ends in .toml, as a cast file's name does (a glob right after --transcript "
           "gives it its first match)" if transcript.name.lower().endswith(".toml") else None)
    if why is not None:
        _fail(printable(f"cannot write the transcript {transcript}: {why}; give --transcript "
                        "a path of its own"))


def _build_cast(
    cast_file: Path | None, procs: Sequence[str], defaults: dict[str, Any],
    on_exit: OnExit | None,
) -> tuple[CastSpec, Scenario | None]:
    """The cast to run, and the scenario when the file has steps."""
    from dataclasses import replace

    from ..cast import CastSpec, ProcSpec, parse_proc_option

    members: list[ProcSpec] = []
    scenario = None
    if cast_file is not None:
        from ..scenario import load_scenario

        scenario = load_scenario(cast_file, what="cast file", **defaults)
        members.extend(scenario.cast.procs)
    members.extend(parse_proc_option(option, **defaults) for option in procs)
    if not members:
        _fail("nothing to run: give a cast file or -p NAME=COMMAND")
    if on_exit is not None:
        members = [replace(m, on_exit=on_exit) for m in members]
    # run_cast checks it (validate_cast, check_commands) before anything starts.
    cast = CastSpec(tuple(members), path=str(cast_file) if cast_file else None)
    if scenario is not None:
        scenario = replace(scenario, cast=cast)
    return cast, scenario


def _run(cast: CastSpec, options: RunOptions) -> int:
    import asyncio

    from .._run import run_cast
    from .._signals import clean_inherited_signals
    from ..errors import PipeplexError

    # Held back until run_cast has its handlers: a Ctrl-C in the loop's set-up would
    # break it halfway; this way the cast stops as at any other time.
    clean_inherited_signals(held=HELD_AT_START)
    release_collector()
    try:
        return asyncio.run(run_cast(cast, options))
    except PipeplexError as exc:
        _fail(str(exc))


def _demo_options(parser: argparse.ArgumentParser) -> None:
    _color_options(parser)
    _timestamps_option(parser)


def demo(args: argparse.Namespace) -> None:
    """Run the bundled demo: a chat server and two clients talking in turns."""
    import tempfile

    from .._run import RunOptions
    from ..examples.demo import demo_cast

    with tempfile.TemporaryDirectory(prefix="pipeplex-demo-") as scratch:
        options = RunOptions(run_dir=Path(scratch) / "run", color=_color(args),
                             timestamps=args.timestamps, adopt_orphans=True)
        status = _run(demo_cast(), options)
    sys.exit(status)


# Clients of a running cast --------------------------------------------------------------


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
        from ..control_client import format_status

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
    """Stop member NAME (stdin closed, SIGTERM, then SIGKILL), start it again and wait until
    it is ready."""
    from ..control_client import started_and_ready

    with _talking(args.run_dir, timeout=None) as client, _said_if_slow(
            f"waiting for {args.name} to stop (SIGTERM, its grace, then SIGKILL), start "
            "again and be ready (pipeplex status says what it waits for)..."):
        answer = client.request("restart", name=args.name)
    with printing():
        print(started_and_ready(args.name, answer.get("pid"), answer.get("exited"),
                                done="restarted"))


def start(args: argparse.Namespace) -> None:
    """Start member NAME, declared with autostart = false, and wait until it is ready."""
    from ..control_client import started_and_ready

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
    """Stop the whole cast gracefully, like Ctrl-C in its terminal; wait until it ended."""
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
                client.wait_closed()


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


# Test mode: its modules load only when it is used -----------------------------------------


def _scenario_files(given: Sequence[Path], *, verbose: bool = False) -> list[Path]:
    """The files given, with each folder replaced by the ``.toml`` files in it and its
    subfolders, in name order (as pytest collects a folder). Folders and files whose names
    begin with a dot are left out, and links to folders are not followed, nor is a TOML
    file of another program's (a server's configuration among its scenarios), nor a cast
    file that the scenarios given or found include (``verbose``: both said on stderr). A
    folder adds only files not named yet; a file named on its own runs each time it is
    named, and is always taken for a scenario."""
    from ..scenario.load import collected_as

    def unreadable(exc: OSError) -> NoReturn:
        _fail(f"cannot read the folder {quoted(exc.filename)}: {exc.strerror}")

    found_in: dict[Path, list[Path]] = {}  # (each folder given: its .toml files)
    for path in given:
        if os.path.isdir(path):
            found = found_in.setdefault(path, [])
            for folder, subfolders, names in os.walk(path, onerror=unreadable):
                subfolders[:] = [name for name in subfolders if not name.startswith(".")]
                found += [Path(folder, name) for name in names
                          if name.endswith(".toml") and not name.startswith(".")]
            if not found:
                _fail(f"{quoted(str(path))} holds no .toml file to test")
    facts = {file: collected_as(file) for found in found_in.values() for file in found}
    facts.update((path, collected_as(path)) for path in given if path not in found_in)
    included = {name for _, names in facts.values() for name in names}
    files: list[Path] = []
    for path in given:
        if path not in found_in:  # (one that cannot be read is said as it is loaded)
            files.append(path)
            continue
        found = found_in[path]
        others = {file for file in found if facts[file][0]}
        if len(others) == len(found):
            _fail(f"{quoted(str(path))} holds no scenario to test: its .toml files are "
                  "another program's (none has [procs] or [[step]])")
        shared = {file for file in found if os.path.abspath(file) in included} - others
        for file in sorted(others | shared) if verbose else ():
            why = ("a cast file other scenarios include" if file in shared else
                   "it has no table or key of a scenario's ([procs], [[step]], ...)")
            print(printable(f"pipeplex: skipped {file}: {why}"), file=sys.stderr)
        named = {os.path.abspath(file) for file in files}
        files += [file for file in sorted(set(found) - others - shared)
                  if os.path.abspath(file) not in named]
    return files


def _from_here(file: Path) -> str:
    """A scenario's path from the current folder, for ``-k`` to match (as pytest matches a
    test's id from its rootdir): the folders above it, given or not, hold no words of its."""
    shown = os.path.relpath(file)
    return str(file) if shown.startswith("..") else shown


def _test_options(parser: argparse.ArgumentParser) -> None:
    from ..cast.spec import DEFAULT_GRACE

    parser.add_argument("files", nargs="+", type=_path, metavar="FILE",
                        help="a scenario file (TOML), or a folder: each scenario in it and "
                             "its subfolders (other programs' .toml files left out); each "
                             "file is a test")
    parser.add_argument("-v", "--verbose", action="store_true", help="one line per step")
    parser.add_argument("-x", "--exitfirst", action="store_true",
                        help="stop at the first scenario that fails (the rest: skipped)")
    parser.add_argument("--lf", "--last-failed", dest="last_failed", action="store_true",
                        help="run only the scenarios that failed the last time they ran "
                             "from this folder (all of them if none did)")
    parser.add_argument("--list", action="store_true",
                        help="print the scenario files that would run (after -k), one a "
                             "line, and run none")
    parser.add_argument("-k", dest="select", type=_selection, metavar="EXPR",
                        help="run only the scenarios whose path holds these words (case "
                             "aside), joined by and, or, not and parentheses: -k 'chat and "
                             "not slow'")
    parser.add_argument("--junit", type=_report_file, metavar="PATH",
                        help="write a JUnit XML report")
    parser.add_argument("--transcript", type=_records_path, metavar="PATH",
                        help="record every event as JSON Lines (a folder, one file per "
                             "scenario, when testing several files, or when PATH is a folder "
                             "or ends in /)")
    parser.add_argument("--log-dir", type=_log_folder, metavar="DIR",
                        help="write one plain log per member here (a subfolder per scenario)")
    parser.add_argument("--update", action="store_true",
                        help="write golden files instead of comparing them")
    parser.add_argument("--grace", type=_seconds, default=DEFAULT_GRACE, metavar="SECONDS",
                        help=f"SIGTERM to SIGKILL when stopping (default: {DEFAULT_GRACE:g})")
    parser.add_argument("--timeout-factor", type=_factor, default=1.0, metavar="F",
                        help="make every timeout, ready_timeout and ready_cmd_timeout F times "
                             "as long, for a slower machine (a CI runner under load)")
    _color_options(parser, "test")


def test(args: argparse.Namespace) -> None:
    """Run scenario FILES as tests: steps in order, then stop the cast.

    Prints a dot or F per scenario (-v: a line per step), then failures with their evidence
    and a summary. Exit status: 0 all passed, 1 some failed, 2 a file could not be loaded.
    """
    from .._test_command import run_tests

    transcript, in_folder = args.transcript or (None, False)
    files = _scenario_files(args.files, verbose=args.verbose)
    deselected = 0
    if args.select is not None:
        expression, chosen = args.select
        kept = [file for file in files if chosen(_from_here(file))]
        if not kept:
            names = ", ".join(quoted(str(file)) for file in files[:5])
            more = f" and {len(files) - 5} more" if len(files) > 5 else ""
            _fail(f"no scenario's path matches -k {quoted(expression)}; the "
                  f"{'one' if len(files) == 1 else len(files)} given: {names}{more}")
        files, deselected = kept, len(files) - len(kept)
    if args.last_failed:
        from ..scenario.last_failed import last_failed

        failed = last_failed()
        again = [file for file in files if os.path.abspath(file) in failed]
        if again:
            files, deselected = again, deselected + len(files) - len(again)
        else:
            print("pipeplex: none of these scenarios failed the last time it ran here: "
                  "running them all", file=sys.stderr)
    if args.list:
        with printing():
            for file in files:
                print(printable(str(file)))
        return
    run_tests(files, verbose=args.verbose, junit=args.junit, deselected=deselected,
              transcript=transcript, transcript_folder=in_folder, log_dir=args.log_dir,
              update=args.update, grace=args.grace, color=_color(args),
              timeout_factor=args.timeout_factor, exitfirst=args.exitfirst)


def _replay_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("path", type=_existing_file, metavar="TRANSCRIPT",
                        help="a file that run or test wrote with --transcript")
    parser.add_argument("--input", action="store_true",
                        help="show what was sent to the members too, as NAME > line")
    _color_options(parser, "show")
    _timestamps_option(parser)


def replay(args: argparse.Namespace) -> None:
    """Show a transcript (from --transcript) as the merged stream again."""
    from .._test_command import replay_transcript

    replay_transcript(args.path, color=_color(args), timestamps=args.timestamps,
                      sent=args.input)


# The parser ------------------------------------------------------------------------------

Options = Callable[[argparse.ArgumentParser], None]
Command = Callable[[argparse.Namespace], None]

COMMANDS: dict[str, tuple[Options, Command]] = {
    "run": (_run_options, run),
    "demo": (_demo_options, demo),
    "send": (_send_options, send),
    "status": (_status_options, status),
    "signal": (_signal_options, signal_command),
    "restart": (_one_member_options("restart"), restart),
    "start": (_one_member_options("start"), start),
    "stop": (_stop_options, stop),
    "attach": (_attach_options, attach),
    "test": (_test_options, test),
    "replay": (_replay_options, replay),
}


def _description(command: Command) -> str:
    """Its docstring, unindented (none under ``python -OO``)."""
    lines = (command.__doc__ or "").strip().splitlines()
    return "\n".join(line.removeprefix("    ") for line in lines)


def _summary(command: Command) -> str:
    return next(iter(_description(command).splitlines()), "")


def _top_parser() -> argparse.ArgumentParser:
    """``pipeplex -h``, ``--version``, and the message for a word that is no command."""
    listing = "\n".join(f"  {name:<9} {_summary(action)}"
                        for name, (_, action) in COMMANDS.items())
    top = CommandParser(
        prog="pipeplex",
        description="Run several cooperating programs as one: merged output, live input, "
                    "scripts.",
        epilog=f"commands:\n{listing}\n\npipeplex COMMAND -h tells more about one.")
    top.add_argument("--version", action="version", version=f"pipeplex, version {__version__}")
    top.add_argument("command", choices=COMMANDS, metavar="COMMAND", help="one of those below")
    top.add_argument("arguments", nargs="*", metavar="ARGS",
                     help="the command's arguments and options")
    return top


def _command_parser(name: str) -> CommandParser:
    """The parser of one command. Options and arguments may come in any order, as in
    ``pipeplex send NAME --run-dir DIR TEXT``; only this command's options are set up, so
    only the modules their defaults and checks come from are loaded."""
    options, action = COMMANDS[name]
    parser = CommandParser(prog=f"pipeplex {name}", description=_description(action))
    options(parser)
    return parser


def main(argv: Sequence[str] | None = None) -> None:
    """Run the command; a Ctrl-C before a run takes it over exits 130, as one later does."""
    words = sys.argv[1:] if argv is None else list(argv)
    try:
        with printing():  # (-h and --version print, and a full stdout must be said)
            command, args = _parse(words)
        if command not in ("run", "demo", "test"):  # (those once their handlers are in)
            signal.pthread_sigmask(signal.SIG_UNBLOCK, HELD_AT_START)  # held by _entry
        if command not in ("run", "demo"):  # (those once the engine is loaded)
            release_collector()
        COMMANDS[command][1](args)
    except KeyboardInterrupt:
        sys.exit(INTERRUPTED)
    except StdoutRefused as exc:
        _stdout_refused(exc.error)
    except FileNotFoundError as exc:
        if exc.filename is None and _working_folder_gone():  # (from os.getcwd)
            _fail("the current folder no longer exists (it was deleted): cd to a folder that "
                  "does, and start again")
        raise
    except (OSError, BaseExceptionGroup) as exc:
        if _out_of_descriptors(exc):
            _say_out_of_descriptors()
        if isinstance(exc, BaseExceptionGroup):
            if exc.split(BrokenPipeError)[1] is not None:
                raise
        elif not isinstance(exc, BrokenPipeError):
            raise
        _reader_left(REQUEST_FAILED)


def _working_folder_gone() -> bool:
    try:
        os.getcwd()
    except FileNotFoundError:
        return True
    return False


def _out_of_descriptors(exc: BaseException) -> bool:
    """Whether ``exc`` is (or holds) running out of file descriptors."""
    if isinstance(exc, BaseExceptionGroup):
        return any(_out_of_descriptors(inner) for inner in exc.exceptions)
    return isinstance(exc, OSError) and exc.errno in (errno.EMFILE, errno.ENFILE)


def _say_out_of_descriptors() -> NoReturn:
    import resource

    soft, _hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    print(f"pipeplex: error: out of file descriptors (the limit is {soft}, and pipeplex needs "
          "a few per member); raise it with ulimit -n", file=sys.stderr, flush=True)
    # At once: what was set up has been undone on the way here, and a half-made event loop
    # would say more, in a traceback of its own, as it is collected.
    os._exit(USAGE_ERROR)


def _parse(words: Sequence[str]) -> tuple[str, argparse.Namespace]:
    """The command and its arguments; help, the version and usage errors exit here."""
    command = words[0] if words else None
    if command not in COMMANDS:  # help, the version, or a mistake: said by argparse
        top = _top_parser()
        if command is None:
            top.print_help(sys.stderr)
            sys.exit(USAGE_ERROR)
        if command in ("-h", "--help", "--version"):
            top.parse_args(words[:1])  # exits
        import shlex

        from .._suggest import close_match, suggest

        if command.startswith("-"):
            close = close_match(command.partition("=")[0], ["--help", "--version"])
            if not close and _run_option(command) and not COMMANDS.keys() & set(words):
                top.error(f"unknown option {quoted(command)}; did you mean pipeplex run "
                          f"{shlex.join(words)}?")
            top.error(f"unknown option {quoted(command)}"
                      f"{f'; did you mean {close}?' if close else ''}"
                      " (a command's options come after it: pipeplex COMMAND -h)")
        close = suggest(command, list(COMMANDS))
        if close.startswith(";"):  # (a typo of a command, whatever files are named so)
            top.error(f"no command {quoted(command)}{close}")
        if command.endswith(".toml") or os.path.isfile(command):  # (a cast file)
            top.error(f"no command {quoted(command)}; did you mean pipeplex run "
                      f"{shlex.join(words)} (or pipeplex test, for a scenario)?")
        if os.path.isdir(command):  # (a folder of scenarios)
            top.error(f"no command {quoted(command)}; did you mean pipeplex test "
                      f"{shlex.join(words)}, to run the scenarios in it?")
        top.error(f"no command {quoted(command)}{close}")
    assert command is not None
    return command, _command_parser(command).parse_words(words[1:])


def _run_option(word: str) -> bool:
    """Whether ``word`` is one of ``pipeplex run``'s options (its most used ones, put
    before the command): ``pipeplex -p a=cat``."""
    return word.partition("=")[0] in ("-p", "--proc", "--pty", "--grace", "--no-console",
                                      "--on-exit", "--stderr", "--log-dir", "--transcript")


def _reader_left(status: int) -> NoReturn:
    """Our reader left (pipeplex replay T | head): end quietly; point stdout at /dev/null so
    the flush at exit does not fail a second time."""
    os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    sys.exit(status)
