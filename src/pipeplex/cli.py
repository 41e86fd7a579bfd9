"""The ``pipeplex`` command: parse arguments, call the library, map errors to exit codes.

Exit codes: 0 success; the status of the first member that failed on its own (128+N for
a signal); 2 for a usage or configuration error (nothing was started); 130 / 143 when
stopped by Ctrl-C / SIGTERM.
"""

from __future__ import annotations

import asyncio
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NoReturn

import click

from . import __version__
from ._engine import DEFAULT_GRACE
from ._run import RunOptions, run_cast
from ._signals import clean_inherited_signals
from .cast import CastSpec, load_cast, parse_proc_option
from .cast.load import check_commands, validate_cast
from .cast.spec import OnExit, ProcSpec, PtyMode
from .errors import PipeplexError

__all__ = ("main",)

USAGE_ERROR = 2
PTY_CHOICES: dict[str, PtyMode] = {"stdout": "stdout", "true": "full", "false": "pipes"}


def _fail(message: str) -> NoReturn:
    click.echo(f"pipeplex: error: {message}", err=True)
    sys.exit(USAGE_ERROR)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="pipeplex")
def cli() -> None:
    """Run several cooperating programs as one: merged output, live input, scripts."""


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
@click.option("--grace", type=click.FloatRange(min=0, min_open=True), default=DEFAULT_GRACE,
              show_default=True, metavar="SECONDS",
              help="How long a member may take to exit after SIGTERM before SIGKILL.")
@click.option("--pty", type=click.Choice(list(PTY_CHOICES)),
              help="Default terminal mode for members that do not set pty: stdout (stdout on "
                   "a pseudo-terminal; the default), true (a full terminal) or false (pipes).")
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
) -> None:
    """Run a cast: members from CAST_FILE (TOML) and from -p options.

    Output comes back as one stream, each line under its member's name. Write a line to
    RUN_DIR/NAME.in to send it to NAME's stdin, or to RUN_DIR/all.in for everyone.
    """
    defaults: dict[str, Any] = {"pty": PTY_CHOICES[pty]} if pty else {}
    try:
        cast = _build_cast(cast_file, procs, defaults, on_exit)
    except PipeplexError as exc:
        _fail(str(exc))
    options = RunOptions(
        run_dir=run_dir,
        color="never" if no_color else color,  # type: ignore[arg-type]
        timestamps=timestamps,
        grace=grace,
    )
    sys.exit(_run(cast, options))


def _build_cast(
    cast_file: Path | None, procs: Sequence[str], defaults: dict[str, Any], on_exit: str | None
) -> CastSpec:
    members: list[ProcSpec] = []
    if cast_file is not None:
        members.extend(load_cast(cast_file, **defaults).procs)
    members.extend(parse_proc_option(option, **defaults) for option in procs)
    if not members:
        raise click.UsageError("nothing to run: give a cast file or -p NAME=COMMAND")
    if on_exit is not None:
        from dataclasses import replace

        members = [replace(m, on_exit=_on_exit(on_exit)) for m in members]
    cast = validate_cast(CastSpec(tuple(members), path=str(cast_file) if cast_file else None))
    check_commands(cast)
    return cast


def _on_exit(value: str) -> OnExit:
    assert value in ("stop", "ignore", "restart")
    return value  # type: ignore[return-value]


def _run(cast: CastSpec, options: RunOptions) -> int:
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
    from .examples.demo import demo_cast

    with tempfile.TemporaryDirectory(prefix="pipeplex-demo-") as scratch:
        options = RunOptions(
            run_dir=Path(scratch) / "run",
            color="never" if no_color else color,  # type: ignore[arg-type]
            timestamps=timestamps,
        )
        status = _run(demo_cast(), options)
    sys.exit(status)


def main() -> None:
    cli(prog_name="pipeplex")
