"""The console's line syntax: what each line asks for, and the messages for mistakes."""

from __future__ import annotations

import signal

import pytest

from pipeplex.inputs.console import (
    CloseInput,
    Invalid,
    ListMembers,
    Quit,
    Restart,
    SendLine,
    SendSignal,
    SetTarget,
    ShowHelp,
    help_text,
    parse_line,
)

MEMBERS = ("server", "alice", "bob.2")


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("alice: hello", SendLine("alice", "hello")),
        ("alice:  two spaces", SendLine("alice", " two spaces")),
        ("alice:\ttab", SendLine("alice", "tab")),
        ("alice:", SendLine("alice", "")),
        ("bob.2: dotted name", SendLine("bob.2", "dotted name")),
        ("all: everyone", SendLine("all", "everyone")),
        ("alice: a: b: c", SendLine("alice", "a: b: c")),
        ("hello there", SendLine(None, "hello there")),
        ("", SendLine(None, "")),
        ("   ", SendLine(None, "   ")),
        ("alice:no space", SendLine(None, "alice:no space")),
        ("http://example.com", SendLine(None, "http://example.com")),
        ("12:30 lunch", SendLine(None, "12:30 lunch")),
        (" alice: leading space", SendLine(None, " alice: leading space")),
        ("\\:to alice", SendLine(None, ":to alice")),
        ("\\note: x", SendLine(None, "note: x")),
        ("\\", SendLine(None, "")),
        ("\\\\double", SendLine(None, "\\double")),
    ],
)
def test_lines_for_members(line: str, expected: SendLine) -> None:
    assert parse_line(line, MEMBERS) == expected


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        (":to alice", SetTarget("alice")),
        (":to all", SetTarget("all")),
        (":to", SetTarget(None)),
        ("  :to alice", SendLine(None, "  :to alice")),
        (":to   alice  ", SetTarget("alice")),
        (":list", ListMembers()),
        (":help", ShowHelp()),
        (":quit", Quit()),
        (":signal alice TERM", SendSignal("alice", signal.SIGTERM)),
        (":signal alice usr1", SendSignal("alice", signal.SIGUSR1)),
        (":signal all 9", SendSignal("all", signal.SIGKILL)),
        (":signal bob.2 SIGHUP", SendSignal("bob.2", signal.SIGHUP)),
        (":restart server", Restart("server")),
        (":close alice", CloseInput("alice")),
        (":close all", CloseInput("all")),
    ],
)
def test_commands(line: str, expected: object) -> None:
    assert parse_line(line, MEMBERS) == expected


@pytest.mark.parametrize(("line", "meant"), [(":lsit", ":list"), (":restrat x", ":restart"),
                                             (":stop", ":quit"), (":status", ":list")])
def test_a_mistyped_command_gets_a_guess(line: str, meant: str) -> None:
    parsed = parse_line(line, MEMBERS)
    assert isinstance(parsed, Invalid)
    assert f"; did you mean '{meant}'? (commands: :to, :list," in parsed.message


def test_an_unknown_member_is_named_with_the_valid_ones() -> None:
    """A mistyped name never sends the line to someone else."""
    parsed = parse_line("zed: hi", MEMBERS)
    assert parsed == Invalid(
        "no member named 'zed' (members: server, alice, bob.2; or 'all' for everyone); "
        "start the line with \\ to send it as it is"
    )
    assert parse_line("alcie: hi", MEMBERS) == Invalid(
        "no member named 'alcie'; did you mean 'alice'? (members: server, alice, bob.2; or "
        "'all' for everyone); start the line with \\ to send it as it is"
    )
    for line in (":to alcie", ":close nobody", ":restart x", ":signal zed TERM"):
        parsed = parse_line(line, MEMBERS)
        assert isinstance(parsed, Invalid)
        assert "members: server, alice, bob.2" in parsed.message
    for line in (":restart x", ":start x"):  # (all is no choice there: not offered)
        parsed = parse_line(line, MEMBERS)
        assert parsed == Invalid("no member named 'x' (members: server, alice, bob.2)"), parsed


@pytest.mark.parametrize(
    ("line", "message"),
    [
        (":", "a command follows the colon; commands: :to, :list, :signal, :restart, :start, "
              ":close, :quit, :help"),
        (":frob", "unknown command ':frob'; commands: :to, :list, :signal, :restart, :start, "
                  ":close, :quit, :help"),
        (":TO alice", "unknown command ':TO'; did you mean ':to'? (commands:"),
        (":to alice bob", "usage: :to [NAME]"),
        (":list all", "usage: :list"),
        (":quit now", "usage: :quit"),
        (":signal alice", "usage: :signal NAME SIG"),
        (":signal alice TERM now", "usage: :signal NAME SIG"),
        (":signal alice NOPE", "unknown signal 'NOPE' (try TERM, INT, HUP, KILL, USR1 or a "
                               "number)"),
        (":signal alice 9999", "no signal number 9999"),
        (":restart", "usage: :restart NAME"),
        (":restart all", "restart one member at a time: :restart NAME"),
        (":close", "usage: :close NAME"),
    ],
)
def test_mistakes_get_a_message(line: str, message: str) -> None:
    parsed = parse_line(line, MEMBERS)
    assert isinstance(parsed, Invalid)
    assert parsed.message.startswith(message)


def test_a_cast_without_members_still_parses() -> None:
    assert parse_line("plain", ()) == SendLine(None, "plain")
    assert isinstance(parse_line("x: y", ()), Invalid)


def test_help_lists_every_command_and_the_members() -> None:
    text = help_text(MEMBERS)
    for command in (":to [NAME]", ":list", ":signal NAME SIG", ":restart NAME", ":close NAME",
                    ":quit", ":help", "NAME: text"):
        assert command in text
    assert "members: server, alice, bob.2" in text


def test_a_name_that_is_not_utf8_is_shown_by_its_bytes() -> None:
    """A name typed on a Latin-1 terminal comes as surrogates: shown as ``\\xff``, the byte
    typed, not as Python's ``\\udcff``."""
    parsed = parse_line(":to b\udcff", MEMBERS)
    assert isinstance(parsed, Invalid)
    assert parsed.message.startswith("no member named 'b\\xff' (members: server")
