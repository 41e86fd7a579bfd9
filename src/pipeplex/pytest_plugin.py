"""pytest plugin: a ``plex`` fixture that cleans up every process and shows the transcript.

Registered through the ``pytest11`` entry point, so installing pipeplex is enough::

    def test_echo(plex):
        cat = plex.spawn("cat", "cat")
        cat.sendline("hello")
        cat.expect("^hello$")

At teardown every member is stopped (stdin closed, SIGTERM, grace, SIGKILL). A passing test
that leaves members running is reported (a warning naming them). When a test fails, the
merged transcript is attached to its failure as a section ("pipeplex transcript"), which
pytest shows under the traceback and which JUnit XML carries in the failure text.
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ._plex import Plex

__all__ = ("PipeplexWarning", "plex")

_PLEX_KEY = pytest.StashKey[Plex]()
_FAILED_KEY = pytest.StashKey[bool]()


class PipeplexWarning(UserWarning):
    """A test left members of its cast running."""


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("pipeplex")
    group.addoption("--pipeplex-timeout", type=float, default=None,
                    help="default seconds for expect() and wait() of the plex fixture (30)")
    group.addoption("--pipeplex-keep-transcripts", metavar="DIR", default=None,
                    help="write the transcript of each failed test that used plex into DIR")
    parser.addini("pipeplex_timeout", "default seconds for expect() and wait()", default="30")


def _timeout(config: pytest.Config) -> float:
    option = config.getoption("--pipeplex-timeout")
    return float(option if option is not None else config.getini("pipeplex_timeout"))


@pytest.fixture
def plex(request: pytest.FixtureRequest) -> Iterator[Plex]:
    """A :class:`pipeplex.Plex` whose members are all stopped when the test ends."""
    with Plex(timeout=_timeout(request.config)) as cast:
        request.node.stash[_PLEX_KEY] = cast
        yield cast
        still = [m.name for m in cast.members.values() if m.running]
        if still and not request.node.stash.get(_FAILED_KEY, False):
            warnings.warn(
                PipeplexWarning(f"{request.node.nodeid} left members running: "
                                f"{', '.join(still)} (stopped at teardown)"),
                stacklevel=1,
            )


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[Any]:
    outcome: Any = yield
    report: pytest.TestReport = outcome.get_result()
    cast = item.stash.get(_PLEX_KEY, None)
    if cast is None or not report.failed or report.when not in ("call", "setup"):
        return
    item.stash[_FAILED_KEY] = True
    text = cast.transcript()
    if not text:
        return
    # A section of the failure itself: shown under the traceback, and part of the failure
    # text in JUnit XML (report.sections reach JUnit only with junit_logging set).
    addsection = getattr(report.longrepr, "addsection", None)
    if callable(addsection):
        addsection("pipeplex transcript", text)
    else:
        report.sections.append(("pipeplex transcript", text))
    folder = item.config.getoption("--pipeplex-keep-transcripts")
    if folder:
        path = Path(folder)
        path.mkdir(parents=True, exist_ok=True)
        safe = re.sub(r"[^A-Za-z0-9_.-]+", "_", item.nodeid)
        (path / f"{safe}.txt").write_text(text, encoding="utf-8")
