"""Each member's own fields: what a loader refuses key by key as it reads a file, and
:func:`check_fields` refuses, in the same words, in a spec built in code. Apart from the
checks across members (:mod:`.checks`) and on this machine (:mod:`._programs`): these need
nothing but the one member, and the loaders use them one key at a time."""


from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from .._printable import quoted as shown
from .._seconds import SECONDS_SAID, is_seconds
from .._signals import parse_signal, signal_name
from ..errors import CastError, ours_in_tracebacks
from .spec import (
    DEFAULT_READY_CMD_TIMEOUT,
    HELPERS,
    MAX_ARGUMENT,
    NAME_RE,
    RESERVED_NAMES,
    HelperKey,
    OnExit,
    ProcSpec,
    PtyMode,
    StderrMode,
    is_port,
    is_port_template,
    matches_anywhere,
    quoted,
    ready_regex,
    split_command,
    variables_in,
)
from .variables import never_a_port, unusable_group

__all__ = ("ON_EXIT", "PTY_MODES", "STDERR_MODES", "STOP_SIGNAL_SAID", "check_fields",
           "check_name", "command_too_long", "env_problem", "ready_problem",
           "stop_signal_of")
__tracebackhide__ = ours_in_tracebacks  # (pytest: see there)


ON_EXIT: tuple[OnExit, ...] = ("stop", "ignore", "restart")


PTY_MODES: tuple[PtyMode, ...] = ("stdout", "full", "pipes")


STDERR_MODES: tuple[StderrMode, ...] = ("apart", "stdout")


def check_name(name: str, source: str | None) -> None:
    if not NAME_RE.fullmatch(name):
        raise CastError(
            f"invalid member name {shown(name)}: use 1 to 64 ASCII letters, digits, '_', '.' "
            "or '-', starting with a letter or digit",
            source=source,
        )
    if name.lower() in RESERVED_NAMES:
        reserved = name.lower()
        what = (f"the name {name!r} is reserved" if name == reserved else
                f"the name {name!r} reads as {reserved!r}, which is reserved")
        raise CastError(f"{what} ({RESERVED_NAMES[reserved]}); choose another", source=source)


def check_fields(proc: ProcSpec) -> None:
    """Refuse a member whose fields a loader would have refused (a spec built in code)."""
    if not isinstance(proc.name, str):
        raise CastError(f"invalid member name {proc.name!r}", source=proc.source)
    check_name(proc.name, proc.source)

    def bad(what: str, key: str = "cmd") -> CastError:
        return CastError(f"{proc.name}: {what}", source=proc.where(key))

    problem = command_too_long(proc.cmd, shell=proc.shell)
    if problem:
        raise bad(problem)
    if isinstance(proc.cmd, str):
        if not proc.cmd.strip():
            raise bad("the command is empty")
        if not proc.shell and proc.source is None:  # a loader split it already
            try:
                split_command(proc.cmd)
            except ValueError as exc:
                raise bad(f"cannot split the command: {exc}") from None
    elif proc.shell:
        raise bad("shell = true needs the command as one string")
    elif not proc.cmd or not all(isinstance(arg, str) for arg in proc.cmd):
        raise bad("cmd must be a string, or a non-empty list (or tuple) of strings")
    words = [proc.cmd] if isinstance(proc.cmd, str) else proc.cmd
    if any("\0" in word for word in words):
        raise bad("the command has a NUL character (\\u0000), which no command line can "
                  "carry")
    if proc.pty not in PTY_MODES:
        raise bad(f"pty must be one of {', '.join(map(repr, PTY_MODES))}, not {proc.pty!r}",
                  "pty")
    if proc.stderr not in STDERR_MODES:
        raise bad(f"stderr must be one of {', '.join(map(repr, STDERR_MODES))}, "
                  f"not {proc.stderr!r}", "stderr")
    if proc.on_exit not in ON_EXIT:
        raise bad(f"on_exit must be one of {', '.join(map(repr, ON_EXIT))}, "
                  f"not {proc.on_exit!r}", "on_exit")
    if proc.on_failure is not None and proc.on_failure not in ON_EXIT:
        raise bad(f"on_failure must be one of {', '.join(map(repr, ON_EXIT))} (or None: as "
                  f"on_exit), not {proc.on_failure!r}", "on_failure")
    for key in ("after", "input"):
        value = getattr(proc, key)
        if isinstance(value, str) or not all(isinstance(v, str) for v in value):
            raise bad(f"{key} must be a tuple of strings, not {value!r}", key)
    for key, value in proc.env.items():
        if not (isinstance(key, str) and isinstance(value, str)):
            raise bad(f"env names and values must be strings, not {key!r}: {value!r}", "env")
    for key, value in proc.env.items():
        problem = env_problem(key, value)
        if problem:
            raise bad(f"env {problem}", "env")
    if proc.ready is not None:
        if not isinstance(proc.ready, str):  # (a spec built by hand is not checked)
            raise bad(f"ready must be a regular expression as a string, not {proc.ready!r}",
                      "ready")
        try:
            regex = ready_regex(proc.ready)
        except re.error as exc:
            raise bad(f"ready is not a valid regular expression: {exc}", "ready") from None
        if (problem := ready_problem(proc.name, proc.ready, regex)) is not None:
            raise bad(problem, "ready")
    port = proc.ready_port
    if port is not None and not (
        isinstance(port, str)
        and (is_port_template(port) or is_port(port))
    ):  # one with a {variable} is checked once expanded, when the member gets ready
        if isinstance(port, str) and variables_in(port):
            raise bad(never_a_port("ready_port", port), "ready_port")
        raise bad(f"ready_port must be a TCP port number (1-65535) as a string, or a variable "
                  f"such as '{{port}}', not {port!r}", "ready_port")
    for helper in HELPERS:
        if getattr(proc, helper) is not None:
            _check_helper(proc, helper, bad)
    if not isinstance(proc.ready_exit, bool):
        raise bad(f"ready_exit must be true or false, not {proc.ready_exit!r}", "ready_exit")
    others = {"ready": "a line matches", "ready_port": "its port accepts connections",
              "ready_cmd": "its ready_cmd exits with 0"}
    if proc.ready_exit and (other := next(
            (key for key in others if getattr(proc, key) is not None), None)):
        when = others[other]
        raise bad(f"ready_exit = true cannot go with {other}: a member is ready either when "
                  f"it exits with 0 or when {when}; keep the one the members after it need",
                  "ready_exit")
    if proc.ready_cmd is None and ("ready_cmd_timeout" in proc.key_sources
                                   or proc.ready_cmd_timeout != DEFAULT_READY_CMD_TIMEOUT):
        raise bad("ready_cmd_timeout limits each run of a ready_cmd, and this member has "
                  "none: add its ready_cmd, or remove ready_cmd_timeout", "ready_cmd_timeout")
    for key in ("ready_timeout", "ready_cmd_timeout", "stop_timeout"):
        value = getattr(proc, key)
        if value is None and key == "stop_timeout":
            continue
        if not is_seconds(value):
            raise bad(f"{key} must be {SECONDS_SAID}, not {value!r}", key)
    stop = proc.stop_signal
    if isinstance(stop, str):  # (a loader reads the name to its number)
        raise bad(f"stop_signal is a signal's number here (signal.SIGINT), not {stop!r}",
                  "stop_signal")
    if not isinstance(stop, int) or isinstance(stop, bool) or stop <= 0:
        raise bad(f"stop_signal must be {STOP_SIGNAL_SAID}, not {stop!r}", "stop_signal")
    try:
        stop_signal_of(stop)
    except ValueError as exc:
        raise bad(f"stop_signal: {exc}", "stop_signal") from None
    if (not isinstance(proc.max_restarts, int) or isinstance(proc.max_restarts, bool)
            or proc.max_restarts < 0):
        raise bad(f"max_restarts must be a whole number, 0 or more, not {proc.max_restarts!r}",
                  "max_restarts")


_NO_STOP = {**{name: f"{name[3:]} would suspend a member rather than stop it"
               for name in ("SIGSTOP", "SIGTSTP", "SIGTTIN", "SIGTTOU")},
            "SIGCONT": "CONT only resumes a suspended process, and the stop sends it anyway"}
"""Signals that would not ask a member to stop, and what they would do instead."""

STOP_SIGNAL_SAID = 'a signal\'s name or number ("INT", "QUIT", "SIGTERM", 2)'


def stop_signal_of(value: str | int) -> int:
    """``value`` (``"INT"``, ``"SIGQUIT"``, ``"2"``, ``2``) as a ``stop_signal``.

    Raises:
        ValueError: worded for the user: no signal, or one that does not stop a program.
    """
    number = parse_signal(str(value))
    said = signal_name(number)
    if said in _NO_STOP:
        raise ValueError(f"{_NO_STOP[said]}; give a signal a program ends on (TERM, the "
                         "default, INT, QUIT, HUP...)")
    return number


def _check_helper(proc: ProcSpec, key: HelperKey,
                  bad: Callable[[str, str], CastError]) -> None:
    """What the loader refuses in a ``ready_cmd`` or ``stop_cmd`` (``key``;
    ``_member_table._read_cmd``), in the same words, for a spec built in code."""
    cmd = getattr(proc, key)
    problem = command_too_long(cmd, key=key)
    if problem:
        raise bad(problem, key)
    if (not (isinstance(cmd, str) and cmd.strip()) and not (
            isinstance(cmd, list | tuple) and cmd and all(isinstance(w, str) for w in cmd))):
        raise bad(f"{key} must be a non-empty string or a list of strings, not {cmd!r}", key)
    if isinstance(cmd, str):
        try:
            split_command(cmd)
        except ValueError as exc:
            raise bad(f"cannot split {key}: {exc}", key) from None
    if any("\0" in word for word in ([cmd] if isinstance(cmd, str) else cmd)):
        raise bad(f"{key} has a NUL character (\\u0000), which no command line can carry", key)


def command_too_long(cmd: object, *, shell: bool = False, key: str = "cmd") -> str | None:
    """Why Linux would refuse ``cmd`` (the member's ``key``), or None: a command string, or
    an argument of a list, of :data:`MAX_ARGUMENT` bytes or more. Said at load, before a
    string is split (which would take minutes), not when the member starts."""
    if isinstance(cmd, str):
        size = _bytes(cmd)
        if size < MAX_ARGUMENT:
            return None
        hint = (", and a shell's script is one: put the script in a file and run that file"
                if shell else ": write a longer command as a list of arguments, each under "
                "128 KiB")
        return (f"{key} is {size:,} bytes long; a command string must be under 128 KiB, as "
                f"Linux refuses an argument that long{hint}")
    if isinstance(cmd, list | tuple):
        for number, arg in enumerate(cmd, start=1):
            if isinstance(arg, str) and (size := _bytes(arg)) >= MAX_ARGUMENT:
                return (f"argument {number} of {key} is {size:,} bytes long, and Linux refuses "
                        "an argument of 128 KiB or more: put the text in a file and give "
                        "the program its name")
    return None


def _bytes(text: str) -> int:
    """How many bytes ``text`` takes on a command line, in UTF-8."""
    return len(text.encode("utf-8", "surrogatepass"))


def env_problem(key: str, value: str) -> str | None:
    """Why the environment cannot hold ``key=value``, or None: checked at load, since the
    spawn would refuse it only once the member starts."""
    if not key:
        return "has an empty variable name"
    if "=" in key or "\0" in key:
        char = "'='" if "=" in key else "a NUL character"
        return f"variable name {key!r} contains {char}, which no variable name may hold"
    if "\0" in value:
        return (f"variable {key} has a NUL character in its value, which the environment "
                "cannot hold")
    if (size := _bytes(key) + 1 + _bytes(value)) >= MAX_ARGUMENT:
        return (f"variable {key} is {size:,} bytes long with its name, and Linux refuses a "
                "variable of 128 KiB or more: put the text in a file and give the program "
                "its name")
    if key in ("PIPEPLEX_NAME", "PIPEPLEX_RUN_ID"):
        return (f"sets {key}, which pipeplex sets itself (it tells which member and run a "
                "process belongs to, and stops what the member started by it): remove it")
    return None


def ready_problem(name: str, pattern: str, regex: re.Pattern[str]) -> str | None:
    """What is surely a slip in a ``ready`` pattern, in words; None if nothing is."""
    if matches_anywhere(regex):
        return (f"ready {quoted(pattern)} matches where nothing was written, so {name} would "
                "be ready at its first output; make it match some text")
    if _needs_line_end(pattern):
        return (f"ready {quoted(pattern)} matches only across a line end (\\n), but it is "
                f"tried on one line of {name}'s output at a time, without its end, so it would "
                "never match; make it match within a line ($ matches at the line's end)")
    if (unusable := unusable_group(regex)) is not None:
        return f"ready {quoted(pattern)} {unusable}"
    return None


def _needs_line_end(pattern: str) -> bool:
    """Whether every match of ``pattern`` holds a ``\\n`` (``foo\\nbar``; not ``[^\\n]``,
    ``\\s``, nor ``(\\n)?``). Read from the pattern's parse (``re._parser``, Python's own):
    should a later Python change it, the check is left out rather than wrong."""
    try:
        from re import _parser  # type: ignore[attr-defined]

        return _requires_line_end(_parser.parse(pattern))
    except Exception:  # (a parse this check cannot read: no verdict, rather than a wrong one)
        return False


def _requires_line_end(items: Any) -> bool:
    for op, arg in items:
        kind = str(op)
        if kind == "LITERAL" and arg == ord("\n"):
            return True
        if kind == "SUBPATTERN" and _requires_line_end(arg[-1]):
            return True
        if kind in ("MAX_REPEAT", "MIN_REPEAT", "POSSESSIVE_REPEAT") and arg[0] >= 1 and (
                _requires_line_end(arg[2])):
            return True
        if kind == "BRANCH" and all(_requires_line_end(branch) for branch in arg[1]):
            return True
        if kind == "ATOMIC_GROUP" and _requires_line_end(arg):
            return True
        if kind == "ASSERT" and _requires_line_end(arg[1]):  # (a look around, on one line)
            return True
    return False
