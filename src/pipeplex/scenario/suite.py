"""Test mode: run scenarios as tests and report like a test runner.

Each scenario runs its cast and steps, then the cast is stopped (stdin closed first, then
the usual escalation). A scenario fails when a step fails, when a member fails on its own
(during the steps, or at the EOF the stop begins with, before any signal: which of the two
comes first is a race, and it fails either way), or when its golden transcript differs.
Output goes to a transcript and to the failure report, not to the terminal.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import os
import stat
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from .._bus import Bus
from .._events import SHOWN, Event, InputSent, Note
from .._file_kind import file_kind
from .._printable import quoted
from .._signals import parse_signal
from ..cast.spec import TEST_ENVIRONMENT
from ..engine.engine import DEFAULT_GRACE, Engine
from ..engine.stopping import EOF_GRACE
from ..engine.verdict import Failure
from ..errors import PipeplexError
from ..expect import Matcher
from ..inputs.router import ALL
from ..output.merged import MergedTranscript
from ..output.render import Renderer
from ..participants import Guardian
from ..participants.orphans import Adoption, OrphanReaper
from ..report.golden import compare_golden, golden_text, write_golden
from ..report.transcript import LogDirSink, TranscriptSink
from .model import Scenario
from .run import StepResult, run_steps

__all__ = ("ScenarioOutcome", "run_scenario")



@dataclass
class ScenarioOutcome:
    scenario: Scenario
    seconds: float = 0.0
    steps: list[StepResult] = field(default_factory=list)
    failure: str | None = None
    status: int = 0
    golden_updated: bool = False
    interrupted: bool = False
    """A signal to ``pipeplex test`` cut it short (``failure`` says which)."""
    not_run: bool = False
    """Its records could not be written, so it did not run (``failure`` says why): an
    error of the run, not a failure of the scenario."""
    warnings: list[str] = field(default_factory=list)
    """What a run would have shown as warnings (a member that ignored SIGTERM and was
    killed, a slip in the cast, a log that could not be written): test mode shows no notes,
    so they are said after the summary, by scenario."""
    began_at: float | None = None
    """When it began, by the wall clock (``time.time()``): its JUnit suite's timestamp."""
    output: str = ""
    """The merged stream of a failed scenario, when kept (``keep_output``): its last MiB."""

    skipped: bool = False
    """It was not run: its file says ``skip`` (``scenario.skip`` says why)."""

    @property
    def ok(self) -> bool:
        return self.failure is None


async def run_scenario(
    scenario: Scenario,
    *,
    grace: float = DEFAULT_GRACE,
    transcript: Path | None = None,
    log_dir: Path | None = None,
    update_golden: bool = False,
    on_step: Callable[[StepResult], None] = lambda result: None,
    adoption: Adoption | None = None,
    when_cancelled: list[str] | None = None,
    output_when_cancelled: list[str] | None = None,
    on_up: Callable[[], None] = lambda: None,
    keep_output: bool = False,
    update_command: str = "pipeplex test --update",
) -> ScenarioOutcome:
    """Run one scenario as a test and return what happened. ``adoption``: this process is
    the members' subreaper (``pipeplex test``), and stops what they orphan at the end.
    ``on_up``: called once its members are up, as its steps begin.
    ``when_cancelled``: if the run is cancelled (an interrupted ``pipeplex test``), it gets
    what a report of it needs: the members' last output; and ``output_when_cancelled``
    the merged stream so far, when it is kept. ``keep_output``: a failure comes with the
    merged stream (``outcome.output``, for JUnit's ``system-out``).
    ``update_command``: what writes the golden files, in messages (pytest's option)."""
    began = time.monotonic()
    bus = Bus()
    events: list[Event] = []
    if scenario.golden:
        bus.subscribe(events.append)
    merged = MergedTranscript(Renderer(list(scenario.cast.names))) if keep_output else None
    if merged is not None:
        bus.subscribe(merged, (*SHOWN, InputSent))
    outcome = ScenarioOutcome(scenario)

    def warned(note: Event) -> None:  # (test mode shows no notes: what would be said goes here)
        if isinstance(note, Note) and note.level == "warning":
            outcome.warnings.append(f"{note.name}: {note.text}" if note.name else note.text)

    bus.subscribe(warned, [Note])

    def stepped(result: StepResult) -> None:
        """Each step's end in the records (a transcript, JUnit's merged stream), where the
        members' lines then fall between the steps they answered."""
        said = result.step.describe(result.value, secret=result.secret)
        what = f"step {result.step.source}: {said}"
        bus.publish(Note(f"{what}: ok in {result.seconds:.2f} s" if result.ok else
                         f"{what}: failed after {result.seconds:.2f} s",
                         level="info" if result.ok else "error"))
        on_step(result)
    # The records first: one that cannot be written means nothing runs (PipeplexError).
    transcript_sink = TranscriptSink(transcript, bus) if transcript else None
    try:
        logs = (LogDirSink(log_dir, bus=bus, warn=outcome.warnings.append,
                           names=scenario.cast.names) if log_dir else None)
    except BaseException:
        if transcript_sink is not None:
            transcript_sink.close()
        raise
    for sink in (transcript_sink, logs):
        if sink is not None:
            bus.subscribe(sink)
    if adoption is not None:
        adoption.rebase()
    guardian = Guardian(on_lost=lambda text: bus.publish(Note(text, level="warning")))
    engine = Engine(scenario.cast, bus, grace=grace, guardian=guardian, stdin_grace=EOF_GRACE,
                    env_overrides={"PIPEPLEX_RUN_ID": guardian.token, **TEST_ENVIRONMENT},
                    adoption=adoption)
    orphans = (OrphanReaper(asyncio.get_running_loop(), engine.own_children, guardian)
               if adoption is not None and adoption.active else None)
    matcher = Matcher.of(engine)
    steps_ended = float("inf")
    waiting: dict[str, str] = {}  # (each member's wait to be ready, as a cancellation came)
    try:
        async with asyncio.TaskGroup() as tg:
            engine.hold()
            run = tg.create_task(engine.run())
            try:
                if await engine.wait_up():
                    on_up()
                    outcome.steps = await run_steps(scenario, engine, matcher,
                                                    on_result=stepped)
                steps_ended = time.monotonic()
            except asyncio.CancelledError:  # (as it comes: the run's end clears the waits)
                waiting = {record["name"]: record["waiting_for"] for record in engine.status()
                           if record.get("waiting_for")}
                raise
            finally:
                engine.release()
                engine.request_stop()
        outcome.status = run.result()
    except asyncio.CancelledError:
        if output_when_cancelled is not None and merged is not None:
            output_when_cancelled.append(merged.text())
        if when_cancelled is not None:  # (what it still waited for: a hung CI job's news)
            for name in scenario.cast.names:
                if name in waiting:
                    when_cancelled.append(f"{name} was waiting for {waiting[name]}")
                if engine.members[name].pid is not None:
                    when_cancelled.append(engine.recent.describe(name))
        raise
    finally:
        matcher.waits_over()  # (the suite's next scenarios run in this loop)
        if orphans is not None:
            orphans.close()
        guardian.close()
        if transcript_sink is not None:
            transcript_sink.close()
        if logs is not None:
            logs.close()
    outcome.seconds = time.monotonic() - began
    failed = next((r for r in outcome.steps if r.error is not None), None)
    # Each member's first failure (an exit a passing wait_exit with code checked is none).
    own = engine.failures
    failures = [f for i, f in enumerate(own) if all(g.name != f.name for g in own[:i])]
    if failed is not None and failed.error is not None:
        # What else failed on its own may be why (a server that crashed under its client),
        # and a cast with on_exit = "stop" stopped because of it. What failed once the stop
        # had begun is told apart: it may be the stop's doing (a member left waiting for
        # lines at EOF), or a crash seen only then (its client's end was seen first).
        told = failed.error.member
        stopped = max(steps_ended, engine.stop_began or steps_ended)
        outcome.failure = "\n".join([str(failed.error), *(
            f"{'meanwhile' if f.at <= stopped else 'then, as the cast stopped,'} {f.reason}\n"
            f"{engine.recent.describe(f.name)}" for f in failures if f.name != told)])
    elif failures:
        first = failures[0]
        where = scenario.cast[first.name].source if first.name in scenario.cast.names else None
        why = _its_end_explained(scenario, engine, first, steps_ended, outcome.steps)
        outcome.failure = (f"{where + ': ' if where else ''}{first.reason}{why}\n"
                           f"{engine.recent.describe(first.name)}")
    elif scenario.golden:
        # In a thread: a long run's text takes seconds to build and compare, and a Ctrl-C
        # meanwhile must be heard (the loop's handler), not lost or laid on the next file.
        outcome.failure, outcome.golden_updated = await asyncio.to_thread(
            _check_golden, scenario, events, engine.variables, update_golden, update_command)
        outcome.seconds = time.monotonic() - began
    if outcome.failure is not None:
        blamed = (failed.error.member if failed is not None and failed.error is not None
                  else failures[0].name if failures else None)
        started = blamed in engine.members and engine.members[blamed].pid is not None
        _add_notes(outcome, blamed if started else None)
        if merged is not None:
            outcome.output = merged.text()
    return outcome


def _add_notes(outcome: ScenarioOutcome, blamed: str | None) -> None:
    """What may explain the failure, after it: a near miss of a variable's name, a slip
    the run warned of in the scenario's files (said here instead of after the summary),
    and a ``blamed`` member that started after one with no readiness (None: none to blame,
    or one that never started, which its start's wait did not cause)."""
    assert outcome.failure is not None
    scenario = outcome.scenario
    notes = list(scenario.suspicions)
    files = {scenario.path, *(proc.source.rpartition(":")[0] for proc in scenario.cast.procs
                              if proc.source and ":" in proc.source)} - {None, ""}
    slips = [w for w in outcome.warnings if any(w.startswith(f"{f}:") for f in files)]
    outcome.warnings = [w for w in outcome.warnings if w not in slips]
    notes += slips
    if blamed in scenario.cast.names:
        notes += _after_a_start(scenario, blamed)
    # (The run's end may say a guess that the scenario's suspicions hold already.)
    outcome.failure += "".join(f"\nnote: {note}" for note in dict.fromkeys(notes))


def _after_a_start(scenario: Scenario, name: str) -> list[str]:
    """A note for the failure of ``name`` when it starts after a member with no readiness
    (``ready``, ``ready_port``, ``ready_cmd`` or ``ready_exit``): it started as soon as that
    one did, not once it was listening, which may be why (a client refused by a server still
    starting)."""
    bare = [dep for dep in scenario.cast[name].after
            if not scenario.cast[dep].waits_to_be_ready]
    if not bare:
        return []
    dep = bare[0]
    return [f"{name} starts after {dep}, which has no ready, ready_port, ready_cmd or "
            f"ready_exit: it started as soon as {dep} did, not once {dep} was ready; give "
            f"{dep} a ready pattern (a line it writes when it listens), a ready_port, a "
            f"ready_cmd (a health check), or ready_exit = true for a step that must end "
            f"first ({scenario.cast[dep].source})"]


def _its_end_explained(scenario: Scenario, engine: Engine, failure: Failure,
                      steps_ended: float, steps: Sequence[StepResult]) -> str:
    """Why a member failed, when the report can say more than its exit, and what to
    write instead: it died of a ``signal`` step's signal (which no ``wait_exit`` made a
    step of), or, once every step had passed (in a file without steps, once its members
    were up: a test of the start and the stop), the stop closed its stdin and it ended so,
    before any signal (a program reading with ``input()`` raises at EOF); "" otherwise, as
    for one already dead when the stop came to it, its exit not read yet."""
    member = engine.members.get(failure.name)
    if member is None:
        return ""
    name = quoted(failure.name)
    returncode = member.returncode
    code = returncode if returncode is not None and returncode < 0 else failure.status
    if scenario.steps and member.ended_by_a_person and returncode is not None:
        sent = next((r.step for r in reversed(steps) if r.step.action == "signal"
                     and r.step.target in (failure.name, ALL)
                     and _signal_of(r) == -returncode), None)
        by = f"the signal step at {sent.source}" if sent is not None else "a person"
        return (f", sent by {by}; if that is its end, make it a step: wait_exit = {name} "
                f"with code = {code}")
    if (failure.at < steps_ended or not member.stopping or member.signalled_to_stop
            or member.exited_before_stop):  # (dead as the stop came: not at its EOF)
        return ""
    when = "every step had passed" if scenario.steps else "its members were up"
    return (f", once {when}, at the end of input the stop gave it (its stdin "
            f"closed, before any signal); have it end well there, or make that end a step: "
            f"close = {name}, then wait_exit = {name} with code = {code}")


def _signal_of(result: StepResult) -> int | None:
    """The signal a ``signal`` step sent (its value, variables filled in), if it is one."""
    try:
        return parse_signal(result.value if result.value is not None else result.step.value)
    except ValueError:
        return None


def _check_golden(
    scenario: Scenario, events: Sequence[Event], variables: dict[str, str], update: bool,
    update_command: str,
) -> tuple[str | None, bool]:
    """What is wrong with the run's golden text, if anything, and whether ``update`` wrote
    it (not when the file held it already: its date stays, and the summary tells the
    files that changed from those that did not)."""
    assert scenario.golden is not None
    actual = golden_text(events, scenario.cast.names, variables=variables,
                         rules=scenario.normalize)
    path = Path(scenario.golden)
    if update:
        with contextlib.suppress(OSError, _NotAFile, UnicodeDecodeError):
            if compare_golden(_read_golden(path), actual, path=os.fspath(path)) is None:
                return None, False
        try:
            write_golden(path, actual)
        except PipeplexError as exc:  # (a link or no file of the user's in its place)
            return str(exc), False
        except OSError as exc:
            return f"cannot write golden file {os.fspath(path)}: {exc.strerror or exc}", False
        return None, True
    return _compared(path, actual, update_command), False


def _compared(path: Path, actual: str, update_command: str) -> str | None:
    """Why the golden file at ``path`` does not hold ``actual``; None when it does."""
    try:
        expected = _read_golden(path)
    except FileNotFoundError:
        return (f"golden file {os.fspath(path)} does not exist; create it with "
                f"{update_command}")
    except _NotAFile as exc:
        return f"cannot read golden file {os.fspath(path)}: {exc}"
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            return (f"cannot read golden file {os.fspath(path)}: it is a symbolic link, "
                    "which pipeplex does not follow")
        return f"cannot read golden file {os.fspath(path)}: {exc.strerror or exc}"
    except UnicodeDecodeError as exc:
        bad = exc.object[exc.start]
        line = exc.object[:exc.start].count(b"\n") + 1
        return (f"golden file {os.fspath(path)}:{line} is not UTF-8 text (byte 0x{bad:02x}); "
                f"write it again with {update_command}")
    diff = compare_golden(expected, actual, path=os.fspath(path), update_command=update_command)
    if not diff:
        return None
    return (f"the transcript differs from {os.fspath(path)} (if this run is right, "
            f"{update_command} records it):\n{diff}")


GOLDEN_MAX = 256 * 2**20
"""Bytes of a golden file read at most (a file that grows as it is read: /dev/zero)."""


class _NotAFile(Exception):
    """What is at a golden file's path is not a regular file (the message says what)."""


def _read_golden(path: Path) -> str:
    """The golden file's text: never waiting on a pipe put at its path (which no signal
    could end), never following a link (as ``--update`` does not write through one).

    Raises:
        OSError, _NotAFile, UnicodeDecodeError: it cannot be read as the golden file.
    """
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOFOLLOW | os.O_CLOEXEC)
    try:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            raise _NotAFile(f"it is {file_kind(mode)}, not a regular file")
        os.set_blocking(fd, True)
        with open(fd, "rb", closefd=False) as file:
            data = file.read(GOLDEN_MAX + 1)
    finally:
        os.close(fd)
    if len(data) > GOLDEN_MAX:
        raise _NotAFile(f"it is longer than {GOLDEN_MAX // 2**20} MiB")
    return data.decode("utf-8")
