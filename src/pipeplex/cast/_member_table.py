"""A member's table (``[procs.NAME]``) read key by key: each key has its reader
(:data:`_READERS`), each on its own, so that every mistake in a table is found in one
reading, at the line of its key, with what to write instead. Apart from :mod:`.load`, which
reads the file's top level (``procs``, ``include``) and the ``-p`` options."""


from __future__ import annotations

import math
import os
import re
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from .._seconds import SECONDS_SAID, is_seconds, seconds_meant
from .._suggest import close_match, suggest
from ..errors import CastError, ours_in_tracebacks
from ._member_fields import (
    ON_EXIT,
    STDERR_MODES,
    STOP_SIGNAL_SAID,
    check_name,
    command_too_long,
    env_problem,
    ready_problem,
    stop_signal_of,
)
from .checks import Mistakes
from .spec import (
    ProcSpec,
    PtyMode,
    is_port,
    is_port_template,
    quoted,
    ready_regex,
    split_command,
    toml_value,
    variables_in,
)
from .variables import never_a_port

__all__ = ("PROC_KEYS", "for_member", "member_key_in_env", "proc_from_table", "suggest_key")
__tracebackhide__ = ours_in_tracebacks  # (pytest: see there)


_OTHER_TOOLS = {
    "restart": ('; a member restarts with on_exit = "restart", or on_failure = "restart" '
                "after a failure only (and max_restarts: how many times in a row)"),
    "depends_on": "; a member starts after others with after = [...] (once they are ready)",
    "environment": "; did you mean 'env'? (a table: env = { NAME = \"value\" })",
    "working_dir": "; did you mean 'cwd'?",
    "healthcheck": ("; a member's health check is ready_cmd (a command that exits with 0 "
                    "once it is ready), or ready_port"),
    "command": "; did you mean 'cmd'?",
}
"""Keys that other tools' files (docker compose, supervisord) use for what a member's keys
here do: the close spelling of another key would lead astray (restart: max_restarts)."""


def suggest_key(key: str, valid: Sequence[str]) -> str:
    """:func:`suggest`, or for ``golden`` (a top-level key written below a table's header,
    which TOML then reads as that table's) where to put it."""
    if key == "golden":
        return ("; golden is a top-level key: write it above the first table ([procs...] or "
                "[[step]]), as a key below a table's header belongs to that table")
    if key in ("step", "normalize", "defaults"):
        return (f"; a scenario's {key} goes in tables of its own: [[{key}]]"
                if key != "defaults" else "; [defaults] is a table of its own, above the "
                "members'")
    return suggest(key, valid)


def proc_from_table(
    name: str,
    table: Any,
    where: Callable[..., str | None],
    base_dir: Path | None,
    defaults: Mapping[str, Any],
) -> ProcSpec:
    """The member ``name`` from its ``table``, each key read on its own (a mistake in
    one does not hide the others'), ``where`` finding their lines."""
    here = where("procs", name)
    check_name(name, here)
    if isinstance(table, list) and table and all(isinstance(item, dict) for item in table):
        raise CastError(f"procs.{name} is written [[procs.{name}]], an array of tables: write "
                        f"[procs.{name}], in single brackets (a member is one table)",
                        source=here)
    if not isinstance(table, dict) and name in PROC_KEYS:  # ([procs] then cmd = ...)
        raise CastError(f"procs.{name} = {toml_value(table)} is a member's key written below "
                        "[procs] itself, where members go: name the member in the header, "
                        "[procs.NAME] (such as [procs.server]), and write its keys below it",
                        source=here)
    if not isinstance(table, dict):
        raise CastError(f"procs.{name} must be a table with at least cmd = ..., not "
                        f"{toml_value(table)}: write [procs.{name}] and cmd = ... on the next "
                        "line", source=here)
    mistakes = Mistakes()
    for key in table:
        if key not in PROC_KEYS:
            member = isinstance(table[key], dict) and "cmd" in table[key]  # ([procs.a.b])
            hint = (f"; for a member named {name}.{key}, quote the name: "
                    f"[procs.\"{name}.{key}\"]" if member and close_match(key, PROC_KEYS) is None
                    else _OTHER_TOOLS.get(key) or suggest_key(key, PROC_KEYS))
            mistakes.found.append(CastError(f"{name}: unknown key {key!r}{hint}",
                                            source=where("procs", name, key)))
    if "cmd" not in table:
        mistakes.found.append(CastError(f"{name}: missing cmd (the command to run)",
                                        source=here))
    read = _Read(name, table, where, base_dir, defaults)
    for key, reader in _READERS.items():
        if key in table:
            with mistakes.collecting():
                reader(read, key, table[key])
    mistakes.raise_any()
    sources = {key: found for key in table if (found := where("procs", name, key))}
    for variable in read.fields.get("env", {}):  # (for the warning of env_key_warnings)
        if variable in PROC_KEYS and (found := where("procs", name, "env", variable)):
            sources[f"env.{variable}"] = found
    fields = read.fields if "ready_cmd_timeout" in table else (
        for_member(read.fields, "ready_cmd" in read.fields))
    return ProcSpec(name=name, source=here, key_sources=sources, **fields,
                    file_folder=None if base_dir is None else os.fspath(base_dir))


def for_member(defaults: Mapping[str, Any], has_check: bool) -> Mapping[str, Any]:
    """Defaults given for every member, as they apply to one: a ``ready_cmd_timeout`` only
    to a member with a ``ready_cmd`` (elsewhere it is a limit with nothing to limit)."""
    if has_check or "ready_cmd_timeout" not in defaults:
        return defaults
    return {key: value for key, value in defaults.items() if key != "ready_cmd_timeout"}


class _Read:
    """A member's table being read key by key (:data:`_READERS`): the fields read so far,
    and the mistakes, worded, at the line of their key."""

    __slots__ = ("base_dir", "fields", "name", "table", "where")

    def __init__(self, name: str, table: dict[str, Any], where: Callable[..., str | None],
                 base_dir: Path | None, defaults: Mapping[str, Any]) -> None:
        self.name, self.table, self.where, self.base_dir = name, table, where, base_dir
        self.fields: dict[str, Any] = dict(defaults)

    def error(self, key: str, text: str, *keys: str) -> CastError:
        return CastError(f"{self.name}: {text}", source=self.where("procs", self.name, key, *keys))

    def bad(self, key: str, expected: str, choices: Sequence[str] = ()) -> CastError:
        value = self.table[key]
        close = None
        if isinstance(value, str) and choices:
            close = value.lower() if value.lower() in choices else close_match(value, choices)
        meant = f"; did you mean {close!r}?" if close is not None else ""
        if isinstance(value, str) and value.lower() in ("true", "false") and "true" in expected:
            meant = f"; write {value.lower()} without quotes, as TOML writes a yes or no"
        return self.error(key, f"{key} must be {expected}, not {toml_value(value)}{meant}")


def _read_cmd(read: _Read, key: str, cmd: Any) -> None:
    """``cmd``, and ``ready_cmd`` and ``stop_cmd`` likewise (which no ``shell = true``
    applies to)."""
    shell = key == "cmd" and read.table.get("shell") is True
    problem = command_too_long(cmd, shell=shell, key=key)
    if problem:
        raise read.error(key, problem)
    if isinstance(cmd, str) and cmd.strip():
        if not shell:  # a shell's script is the shell's to read
            try:
                split_command(cmd)
            except ValueError as exc:
                raise read.error(key, f"cannot split {key}: {exc}") from None
        read.fields[key] = cmd
    elif isinstance(cmd, list) and cmd and all(isinstance(w, str) for w in cmd):
        read.fields[key] = tuple(cmd)
    else:
        number = next(((place, word) for place, word in enumerate(cmd, start=1)
                       if isinstance(word, int | float) and not isinstance(word, bool)),
                      None) if isinstance(cmd, list) else None
        if number is not None:
            place, word = number
            raise read.error(key, f"argument {place} of {key} is the number {toml_value(word)}; "
                                  f'write it in quotes, "{toml_value(word)}": a command\'s '
                                  "arguments are text")
        raise read.bad(key, "a non-empty string or a list of strings")


def _read_shell(read: _Read, key: str, shell: Any) -> None:
    if not isinstance(shell, bool):
        raise read.bad(key, "true or false")
    if shell and isinstance(read.table.get("cmd"), list):  # (another cmd: said as its own)
        raise read.error(key, "shell = true needs cmd as one string")
    read.fields["shell"] = shell


def _read_env(read: _Read, key: str, env: Any) -> None:
    if not isinstance(env, dict):
        if isinstance(env, list) and env and all(
                isinstance(item, str) and "=" in item.lstrip("=") for item in env):
            # (NAME=value lines, as docker compose's list form and env files write them)
            table = toml_value(dict(item.split("=", 1) for item in env))
            raise read.error(key, f"env is a table, not a list: write env = {table}")
        raise read.bad(key, 'a table of strings or numbers, e.g. env = { LANG = "C", '
                            'WORKERS = 4 }')
    for variable, value in env.items():
        if isinstance(value, float) and not math.isfinite(value):
            raise read.error(key, f"env {variable} = {value}: a number here is finite (write "
                                  f'"{value}" in quotes if the text is meant)', variable)
        if not isinstance(value, str | int | float) or isinstance(value, bool):
            shown = variable if variable.isidentifier() else quoted(variable)
            # (No mapping of true and false is guessed: programs read them their own way.)
            forms = '"true" or "1"' if value is True else '"false", "0" or ""'
            hint = (f" (write it in quotes, in the form the program reads: {forms})"
                    if isinstance(value, bool) else "")
            if variable in PROC_KEYS:  # (written below [procs.NAME.env], not above it)
                hint = f" ({member_key_in_env(read.name, variable)})"
            raise read.error(key, f"env {shown} = {toml_value(value)}: a value is a string or "
                                  f"a number{hint}", variable)
        problem = env_problem(variable, str(value))
        if problem:
            raise read.error(key, f"env {problem}", variable)
    read.fields["env"] = {str(k): str(v) for k, v in env.items()}


def member_key_in_env(name: str, key: str) -> str:
    """Why a member's ``key`` is among its env variables, and what to write instead."""
    return (f"{key} is a member's key, which written below [procs.{name}.env] is one of "
            f"env's: a table's keys run to the next header; write {key} above "
            f"[procs.{name}.env], with {name}'s other keys")


def _read_cwd(read: _Read, key: str, folder: Any) -> None:
    if not isinstance(folder, str) or not folder:
        raise read.bad(key, "a folder path")
    try:
        cwd = Path(folder).expanduser()
    except RuntimeError:  # ~someone, and no such user
        raise read.error(key, f"cwd {folder!r} names a home folder of a user this machine "
                              "does not have") from None
    if read.base_dir is not None and not cwd.is_absolute():
        cwd = read.base_dir / cwd
    read.fields["cwd"] = os.fspath(cwd)


def _read_pty(read: _Read, key: str, value: Any) -> None:
    modes: dict[object, PtyMode] = {True: "full", False: "pipes", "stdout": "stdout"}
    if not (isinstance(value, bool) or value == "stdout"):
        raise read.bad(key, 'true (a full terminal), false (plain pipes) or "stdout"',
                       ("stdout",))
    read.fields["pty"] = modes[value]


def _read_choice(read: _Read, key: str, value: Any) -> None:
    choices, expected = _CHOICES[key]
    if value not in choices:
        if key == "on_exit" and isinstance(value, str) and (
                hint := _POLICIES_ELSEWHERE.get(value.lower().replace("_", "-"))):
            raise read.error(key, f"on_exit must be {expected}, not {toml_value(value)}{hint}")
        raise read.bad(key, expected, choices)
    read.fields[key] = value


_POLICIES_ELSEWHERE = {
    "on-failure": '; to restart after a failure only, write on_failure = "restart" (and '
                  'on_exit for an end with 0: "stop", "ignore")',
    "always": "; did you mean 'restart'?",
    "unless-stopped": "; did you mean 'restart'? (a member pipeplex stops is never restarted)",
    "no": "; did you mean 'stop' (the cast ends with it) or 'ignore' (the others go on)?",
}
"""Restart policies as docker compose and systemd write them, and what to write here."""


def _read_words(read: _Read, key: str, value: Any) -> None:
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise read.bad(key, "a list of strings")
    read.fields[key] = tuple(value)


def _read_ready(read: _Read, key: str, pattern: Any) -> None:
    if not isinstance(pattern, str) or not pattern:
        raise read.bad(key, "a regular expression")
    try:
        regex = ready_regex(pattern)
    except re.error as exc:
        raise read.error(key, f"invalid ready pattern {quoted(pattern)}: {exc}") from None
    if (problem := ready_problem(read.name, pattern, regex)) is not None:
        raise read.error(key, problem)
    read.fields["ready"] = pattern


def _read_ready_port(read: _Read, key: str, port: Any) -> None:
    if isinstance(port, int) and not isinstance(port, bool) and 0 < port < 65536:
        read.fields["ready_port"] = str(port)
    elif isinstance(port, str) and (is_port(port) or is_port_template(port)):
        read.fields["ready_port"] = port
    elif isinstance(port, str) and variables_in(port):
        raise read.error(key, never_a_port(key, port))
    else:
        raise read.bad(key, 'a TCP port number or a variable such as "{port}"')


def _read_seconds(read: _Read, key: str, value: Any) -> None:
    if not is_seconds(value):
        raise read.error(key, f"{key} must be {SECONDS_SAID}, not {toml_value(value)}"
                              f"{seconds_meant(value)}")
    read.fields[key] = float(value)


def _read_flag(read: _Read, key: str, value: Any) -> None:
    if not isinstance(value, bool):
        raise read.bad(key, "true or false")
    read.fields[key] = value


def _read_max_restarts(read: _Read, key: str, value: Any) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise read.bad(key, "a whole number, 0 or more")
    read.fields["max_restarts"] = value


def _read_stop_signal(read: _Read, key: str, value: Any) -> None:
    if not isinstance(value, str | int) or isinstance(value, bool) or (
            isinstance(value, int) and value <= 0):
        raise read.bad(key, STOP_SIGNAL_SAID)
    try:
        read.fields[key] = stop_signal_of(value)
    except ValueError as exc:
        raise read.error(key, f"stop_signal: {exc}") from None


_CHOICES: dict[str, tuple[tuple[str, ...], str]] = {
    "stderr": (STDERR_MODES, '"apart" (its own stream, marked !) or "stdout" (into stdout, '
                             "in the order written)"),
    "on_exit": (ON_EXIT, " or ".join(repr(v) for v in ON_EXIT)),
    "on_failure": (ON_EXIT, " or ".join(repr(v) for v in ON_EXIT)),
}


_READERS: dict[str, Callable[[_Read, str, Any], None]] = {
    "cmd": _read_cmd, "shell": _read_shell, "env": _read_env, "cwd": _read_cwd,
    "pty": _read_pty, "stderr": _read_choice, "on_exit": _read_choice, "on_failure": _read_choice,
    "input": _read_words,
    "after": _read_words, "ready": _read_ready, "ready_port": _read_ready_port,
    "ready_cmd": _read_cmd, "ready_cmd_timeout": _read_seconds, "ready_exit": _read_flag,
    "ready_timeout": _read_seconds, "stop_cmd": _read_cmd, "stop_timeout": _read_seconds,
    "stop_signal": _read_stop_signal, "autostart": _read_flag, "max_restarts": _read_max_restarts,
}
"""How each key of a member's table is read: each on its own, so that every mistake in a
table is found in one reading."""


PROC_KEYS = tuple(_READERS)
"""The keys a member may have."""
