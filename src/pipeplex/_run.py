"""Run a cast in the foreground: the terminal stream, the run folder and its pipes, the
control socket, the console, signals.

This is what ``pipeplex run`` does; it wires the engine to the outside world and leaves
the decisions to the engine. The control socket and the console are tasks of one
TaskGroup beside the engine; an error in either reaches the engine through
:meth:`Engine.crash`, and both are cancelled when the run ends.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import signal
import threading
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from . import _descriptor_limit as descriptor_limit
from ._bus import Bus
from ._events import SHOWN, Level, Note
from ._guardian_process import take_early_guardian
from ._printable import printable
from ._signals import HELD_AT_START, PASSED_ON, STOP_SIGNALS, inherited_as_ignored
from .cast._programs import check_commands
from .cast.checks import validate_cast
from .cast.spec import CastSpec
from .engine.engine import DEFAULT_GRACE, Engine
from .errors import CastError, PipeplexError, SignalRefused, ours_in_tracebacks
from .inputs.control import MAX_CONNECTIONS, REFUSALS
from .inputs.folder import FolderInputs
from .inputs.router import ALL
from .inputs.rundir import default_run_dir, refuse_a_second_run
from .inputs.stdin import ConsoleMode, console_mode, why_no_console
from .output.render import ColorMode, Renderer, forces_color, use_color
from .output.terminal import TerminalSink, Writer
from .participants import Guardian
from .participants.orphans import Adoption, OrphanReaper

if TYPE_CHECKING:  # the console, the matcher, the steps and the records are loaded when used
    from .expect import Matcher
    from .inputs.console import Console
    from .report.transcript import LogDirSink, TranscriptSink
    from .scenario import Scenario, Step
    from .scenario.run import StepFailed, StepResult

__all__ = ("RunOptions", "run_cast")
__tracebackhide__ = ours_in_tracebacks  # (pytest: see there)

@dataclass(frozen=True, slots=True)
class RunOptions:
    """How to present and host a run (the cast itself says what to run)."""

    run_dir: Path | None = None
    color: ColorMode = "auto"
    timestamps: bool = False
    grace: float = DEFAULT_GRACE
    output_fd: int = 1
    stdin_fd: int = 0
    console: bool = True
    """Read the console from ``stdin_fd`` when it is usable (a terminal, a pipe, a file)."""
    scenario: Scenario | None = None
    """Steps to run once the cast is up; the cast then goes on until it ends."""
    transcript: Path | None = None
    log_dir: Path | None = None
    run_dir_option: str = "run_dir="
    """How a message about the run folder names the way to give another one: the
    command's ``--run-dir`` (which sets this), or this option's ``run_dir=``."""
    adopt_orphans: bool = False
    """Be the members' subreaper while the cast runs: what they orphan (even a daemon
    that left their group and environment) is stopped with the cast, and reaped. Only for
    a process that waits for no child of its own (``pipeplex run``); as PID 1, always."""

    def __post_init__(self) -> None:
        if self.color not in ("auto", "always", "never"):
            raise ValueError(f"color must be 'auto', 'always' or 'never', not {self.color!r}")


def _member_size(fd: int, prefix: int) -> tuple[int, int]:
    """Columns and rows of a member's pty: our terminal's, less the name's column (80 x 24
    when our output is not a terminal, or one that does not know its size: 0 x 0, as
    ``script`` and some containers' terminals report)."""
    try:
        size = os.get_terminal_size(fd)
    except OSError:
        return 80, 24
    columns = size.columns or 80 + prefix
    return max(columns - prefix, 20), max(size.lines or 24, 2)


def _follow_size(engine: Engine, fd: int, prefix: int) -> Callable[[], None]:
    """What a resize of our terminal does: the members' ptys get its new size (less the
    name's column), when it changed."""
    last = _member_size(fd, prefix)

    def resized() -> None:
        nonlocal last
        size = _member_size(fd, prefix)
        if size != last:
            last = size
            engine.resize(*size)

    return resized


async def run_cast(cast: CastSpec, options: RunOptions = RunOptions()) -> int:
    """Run ``cast`` until it ends; return pipeplex's exit status.

    Must run in the main thread (it handles SIGINT, SIGTERM and SIGHUP).

    Raises:
        CastError: the cast is not consistent (names, ``after``, variables), has no
            members, or a program does not exist; nothing was started.
        RunDirError: the run folder cannot be used (nothing was started).
        PipeplexError: the transcript or the log folder cannot be written.
    """
    validate_cast(cast)
    if not cast.procs:  # (it would run until a SIGKILL: nothing to end, nothing to stop)
        raise CastError("the cast has no members: give run_cast() a CastSpec of one ProcSpec "
                        "or more (Plex and AsyncPlex start members one by one)")
    check_commands(cast)
    if threading.current_thread() is not threading.main_thread():
        raise PipeplexError("run_cast() must run in the main thread (it handles SIGINT, "
                            "SIGTERM and SIGHUP); use Plex or AsyncPlex in other threads")
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
    descriptor_limit.lift_for(len(cast.procs), connections=MAX_CONNECTIONS + REFUSALS)
    guardian = Guardian(on_lost=lambda text: bus.publish(Note(text, level="warning")),
                        spawned=take_early_guardian())
    # What the members orphan comes to us (not to PID 1), to be stopped with the rest.
    adoption = Adoption() if options.adopt_orphans or os.getpid() == 1 else None
    engine = Engine(
        cast,
        bus,
        grace=options.grace,
        columns=(size := _member_size(options.output_fd, renderer.prefix_width))[0],
        rows=size[1],
        # Children see colour only when we show it (their stdout may be a terminal). Not
        # TERM=dumb as well, which would quiet GNU grep and ls in a log: tput and clear
        # then fail, and a build script under set -e with them.
        env_overrides={
            "PIPEPLEX_RUN_ID": guardian.token,
            **({} if color or forces_color() else {"NO_COLOR": "1"}),
        },
        guardian=guardian,
        adoption=adoption,
    )
    refused: list[OSError] = []  # (the last lines, the summaries, may be the ones refused)
    writer = Writer(options.output_fd, bus,
                    on_broken=lambda: engine.request_stop(
                        "the reader of pipeplex's output went away: stopping the cast"),
                    on_failed=lambda exc: _output_failed(engine, exc, refused))
    # (nohup pipeplex run: a hangup does not stop it)
    handled = [sig for sig in (*STOP_SIGNALS, signal.SIGQUIT) if not inherited_as_ignored(sig)]
    passed = [sig for sig in PASSED_ON if not inherited_as_ignored(sig)]
    writer.on_hangup = (lambda: _hang_up(engine)) if signal.SIGHUP in handled else (
        _outlive_terminal(bus))
    bus.subscribe(TerminalSink(renderer, writer), SHOWN)
    engine.recent.shown = True  # (the notes come in the stream, below what they tell of)
    outputs = [writer]  # (and a transcript's writer of its own: a pipe, a terminal)
    records: list[TranscriptSink | LogDirSink] = []
    inputs: FolderInputs | None = None
    orphans: OrphanReaper | None = None
    mask: set[int | signal.Signals] | None = None
    try:
        on_signal = _install_signal_handlers(loop, engine, handled, outputs)
        for sig in passed:
            loop.add_signal_handler(sig, _pass_on, engine, sig)
        if isatty:  # (members on a pty follow the terminal's width)
            on_resize = _follow_size(engine, options.output_fd, renderer.prefix_width)
            loop.add_signal_handler(signal.SIGWINCH, on_resize)
        mode = console_mode(options.stdin_fd, options.output_fd) if options.console else None
        if mode == "prompt":  # (loaded while the signals are held: see below)
            with contextlib.suppress(ImportError):  # (the console says it, and reads lines)
                from .inputs import _prompt  # noqa: F401
        # They are ours now: let in what came while the run set up (``pipeplex run`` holds
        # them back until here, so that a Ctrl-C does not land halfway through the set-up).
        # A stop signal that came is taken here and now, not once the loop reads it: by
        # then the first members would have started. From here on one is taken at the
        # loop's next pass, and nothing long runs before the first wave (the prompt's 85 ms
        # of imports did: a Ctrl-C in them let the first members start, then stopped them).
        for sig in sorted(signal.sigpending() & set(handled)):
            if signal.sigtimedwait([sig], 0) is not None:
                on_signal(sig)
        mask = signal.pthread_sigmask(signal.SIG_UNBLOCK, HELD_AT_START)
        if adoption is not None and adoption.active:
            orphans = OrphanReaper(loop, engine.own_children, guardian)
        records = _records(options, bus, writer, cast.names)
        outputs += [sink.writer for sink in records if sink.writer is not None]
        if options.run_dir is None:
            refuse_a_second_run(options.run_dir_option)
        inputs = FolderInputs(engine, options.run_dir or default_run_dir(),
                              given_as=options.run_dir_option, guardian=guardian)
        await inputs.name_what_was_left()
        for name in cast.names:
            inputs.add(name)
        bus.publish(Note(f"run folder {printable(os.fspath(inputs.path))}: write a line to "
                         "NAME.in (or all.in) to send it to a member, or use pipeplex send NAME "
                         "TEXT"))
        if options.console and mode is None and (why := why_no_console(options.stdin_fd)):
            bus.publish(Note(why))
        console = None
        if mode is not None:
            from .inputs.console import Console

            def reply(text: str, level: Level) -> None:
                writer.write(renderer.render_note(text, None, level, time.time()))

            console = Console(engine, reply, interrupt=lambda: on_signal(signal.SIGINT),
                              quit_now=(lambda: on_signal(signal.SIGQUIT))
                              if signal.SIGQUIT in handled else None)
            if isatty:
                console.on_resize = on_resize
            console.on_raw = guardian.terminal
        status = await _run_with_inputs(engine, inputs, console, mode, options, writer,
                                        ended=lambda: _abandon_on(loop, handled, outputs))
    finally:
        _abandon_on(loop, handled, outputs)
        if orphans is not None:
            orphans.close()
        if adoption is not None:
            adoption.close()
        if inputs is not None:
            inputs.close()
        guardian.close()
        for sink in records:
            await sink.drain()  # (a transcript's reader that takes nothing: until a signal)
            sink.close()
        await writer.drain()
        writer.close()
        # Held again before the handlers go: a SIGTERM in between would find the default
        # action and kill pipeplex before its last words (a sender that keeps sending).
        if mask is not None:
            signal.pthread_sigmask(signal.SIG_SETMASK, mask)
        for sig in (*handled, *passed):
            loop.remove_signal_handler(sig)
        loop.remove_signal_handler(signal.SIGWINCH)
    return 1 if refused and status == 0 else status


def _abandon_on(loop: asyncio.AbstractEventLoop, signals: list[signal.Signals],
                outputs: list[Writer]) -> None:
    """The cast has ended: a stop signal now changes neither the exit status nor the
    records; it only drops what the terminal (or a transcript's pipe) has not taken yet (a
    reader that takes nothing would otherwise keep us here, the console's prompt winding
    down included)."""
    def abandon() -> None:
        for output in outputs:
            output.abandon()

    for sig in signals:
        loop.add_signal_handler(sig, abandon)


async def _run_with_inputs(
    engine: Engine,
    inputs: FolderInputs,
    console: Console | None,
    mode: ConsoleMode | None,
    options: RunOptions,
    writer: Writer,
    *,
    ended: Callable[[], None],
) -> int:
    """Run the engine with the run folder's inputs and the console beside it; ``ended`` is
    called as the cast has ended, before the inputs and the console wind down."""
    failure: Exception | None = None
    status = 0
    if console is not None:
        console.on_hangup = writer.on_hangup
    async with asyncio.TaskGroup() as tg:
        tasks = [tg.create_task(_reporting(inputs.serve(), engine), name="control socket")]
        if options.scenario is not None and options.scenario.steps:
            from .expect import Matcher

            steps = _steps(options.scenario, engine, Matcher.of(engine))
            tasks.append(tg.create_task(_reporting(steps, engine), name="steps"))
        if console is not None and mode is not None:
            work = console.run(mode, stdin_fd=options.stdin_fd, writer=writer)
            tasks.append(tg.create_task(_reporting(work, engine), name="console"))
        try:
            status = await engine.run()
            ended()
            await inputs.finish(status)
        except Exception as exc:
            failure = exc  # raised below, not wrapped in the TaskGroup's own group
        finally:
            ended()
            if console is not None:
                console.end()
            for task in tasks:
                task.cancel()
    if failure is not None:
        raise failure
    return status


def _records(options: RunOptions, bus: Bus, terminal: Writer,
             names: Sequence[str]) -> list[TranscriptSink | LogDirSink]:
    sinks: list[TranscriptSink | LogDirSink] = []
    if options.transcript is None and options.log_dir is None:
        return sinks
    from .report.transcript import LogDirSink, TranscriptSink

    if options.transcript is not None:
        sinks.append(TranscriptSink(options.transcript, bus, terminal=terminal))
    if options.log_dir is not None:
        sinks.append(LogDirSink(options.log_dir, bus=bus, names=names))
    for sink in sinks:
        bus.subscribe(sink)
    return sinks


async def _steps(scenario: Scenario, engine: Engine, matcher: Matcher) -> None:
    """Run the scenario's steps once the cast is up; a failure stops the cast (status 1).
    A stop asked for meanwhile (a signal, ``pipeplex stop``, ``:quit``) cuts them short:
    a step that then fails for it is no failure of the script, and the stop's status stands.

    The matcher is made by the caller, before any member starts, so it sees all output.
    """
    from .scenario.run import run_steps, stop_asked

    engine.hold()  # the steps are still to run (one may start a member): do not end before
    try:
        if not await engine.wait_up():
            return
        results = await run_steps(scenario, engine, matcher, interactive=True)
    finally:
        matcher.close()
        engine.release()
    failed = next((r.error for r in results if r.error is not None), None)
    planned = list(itertools.takewhile(lambda step: step.action != "interact", scenario.steps))
    if stop_asked(engine) and (failed.in_stop if failed is not None
                               else len(results) < len(planned)):
        engine.bus.publish(Note(_cut_short(results, planned, failed)))
        return
    if failed is not None:
        engine.bus.publish(Note(f"step failed: {failed}", level="error"))
        engine.record_failure(failed.member or "steps", 1, str(failed), step=True)
        engine.request_stop("stopping the cast")
    else:
        done = f"{len(results)} step{'s' if len(results) != 1 else ''} done"
        engine.bus.publish(Note(f"{done}; the cast goes on" if engine.goes_on() else done))


def _cut_short(results: Sequence[StepResult], planned: Sequence[Step],
               failed: StepFailed | None) -> str:
    """Where a stop asked for left the steps: the one it failed (``failed``), or the next."""
    if failed is not None:
        said = failed.step.describe(failed.value, secret=failed.secret)
        where = f"{failed.step.source} ({said}) was under way"
    else:
        step = planned[len(results)]
        where = f"{step.source} ({step.describe()}) was next"
    done = sum(result.ok for result in results)
    return f"the stop cut the steps short: {where}; {done} of {len(planned)} done"


async def _reporting(work: Awaitable[None], engine: Engine) -> None:
    """Run ``work``; an error in it ends the run through the engine."""
    try:
        await work
    except Exception as exc:
        engine.crash(exc)


def _install_signal_handlers(
    loop: asyncio.AbstractEventLoop, engine: Engine, signals: list[signal.Signals],
    outputs: list[Writer],
) -> Callable[[signal.Signals], None]:
    """Stop the cast on ``signals`` (of SIGINT, SIGTERM, SIGHUP and SIGQUIT: those not
    inherited as ignored); returns the handler (the console's Ctrl-C). SIGQUIT (Ctrl-\\, the
    key for "quit harder") stops it without the grace, as a second Ctrl-C does."""
    repeated: set[signal.Signals] = set()

    def on_signal(sig: signal.Signals) -> None:
        hint = "; press Ctrl-C again to skip the grace period" if sig == signal.SIGINT else ""
        if sig == signal.SIGQUIT and not engine.stopping:
            engine.request_stop("got SIGQUIT: stopping the cast without the grace period",
                                interrupted_by=sig)
            engine.force_stop()
            return
        if not engine.stopping:
            engine.request_stop(f"got {sig.name}: stopping the cast{hint}", interrupted_by=sig)
            return
        terminal, *transcript = outputs
        if terminal.stalled:
            # The stop waits for the members' last output, which waits for a reader that
            # takes nothing (a stalled pipe): asked again, it waits no more.
            terminal.abandon()
            engine.bus.publish(Note(f"got {sig.name} while the reader of pipeplex's output "
                                    "takes nothing: what it has not taken is dropped, and "
                                    "the rest of the run goes to the records only",
                                    level="warning"))
        for output in transcript:
            if output.pending:  # (a transcript's pipe: >(jq .) whose reader takes nothing)
                output.abandon()
                engine.bus.publish(Note(f"got {sig.name} while the reader of the transcript "
                                        "takes nothing: what it has not taken is dropped, "
                                        "and so is the rest", level="warning"))
        # A stop is under way. One asked for (a signal before, `pipeplex stop`, :quit): a
        # Ctrl-C now skips the grace. One of the cast's own (a member ended): the first
        # signal keeps the grace. Either way the run ends as interrupted (unless a member
        # failed).
        first = engine.interrupted_by is None
        if first:
            engine.interrupted_by = sig
        if sig == signal.SIGQUIT or (sig == signal.SIGINT
                                     and (engine.stop_asked or not first)):
            # (Said, unless it is the Ctrl-C that the first one's line asked for.)
            told = first or sig != engine.interrupted_by
            engine.force_stop(cause=f"got {sig.name}" if told else None)
        elif first:
            engine.bus.publish(Note(f"got {sig.name}: the cast is already stopping{hint}"))
        elif sig not in repeated:
            # Only Ctrl-C and Ctrl-\ hurry a stop: a SIGTERM or SIGHUP may well come twice
            # without anyone asking for haste (a closing terminal's, then its shell's).
            repeated.add(sig)
            again = "again" if sig == engine.interrupted_by else "as well"
            engine.bus.publish(Note(f"got {sig.name} {again}: the stop keeps its grace period "
                                    "(SIGINT or SIGQUIT skips it)"))

    for sig in signals:
        loop.add_signal_handler(sig, on_signal, sig)
    return on_signal


def _pass_on(engine: Engine, sig: signal.Signals) -> None:
    """A signal that means nothing to pipeplex (``PASSED_ON``) goes to every running
    member's process group, and a note says so."""
    try:
        reached = engine.router.signal(ALL, sig)
    except SignalRefused as exc:  # (the others were signalled)
        engine.bus.publish(Note(f"got {sig.name}: {exc}", level="warning"))
        return
    if not reached:
        said = "no member is running to pass it on to"
    else:
        said = "passed it on to " + ("the running member" if reached == 1
                                     else f"the {reached} running members")
    engine.bus.publish(Note(f"got {sig.name}: {said}"))


def _outlive_terminal(bus: Bus) -> Callable[[], None]:
    """What a hangup of our terminal does when SIGHUP is ignored (``nohup``, ``trap '' HUP``):
    the cast goes on, as the signal would not stop it; the records still say so."""
    said: list[bool] = []

    def hung_up() -> None:
        if not said:
            said.append(True)
            bus.publish(Note("the terminal hung up; the cast goes on (SIGHUP is ignored), its "
                             "output from now on only in --transcript and --log-dir",
                             level="warning"))

    return hung_up


def _output_failed(engine: Engine, exc: OSError, refused: list[OSError]) -> None:
    """Our output cannot be written (a full disk, ``> /dev/full``): the run is not what it
    should be; stop with status 1 (``refused`` keeps it for a cast that already ended),
    saying why where it can still be read."""
    refused.append(exc)
    reason = f"cannot write to standard output: {exc.strerror or exc}"
    if not engine.stopping:
        reason += "; stopping the cast"
    try:
        os.write(2, f"pipeplex: error: {reason}\n".encode())
    except OSError:
        pass  # stderr is gone too: the status and the records tell it
    engine.record_failure("output", 1, reason)
    engine.bus.publish(Note(reason, level="error"))  # (the records)
    engine.request_stop()


def _hang_up(engine: Engine) -> None:
    """Our terminal hung up (a write got EIO, the console read EOF on it): stop as SIGHUP.

    The kernel sends SIGHUP only to the terminal's session leader, usually a shell that
    passes it on to its jobs, and the first read or write on the dead terminal may come
    before it: whichever comes first stops the cast, and the other finds it stopping.
    """
    engine.request_stop("the terminal hung up: stopping the cast",
                        interrupted_by=signal.SIGHUP)

