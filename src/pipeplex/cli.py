"""The ``pipeplex`` command: parse arguments, call the library, map errors to exit codes.

Exit codes of ``pipeplex run``: 0 success; the status of the first member that failed on
its own (128+N for a signal); 2 for a usage or configuration error (nothing was started);
130 / 143 when stopped by Ctrl-C / SIGTERM.

Exit codes of the clients of a running cast (``send``, ``status``, ``signal``, ``restart``,
``stop``, ``attach``): 0 success; 1 the run refused or could not carry out the request
(an unknown member, one that is not running, an attach client dropped for being slow);
2 a usage error; 4 no run to talk to at that folder (none, or a stale one); 130 when an
``attach`` is ended with Ctrl-C.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

import click

from . import __version__
from ._signals import clean_inherited_signals, parse_signal
from .cast import CastSpec, parse_proc_option
from .cast.spec import DEFAULT_GRACE, OnExit, ProcSpec, PtyMode
from .control_client import ControlClient, decode_event, format_status
from .errors import NoRun, PipeplexError, RequestFailed
from .inputs.rundir import default_run_dir
from .output.render import Renderer, use_color

if TYPE_CHECKING:
    from ._run import RunOptions
    from .scenario import Scenario

__all__ = ("main",)

REQUEST_FAILED = 1
USAGE_ERROR = 2
NO_RUN = 4
INTERRUPTED = 130
PTY_CHOICES: dict[str, PtyMode] = {"stdout": "stdout", "true": "full", "false": "pipes"}


def _fail(message: str) -> NoReturn:
    click.echo(f"pipeplex: error: {message}", err=True)
    sys.exit(USAGE_ERROR)


class _Command(click.Command):
    """A command that spells its short options long before click parses them.

    click tries every ``-x`` as a long option first and, when that fails, builds a "did
    you mean" message through gettext and difflib before trying it as a short one: about
    80 us per ``-p``, 80 ms for a cast of 1000 ``-p`` members. Same meaning, same messages.
    """

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        return super().parse_args(ctx, _spelled_long(self.get_params(ctx), args))


def _spelled_long(params: Sequence[click.Parameter], args: list[str]) -> list[str]:
    long_of: dict[str, str] = {}
    takes_value: set[str] = set()
    for param in params:
        if not isinstance(param, click.Option):
            continue
        longs = [opt for opt in param.opts if opt.startswith("--")]
        for opt in param.opts:
            if longs and len(opt) == 2 and opt[0] == "-" and opt != "--":
                long_of[opt] = longs[0]
        if not param.is_flag and not param.count:
            takes_value.update(param.opts)
    spelled: list[str] = []
    value_next = False
    for i, arg in enumerate(args):
        if value_next:  # the value of the option before it, even if it looks like one
            spelled.append(arg)
            value_next = False
        elif arg == "--":
            spelled.extend(args[i:])
            break
        else:
            value_next = arg in takes_value
            if value_next and i + 1 == len(args):
                spelled.append(arg)  # its value is missing: click says so, in the user's words
            else:
                spelled.append(long_of.get(arg, arg))
    return spelled


class _Commands(click.Group):
    """Loads the test-mode commands only when they are used: the client commands
    (send, status, ...) stay quick to start."""

    command_class = _Command
    LAZY = ("test", "replay")

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted([*super().list_commands(ctx), *self.LAZY])

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name in self.LAZY:
            from . import _test_command

            command: click.Command = getattr(_test_command, name)
            return command
        return super().get_command(ctx, name)


@click.group(cls=_Commands, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="pipeplex")
def cli() -> None:
    """Run several cooperating programs as one: merged output, live input, scripts."""


def _seconds(ctx: click.Context, param: click.Parameter, value: float) -> float:
    if not 0 < value < 1e9:  # (also refuses nan and inf)
        raise click.BadParameter(f"{value} is not a positive number of seconds below 1e9")
    return value


def _color_option(f: Any) -> Any:
    f = click.option("--no-color", is_flag=True, help="Same as --color never.")(f)
    f = click.option(
        "--color",
        type=click.Choice(["auto", "always", "never"]),
        default="auto",
        show_default=True,
        help="Colour the prefixes (auto: on a terminal, unless NO_COLOR is set or FORCE_COLOR).",
    )(f)
    return f


@cli.command()
@click.argument("cast_file", required=False, type=click.Path(dir_okay=False, path_type=Path))
@click.option("-p", "--proc", "procs", multiple=True, metavar="NAME=COMMAND",
              help="A member to run (repeatable); added to those of CAST_FILE.")
@click.option("--run-dir", type=click.Path(file_okay=False, path_type=Path),
              help="Folder for the named pipes (default: one per working folder under "
                   "$XDG_RUNTIME_DIR/pipeplex or /tmp/pipeplex-UID).")
@_color_option
@click.option("--timestamps", is_flag=True, help="Show the time of each line.")
@click.option("--on-exit", type=click.Choice(["stop", "ignore", "restart"]),
              help="What to do when any member exits (overrides each member's on_exit).")
@click.option("--grace", type=float, callback=_seconds,
              default=DEFAULT_GRACE, show_default=True, metavar="SECONDS",
              help="How long a member may take to exit after SIGTERM before SIGKILL.")
@click.option("--pty", type=click.Choice(list(PTY_CHOICES)),
              help="Default terminal mode for members that do not set pty: stdout (stdout on "
                   "a pseudo-terminal; the default), true (a full terminal) or false (pipes).")
@click.option("--no-console", is_flag=True,
              help="Do not read commands and lines for members from standard input.")
@click.option("--transcript", type=click.Path(dir_okay=False, path_type=Path),
              help="Record every event as JSON Lines (see pipeplex replay).")
@click.option("--log-dir", type=click.Path(file_okay=False, path_type=Path),
              help="Write one plain log per member into this folder.")
def run(
    cast_file: Path | None,
    procs: Sequence[str],
    run_dir: Path | None,
    color: str,
    no_color: bool,
    timestamps: bool,
    on_exit: str | None,
    grace: float,
    pty: str | None,
    no_console: bool,
    transcript: Path | None,
    log_dir: Path | None,
) -> None:
    """Run a cast: members from CAST_FILE (TOML) and from -p options.

    Output comes back as one stream, each line under its member's name. Type NAME: TEXT
    (on a terminal, or through a pipe into pipeplex) to send TEXT to NAME, :help for the
    console's commands. From elsewhere: pipeplex send NAME TEXT, or write a line to
    RUN_DIR/NAME.in (RUN_DIR/all.in for everyone).
    """
    defaults: dict[str, Any] = {"pty": PTY_CHOICES[pty]} if pty else {}
    try:
        if transcript is not None:
            from .report.transcript import check_given_descriptor

            check_given_descriptor(transcript)  # before pipeplex opens descriptors of its own
        cast, scenario = _build_cast(cast_file, procs, defaults, on_exit)
    except PipeplexError as exc:
        _fail(str(exc))
    from ._run import RunOptions  # the engine loads only for commands that run a cast

    options = RunOptions(
        run_dir=run_dir,
        color="never" if no_color else color,  # type: ignore[arg-type]
        timestamps=timestamps,
        grace=grace,
        console=not no_console,
        scenario=scenario,
        transcript=transcript,
        log_dir=log_dir,
    )
    sys.exit(_run(cast, options))


def _build_cast(
    cast_file: Path | None, procs: Sequence[str], defaults: dict[str, Any], on_exit: str | None
) -> tuple[CastSpec, Scenario | None]:
    """The cast to run, and the scenario when the file has steps."""
    members: list[ProcSpec] = []
    scenario = None
    if cast_file is not None:
        from .scenario import load_scenario

        scenario = load_scenario(cast_file, what="cast file", **defaults)
        members.extend(scenario.cast.procs)
    members.extend(parse_proc_option(option, **defaults) for option in procs)
    if not members:
        raise click.UsageError("nothing to run: give a cast file or -p NAME=COMMAND")
    if on_exit is not None:
        from dataclasses import replace

        members = [replace(m, on_exit=_on_exit(on_exit)) for m in members]
    # run_cast checks it (validate_cast, check_commands) before anything starts.
    cast = CastSpec(tuple(members), path=str(cast_file) if cast_file else None)
    if scenario is not None:
        from dataclasses import replace as replace_field

        scenario = replace_field(scenario, cast=cast)
    return cast, scenario


def _on_exit(value: str) -> OnExit:
    assert value in ("stop", "ignore", "restart")
    return value  # type: ignore[return-value]


def _run(cast: CastSpec, options: RunOptions) -> int:
    import asyncio

    from ._run import run_cast

    clean_inherited_signals()
    try:
        return asyncio.run(run_cast(cast, options))
    except PipeplexError as exc:
        _fail(str(exc))
    except KeyboardInterrupt:  # Ctrl-C before the loop took over the signal
        return 130


@cli.command()
@_color_option
@click.option("--timestamps", is_flag=True, help="Show the time of each line.")
def demo(color: str, no_color: bool, timestamps: bool) -> None:
    """Run the bundled demo: a chat server and two clients talking in turns."""
    import tempfile

    from .examples.demo import demo_cast

    with tempfile.TemporaryDirectory(prefix="pipeplex-demo-") as scratch:
        from ._run import RunOptions

        options = RunOptions(
            run_dir=Path(scratch) / "run",
            color="never" if no_color else color,  # type: ignore[arg-type]
            timestamps=timestamps,
        )
        status = _run(demo_cast(), options)
    sys.exit(status)


# Clients of a running cast ------------------------------------------------------------


def _run_dir_option(f: Any) -> Any:
    return click.option(
        "--run-dir", type=click.Path(file_okay=False, path_type=Path),
        help="The run folder of the cast (default: that of a run started in this folder).",
    )(f)


@contextlib.contextmanager
def _talking(run_dir: Path | None, *, timeout: float | None = 60.0) -> Iterator[ControlClient]:
    """A connection to the run; its errors become messages and exit codes."""
    folder = run_dir or default_run_dir()
    try:
        with ControlClient(folder, timeout=timeout) as client:
            yield client
    except NoRun as exc:
        click.echo(f"pipeplex: error: {exc}", err=True)
        sys.exit(NO_RUN)
    except RequestFailed as exc:
        click.echo(f"pipeplex: error: {exc}", err=True)
        sys.exit(USAGE_ERROR if exc.code in ("bad_request", "bad_signal") else REQUEST_FAILED)
    except TimeoutError:
        click.echo(f"pipeplex: error: the run at {folder} did not answer within {timeout} s",
                   err=True)
        sys.exit(REQUEST_FAILED)
    except OSError as exc:
        click.echo(f"pipeplex: error: lost the connection to the run at {folder}: "
                   f"{exc.strerror or exc}", err=True)
        sys.exit(REQUEST_FAILED)


@cli.command()
@click.argument("name")
@click.argument("text", nargs=-1)
@click.option("-n", "--no-newline", is_flag=True, help="Do not end the text with a newline.")
@click.option("--eof", is_flag=True,
              help="Then close NAME's stdin (without TEXT: only close it).")
@_run_dir_option
def send(name: str, text: Sequence[str], no_newline: bool, eof: bool,
         run_dir: Path | None) -> None:
    """Send TEXT (words joined by spaces, then a newline) to member NAME of a running cast.

    NAME 'all' sends to every member. Put -- before text that starts with a dash.
    """
    data = " ".join(text) if text or eof else ""
    if (text or not eof) and not no_newline:
        data += "\n"
    with _talking(run_dir) as client:
        client.request("send", name=name, data=data, eof=eof or None)


@cli.command()
@click.option("--json", "as_json", is_flag=True, help="Print the status as JSON.")
@_run_dir_option
def status(as_json: bool, run_dir: Path | None) -> None:
    """Show the members of a running cast: pid, state, uptime, restarts, last exit code."""
    with _talking(run_dir) as client:
        answer = client.request("status")
    if as_json:
        answer.pop("ok", None)
        click.echo(json.dumps(answer, indent=2))
    else:
        click.echo(format_status(answer["members"]))


@cli.command("signal")
@click.argument("name")
@click.argument("signal_", metavar="SIGNAL")
@_run_dir_option
def signal_command(name: str, signal_: str, run_dir: Path | None) -> None:
    """Send SIGNAL (TERM, INT, HUP, USR1, ... or a number) to member NAME's process group."""
    try:
        number = parse_signal(signal_)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="SIGNAL") from None
    with _talking(run_dir) as client:
        client.request("signal", name=name, signal=number)


@cli.command()
@click.argument("name")
@_run_dir_option
def restart(name: str, run_dir: Path | None) -> None:
    """Stop member NAME (stdin closed, SIGTERM, then SIGKILL) and start it again."""
    with _talking(run_dir, timeout=None) as client:
        answer = client.request("restart", name=name)
    click.echo(f"{name} restarted (pid {answer.get('pid')})")


@cli.command()
@click.option("--no-wait", is_flag=True, help="Return at once instead of when the run ended.")
@_run_dir_option
def stop(no_wait: bool, run_dir: Path | None) -> None:
    """Stop the whole cast gracefully, like Ctrl-C in its terminal; wait until it ended."""
    with _talking(run_dir, timeout=None) as client:
        client.request("stop")
        if not no_wait:
            client.wait_closed()


@cli.command()
@click.option("--name", help="Follow only this member (and notes about the whole run).")
@_color_option
@click.option("--timestamps", is_flag=True, help="Show the time of each line.")
@_run_dir_option
def attach(name: str | None, color: str, no_color: bool, timestamps: bool,
           run_dir: Path | None) -> None:
    """Show the merged output of a running cast from now on, until it ends or Ctrl-C."""
    out = sys.stdout.buffer
    isatty = out.isatty()
    try:
        with _talking(run_dir, timeout=None) as client:
            answer = client.request("attach", name=name)
            members = answer.get("members", [])
            renderer = Renderer(
                [m["name"] for m in members],
                color=use_color("never" if no_color else color, isatty),  # type: ignore[arg-type]
                timestamps=timestamps,
                sanitize=isatty,
                crlf_names=[m["name"] for m in members if m.get("pty") == "full"],
            )
            click.echo(f"pipeplex: attached to the run at {client.run_dir} (Ctrl-C to detach)",
                       err=True)
            for message in client.events():
                event = decode_event(message)
                if event is not None:
                    out.write(renderer.render(event))
                    if not client.has_message():
                        out.flush()
                elif message.get("event") == "dropped":
                    out.flush()
                    click.echo(f"pipeplex: error: the run dropped this client: "
                               f"{message.get('reason')}", err=True)
                    sys.exit(REQUEST_FAILED)
                elif message.get("event") == "end":
                    out.flush()
                    return
        click.echo("pipeplex: error: the connection to the run ended without its end "
                   "(was it killed?)", err=True)
        sys.exit(REQUEST_FAILED)
    except KeyboardInterrupt:
        sys.exit(INTERRUPTED)
    except BrokenPipeError:
        # Our reader left (attach | head): end quietly; point stdout at /dev/null so the
        # flush at exit does not fail a second time.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        sys.exit(0)


def main() -> None:
    """Run the command; a Ctrl-C before a run takes it over exits 130, as one later does
    (click's own handling would print "Aborted!" and exit 1)."""
    try:
        cli.main(prog_name="pipeplex", standalone_mode=False)
    except (click.exceptions.Abort, KeyboardInterrupt):
        sys.exit(INTERRUPTED)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
