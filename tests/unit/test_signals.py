"""Signal names and exit statuses."""

from __future__ import annotations

import signal
from collections.abc import Iterator

import pytest

from pipeplex._signals import (
    clean_inherited_signals,
    describe_returncode,
    exit_status,
    parse_signal,
    signal_name,
    stopped_by,
)


@pytest.mark.parametrize(
    ("text", "number"),
    [
        ("TERM", signal.SIGTERM),
        ("SIGTERM", signal.SIGTERM),
        ("term", signal.SIGTERM),
        ("sigterm", signal.SIGTERM),
        ("15", signal.SIGTERM),
        (" 15 ", signal.SIGTERM),
        (" INT\n", signal.SIGINT),
        ("kill", signal.SIGKILL),
        ("9", signal.SIGKILL),
        ("Usr1", signal.SIGUSR1),
        ("HUP", signal.SIGHUP),
        # Real-time signals (some daemons reload on one): by number, or by their place.
        (str(signal.SIGRTMIN + 6), signal.SIGRTMIN + 6),
        ("RTMIN+6", signal.SIGRTMIN + 6),
        ("sigrtmax-2", signal.SIGRTMAX - 2),
        ("RTMIN", signal.SIGRTMIN),
        ("SIGRTMAX", signal.SIGRTMAX),
    ],
)
def test_parse_signal(text: str, number: int) -> None:
    """Names with or without SIG, in any case, and numbers all give the signal number."""
    assert parse_signal(text) == number


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("bogus", r"unknown signal 'bogus' \(try TERM, INT, HUP, KILL, USR1 or a number\)"),
        ("SIGBOGUS", r"unknown signal 'SIGBOGUS'"),
        ("", r"unknown signal ''"),
        ("-9", r"a signal number is positive \(9, not -9\)"),
        ("RTMIN+99", r"no signal 'RTMIN\+99': the real-time signals run from RTMIN to RTMIN\+"),
        ("SIG_IGN", r"unknown signal 'SIG_IGN'"),
        ("999", r"no signal number 999 on this system"),
        ("0", r"no signal number 0"),
        ("\u00b2", r"unknown signal '\u00b2'"),  # a digit to str.isdigit, no number to int
    ],
)
def test_parse_signal_rejects_unknown(text: str, message: str) -> None:
    """Unknown names and numbers raise ValueError saying what to write instead."""
    with pytest.raises(ValueError, match=message):
        parse_signal(text)


@pytest.mark.parametrize(
    ("returncode", "text"),
    [
        (0, "exited with code 0"),
        (3, "exited with code 3"),
        (255, "exited with code 255"),
        (-9, "killed by SIGKILL"),
        (-15, "killed by SIGTERM"),
        (-200, "killed by signal 200"),
    ],
)
def test_describe_returncode(returncode: int, text: str) -> None:
    """Exit codes and signal deaths read the way people say them."""
    assert describe_returncode(returncode) == text


@pytest.mark.parametrize(
    ("returncode", "by"),
    [(-15, "SIGTERM"), (-9, "SIGKILL"), (-1, "SIGHUP"), (-11, None), (-2, None), (0, None),
     (143, None)],
)
def test_stopped_by_names_only_what_a_stop_sends(returncode: int, by: str | None) -> None:
    """A death by a signal the stop sends is the end asked for; any other end of a member
    being stopped (a crash, an exit code) keeps its own words."""
    assert stopped_by(returncode) == by


@pytest.mark.parametrize(("returncode", "status"), [(0, 0), (3, 3), (-15, 143), (-9, 137)])
def test_exit_status(returncode: int, status: int) -> None:
    """A signal death becomes 128+N, as a shell reports it."""
    assert exit_status(returncode) == status


def test_signal_name() -> None:
    """Known signals give their name; others a readable fallback."""
    assert signal_name(signal.SIGINT) == "SIGINT"
    assert signal_name(200) == "signal 200"
    assert signal_name(signal.SIGRTMIN + 6) == "SIGRTMIN+6"  # (as kill -l says them)
    assert signal_name(signal.SIGRTMAX - 2) == "SIGRTMAX-2"


CLEANED = (
    signal.SIGINT,
    signal.SIGQUIT,
    signal.SIGTERM,
    signal.SIGHUP,
    signal.SIGUSR1,
    signal.SIGUSR2,
    signal.SIGALRM,
)


@pytest.fixture
def saved_signals() -> Iterator[None]:
    """Restore this process's handlers and signal mask after the test."""
    handlers = {sig: signal.getsignal(sig) for sig in CLEANED}
    mask = signal.pthread_sigmask(signal.SIG_BLOCK, [])
    try:
        yield
    finally:
        for sig, handler in handlers.items():
            signal.signal(sig, handler)
        signal.pthread_sigmask(signal.SIG_SETMASK, mask)


@pytest.mark.usefixtures("saved_signals")
def test_clean_inherited_signals() -> None:
    """Ignored signals become caught (so exec resets them) and the mask is emptied."""
    signal.signal(signal.SIGUSR2, signal.SIG_IGN)
    signal.signal(signal.SIGUSR1, signal.SIG_DFL)
    signal.pthread_sigmask(signal.SIG_BLOCK, [signal.SIGUSR1])
    clean_inherited_signals()
    handler = signal.getsignal(signal.SIGUSR2)
    assert callable(handler)
    assert handler not in (signal.SIG_IGN, signal.SIG_DFL)
    assert signal.getsignal(signal.SIGUSR1) == signal.SIG_DFL
    assert signal.pthread_sigmask(signal.SIG_BLOCK, []) == set()


def test_a_byte_that_is_not_utf8_is_shown_as_a_byte() -> None:
    """A console line's byte 0xff reached the message as Python's '\\udcff'."""
    text = b"\xff".decode("utf-8", "surrogateescape")
    with pytest.raises(ValueError, match=r"unknown signal '\\xff' \(try"):
        parse_signal(text)
