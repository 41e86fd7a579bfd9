"""Scenario files as pytest tests: each file that ``pipeplex_scenarios`` names is one test,
run as ``pipeplex test`` runs it (steps, the stop, what failed on its own, the golden file).

Opt-in, since a project's ``.toml`` files are mostly not scenarios::

    [tool.pytest.ini_options]
    pipeplex_scenarios = ["tests/scenarios/*.toml"]

Patterns are globs from the rootdir (``**`` for any folders between). ``--pipeplex-update``
writes golden files instead of comparing them.
A failure reads as ``pipeplex test`` prints it, without a Python traceback, and the merged
stream is attached as the "pipeplex transcript" section.
"""

from __future__ import annotations

import asyncio
import contextlib
import glob
import os
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ._printable import printable
from .errors import PipeplexError

__all__ = ("ScenarioFile", "ScenarioItem", "add_options", "pytest_collect_file",
           "scenario_patterns", "warn_of_empty_patterns")

_SECTION = "pipeplex transcript"


def add_options(parser: pytest.Parser) -> None:
    """Its ini key and option, added by the plugin's ``pytest_addoption``."""
    parser.addini("pipeplex_scenarios", "glob patterns, from the rootdir, of scenario files "
                  "to run as tests (tests/scenarios/*.toml)", type="linelist", default=[])
    parser.getgroup("pipeplex").addoption(
        "--pipeplex-update", action="store_true", default=False,
        help="write the golden files of scenario tests instead of comparing them")


def pytest_collect_file(file_path: Path, parent: pytest.Collector) -> ScenarioFile | None:
    if file_path.suffix != ".toml" or not parent.config.getini("pipeplex_scenarios"):
        return None
    if os.path.abspath(file_path) not in _scenario_files(parent.config):
        return None
    return ScenarioFile.from_parent(parent, path=file_path)


_FILES_KEY = pytest.StashKey[frozenset[str]]()


def scenario_patterns(config: pytest.Config) -> list[str]:
    """The patterns of ``pipeplex_scenarios``, also as pyproject.toml's form writes them
    when it was copied into a ``pytest.ini``, ``tox.ini`` or ``setup.cfg``, whose values
    are lines of words: ``["tests/scenarios/*.toml"]`` there is that one pattern, not a
    pattern of brackets and quotes that names no file."""
    lines = config.getini("pipeplex_scenarios")
    written = "\n".join(lines).strip()
    if written.startswith("[") and written.endswith("]"):  # (on one line, or over several)
        import tomllib

        with contextlib.suppress(tomllib.TOMLDecodeError):
            listed = tomllib.loads(f"v = {written}")["v"]
            if all(isinstance(item, str) for item in listed):
                return list(listed)
    return list(lines)


def warn_of_empty_patterns(config: pytest.Config) -> None:
    """A pattern of ``pipeplex_scenarios`` that names no file (a misspelt folder), said
    once as the session starts: else its scenarios would be left out without a word."""
    for pattern in scenario_patterns(config):
        if not glob.glob(pattern, root_dir=config.rootpath, recursive=True):
            config.issue_config_time_warning(pytest.PytestConfigWarning(
                f"pipeplex_scenarios: {pattern!r} names no file (patterns are globs from "
                f"the rootdir, {printable(os.fspath(config.rootpath))})"), stacklevel=2)


def _scenario_files(config: pytest.Config) -> frozenset[str]:
    """The scenario files the patterns name (absolute paths), found once a session, less
    the cast files that they include: those are no tests of their own, as in pipeplex
    test. Nor is a ``pyproject.toml`` (Python's project file, matched by ``**/*.toml``),
    nor the file that holds pytest's settings."""
    found = config.stash.get(_FILES_KEY, None)
    if found is None:
        from .scenario.load import collected_as

        named = {os.path.abspath(config.rootpath / path)
                 for pattern in scenario_patterns(config)
                 for path in glob.glob(pattern, root_dir=config.rootpath, recursive=True)
                 if path.endswith(".toml") and os.path.basename(path) != "pyproject.toml"}
        included = {name for path in named for name in collected_as(path)[1]}
        if config.inipath is not None:
            included.add(os.path.abspath(config.inipath))
        found = config.stash[_FILES_KEY] = frozenset(named - included)
    return found


class ScenarioFile(pytest.File):
    """A scenario file: one test, named after the file."""

    def collect(self) -> Iterator[ScenarioItem]:
        yield ScenarioItem.from_parent(self, name=self.path.stem)


class ScenarioFailed(Exception):
    """A scenario did not pass; its message is the report ``pipeplex test`` prints, and its
    ``transcript`` the merged stream ("" when it did not run)."""

    def __init__(self, report: str, transcript: str = "", kept: Path | None = None) -> None:
        super().__init__(report)
        self.transcript = transcript
        self.kept = kept
        """Where the transcript was kept whole (``--pipeplex-keep-transcripts``)."""


class ScenarioItem(pytest.Item):
    """Runs its scenario file as ``pipeplex test`` does, in its own event loop."""

    def runtest(self) -> None:
        from .cast._programs import check_commands
        from .scenario import load_scenario
        from .scenario.suite import run_scenario

        try:  # (by its path from here, as pipeplex test would name it: messages quote it)
            scenario = load_scenario(os.path.relpath(self.path))
            check_commands(scenario.cast)
        except PipeplexError as exc:
            raise ScenarioFailed(str(exc)) from None
        if scenario.skip is not None:
            pytest.skip(scenario.skip)
        from .participants.orphans import Adoption

        # Its members' subreaper while it runs, as pipeplex test is: what they orphan with
        # neither their group nor their environment (setsid env -i daemon &) is stopped
        # with them. No code of the test's own runs meanwhile, whose children it would
        # take for theirs; the children the session had before are left alone.
        adoption = Adoption()
        done: list[object] = []
        output: list[str] = []
        try:
            outcome = asyncio.run(run_scenario(
                scenario, grace=_grace(self.config), adoption=adoption,
                update_golden=self.config.getoption("pipeplex_update"), keep_output=True,
                update_command="pytest --pipeplex-update", on_step=done.append,
                output_when_cancelled=output))
        except pytest.fail.Exception as exc:  # (pytest-timeout's, in its signal method)
            # Said as a scenario's failure: the step it was at, and the stream so far,
            # not the frames of pytest and asyncio it came through.
            step = scenario.steps[len(done)] if len(done) < len(scenario.steps) else None
            where = (f" at {step.source}: {step.describe()}" if step is not None
                     else " after its steps" if scenario.steps else "")
            raise ScenarioFailed(f"{(exc.msg or 'failed').rstrip('.')}{where}",
                                 "".join(output)) from None
        finally:
            adoption.close()
        if outcome.failure is not None:
            from .pytest_plugin import keep_transcript

            kept, failed = (keep_transcript(self, outcome.output) if outcome.output
                            else (None, None))
            # Part of the failure's own text, not a report section: pytest's JUnit XML
            # carries the failure (sections only with junit_logging set, and not this one).
            raise ScenarioFailed(outcome.failure + (f"\n{failed}" if failed else ""),
                                 outcome.output or "", kept)
        if outcome.output:  # (for -rP)
            self.add_report_section("call", _SECTION, outcome.output)
        if outcome.warnings:
            from .pytest_plugin import PipeplexWarning

            for warning in outcome.warnings:  # (at the file, as the plugin's are at a test)
                where = "" if warning.startswith(f"{scenario.path}:") else f"{scenario.path}: "
                warnings.warn_explicit(PipeplexWarning(f"{where}{warning}"), PipeplexWarning,
                                       filename=str(self.path), lineno=1)

    def repr_failure(self, excinfo: pytest.ExceptionInfo[BaseException],
                     style: Any = None) -> str:
        if isinstance(excinfo.value, ScenarioFailed):
            from ._pytest_transcripts import shown_tail

            failure = excinfo.value
            header = f" {_SECTION} ".center(80, "-")
            shown = printable(shown_tail(failure.transcript, failure.kept))
            return str(failure) + (f"\n\n{header}\n{shown}" if failure.transcript else "")
        return str(super().repr_failure(excinfo, style=style))

    def reportinfo(self) -> tuple[Path, int, str]:
        return self.path, 0, f"scenario {self.name}"


def _grace(config: pytest.Config) -> float:
    """The grace the plugin's options set (``--pipeplex-grace``, ``pipeplex_grace``)."""
    from .pytest_plugin import _settings

    return _settings(config).grace
