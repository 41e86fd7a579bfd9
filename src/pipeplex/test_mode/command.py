"""``pipeplex test`` and ``pipeplex replay``: scenarios as tests, transcripts as a stream.

The command line (``cli/_test_mode.py``) parses their arguments; this module, and the scenario
runner it brings, loads only when one of them runs. It holds what each command shows and
the status it exits with: the tests' report and summary, the transcript replayed. The
scenarios' run is in ``sequence.py``, their records in ``records.py``."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import NoReturn

from .._events import Event, InputSent, Note, Started
from .._printable import printable
from .._signals import HELD_AT_START, clean_inherited_signals, signal_name
from .._stdout import printing
from ..cast._programs import check_commands
from ..errors import PipeplexError
from ..output.render import Renderer, use_color
from ..participants.orphans import Adoption
from ..report.junit import write_junit
from ..report.records import numbered_records, record_event, record_input
from ..scenario import load_scenario
from ..scenario.last_failed import remember
from ..scenario.model import Scenario
from ..scenario.suite import ScenarioOutcome
from .records import (
    FAILED,
    LOAD_ERROR,
    NOT_LOADED,
    check_junit_path,
    check_not_scenario_files,
    check_records_apart,
    junit_errors,
    junit_results,
)
from .sequence import INTERRUPTING, end_on_stop_signals, run_all, say, style

__all__ = ("replay_transcript", "run_tests")


def run_tests(files: list[Path], *, verbose: bool, junit: Path | None,
              transcript: Path | None, log_dir: Path | None, update: bool, grace: float,
              color: str, transcript_folder: bool = False,
              timeout_factor: float = 1.0, exitfirst: bool = False,
              deselected: int = 0) -> NoReturn:
    """``pipeplex test``: load and run the scenarios, report, exit with the status.
    ``transcript`` is a folder (a transcript per scenario) with several files, or with
    ``transcript_folder``. ``timeout_factor``: see :meth:`Scenario.scaled`. ``exitfirst``:
    no scenario starts after one that failed, nor at all when a file could not be loaded
    (the rest are skipped, in JUnit too).
    ``deselected``: how many scenarios ``-k`` left out (said in the summary).

    Ctrl-C, SIGTERM and SIGHUP (a CI job cancelled or timed out) interrupt it, as do the
    signals a run passes on (SIGUSR1...), which would otherwise end it unreported: the running
    scenario's members, and what they orphaned, are killed, no other scenario starts, and
    the report says so, the results so far included (in the JUnit file too), before the
    exit with 128+N. A second signal meanwhile changes nothing. Outside the scenarios'
    loop (loading, reporting) the signal ends it at once with the same status.
    """
    clean_inherited_signals(held=HELD_AT_START)
    end_on_stop_signals()
    signal.pthread_sigmask(signal.SIG_UNBLOCK, HELD_AT_START)  # (held since the start)
    colored = use_color(color, sys.stdout.isatty())  # type: ignore[arg-type]
    if junit is not None:
        check_junit_path(junit)  # (a link planted there is said before the tests run, not after)
    scenarios: list[Scenario] = []
    load_errors: list[tuple[Path, str]] = []
    for path in files:
        try:
            scenario = load_scenario(path).scaled(timeout_factor)
            check_commands(scenario.cast)  # (a missing program or cwd: as pipeplex run says)
            scenarios.append(scenario)
        except PipeplexError as exc:
            load_errors.append((path, str(exc)))
    check_not_scenario_files(files, scenarios, junit=junit, transcript=transcript,
                             transcript_folder=transcript_folder or len(files) > 1)
    check_records_apart(scenarios, junit=junit, transcript=transcript,
                        transcript_folder=transcript_folder or len(files) > 1,
                        log_dir=log_dir, several=len(files) > 1)
    for _, message in load_errors:  # (before the others run: CI shows them at once)
        say(style("ERROR ", "1;31", colored) + printable(message))
    # -x, as pytest's at a collection error: a file that could not be loaded is a failure
    # before the first scenario, so none starts.
    stopped_by = (NOT_LOADED if load_errors else FAILED) if exitfirst else None
    began = time.monotonic()
    adoption = Adoption()  # what the members orphan comes to us, to be stopped with them

    def progress(outcomes: list[ScenarioOutcome], running: Scenario | None) -> None:
        """The report as it stands, before each scenario (the whole one is written once
        they are done): what a run killed outright (a CI runner's SIGKILL) leaves says what
        was done."""
        if junit is not None:
            with contextlib.suppress(PipeplexError, OSError):  # (the last write says it)
                write_junit(junit, junit_results(outcomes, load_errors, scenarios,
                                                 running=running))

    try:
        outcomes, unrecorded, interrupted = asyncio.run(run_all(
            [] if stopped_by == NOT_LOADED else scenarios, verbose=verbose,
            transcript=transcript, log_dir=log_dir, update=update, grace=grace,
            several=len(files) > 1, colored=colored, adoption=adoption,
            transcript_folder=transcript_folder, progress=progress,
            keep_output=junit is not None, exitfirst=exitfirst))
    finally:
        end_on_stop_signals()  # (the loop's handlers are gone with it)
        adoption.close()
    if interrupted is not None:
        # Asked to stop, it stops once the report is out: a second signal (timeout(1) and CI
        # runners send two) must not cut the report short.
        for sig in INTERRUPTING:
            signal.signal(sig, signal.SIG_IGN)
    elapsed = time.monotonic() - began
    if junit is not None:  # (first: a console that refuses what follows must not lose it)
        with junit_errors(junit):  # (a link or no file of the user's put there meanwhile)
            write_junit(junit, junit_results(outcomes, load_errors, scenarios,
                                             interrupted=interrupted, stopped_by=stopped_by))
    if not verbose and outcomes:
        say()
    for outcome in outcomes:
        if not outcome.ok:
            # A file's name (in the header, and each step's file:line) is shown as member
            # output is: one that holds ESC[2J must not clear the screen.
            header = f"{_not_ok(outcome)} {printable(str(outcome.scenario.path))}"
            say("\n" + style(header, "1;31", colored))
            say(_indent(printable(outcome.failure or "")))
    failures = [o for o in outcomes if not o.ok and not o.interrupted and not o.not_run]
    if len(failures) > 1:
        # One line each, where one looks at the end of a long report (as pytest's "short
        # test summary info"): the first line of each failure says which step, and why.
        say("")
        for outcome in failures:
            line = (outcome.failure or "").partition("\n")[0]
            say(style("FAILED", "31", colored) + " " + printable(
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
        summary += f", {len(scenarios) - len(outcomes)} not run (-x: stopped at {stopped_by})"
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
    say(style(summary, code, colored))
    for outcome in outcomes:
        for warning in outcome.warnings:
            # (A slip of the file says where in it already: cast.toml:12: ...)
            where = ("" if warning.startswith(f"{outcome.scenario.path}:")
                     else f"{outcome.scenario.path}: ")
            print(printable(f"pipeplex: warning: {where}{warning}"), file=sys.stderr)
    if interrupted is not None:
        sys.exit(128 + interrupted)
    sys.exit(LOAD_ERROR if load_errors or unrecorded else 1 if failed else 0)


def _not_ok(outcome: ScenarioOutcome) -> str:
    """How a scenario that did not pass is headed in the report."""
    return ("INTERRUPTED" if outcome.interrupted else "NOT RUN" if outcome.not_run
            else "FAILED")


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
