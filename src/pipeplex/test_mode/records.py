"""The records of ``pipeplex test``: its JUnit report, transcripts and logs.

Apart from the run of the scenarios, which only writes them: before any scenario runs,
the paths asked for are checked (none replaces a scenario, a golden file or another
record), the folders that hold several scenarios' records are made as each one begins, a
record that cannot be written is said in plain words, and the report's cases are built
from the outcomes, with what the run did not come to.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path

from .._file_kind import records_apart, same_file
from .._printable import printable
from .._signals import signal_name
from ..errors import PipeplexError
from ..report.files import UnsafeWay, check_way, make_folders
from ..report.junit import CaseResult, check_junit
from ..scenario.model import Scenario
from ..scenario.suite import ScenarioOutcome

__all__ = (
    "FAILED",
    "LOAD_ERROR",
    "NOT_LOADED",
    "check_junit_path",
    "check_not_scenario_files",
    "check_records_apart",
    "junit_errors",
    "junit_results",
    "record_names",
    "records_folder",
    "records_problem",
)

LOAD_ERROR = 2

FAILED = "a failure"
NOT_LOADED = "a file that could not be loaded"
"""Where ``-x`` stopped the run: after a scenario that failed, or before the first one."""


def record_names(scenarios: Sequence[Scenario]) -> list[str]:
    """The name of each scenario's records: scenarios of the same name (a/s.toml,
    b/s.toml) keep records of their own (s-1, s-2)."""
    names = [scenario.name for scenario in scenarios]
    return [name if names.count(name) == 1 else f"{name}-{index + 1}"
            for index, name in enumerate(names)]


def check_junit_path(path: Path) -> None:
    """Exit with status 2 when ``path`` may not be replaced by the JUnit report; make its
    folders if missing."""
    with junit_errors(path):
        check_junit(path)  # (first: no folder is made for a report that is refused)
        make_folders(path.parent, mode=0o755)


def check_not_scenario_files(files: Sequence[Path], scenarios: Sequence[Scenario], *,
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
                    for name in record_names(scenarios)]
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


def check_records_apart(scenarios: Sequence[Scenario], *, junit: Path | None,
                        transcript: Path | None, transcript_folder: bool,
                        log_dir: Path | None, several: bool) -> None:
    """Exit with status 2 when two of the records asked for are one file (``--junit F
    --transcript F``; ``--transcript logs/a.log --log-dir logs`` with a member ``a``): the
    one written last would replace the other without a word."""
    names = record_names(scenarios)
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
def junit_errors(path: Path) -> Iterator[None]:
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


def records_folder(folder: Path, what: str) -> None:
    """Make ``folder`` for several scenarios' records (0700, as they are private), and
    refuse a symbolic link in its place, as for one scenario's ``--log-dir``: the records
    are made in it by name, and a link planted there would take them elsewhere. So would a
    folder or a link on the way that another user could swap (see
    :func:`~pipeplex.report.files.check_way`).

    Raises:
        PipeplexError: ``folder`` is a symbolic link, or on a way another user could change.
        OSError: it cannot be made (FileExistsError: a file is in its place).
    """
    try:
        check_way(folder)  # (before a folder is made where it would be refused)
    except UnsafeWay as exc:
        raise PipeplexError(f"cannot use the {what} {folder}: {exc}; {exc.advice}") from None
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
    try:  # (each record in it is opened by its path, and its way checked again then)
        check_way(folder)
    except UnsafeWay as exc:
        raise PipeplexError(f"cannot use the {what} {folder}: {exc}; {exc.advice}") from None


def records_problem(exc: Exception) -> str | None:
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


def junit_results(outcomes: Sequence[ScenarioOutcome], load_errors: Sequence[tuple[Path, str]],
                  scenarios: Sequence[Scenario], *, interrupted: int | None = None,
                  running: Scenario | None = None, stopped_by: str | None = None
                  ) -> list[CaseResult]:
    """The report's cases: the outcomes so far, the files that could not be loaded, and the
    scenarios not come to: skipped, after an interruption by ``interrupted``, where ``-x``
    stopped the run (``stopped_by``: :data:`FAILED` or :data:`NOT_LOADED`), or, while the
    run goes on, should it be killed (``running``, the one under way, an error then)."""
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
    elif stopped_by is not None and rest:
        why = f"not run: -x stopped the run at {stopped_by} before it"
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
