"""The console's language: a line to an action (``NAME: text``, ``:signal NAME SIG`` ...),
and the help that lists it. Pure: it knows the members' names and nothing else of the run;
:class:`~pipeplex.inputs.console.Console` carries the actions out."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from .._signals import parse_signal
from .._suggest import close_match
from ..errors import UnknownMember
from .router import ALL

__all__ = ("COMMANDS", "Action", "CloseInput", "Invalid", "ListMembers", "Parsed", "Quit",
           "Restart", "SendLine", "SendSignal", "SetTarget", "ShowHelp", "Start", "help_text",
           "parse_line")


@dataclass(frozen=True, slots=True)
class SendLine:
    """Send ``text`` (a newline is added) to ``target``, or to the current target if None."""

    target: str | None
    text: str


@dataclass(frozen=True, slots=True)
class SetTarget:
    """``:to NAME``: plain lines go to ``name`` from now on (None: say where they go)."""

    name: str | None


@dataclass(frozen=True, slots=True)
class ListMembers:
    """``:list``."""


@dataclass(frozen=True, slots=True)
class ShowHelp:
    """``:help``."""


@dataclass(frozen=True, slots=True)
class SendSignal:
    """``:signal NAME SIG``."""

    name: str
    signal: int


@dataclass(frozen=True, slots=True)
class Restart:
    """``:restart NAME``."""

    name: str


@dataclass(frozen=True, slots=True)
class Start:
    """``:start NAME``: a member declared with ``autostart = false``."""

    name: str


@dataclass(frozen=True, slots=True)
class CloseInput:
    """``:close NAME``: EOF on its stdin."""

    name: str


@dataclass(frozen=True, slots=True)
class Quit:
    """``:quit``: stop the cast."""


@dataclass(frozen=True, slots=True)
class Invalid:
    """A line that cannot be carried out; ``message`` says why and what would work."""

    message: str


Action = (SendLine | SetTarget | ListMembers | ShowHelp | SendSignal | Restart | Start
          | CloseInput | Quit)
Parsed = Action | Invalid

COMMANDS: dict[str, tuple[str, str]] = {
    "to": ("[NAME]", "send plain lines to NAME (or 'all') from now on; alone, show where"),
    "list": ("", "list the members with pid, state, uptime, restarts and last exit"),
    "signal": ("NAME SIG", "send signal SIG (TERM, INT, HUP, USR1, or a number) to NAME"),
    "restart": ("NAME", "stop NAME and start it again"),
    "start": ("NAME", "start NAME, declared with autostart = false, and wait until it is ready"),
    "close": ("NAME", "close NAME's stdin (it reads EOF)"),
    "quit": ("", "stop the cast"),
    "help": ("", "show this help"),
}

_ADDRESSED = re.compile(r"([A-Za-z0-9][A-Za-z0-9_.-]{0,63}):(?:[ \t]|$)(.*)", re.DOTALL)


def _usage(command: str) -> str:
    args = COMMANDS[command][0]
    return f":{command}{' ' + args if args else ''}"


def _unknown(name: str, members: Sequence[str], hint: str = "", *,
             all_too: bool = True) -> Invalid:
    """``no member named 'sever'; did you mean 'server'? (members: ...)``; ``all_too``:
    ``all`` would have been taken there (not by ``:restart`` or ``:start``)."""
    return Invalid(f"{UnknownMember(name, members, all_too=all_too)}{hint}")


_MEANT = {"stop": "quit", "exit": "quit", "status": "list", "ls": "list", "kill": "signal"}
"""What a command of the pipeplex command, or a common word, is called in the console."""


def parse_line(line: str, members: Sequence[str]) -> Parsed:
    """What the console line ``line`` (without its newline) asks for.

    ``members`` are the names of the cast. ``NAME: text`` addresses NAME (or ``all``) when
    the colon is followed by a space or ends the line; a word that is not a member there
    is an error, so a mistyped name never sends the line elsewhere. A leading backslash
    sends the rest as it is (``\\:x`` sends ``:x``, ``\\note: x`` sends ``note: x``).
    """
    if line.startswith("\\"):
        return SendLine(None, line[1:])
    if line.startswith(":"):
        return _parse_command(line[1:].split(), members)
    addressed = _ADDRESSED.fullmatch(line)
    if addressed:
        name, text = addressed[1], addressed[2]
        if name != ALL and name not in members:
            return _unknown(name, members, "; start the line with \\ to send it as it is")
        return SendLine(name, text)
    return SendLine(None, line)


def _parse_command(words: list[str], members: Sequence[str]) -> Parsed:
    if not words:
        return Invalid(f"a command follows the colon; {_command_list()}")
    command, args = words[0], words[1:]
    if command not in COMMANDS:
        close = _MEANT.get(command) or close_match(command, list(COMMANDS))
        if close is not None:
            return Invalid(f"unknown command ':{command}'; did you mean ':{close}'? "
                           f"({_command_list()})")
        return Invalid(f"unknown command ':{command}'; {_command_list()}")
    wanted = len(COMMANDS[command][0].split()) if "[" not in COMMANDS[command][0] else None
    if wanted is not None and len(args) != wanted:
        return Invalid(f"usage: {_usage(command)}")
    if command == "to" and len(args) > 1:
        return Invalid(f"usage: {_usage(command)}")
    name = args[0] if args else None
    if name is not None and name != ALL and name not in members:
        return _unknown(name, members, all_too=command not in ("restart", "start"))
    if command == "to":
        return SetTarget(name)
    if command == "list":
        return ListMembers()
    if command == "help":
        return ShowHelp()
    if command == "quit":
        return Quit()
    assert name is not None
    if command == "signal":
        try:
            return SendSignal(name, parse_signal(args[1]))
        except ValueError as exc:
            return Invalid(str(exc))
    if command == "restart":
        if name == ALL:
            return Invalid("restart one member at a time: :restart NAME")
        return Restart(name)
    if command == "start":
        if name == ALL:
            return Invalid("start one member at a time: :start NAME")
        return Start(name)
    return CloseInput(name)


def _command_list() -> str:
    return "commands: " + ", ".join(f":{c}" for c in COMMANDS)


def help_text(members: Sequence[str]) -> str:
    rows = [("NAME: text", "send a line to NAME ('all: text' for everyone)"),
            ("text", "send a line to the current target (\\text sends it as it is)"),
            *((_usage(c), about) for c, (_, about) in COMMANDS.items())]
    width = max(len(left) for left, _ in rows)
    lines = [f"{left.ljust(width)}  {about}" for left, about in rows]
    lines.append(f"members: {', '.join(members)}; Ctrl-C stops the cast, Ctrl-D ends the console")
    return "\n".join(lines)
