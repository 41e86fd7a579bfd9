"""``pipeplex test`` and ``pipeplex replay``: scenarios as tests, transcripts as a stream.

The command line (``cli/_test_mode.py``) parses their arguments; this module, and the scenario
runner it brings, loads only when one of them runs."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import signal
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import NoReturn

from ._events import Event, InputSent, Note, Started
from ._file_kind import records_apart, same_file
from ._printable import printable
from ._signals import (
    HELD_AT_START,
    PASSED_ON,
    STOP_SIGNALS,
    clean_inherited_signals,
    inherited_as_ignored,
    signal_name,
)
from ._stdout import StdoutRefused, printing
from .cast.checks import check_commands
from .errors import PipeplexError
from .output.render import Renderer, use_color
from .participants.orphans import Adoption
from .report.files import make_folders
from .report.junit import CaseResult, check_junit, write_junit
from .report.records import numbered_records, record_event, record_input
from .scenario import load_scenario
from .scenario.last_failed import remember
from .scenario.model import Scenario
from .scenario.run import StepResult
from .scenario.suite import ScenarioOutcome, run_scenario

__all__ = ("replay_transcript", "run_tests")

LOAD_ERROR = 2


def _style(text: str, code: str, color: bool) -> str:
    return f"\x1b[{code}m{text}\x1b[0m" if color else text


def run_tests(files: list[Path], *, verbose: bool, junit: Path | None,
              transcript: Path | None, log_dir: Path | None, update: bool, grace: float,
              color: str, transcript_folder: bool = False,
              timeout_factor: float = 1.0, exitfirst: bool = False,
              deselected: int = 0) -> NoReturn:
    """``pipeplex test``: load and run the scenarios, report, exit with the status.
    ``transcript`` is a folder (a transcript per scenario) with several files, or with
    ``transcript_folder``. ``timeout_factor``: see :meth:`Scenario.scaled`. ``exitfirst``:
    no scenario starts after one that failed (the rest are skipped, in JUnit too).
    ``deselected``: how many scenarios ``-k`` left out (said in the summary).

    Ctrl-C, SIGTERM and SIGHUP (a CI job cancelled or timed out) interrupt it, as do the
    signals a run passes on (SIGUSR1...), which would otherwise end it unreported: the running
    scenario's members, and what they orphaned, are killed, no other scenario starts, and
    the report says so, the results so far included (in the JUnit file too), before the
    exit with 128+N. A second signal meanwhile changes nothing. Outside the scenarios'
    loop (loading, reporting) the signal ends it at once with the same status.
    """
    clean_inherited_signals(held=HELD_AT_START)
    _end_on_stop_signals()
    signal.pthread_sigmask(signal.SIG_UNBLOCK, HELD_AT_START)  # (held since the start)
    colored = use_color(color, sys.stdout.isatty())  # type: ignore[arg-type]
    if junit is not None:
        _check_junit(junit)  # (a link planted there is said before the tests run, not after)
    scenarios: list[Scenario] = []
    load_errors: list[tuple[Path, str]] = []
    for path in files:
        try:
            scenario = load_scenario(path).scaled(timeout_factor)
            check_commands(scenario.cast)  # (a missing program or cwd: as pipeplex run says)
            scenarios.append(scenario)
        except PipeplexError as exc:
            load_errors.append((path, str(exc)))
    _check_not_scenario_files(files, scenarios, junit=junit, transcript=transcript,
                              transcript_folder=transcript_folder or len(files) > 1)
    _check_records_apart(scenarios, junit=junit, transcript=transcript,
                         transcript_folder=transcript_folder or len(files) > 1,
                         log_dir=log_dir, several=len(files) > 1)
    for _, message in load_errors:  # (before the others run: CI shows them at once)
        _say(_style("ERROR ", "1;31", colored) + printable(message))
    began = time.monotonic()
    adoption = Adoption()  # what the members orphan comes to us, to be stopped with them

    def progress(outcomes: list[ScenarioOutcome], running: Scenario | None) -> None:
        """The report as it stands, before each scenario (the whole one is written once
        they are done): what a run killed outright (a CI runner's SIGKILL) leaves says what
        was done."""
        if junit is not None:
            with contextlib.suppress(PipeplexError, OSError):  # (the last write says it)
                write_junit(junit, _junit_results(outcomes, load_errors, scenarios,
                                                  running=running))

    try:
        outcomes, unrecorded, interrupted = asyncio.run(_run_all(
            scenarios, verbose=verbose, transcript=transcript, log_dir=log_dir, update=update,
            grace=grace, several=len(files) > 1, colored=colored, adoption=adoption,
            transcript_folder=transcript_folder, progress=progress,
            keep_output=junit is not None, exitfirst=exitfirst))
    finally:
        _end_on_stop_signals()  # (the loop's handlers are gone with it)
        adoption.close()
    if interrupted is not None:
        # Asked to stop, it stops once the report is out: a second signal (timeout(1) and CI
        # runners send two) must not cut the report short.
        for sig in _INTERRUPTING:
            signal.signal(sig, signal.SIG_IGN)
    elapsed = time.monotonic() - began
    if junit is not None:  # (first: a console that refuses what follows must not lose it)
        with _junit_errors(junit):  # (a link or no file of the user's put there meanwhile)
            write_junit(junit, _junit_results(outcomes, load_errors, scenarios,
                                              interrupted=interrupted, exitfirst=exitfirst))
    if not verbose and outcomes:
        _say()
    for outcome in outcomes:
        if not outcome.ok:
            # A file's name (in the header, and each step's file:line) is shown as member
            # output is: one that holds ESC[2J must not clear the screen.
            header = f"{_not_ok(outcome)} {printable(str(outcome.scenario.path))}"
            _say("\n" + _style(header, "1;31", colored))
            _say(_indent(printable(outcome.failure or "")))
    failures = [o for o in outcomes if not o.ok and not o.interrupted and not o.not_run]
    if len(failures) > 1:
        # One line each, where one looks at the end of a long report (as pytest's "short
        # test summary info"): the first line of each failure says which step, and why.
        _say("")
        for outcome in failures:
            line = (outcome.failure or "").partition("\n")[0]
            _say(_style("FAILED", "31", colored) + " " + printable(
                line if line.startswith(f"{outcome.scenario.path}:")
                else f"{outcome.scenario.path}: {line}"))
    passed = sum(o.ok and not o.skipped for o in outcomes)
    failed = len(failures)
    summary = f"{passed} passed, {failed} failed"
    if load_errors:
        summary += f", {len(load_errors)} could not be loaded"
    if skipped := sum(o.skipped for o in outcomes):
        summary += f", {skipped} skipped"
    if deselected:
        summary += f", {deselected} deselected"
    if not_run := sum(o.not_run for o in outcomes):
        summary += f", {not_run} could not be recorded (not run)"
    if interrupted is not None:
        summary += (f", interrupted by {signal_name(interrupted)} "
                    f"({len(scenarios) - len(outcomes)} not run)")
    elif len(outcomes) < len(scenarios):  # (exitfirst)
        summary += f", {len(scenarios) - len(outcomes)} not run (-x: stopped at a failure)"
    summary += f" in {elapsed:.2f} s"
    if timeout_factor != 1:
        summary += f" (timeouts x{timeout_factor:g})"
    if update:
        written = sum(o.golden_updated for o in outcomes)
        same = sum(o.ok and not o.skipped and not o.golden_updated and o.scenario.golden is not None
                   for o in outcomes)
        summary += (f" ({written} golden file{'' if written == 1 else 's'} written"
                    f"{f', {same} unchanged' if same else ''})")
    remember(failed=[*(o.scenario.path for o in outcomes if o.scenario.path and not o.ok
                       and not o.interrupted and not o.not_run),
                     *(path for path, _ in load_errors)],
             passed=[o.scenario.path for o in outcomes
                     if o.scenario.path and o.ok and not o.skipped])  # (for --lf)
    code = "1;32" if not failed and not load_errors and interrupted is None else "1;31"
    _say(_style(summary, code, colored))
    for outcome in outcomes:
        for warning in outcome.warnings:
            # (A slip of the file says where in it already: cast.toml:12: ...)
            where = ("" if warning.startswith(f"{outcome.scenario.path}:")
                     else f"{outcome.scenario.path}: ")
            print(printable(f"pipeplex: warning: {where}{warning}"), file=sys.stderr)
    if interrupted is not None:
        sys.exit(128 + interrupted)
    sys.exit(LOAD_ERROR if load_errors or unrecorded else 1 if failed else 0)


async def _run_all(
    scenarios: list[Scenario], *, verbose: bool, transcript: Path | None,
    log_dir: Path | None, update: bool, grace: float, several: bool, colored: bool,
    adoption: Adoption, transcript_folder: bool,
    progress: Callable[[list[ScenarioOutcome], Scenario | None], None], keep_output: bool,
    exitfirst: bool,
) -> tuple[list[ScenarioOutcome], bool, int | None]:
    """Each scenario's outcome, whether the records of any could not be written (it then
    did not run; the others still do), and the signal that interrupted the run, if one
    did (the last outcome is then that of the scenario it interrupted)."""
    loop = asyncio.get_running_loop()
    current: list[asyncio.Task[ScenarioOutcome]] = []
    interrupted: list[int] = []

    def interrupt(sig: int) -> None:
        if not interrupted:  # (a second one changes nothing: the members are being killed)
            interrupted.append(sig)
            for task in current:
                task.cancel()

    handled = [sig for sig in _INTERRUPTING if not inherited_as_ignored(sig)]
    for sig in handled:
        loop.add_signal_handler(sig, interrupt, sig)
    try:
        outcomes, unrecorded = await _run_each(
            scenarios, current, interrupted, verbose=verbose, transcript=transcript,
            log_dir=log_dir, update=update, grace=grace, several=several, colored=colored,
            adoption=adoption, transcript_folder=several or transcript_folder,
            progress=progress, keep_output=keep_output, exitfirst=exitfirst)
    finally:
        for sig in handled:
            loop.remove_signal_handler(sig)
    return outcomes, unrecorded, interrupted[0] if interrupted else None


async def _run_each(
    scenarios: list[Scenario], current: list[asyncio.Task[ScenarioOutcome]],
    interrupted: list[int], *, verbose: bool, transcript: Path | None, log_dir: Path | None,
    update: bool, grace: float, several: bool, colored: bool, adoption: Adoption,
    transcript_folder: bool, progress: Callable[[list[ScenarioOutcome], Scenario | None], None],
    keep_output: bool, exitfirst: bool,
) -> tuple[list[ScenarioOutcome], bool]:
    outcomes: list[ScenarioOutcome] = []
    unrecorded = False
    for scenario, record_name in zip(scenarios, _record_names(scenarios), strict=True):
        if interrupted:
            break
        progress(outcomes, scenario)
        if verbose:
            _say(printable(str(scenario.path)))
        if scenario.skip is not None:
            outcomes.append(ScenarioOutcome(scenario, skipped=True))
            _say(f"  {_style('SKIP', '33', colored)} " + printable(scenario.skip) if verbose
                 else _style("s", "33", colored), end="\n" if verbose else "")
            continue

        done: list[StepResult] = []
        evidence: list[str] = []
        output: list[str] = []  # (its merged stream, should it be interrupted)
        up: list[bool] = []  # (not empty once its members were up and its steps began)

        def on_step(result: StepResult, done: list[StepResult] = done) -> None:
            done.append(result)
            if verbose:
                mark = _style("ok  ", "32", colored) if result.ok else _style("FAIL", "31", colored)
                _say(f"  {mark} {result.seconds:6.2f} s  "
                     + printable(f"{result.step.describe(result.value, secret=result.secret)}  "
                               f"({result.step.source})"))

        path = transcript
        logs = log_dir / record_name if log_dir is not None and several else log_dir
        began_at = time.time()  # (the JUnit file's timestamp of its suite)
        try:
            if transcript is not None and transcript_folder:
                _records_folder(transcript, "transcript folder")
                path = transcript / f"{record_name}.jsonl"
            if log_dir is not None and several:
                _records_folder(log_dir, "log folder")
            began = time.monotonic()
            task = asyncio.create_task(run_scenario(
                scenario, grace=grace, transcript=path, log_dir=logs, update_golden=update,
                on_step=on_step, adoption=adoption, when_cancelled=evidence,
                output_when_cancelled=output,
                on_up=functools.partial(up.append, True), keep_output=keep_output))
            current[:] = [task]
            try:
                outcome = await task
            finally:
                current.clear()
        except asyncio.CancelledError:
            me = asyncio.current_task()
            if not interrupted or (me is not None and me.cancelling()):
                raise  # (not our interruption: the whole run is being cancelled)
            outcome = ScenarioOutcome(
                scenario, seconds=time.monotonic() - began, interrupted=True,
                output="".join(output),
                failure="\n".join([
                    f"interrupted by {signal_name(interrupted[0])} "
                    f"{_where(scenario, done, bool(up))}: "
                    "its members were killed, and no other scenario ran", *evidence])
                + _records_said(path, logs))
        except Exception as exc:
            said = _said_elsewhere(exc)
            if said is not None:
                raise said from None
            problem = _records_problem(exc)
            unrecorded = unrecorded or problem is not None
            # ... and the other scenarios still run.
            outcome = (ScenarioOutcome(scenario, failure=problem, not_run=True)
                       if problem is not None else _crashed(scenario, exc))
        else:
            if outcome.failure is not None:
                outcome.failure += _records_said(path, logs)
            elif verbose and not scenario.steps:  # (a cast file in a folder of tests)
                _say("  (no steps: its members started, got ready and ended well)")
        outcome.began_at = began_at
        outcomes.append(outcome)
        if outcome.interrupted:
            break
        if not verbose:
            _say(_style(".", "32", colored) if outcome.ok else
                 _style("E" if outcome.not_run else "F", "31", colored), end="")
        elif not outcome.ok and not any(not r.ok for r in outcome.steps):
            when = ("" if not outcome.scenario.steps else " after the steps" if outcome.steps
                    else " before the first step")
            _say(f"  {_style('NOT RUN' if outcome.not_run else 'FAIL', '31', colored)}{when}")
        if exitfirst and not outcome.ok:
            break
    return outcomes, unrecorded


def _not_ok(outcome: ScenarioOutcome) -> str:
    """How a scenario that did not pass is headed in the report."""
    return ("INTERRUPTED" if outcome.interrupted else "NOT RUN" if outcome.not_run
            else "FAILED")


def _record_names(scenarios: Sequence[Scenario]) -> list[str]:
    """The name of each scenario's records: scenarios of the same name (a/s.toml,
    b/s.toml) keep records of their own (s-1, s-2)."""
    names = [scenario.name for scenario in scenarios]
    return [name if names.count(name) == 1 else f"{name}-{index + 1}"
            for index, name in enumerate(names)]


def _records_said(transcript: Path | None, logs: Path | None) -> str:
    """Where a failed scenario's records are, to read the whole of what happened."""
    return "".join(f"\n{what}: {where}" for what, where in (("transcript", transcript),
                                                            ("logs", logs)) if where)


def _where(scenario: Scenario, done: list[StepResult], up: bool) -> str:
    """Where an interrupted scenario was: the step it waited on (or before or after its
    steps), as "at examples/chat.toml:37: expect '^bob: hi$' in alice"; ``up``: its
    members were up (its steps had begun)."""
    if not up:
        return "as its members started, before its first step" if scenario.steps else (
            "as its members started")
    if len(done) < len(scenario.steps):
        step = scenario.steps[len(done)]
        return f"at {step.source}: {step.describe()}" if step.source else (
            f"at {step.describe()}")
    return "after its steps" if scenario.steps else "while its members ran"


def _check_junit(path: Path) -> None:
    """Exit with status 2 when ``path`` may not be replaced by the JUnit report; make its
    folders if missing."""
    with _junit_errors(path):
        make_folders(path.parent, mode=0o755)
        check_junit(path)


def _check_not_scenario_files(files: Sequence[Path], scenarios: Sequence[Scenario], *,
                              junit: Path | None, transcript: Path | None,
                              transcript_folder: bool) -> None:
    """Exit with status 2 when the JUnit report or a transcript would replace a scenario
    file (one of ``files``), a golden file, or any ``.toml`` file: ``--junit *.toml``
    takes the glob's first match for the report's path, and the scenario in it would be
    lost without a word."""
    written: list[tuple[str, str, Path]] = []
    if junit is not None:
        written.append(("write the JUnit report", "--junit", junit))
    if transcript is not None and transcript_folder:
        written.append(("use the transcript folder", "--transcript", transcript))
        written += [("write the transcript", "--transcript", transcript / f"{name}.jsonl")
                    for name in _record_names(scenarios)]
    elif transcript is not None:
        written.append(("write the transcript", "--transcript", transcript))
    theirs = [(f"the scenario file {path}", path) for path in files]
    theirs += [(f"the golden file of {scenario.path}", Path(scenario.golden))
               for scenario in scenarios if scenario.golden is not None]
    for what, option, path in written:
        whose = next((whose for whose, their in theirs if same_file(path, their)), None)
        if whose is not None:
            why = f"it is {whose}"
        elif path.name.lower().endswith(".toml"):
            why = (f"it ends in .toml, as a scenario's name does (a glob right after {option} "
                   "gives it its first match)")
        else:
            continue
        print(printable(f"pipeplex: error: cannot {what} {path}: {why}; give {option} a path "
                        "of its own"), file=sys.stderr)
        sys.exit(LOAD_ERROR)


def _check_records_apart(scenarios: Sequence[Scenario], *, junit: Path | None,
                         transcript: Path | None, transcript_folder: bool,
                         log_dir: Path | None, several: bool) -> None:
    """Exit with status 2 when two of the records asked for are one file (``--junit F
    --transcript F``; ``--transcript logs/a.log --log-dir logs`` with a member ``a``): the
    one written last would replace the other without a word."""
    names = _record_names(scenarios)
    written: list[tuple[str, str, Path]] = []
    if junit is not None:
        written.append(("the JUnit report", "--junit", junit))
    if transcript is not None:
        written += ([(f"the transcript of {scenario.path}", "--transcript",
                      transcript / f"{name}.jsonl")
                     for scenario, name in zip(scenarios, names, strict=True)]
                    if transcript_folder else [("the transcript", "--transcript", transcript)])
    if log_dir is not None:
        for scenario, name in zip(scenarios, names, strict=True):
            folder = log_dir / name if several else log_dir
            written += [(f"the log of {member} ({scenario.path})", "--log-dir",
                         folder / f"{member}.log") for member in scenario.cast.names]
    refusal = records_apart(written)
    if refusal is not None:
        print(printable(f"pipeplex: error: {refusal}"), file=sys.stderr)
        sys.exit(LOAD_ERROR)


@contextlib.contextmanager
def _junit_errors(path: Path) -> Iterator[None]:
    """What goes wrong with the JUnit report at ``path``: said, and status 2."""
    try:
        yield
    except PipeplexError as exc:
        print(printable(f"pipeplex: error: {exc}"), file=sys.stderr)
        sys.exit(LOAD_ERROR)
    except OSError as exc:
        print(printable(f"pipeplex: error: cannot write the JUnit report {path}: "
                        f"{exc.strerror or exc}"), file=sys.stderr)
        sys.exit(LOAD_ERROR)


def _records_folder(folder: Path, what: str) -> None:
    """Make ``folder`` for several scenarios' records (0700, as they are private), and
    refuse a symbolic link in its place, as for one scenario's ``--log-dir``: the records
    are made in it by name, and a link planted there would take them elsewhere.

    Raises:
        PipeplexError: ``folder`` is a symbolic link.
        OSError: it cannot be made (FileExistsError: a file is in its place).
    """
    try:
        make_folders(folder, mode=0o700)
    except FileExistsError:
        if not folder.is_symlink():  # (a dangling link: said as a link below)
            raise
    # Checked after the mkdir, so that a link put there before it is seen (in a shared
    # folder such as /tmp, only the folder's owner may then put one in its place).
    if folder.is_symlink():
        raise PipeplexError(f"cannot use the {what} {folder}: it is a symbolic link, which "
                            "pipeplex does not follow; give the folder it points to, if that "
                            "is yours")


def _records_problem(exc: Exception) -> str | None:
    """What ``exc`` says of a scenario's records that cannot be written, if it is that."""
    if isinstance(exc, FileExistsError):  # (a folder made for several scenarios' records)
        return (f"with several scenarios, --transcript and --log-dir name folders, and "
                f"{exc.filename} is not one; it did not run")
    if isinstance(exc, OSError) and exc.filename is not None:
        return (f"cannot write its records: {exc.strerror or exc} ({exc.filename}); give "
                "--transcript/--log-dir folders you may write to; it did not run")
    if isinstance(exc, PipeplexError):
        return f"{exc}; it did not run"
    return None


_INTERRUPTING = (*STOP_SIGNALS, *PASSED_ON)
"""What interrupts the tests: the stop signals, and those a run would pass on to its
members (SIGUSR1...), which mean nothing to a test run and would end it unreported."""


def _end_on_stop_signals() -> None:
    """SIGTERM, SIGHUP and the signals a run passes on end the command as Ctrl-C does
    (status 128+N), where the scenarios' loop does not take them: without a handler Python
    would die of them (or, for SIGUSR1, the process would, with no word)."""
    for sig in _INTERRUPTING:
        if sig == signal.SIGINT:
            continue  # (KeyboardInterrupt: Python's own)
        if not inherited_as_ignored(sig):
            signal.signal(sig, _stopped_by)


def _stopped_by(signum: int, frame: object) -> None:
    raise SystemExit(128 + signum)  # (asyncio.run cancels the scenario: its engine cleans up)


def _say(*text: str, end: str = "\n") -> None:
    """Print to stdout, flushed; a refusal ends the command (see ``_stdout``)."""
    with printing():
        print(*text, end=end)


def _said_elsewhere(exc: BaseException) -> BaseException | None:
    """The error to pass on, if ``exc`` is (or a TaskGroup's group holds only) our output
    failing or the reader leaving: the command line says those."""
    if isinstance(exc, BaseExceptionGroup):
        leaves = [_said_elsewhere(inner) for inner in exc.exceptions]
        return leaves[0] if all(leaf is not None for leaf in leaves) else None
    if isinstance(exc, StdoutRefused | BrokenPipeError):
        return exc
    return None


def _crashed(scenario: Scenario, exc: Exception) -> ScenarioOutcome:
    """A failure of pipeplex's own, not of the scenario: said with its traceback (for a
    report), counted as a failure, and the other scenarios' results are not lost."""
    import traceback

    print(f"\npipeplex: internal error while running {printable(str(scenario.path))}; please "
          "report it with this traceback:", file=sys.stderr)
    traceback.print_exception(exc, file=sys.stderr)
    return ScenarioOutcome(scenario, failure=f"pipeplex failed while running it: "
                                             f"{type(exc).__name__}: {exc}")


def _junit_results(outcomes: Sequence[ScenarioOutcome], load_errors: Sequence[tuple[Path, str]],
                   scenarios: Sequence[Scenario], *, interrupted: int | None = None,
                   running: Scenario | None = None, exitfirst: bool = False
                   ) -> list[CaseResult]:
    """The report's cases: the outcomes so far, the files that could not be loaded, and the
    scenarios not come to: skipped, after an interruption by ``interrupted``, after a failure
    with ``exitfirst``, or, while the run goes on, should it be killed (``running``, the one
    under way, an error then)."""
    results = [_case(o) for o in outcomes]
    # (named as the file's scenario would be, so CI's history keeps one test per file)
    results += [CaseResult(str(path), path.stem, 0.0, error=message)
                for path, message in load_errors]
    rest = scenarios[len(outcomes):]
    if running is not None and rest and rest[0] is running:
        results.append(CaseResult(running.path or "scenario", running.name, 0.0,
                                  error="pipeplex ended while this scenario ran (killed?); "
                                        "the report is as it stood when it began"))
        rest = rest[1:]
        why = "not run: pipeplex ended before it (killed?)"
    elif interrupted is not None:
        why = f"not run: {signal_name(interrupted)} interrupted the run before it"
    elif exitfirst and rest:
        why = "not run: -x stopped the run at a failure before it"
    else:
        return results
    # (what it did not come to still counts, as skipped)
    return results + [CaseResult(scenario.path or "scenario", scenario.name, 0.0, skipped=why)
                      for scenario in rest]


def _case(outcome: ScenarioOutcome) -> CaseResult:
    path = outcome.scenario.path or "scenario"
    if outcome.skipped:
        return CaseResult(suite=path, name=outcome.scenario.name, seconds=0.0,
                          skipped=f"skip = {outcome.scenario.skip!r}")
    if outcome.interrupted or outcome.not_run:  # (no test's end: an error, not a failure)
        return CaseResult(suite=path, name=outcome.scenario.name, seconds=outcome.seconds,
                          error=outcome.failure, began_at=outcome.began_at,
                          output=outcome.output)
    return CaseResult(suite=path, name=outcome.scenario.name, seconds=outcome.seconds,
                      failure=outcome.failure, began_at=outcome.began_at, output=outcome.output)


def _indent(text: str) -> str:
    return "\n".join("  " + line for line in text.splitlines())


def replay_transcript(path: Path, *, color: str, timestamps: bool, sent: bool = False) -> None:
    """``pipeplex replay``: show a transcript as the merged stream again; ``sent``: with
    what was sent to the members (``NAME > line``), which the stream itself never shows.

    A record that cannot be read (the last line of a killed run, cut off) is skipped and
    said on stderr, and the status is then 1: everything readable is still shown. So is a
    transcript that ends before its run did: a member started in it has no summary (a run
    killed outright, or one still going)."""
    problems: list[str] = []
    events: list[Event] = []
    read = 0
    try:
        for lineno, record in numbered_records(path, on_bad=problems.append):
            read += 1
            try:
                event: Event | None = ((record_input(record) if sent else None)
                                       or record_event(record))
            except (TypeError, ValueError, AttributeError, RecursionError, OverflowError
                    ) as exc:  # (OverflowError: a number out of range, 1e999 for a code)
                problems.append(f"{path}:{lineno}: a record with a field of the wrong kind "
                                f"({type(exc).__name__}: {exc})")
                continue
            if event is not None:
                events.append(event)
    except OSError as exc:
        print(printable(f"pipeplex: error: cannot read {path}: {exc.strerror or exc}"),
              file=sys.stderr)
        sys.exit(LOAD_ERROR)
    # A cast file, a log: said in one line, not one per line; an empty file is no run's.
    if not events and (problems or not read):
        why = problems[0] if problems else "it holds no line of text"
        print(printable(f"pipeplex: error: {path} holds no transcript record ({why}); give "
                        "the file that --transcript wrote"), file=sys.stderr)
        sys.exit(1)
    names = list(dict.fromkeys(e.name for e in events if isinstance(e.name, str)))
    isatty = sys.stdout.isatty()
    renderer = Renderer(names, color=use_color(color, isatty),  # type: ignore[arg-type]
                        timestamps=timestamps, sanitize=isatty,
                        crlf_names={e.name for e in events
                                    if isinstance(e, Started) and e.terminal})
    out = sys.stdout.buffer
    with printing():
        for event in events:
            out.write(renderer.render_input(event) if type(event) is InputSent
                      else renderer.render(event))
        out.flush()
    for problem in problems[:10]:
        print(f"pipeplex: warning: {problem}; skipped", file=sys.stderr)
    if len(problems) > 10:
        print(f"pipeplex: warning: and {len(problems) - 10} more records skipped",
              file=sys.stderr)
    unended = _without_summary(events)
    if unended:
        print(printable(f"pipeplex: warning: {path} ends before its run did: "
                        f"{', '.join(unended)} started and got no summary (the run was "
                        "killed, or is still going)"), file=sys.stderr)
    if problems or unended:
        sys.exit(1)


def _without_summary(events: Sequence[Event]) -> list[str]:
    """The members that started in ``events`` and got no summary after (every run ends
    with one for each member)."""
    waiting: dict[str, None] = {}
    for event in events:
        if isinstance(event, Started):
            waiting[event.name] = None
        elif (isinstance(event, Note) and event.name is not None
              and event.text.startswith("summary: ")):
            waiting.pop(event.name, None)
    return list(waiting)
