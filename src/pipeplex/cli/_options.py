"""The options' value types, and the options that several commands share.

A value that will not do is refused as the words are parsed, before anything starts, as a
usage error that names the option (argparse adds the name): a run does not start its
members to find out then that its log folder cannot be written. Apart from the commands:
what they share of their options is said once, here.
"""

from __future__ import annotations

import argparse
import os
import stat
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

from .._printable import quoted
from .._seconds import SECONDS_SAID, is_seconds, seconds_meant

COLORS = ("auto", "always", "never")


# Value types: a bad value is a usage error naming the option (argparse adds the name).


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{quoted(text)} is not a number of seconds"
                                         f"{seconds_meant(text, quoted=False)}") from None
    if not is_seconds(value):
        raise argparse.ArgumentTypeError(f"{quoted(text)} is not {SECONDS_SAID}"
                                         f"{seconds_meant(value, quoted=False)}")
    return value


def _stop_signal(text: str) -> int:
    from ..cast._member_fields import stop_signal_of

    try:
        return stop_signal_of(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _factor(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{quoted(text)} is not a number") from None
    if not 0.01 <= value <= 1000:  # (also refuses nan and inf: 1e-300 made every wait 0 s)
        raise argparse.ArgumentTypeError(f"{quoted(text)} is not a number from 0.01 to 1000")
    return value


def _selection(text: str) -> tuple[str, Callable[[str], bool]]:
    from ..scenario.select import selector  # (test mode's own: loaded when -k is given)

    try:
        return text, selector(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"{quoted(text)}: {exc}") from None


def _path(text: str) -> Path:
    if not text:
        raise argparse.ArgumentTypeError("an empty path")
    return Path(text)


def _file(text: str) -> Path:
    """A path for a file: one that is a folder is refused before anything starts."""
    if os.path.isdir(text):
        raise argparse.ArgumentTypeError(f"{quoted(text)} is a folder, not a file")
    return _path(text)


def _report_file(text: str) -> Path:
    """A file written once everything has run: one that cannot be is refused before. Its
    folders are made if missing (``--junit reports/x.xml`` on a fresh checkout, as pytest
    does), so the first of them that exists must be writable."""
    path = _file(text)
    _check_writable_place(text, path)
    return path


def _log_folder(text: str) -> Path:
    """A folder logs go to (made if missing): refused before anything starts if they
    could not be written there, rather than lost member by member as the cast runs."""
    path = _folder(text)
    _check_writable_place(text, path)
    return path


def _check_writable_place(text: str, path: Path) -> None:
    """Refuse ``path`` (given as ``text``) unless the nearest of it and its folders that
    exists is a folder this process may write in."""
    try:
        existing = path if path.exists() else path.parent
        while not existing.exists() and existing != existing.parent:
            existing = existing.parent
        is_dir = existing.is_dir()
    except OSError as exc:  # (a folder on the way that may not be entered, a name too long)
        raise argparse.ArgumentTypeError(
            f"{quoted(text)} cannot be reached: {exc.strerror or exc}") from None
    if not is_dir and existing != path:
        raise argparse.ArgumentTypeError(
            f"{quoted(text)}: {quoted(str(existing))} is not a folder")
    if not os.access(existing, os.W_OK):
        raise argparse.ArgumentTypeError(
            f"{quoted(text)} cannot be written here (no permission)")


def _records_path(text: str) -> tuple[Path, bool]:
    """A file, or a folder for a file per scenario: a folder when it is one already or is
    written as one (``out/``), whatever the number of files a glob matched."""
    return _path(text), text.endswith("/") or os.path.isdir(text)


def _folder(text: str) -> Path:
    if os.path.exists(text) and not os.path.isdir(text):
        raise argparse.ArgumentTypeError(f"{quoted(text)} is a file, not a folder")
    return _path(text)


def _existing_file(text: str) -> Path:
    """A file to read: one that is not there, or a device or socket (/dev/zero would be
    read for ever), is refused at once; a pipe is read (``<(zcat t.jsonl.gz)``)."""
    try:
        found = os.stat(text)
    except FileNotFoundError:
        stdin = " (a transcript is read by its path, not from standard input)" if text == "-" \
            else ""
        raise argparse.ArgumentTypeError(f"{quoted(text)} does not exist{stdin}") from None
    except (OSError, ValueError) as exc:
        why = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise argparse.ArgumentTypeError(f"{quoted(text)} cannot be reached: {why}") from None
    if not (stat.S_ISREG(found.st_mode) or stat.S_ISDIR(found.st_mode)
            or stat.S_ISFIFO(found.st_mode)):
        from .._file_kind import file_kind

        raise argparse.ArgumentTypeError(f"{quoted(text)} is {file_kind(found.st_mode)}, not "
                                         "a file to read")
    return _file(text)


# Options shared by several commands.


_MEMBERS_COLOR = {
    "run": "; without colour, members get NO_COLOR=1 unless FORCE_COLOR asks for colours",
    "test": "; members get NO_COLOR=1 whatever it is, so a test reads the same everywhere",
    "show": "",
}


def _color_options(parser: argparse.ArgumentParser,
                   members: Literal["run", "test", "show"] = "run") -> None:
    """``members``: what the colour means for members: ``run`` (those of a cast that runs),
    ``test`` (a scenario's), ``show`` (none: output shown again)."""
    parser.add_argument("--color", choices=COLORS, default="auto",
                        help=f"colour names, marks and notes{_MEMBERS_COLOR[members]} (auto: "
                             "on a terminal unless NO_COLOR is set, anywhere when FORCE_COLOR "
                             "is, other than 0 or false; default: auto)")
    parser.add_argument("--no-color", action="store_true", help="same as --color never")


def _timestamps_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--timestamps", action="store_true", help="show the time of each line")


def _run_dir_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--run-dir", type=_folder, metavar="DIR",
                        help="the run folder of the cast (default: that of a run started in "
                             "this folder)")


def _color(args: argparse.Namespace) -> Any:
    return "never" if args.no_color else args.color

