"""The scenarios of ``pipeplex test`` run one after another, and what stops them.

Apart from the command's report: this is the run itself, each scenario's progress as it
goes (a dot, or its steps with ``-v``), its outcome whatever happened (failed, not
recorded, a crash of pipeplex's own), and the signals that interrupt it: the scenario
under way is cancelled, its members killed, and no other scenario starts.
"""

from __future__ import annotations

import asyncio
import functools
import signal
import sys
import time
from collections.abc import Callable
from pathlib import Path

from .. import _descriptor_limit as descriptor_limit
from .._printable import printable
from .._signals import PASSED_ON, STOP_SIGNALS, inherited_as_ignored, signal_name
from .._stdout import StdoutRefused, printing
from ..participants.orphans import Adoption
from ..scenario.model import Scenario
from ..scenario.run import StepResult
from ..scenario.suite import ScenarioOutcome, run_scenario
from .records import record_names, records_folder, records_problem

__all__ = ("INTERRUPTING", "end_on_stop_signals", "run_all", "say", "style")


def style(text: str, code: str, color: bool) -> str:
    return f"\x1b[{code}m{text}\x1b[0m" if color else text


async def run_all(
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
    # One at a time: the biggest cast is what it takes (as pipeplex run lifts it).
    descriptor_limit.lift_for(max((len(s.cast.procs) for s in scenarios), default=0))

    def interrupt(sig: int) -> None:
        if not interrupted:  # (a second one changes nothing: the members are being killed)
            interrupted.append(sig)
            for task in current:
                task.cancel()

    handled = [sig for sig in INTERRUPTING if not inherited_as_ignored(sig)]
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
    for scenario, record_name in zip(scenarios, record_names(scenarios), strict=True):
        if interrupted:
            break
        progress(outcomes, scenario)
        if verbose:
            say(printable(str(scenario.path)))
        if scenario.skip is not None:
            outcomes.append(ScenarioOutcome(scenario, skipped=True))
            say(f"  {style('SKIP', '33', colored)} " + printable(scenario.skip) if verbose
                else style("s", "33", colored), end="\n" if verbose else "")
            continue

        done: list[StepResult] = []
        evidence: list[str] = []
        output: list[str] = []  # (its merged stream, should it be interrupted)
        up: list[bool] = []  # (not empty once its members were up and its steps began)

        def on_step(result: StepResult, done: list[StepResult] = done) -> None:
            done.append(result)
            if verbose:
                mark = style("ok  ", "32", colored) if result.ok else style("FAIL", "31", colored)
                say(f"  {mark} {result.seconds:6.2f} s  "
                    + printable(f"{result.step.describe(result.value, secret=result.secret)}  "
                              f"({result.step.source})"))

        path = transcript
        logs = log_dir / record_name if log_dir is not None and several else log_dir
        began_at = time.time()  # (the JUnit file's timestamp of its suite)
        try:
            if transcript is not None and transcript_folder:
                records_folder(transcript, "transcript folder")
                path = transcript / f"{record_name}.jsonl"
            if log_dir is not None and several:
                records_folder(log_dir, "log folder")
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
            # A step that had failed first stays the news (the signal came in the stop
            # that followed, say), and what it showed is not shown twice.
            failed = [str(result.error) for result in done if result.error is not None]
            outcome = ScenarioOutcome(
                scenario, seconds=time.monotonic() - began, interrupted=True,
                output="".join(output),
                failure="\n".join([
                    *failed, f"interrupted by {signal_name(interrupted[0])} "
                    f"{_where(scenario, done, bool(up))}: "
                    "its members were killed, and no other scenario ran",
                    *(shown for shown in evidence if not any(shown in f for f in failed))])
                + _records_said(path, logs))
        except Exception as exc:
            said = _said_elsewhere(exc)
            if said is not None:
                raise said from None
            problem = records_problem(exc)
            unrecorded = unrecorded or problem is not None
            # ... and the other scenarios still run.
            outcome = (ScenarioOutcome(scenario, failure=problem, not_run=True)
                       if problem is not None else _crashed(scenario, exc))
        else:
            if outcome.failure is not None:
                outcome.failure += _records_said(path, logs)
            elif verbose and not scenario.steps:  # (a cast file in a folder of tests)
                say("  (no steps: its members started, got ready and ended well)")
        outcome.began_at = began_at
        outcomes.append(outcome)
        if outcome.interrupted:
            break
        if not verbose:
            say(style(".", "32", colored) if outcome.ok else
                style("E" if outcome.not_run else "F", "31", colored), end="")
        elif not outcome.ok and not any(not r.ok for r in outcome.steps):
            when = ("" if not outcome.scenario.steps else " after the steps" if outcome.steps
                    else " before the first step")
            say(f"  {style('NOT RUN' if outcome.not_run else 'FAIL', '31', colored)}{when}")
        if exitfirst and not outcome.ok:
            break
    return outcomes, unrecorded


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
    if done and not done[-1].ok:  # (no step runs after a failed one: the stop was under way)
        return "as its members were stopped after that failure"
    if len(done) < len(scenario.steps):
        step = scenario.steps[len(done)]
        return f"at {step.source}: {step.describe()}" if step.source else (
            f"at {step.describe()}")
    return "after its steps" if scenario.steps else "while its members ran"


INTERRUPTING = (*STOP_SIGNALS, *PASSED_ON)
"""What interrupts the tests: the stop signals, and those a run would pass on to its
members (SIGUSR1...), which mean nothing to a test run and would end it unreported."""


def end_on_stop_signals() -> None:
    """SIGTERM, SIGHUP and the signals a run passes on end the command as Ctrl-C does
    (status 128+N), where the scenarios' loop does not take them: without a handler Python
    would die of them (or, for SIGUSR1, the process would, with no word)."""
    for sig in INTERRUPTING:
        if sig == signal.SIGINT:
            continue  # (KeyboardInterrupt: Python's own)
        if not inherited_as_ignored(sig):
            signal.signal(sig, _stopped_by)


def _stopped_by(signum: int, frame: object) -> None:
    raise SystemExit(128 + signum)  # (asyncio.run cancels the scenario: its engine cleans up)


def say(*text: str, end: str = "\n") -> None:
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
