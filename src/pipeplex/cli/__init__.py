"""The ``pipeplex`` command: parse arguments, call the library, map errors to exit codes.

Exit codes of ``pipeplex run``: 0 success; the status of the first member that failed on
its own (128+N for a signal); 2 for a usage or configuration error (nothing was started);
130 / 143 / 129 / 131 when stopped by Ctrl-C / SIGTERM / SIGHUP / SIGQUIT, when no member
failed on its own first. ``pipeplex test``: 0 all passed, 1 any failed, 2 a file could not
be loaded, 128+N when interrupted by signal N.

Exit codes of the clients of a running cast (``send``, ``status``, ``signal``, ``restart``,
``start``, ``stop``, ``attach``): 0 success; 1 the run refused or could not carry out the request
(an unknown member, one that is not running, an attach client dropped for being slow);
2 a usage error; 4 no run to talk to at that folder (none, or a stale one); 130 when an
``attach`` is ended with Ctrl-C.

Every start of the command pays for what it loads, and scripts run ``pipeplex send`` in
loops: the parser is the standard library's (1.5 ms to load, where click took 9), only the
command given gets its options, and each command loads its own modules. This module
holds the parser and the exit codes; the commands live apart, and only the module of the
one given is loaded (:data:`COMMANDS`): ``_running`` (run, demo), ``_clients`` (those of a
running cast) and ``_test_mode`` (test, replay), with ``_options`` for what they share.
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import os
import signal
import sys
from collections.abc import Callable, Sequence
from typing import NoReturn

from .. import __version__
from .._command_parser import CommandParser
from .._entry import release_collector
from .._printable import printable, quoted
from .._signals import HELD_AT_START
from .._stdout import StdoutRefused, printing

__all__ = ("main",)

REQUEST_FAILED = 1
USAGE_ERROR = 2  # (said so of a member's 2: engine/_outcomes.py)
NO_RUN = 4
INTERRUPTED = 130


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


# The parser ------------------------------------------------------------------------------

Options = Callable[[argparse.ArgumentParser], None]
Command = Callable[[argparse.Namespace], None]

COMMANDS: dict[str, str] = {
    "run": "_running",
    "demo": "_running",
    "send": "_clients",
    "status": "_clients",
    "signal": "_clients",
    "restart": "_clients",
    "start": "_clients",
    "stop": "_clients",
    "attach": "_clients",
    "test": "_test_mode",
    "replay": "_test_mode",
}
"""Each command, in the order ``pipeplex -h`` lists them, to the module that holds it:
that module is loaded only when the command runs (or to list them all). Its own
``COMMANDS`` gives each of its commands the function that sets up its options and
the one that runs it, whose docstring is its help."""


def _command(name: str) -> tuple[Options, Command]:
    """The function that sets up command ``name``'s options, and the one that runs it."""
    home = COMMANDS[name]
    if home == "_running":
        from ._running import COMMANDS as commands
    elif home == "_clients":
        from ._clients import COMMANDS as commands
    else:
        from ._test_mode import COMMANDS as commands
    return commands[name]


def _description(command: Command) -> str:
    """Its docstring, unindented (none under ``python -OO``)."""
    lines = (command.__doc__ or "").strip().splitlines()
    return "\n".join(line.removeprefix("    ") for line in lines)


def _summary(command: Command) -> str:
    return next(iter(_description(command).splitlines()), "")


def _top_parser() -> argparse.ArgumentParser:
    """``pipeplex -h``, ``--version``, and the message for a word that is no command."""
    listing = "\n".join(f"  {name:<9} {_summary(_command(name)[1])}"
                        for name in COMMANDS)
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
    options, action = _command(name)
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
        _command(command)[1](args)
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
