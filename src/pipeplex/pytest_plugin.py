"""pytest plugin: a ``plex`` fixture that cleans up every process and shows the transcript.

Registered through the ``pytest11`` entry point, so installing pipeplex is enough::

    def test_echo(plex):
        cat = plex.spawn("cat", "cat")
        cat.sendline("hello")
        cat.expect("^hello$")

At teardown every member is stopped (stdin closed, SIGTERM, grace, SIGKILL). A test that
passed and leaves members running is reported (a warning naming them); members still
running when the test returns first get half a second in all to end by themselves, so one
that is already ending (``echo``, or one whose stdin the test closed) is not reported. The
members of a file the test loaded are not: they run for the test, as a scenario's do in
``pipeplex test``. A ``Plex`` or ``AsyncPlex`` the test itself started and left open is
closed as the test ends, before its fixtures' teardown (and reported, if it passed), not
when the garbage collector frees it during a later test.

When a test fails (in setup, call or teardown), the merged transcript is attached to its
failure as a section ("pipeplex transcript", control characters shown as ``\\xNN``), which
pytest shows under the traceback and which JUnit XML carries in the failure text; so is
that of every other cast the test started (its own fixtures', an ``AsyncPlex`` of an async
test; of those it closed, the last :data:`KEPT_CLOSED`). A section shows a transcript's
last 500 lines (``_pytest_transcripts.py``).

Options (checked once, at startup: a bad value is a usage error):

- ``--pipeplex-timeout SECONDS`` / ini ``pipeplex_timeout``: default ``expect`` and ``wait``
  timeout (30);
- ``--pipeplex-grace SECONDS`` / ini ``pipeplex_grace``: seconds between SIGTERM and SIGKILL
  when the fixture stops members (5);
- ``--pipeplex-keep-transcripts DIR``: also write the whole transcript of each failed test
  (a scenario file's too) into ``DIR`` (relative to the folder pytest was started in), one
  file per test.

Scenario files become tests of their own with the ini key ``pipeplex_scenarios`` (see
:mod:`._pytest_scenarios`).
"""

from __future__ import annotations

import functools
import math
import os
import time
import warnings
import weakref
from collections.abc import Generator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

import pytest

from ._events import Note
from ._printable import printable
from ._pytest_scenarios import add_options as add_scenario_options
from ._pytest_scenarios import pytest_collect_file, warn_of_empty_patterns
from ._pytest_transcripts import keep, keep_folder, shown_tail, transcript_file_name
from ._seconds import SECONDS_SAID, is_seconds, seconds_meant
from ._signals import describe_returncode
from .cast.spec import DEFAULT_GRACE, TEST_ENVIRONMENT
from .errors import PipeplexError
from .plex.async_plex import DEFAULT_TIMEOUT, STARTED, AsyncPlex
from .plex.left_open import close_left_open, has_closed
from .plex.sync_plex import Plex

if TYPE_CHECKING:
    from .plex.async_member import AsyncMember

__all__ = ("PipeplexWarning", "plex", "pytest_collect_file")

_LEFTOVER_SETTLE = 0.5
"""Seconds, in all, that members still running when a test returns get to end by themselves
before the test is reported for leaving them running."""

_T = TypeVar("_T")

_SECTION = "pipeplex transcript"

_SETTINGS_KEY = pytest.StashKey["_Settings"]()
_PLEX_KEY = pytest.StashKey[Plex]()
_QUIET_KEY = pytest.StashKey[bool]()
_LEFT_KEY = pytest.StashKey[list[str]]()
_FAILED_KEY = pytest.StashKey[list[str]]()
_STOP_FAILED_KEY = pytest.StashKey[list[str]]()
_KILLED_KEY = pytest.StashKey[list[str]]()
_FAILED_AT_KEY = pytest.StashKey[float]()
"""When a failed setup or call took the transcript for its report."""
_USED_KEY = pytest.StashKey["_Used"]()
_OWN_KEY = pytest.StashKey[list[AsyncPlex | Plex]]()
"""The plexes the test's own code (its call) started: none of them is to outlive it."""
_BEGAN_KEY = pytest.StashKey[float]()


class PipeplexWarning(UserWarning):
    """A test left members of its cast running, or a transcript could not be kept."""


@dataclass(frozen=True)
class _Settings:
    timeout: float
    grace: float
    keep: Path | None


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("pipeplex")
    group.addoption("--pipeplex-timeout", metavar="SECONDS", default=None,
                    help="default seconds for expect() and wait() of the plex fixture "
                         "(default: ini pipeplex_timeout, else 30)")
    group.addoption("--pipeplex-grace", metavar="SECONDS", default=None,
                    help="seconds between SIGTERM and SIGKILL when the plex fixture stops "
                         "members (default: ini pipeplex_grace, else 5)")
    group.addoption("--pipeplex-keep-transcripts", metavar="DIR", default=None,
                    help="write the transcript of each failed test that used plex into DIR")
    parser.addini("pipeplex_timeout", "default seconds for expect() and wait() of the plex "
                  "fixture", default="")
    parser.addini("pipeplex_grace", "seconds between SIGTERM and SIGKILL when the plex "
                  "fixture stops members", default="")
    add_scenario_options(parser)


def pytest_configure(config: pytest.Config) -> None:
    if _started not in STARTED:  # (once, also for a pytest run inside this one)
        STARTED.append(_started)
    if getattr(config.option, "help", False):
        return  # --help works whatever the options say
    config.stash[_SETTINGS_KEY] = _read_settings(config)
    warn_of_empty_patterns(config)


def pytest_unconfigure(config: pytest.Config) -> None:
    if _started in STARTED:
        STARTED.remove(_started)


KEPT_CLOSED = 8
"""How many of the plexes a test started and closed its failure report shows, the latest:
a test that starts hundreds in a loop would otherwise hold every one (up to a megabyte of
transcript each) until it ends, and show them all."""


class _Used:
    """The plexes started while a test runs (its setup and teardown included), for its
    failure report: every one still open, and the latest :data:`KEPT_CLOSED` it closed."""

    def __init__(self) -> None:
        self.casts: list[AsyncPlex | Plex] = []
        self.let_go = 0
        """How many closed ones were let go of, the earliest."""
        self.all: weakref.WeakSet[AsyncPlex | Plex] = weakref.WeakSet()
        """Every one, let go of or not (not to be shown as a cast from before the test)."""

    def add(self, cast: AsyncPlex | Plex) -> None:
        closed = [other for other in self.casts if has_closed(other)]
        for other in closed[:max(len(closed) - KEPT_CLOSED + 1, 0)]:
            self.casts.remove(other)
            self.let_go += 1
        self.casts.append(cast)
        self.all.add(cast)


_running: list[_Used] = []
"""While a test runs: the plexes started in it."""

_all_started: weakref.WeakSet[AsyncPlex | Plex] = weakref.WeakSet()
"""Every plex started in the session and not yet collected: one started before a test (a
session-scoped fixture's) shows in that test's failure what it wrote during the test."""


_fixtures_setting_up: list[object] = []
"""The fixtures being set up (nested: one asks for another), whatever the phase: a fixture
that ``request.getfixturevalue`` sets up during a test's call may start a plex that outlives
that test (a module's), which is not the test's own."""

_of_fixtures: weakref.WeakSet[AsyncPlex | Plex] = weakref.WeakSet()
"""The plexes started as a fixture was being set up."""


def _started(cast: AsyncPlex | Plex) -> None:
    _all_started.add(cast)  # (told from the thread that started it: all are atomic)
    if _fixtures_setting_up:
        _of_fixtures.add(cast)
    if _running:
        _running[0].add(cast)


@pytest.hookimpl(wrapper=True)
def pytest_fixture_setup(fixturedef: pytest.FixtureDef[object],
                         request: pytest.FixtureRequest) -> Generator[None, object, object]:
    _fixtures_setting_up.append(fixturedef)
    try:
        return (yield)
    finally:
        _fixtures_setting_up.pop()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_protocol(item: pytest.Item, nextitem: pytest.Item | None) -> Generator[
        None, object, object]:
    # The casts a test starts besides the fixture's (in its own fixtures, or an AsyncPlex of
    # an async test) get their transcripts in its failure report too.
    used = _Used()
    _running[:] = [used]
    item.stash[_USED_KEY] = used
    item.stash[_BEGAN_KEY] = time.time()
    try:
        return (yield)
    finally:
        _running.clear()
        _forget(item.stash, _USED_KEY)
        _forget(item.stash, _OWN_KEY)
        _forget(item.stash, _BEGAN_KEY)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Generator[None, None, None]:
    # The plexes the test's code starts are its own: a fixture's (set up before the call,
    # or by request.getfixturevalue in it) may live on for later tests (a module's), but
    # none of these may.
    used = item.stash.get(_USED_KEY, None)
    before = list(used.casts) if used is not None else []
    try:
        return (yield)
    finally:
        item.stash[_OWN_KEY] = [] if used is None else [
            cast for cast in used.casts if cast not in before and cast not in _of_fixtures]


def _read_settings(config: pytest.Config) -> _Settings:
    timeout = _seconds(config, "--pipeplex-timeout", "pipeplex_timeout", DEFAULT_TIMEOUT)
    grace = _seconds(config, "--pipeplex-grace", "pipeplex_grace", DEFAULT_GRACE)
    keep = config.getoption("--pipeplex-keep-transcripts")
    # Resolved now: a test that changes the working folder does not move the files.
    folder = Path(config.invocation_params.dir, os.path.expanduser(keep)) if keep else None
    if folder is not None and not config.option.collectonly:
        # (checked now, not when the first test fails, at the end)
        folder_fd, reason = keep_folder(folder)
        if folder_fd is None:
            raise pytest.UsageError(f"--pipeplex-keep-transcripts: cannot keep transcripts in "
                                    f"{folder}: {reason}")
        os.close(folder_fd)
    return _Settings(timeout=timeout, grace=grace, keep=folder)


def _seconds(config: pytest.Config, option: str, ini: str, default: float) -> float:
    raw = config.getoption(option)
    where = option
    if raw is None:
        raw = config.getini(ini)
        where = f"the ini option {ini}"
        if not str(raw).strip():
            return default
    try:
        value = float(raw)
    except (TypeError, ValueError):
        value = math.nan
    if not is_seconds(value):
        raise pytest.UsageError(f"{where} must be {SECONDS_SAID}, not {raw!r}"
                                f"{seconds_meant(raw, quoted=False)}")
    return value


def _settings(config: pytest.Config) -> _Settings:
    settings = config.stash.get(_SETTINGS_KEY, None)
    if settings is None:
        settings = config.stash[_SETTINGS_KEY] = _read_settings(config)
    return settings


@pytest.fixture
def plex(request: pytest.FixtureRequest) -> Iterator[Plex]:
    """A :class:`pipeplex.Plex` whose members are all stopped when the test ends."""
    settings = _settings(request.config)
    item = request.node
    try:
        yield from _plex_for(item, settings)
    except KeyboardInterrupt:
        # A second Ctrl-C as the interrupted session tore the plex down: it skipped the
        # grace, and the plex is closed. The session ends as interrupted already; raised
        # from its finish, it would end in a traceback.
        if getattr(request.session, "exitstatus", None) != pytest.ExitCode.INTERRUPTED:
            raise


def _plex_for(item: pytest.Item, settings: _Settings) -> Iterator[Plex]:
    """The plex fixture's plex for the test ``item``, and what its end leaves to report."""
    # Its members get the environment pipeplex test gives (TERM=dumb, NO_COLOR=1): a
    # test must not pass or fail by the TERM of the shell that ran it.
    with Plex(timeout=settings.timeout, grace=settings.grace, env=TEST_ENVIRONMENT) as cast:
        cast._started_as = ("the plex fixture's plex is started for the test, and closed at "
                            "its end: use it as it is, without a with block or start()")
        item.stash[_PLEX_KEY] = cast
        yield cast
        if not item.stash.get(_QUIET_KEY, False):
            # What the test looked at, before the moment given to members ending by
            # themselves, which looks at them in its own right.
            members = [*cast._async._let_go_failed, *(m._member for m in cast.members.values())]
            seen = [member for member in members if member._exit_seen]
            left = _still_running(cast)
            if left:
                # Reported once the whole teardown passed (see pytest_runtest_teardown): a
                # teardown that failed already says what went wrong.
                item.stash[_LEFT_KEY] = left
            failed = _failed_unseen(cast, [m for m in members if m not in seen])
            if failed:
                item.stash[_FAILED_KEY] = failed
        killed: list[str] = []
        cast.bus.subscribe(functools.partial(_killed_after_grace, killed), [Note])
        closing = time.monotonic()
    if not item.stash.get(_QUIET_KEY, False):
        in_stop = _failed_in_stop(cast, closing)
        if in_stop:
            item.stash[_STOP_FAILED_KEY] = in_stop
        # (Not one the test left running: that warning says it was stopped at teardown.)
        left_running = item.stash.get(_LEFT_KEY, [])
        killed = [said for said in killed if said.partition(" ")[0] not in left_running]
        if killed:
            item.stash[_KILLED_KEY] = killed


def _killed_after_grace(killed: list[str], note: Note) -> None:
    """A member the stop at teardown killed once its grace was over ("m ignored SIGTERM for
    5.0 s", "m still running 5.0 s after SIGTERM"): every test that starts one waits that
    long, which nothing else tells."""
    if note.name is not None and note.text.endswith("; sent SIGKILL to its process group"):
        said = note.text.partition(";")[0]
        killed.append(f"{note.name} (it {'was ' if said.startswith('still') else ''}{said})")


def _failed_unseen(cast: Plex, unseen: list[AsyncMember]) -> list[str]:
    """Of the members ``unseen`` (whose end the test never looked at: returncode, wait(),
    an UnexpectedExit), those that ended with an error of their own (not stopped by the
    plex, nor by a signal the test sent): a server that crashed as the test's last line
    matched; one removed, or whose name a later member took, too. Not those of a file the
    test loaded, whose steps judge them."""
    loaded = cast._async._scenario
    declared = set(loaded.cast.names) if loaded is not None else set()
    failed = []
    for member in unseen:
        process = member._process  # (its returncode property marks it as seen)
        code = process.returncode
        if (member.name not in declared and code not in (None, 0)
                and not process.ended_by_the_stop and not process.ended_by_a_person):
            gone = ("; removed" if member._removed else
                    "; its name was taken by a later member" if member._replaced else "")
            failed.append(f"{member.name} ({describe_returncode(code)}{gone})")
    return failed


def _failed_in_stop(cast: Plex, closing: float) -> list[str]:
    """The members that failed on their own as the plex stopped them, by the rules of a
    run's exit status: an error at the EOF the stop gave one, before any signal (a server
    that crashes as it shuts down), unless a member spawned no later than it ended in the
    stop before it. Not those of a file the test loaded."""
    loaded = cast._async._scenario
    declared = set(loaded.cast.names) if loaded is not None else set()
    return [failure.reason.split("; ", 1)[0] for failure in cast._async._failures
            if failure.at >= closing and failure.name not in declared]


def _still_running(cast: Plex) -> list[str]:
    """The members still running after ``_LEFTOVER_SETTLE`` seconds (in all) to end. Not
    those of a cast or scenario file the test loaded, nor those spawned ``background``:
    they run for the test, until it ends, as a scenario's do in test mode."""
    loaded = cast._async._scenario
    declared = set(loaded.cast.names) if loaded is not None else set()
    running = [m for m in cast.members.values()
               if m.name not in declared and not m.background and m.running]
    if not running:
        return []
    deadline = time.monotonic() + _LEFTOVER_SETTLE
    for member in running:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            break
        try:
            member.wait(timeout=remaining)
        except (TimeoutError, PipeplexError):
            pass
    return [m.name for m in running if m.running]


@pytest.hookimpl(wrapper=True)
def pytest_runtest_teardown(item: pytest.Item) -> Generator[None, None, None]:
    __tracebackhide__ = True  # (a warning made an error: the test's, not the plugin's)
    # Closed before the fixtures' teardown, as they were started after the fixtures (a
    # client of a fixture's server), and whatever that teardown does: a plex left open
    # would run on into later tests.
    left_open = _close_left_open(item)
    yield  # raises when a finalizer failed: that test is not reported for its members
    if not item.stash.get(_QUIET_KEY, False):
        for said in left_open:
            _warn_at_test(item, f"{item.nodeid} left {said}")
    left = item.stash.get(_LEFT_KEY, None)
    if left:
        del item.stash[_LEFT_KEY]
        _warn_at_test(item, f"{item.nodeid} left members running: {', '.join(left)} "
                            "(stopped at teardown)")
    failed = item.stash.get(_FAILED_KEY, None)
    if failed:
        del item.stash[_FAILED_KEY]
        _warn_at_test(item, f"{item.nodeid} passed, but members failed that it never looked "
                            f"at: {', '.join(failed)} (check member.wait() or "
                            "member.returncode to make that part of the test)")
    killed = item.stash.get(_KILLED_KEY, None)
    if killed:
        del item.stash[_KILLED_KEY]
        _warn_at_test(item, f"{item.nodeid}: the stop at teardown killed {'; '.join(killed)}, "
                            "and the test waited that long (have it end on SIGTERM, or give "
                            "it less: --pipeplex-grace)")
    failed = item.stash.get(_STOP_FAILED_KEY, None)
    if failed:
        del item.stash[_STOP_FAILED_KEY]
        _warn_at_test(item, f"{item.nodeid} passed, but members failed as the plex stopped "
                            f"them at its end: {'; '.join(failed)} (have them end well at the "
                            "end of their input, or close their stdin and wait() for them in "
                            "the test)")


def _close_left_open(item: pytest.Item) -> list[str]:
    """Close the plexes the test's own code started and left open; what each was."""
    said = []
    for cast in item.stash.get(_OWN_KEY, []):
        try:
            left = close_left_open(cast)
        except PipeplexError as exc:
            left = f"a pipeplex.AsyncPlex open, without aclose(), that could not be closed: {exc}"
        if left is not None:
            said.append(left)
    return said


def _warn_at_test(item: pytest.Item, message: str) -> None:
    """A :class:`PipeplexWarning` reported at the test's own line, not at this plugin's
    (and, made an error by ``-W error``, without this plugin's frames)."""
    __tracebackhide__ = True
    line = item.location[1]
    warnings.warn_explicit(PipeplexWarning(message), PipeplexWarning,
                           filename=str(item.path), lineno=(line or 0) + 1)


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None],
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    # Outermost (tryfirst), so it sees the final report: an xfail is already "skipped".
    report = yield
    if report.when in ("setup", "call") and not report.passed:
        item.stash[_QUIET_KEY] = True  # failed or skipped: no leftover warning
    cast = item.stash.get(_PLEX_KEY, None)
    failed_at = item.stash.get(_FAILED_AT_KEY, None)
    if (report.when == "teardown" and not report.failed and failed_at is not None
            and cast is not None):
        # What came after the failure's section was taken: the stop at teardown, where a
        # server's shutdown traceback or a client's hang shows. (pytest shows a teardown
        # section under the failure when its title says "teardown".)
        _attach(item, report, cast.transcript(since=failed_at),
                title=f"{_SECTION}: the stop at teardown", keep=False)
        _keep_for(item, report, cast.transcript())  # (the kept file: the whole of it now)
    if report.when == "teardown":
        # The test is over: let its plex go (a session keeps every item).
        _forget(item.stash, _PLEX_KEY)
        _forget(item.stash, _FAILED_AT_KEY)
        _forget(item.stash, _QUIET_KEY)
        _forget(item.stash, _LEFT_KEY)
        _forget(item.stash, _FAILED_KEY)
        _forget(item.stash, _STOP_FAILED_KEY)
        _forget(item.stash, _KILLED_KEY)
    if report.failed:
        if cast is not None:
            if report.when != "teardown":
                item.stash[_FAILED_AT_KEY] = time.time()
            _attach(item, report, cast.transcript())
        used = item.stash.get(_USED_KEY, None) or _Used()
        for other in used.casts:
            if other is not cast:
                names = ", ".join(other.members) or "no members"
                _attach(item, report, other.transcript(),
                        title=f"{_SECTION} (another cast: {names})", keep=cast is None)
        if used.let_go:
            report.sections.append(("pipeplex", (
                f"{used.let_go} earlier {'casts' if used.let_go > 1 else 'cast'} this test "
                f"started and closed {'are' if used.let_go > 1 else 'is'} not shown: a "
                f"failure shows the last {KEPT_CLOSED} a test closed")))
        began = item.stash.get(_BEGAN_KEY, None)
        for earlier in list(_all_started) if began is not None else []:
            if earlier not in used.all and earlier is not cast:
                names = ", ".join(earlier.members) or "no members"
                _attach(item, report, earlier.transcript(since=began),
                        title=f"{_SECTION} (a cast started before this test: {names}; "
                              "what came during the test)",
                        keep=cast is None and not used.casts)
    return report


def _forget(stash: pytest.Stash, key: pytest.StashKey[_T]) -> None:
    if key in stash:
        del stash[key]


def _attach(item: pytest.Item, report: pytest.TestReport, text: str, *,
            title: str = _SECTION, keep: bool = True) -> None:
    if not text:
        return
    kept = _keep_for(item, report, text) if keep else None
    section = printable(shown_tail(text, kept))
    # A section of the failure itself: shown under the traceback, and part of the failure
    # text in JUnit XML (report.sections reach JUnit only with junit_logging set).
    addsection = getattr(report.longrepr, "addsection", None)
    if callable(addsection):
        addsection(title, section)
    else:
        report.sections.append((title, section))


def keep_transcript(item: pytest.Item, text: str) -> tuple[Path | None, str | None]:
    """Keep ``text`` as ``item``'s transcript file, if the run keeps them: the file, or
    why it could not be kept (None, None: the run keeps none)."""
    folder = _settings(item.config).keep
    if folder is None:
        return None, None
    reason = keep(folder, item.nodeid, text)
    if reason is not None:
        return None, f"could not keep transcripts in {folder}: {reason}"
    return folder / transcript_file_name(item.nodeid), None


def _keep_for(item: pytest.Item, report: pytest.TestReport, text: str) -> Path | None:
    """Keep ``text`` as ``item``'s transcript file, if the run keeps them; the file."""
    kept, failed = keep_transcript(item, text)
    if failed is not None:
        try:
            warnings.warn(PipeplexWarning(failed), stacklevel=1)
        except Warning:
            # -W error turned it into an exception, which would abort the session from here.
            report.sections.append(("pipeplex", failed))
    return kept
