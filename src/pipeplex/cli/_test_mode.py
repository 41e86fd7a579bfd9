"""``pipeplex test`` and ``pipeplex replay``: test mode's commands.

``test`` turns the files and folders given into the scenarios to run (with ``-k``,
``--lf`` and ``--list``) and hands them to :func:`pipeplex.test_mode.command.run_tests`;
``replay`` shows a transcript again. Apart from the commands that run a cast or talk to
one, so that test mode's modules load only when it is used.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn

from .._printable import printable, quoted
from .._stdout import printing
from . import _fail
from ._options import (
    _color,
    _color_options,
    _existing_file,
    _factor,
    _log_folder,
    _path,
    _records_path,
    _report_file,
    _seconds,
    _selection,
    _timestamps_option,
)

if TYPE_CHECKING:
    from . import Command, Options

__all__ = ("COMMANDS",)


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
                        help="print the scenario files that would run (after -k and --lf), one "
                             "a line, and run none")
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
    and a summary. Exit status: 0 all passed, 1 some failed, 2 a file could not be loaded,
    128+N when interrupted by signal N (Ctrl-C: 130), after reporting what ran.
    """
    from ..test_mode.command import run_tests

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
    from ..test_mode.command import replay_transcript

    replay_transcript(args.path, color=_color(args), timestamps=args.timestamps,
                      sent=args.input)


COMMANDS: dict[str, tuple[Options, Command]] = {
    "test": (_test_options, test),
    "replay": (_replay_options, replay),
}
