"""``pipeplex run`` and ``pipeplex demo``: the commands that run a cast here.

They build the cast (from a cast file, -p options, or the bundled demo), check the files the
run will write before anything starts, and hand it to :func:`pipeplex._run.run_cast`, whose
exit status is the command's. Apart from the clients of a running cast and from test
mode, so that a run loads none of their code.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .._entry import release_collector
from .._printable import printable
from .._signals import HELD_AT_START
from . import _fail
from ._options import (
    _color,
    _color_options,
    _file,
    _folder,
    _log_folder,
    _seconds,
    _stop_signal,
    _timestamps_option,
)

if TYPE_CHECKING:
    from .._run import RunOptions
    from ..cast import CastSpec
    from ..cast.spec import OnExit
    from ..scenario import Scenario
    from . import Command, Options

__all__ = ("COMMANDS",)

PTY_CHOICES = {"stdout": "stdout", "true": "full", "false": "pipes"}


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
                             "on_exit and on_failure)")
    parser.add_argument("--grace", type=_seconds, default=DEFAULT_GRACE, metavar="SECONDS",
                        help="how long a member may take to exit after SIGTERM before SIGKILL "
                             f"(default: {DEFAULT_GRACE:g})")
    parser.add_argument("--stop-signal", type=_stop_signal, metavar="SIGNAL",
                        help="default for members that do not set stop_signal: the signal a "
                             "stop sends in SIGTERM's place (INT, QUIT, HUP, a number...)")
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
    if args.stop_signal is not None:
        defaults["stop_signal"] = args.stop_signal
    try:
        if args.transcript is not None:
            from ..report.transcript import check_given_descriptor

            check_given_descriptor(args.transcript)  # before pipeplex opens descriptors
        cast, scenario = _build_cast(args.cast_file, args.procs, defaults, args.on_exit)
    except PipeplexError as exc:
        _fail(str(exc) + (_another_tools_file(args.cast_file)
                          or _part_of_a_command(args.cast_file, args.procs)))
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


def _another_tools_file(cast_file: Path | None) -> str:
    """For a cast file that would not load: the hint that it is another tool's file, which
    pipeplex does not read (a Procfile, a .env, a compose file)."""
    if cast_file is None:
        return ""
    name = cast_file.name.lower()
    if name.startswith("procfile"):
        what = "a Procfile"
    elif name == ".env" or name.endswith(".env"):
        what = "a .env file (load it into the shell: set -a; . ./.env; set +a)"
    elif name.endswith((".yml", ".yaml")):
        what = "a YAML file, as compose's"
    else:
        return ""
    return (f"\n(pipeplex reads cast files, in TOML, not {what}: docs/migrating.md shows "
            "where each of its settings goes)")


def _part_of_a_command(cast_file: Path | None, procs: Sequence[str]) -> str:
    """For a cast file that would not load, given beside ``-p``: the hint that it may be a
    word of an unquoted command (``-p web=python3 app.py`` reads app.py as the cast)."""
    if cast_file is None or not procs or cast_file.suffix == ".toml":
        return ""
    return (f"\n(if {cast_file} is a word of a -p command, quote the command whole: "
            f"-p '{procs[-1]} {cast_file}')")


def _build_cast(
    cast_file: Path | None, procs: Sequence[str], defaults: dict[str, Any],
    on_exit: OnExit | None,
) -> tuple[CastSpec, Scenario | None]:
    """The cast to run, and the scenario when the file has steps."""
    from dataclasses import replace

    from ..cast import CastSpec, ProcSpec, parse_proc_option
    from ..cast.spec import ON_EXIT_OPTION

    members: list[ProcSpec] = []
    scenario = None
    if cast_file is not None:
        from ..scenario import load_scenario

        scenario = load_scenario(cast_file, what="cast file", **defaults)
        members.extend(scenario.cast.procs)
    members.extend(parse_proc_option(option, **defaults) for option in procs)
    if not members:
        _fail("nothing to run: give a cast file or -p NAME=COMMAND")
    if on_exit is not None:  # (named so in the messages it decides)
        members = [replace(m, on_exit=on_exit, on_failure=None,
                           key_sources={**m.key_sources, "on_exit": ON_EXIT_OPTION})
                   for m in members]
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


COMMANDS: dict[str, tuple[Options, Command]] = {
    "run": (_run_options, run),
    "demo": (_demo_options, demo),
}
