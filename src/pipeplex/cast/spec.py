"""The validated description of a cast: plain, frozen data that the engine runs.

Variables captured by ``ready`` patterns (``(?P<port>\\d+)``) are substituted into later
members' commands, environment and input as ``{port}``. Substitution works on each
argument separately, so a variable can never add arguments. A ``shell = true`` command
never contains a value: the shell gets it in its environment (``PIPEPLEX_VAR_port``) and
``{port}`` becomes a quoted expansion of that variable, so the shell treats it as data.
"""

from __future__ import annotations

import functools
import re
import shlex
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from ..errors import SpawnError

__all__ = (
    "NAME_RE",
    "CastSpec",
    "OnExit",
    "ProcSpec",
    "PtyMode",
    "expand",
    "shell_script",
    "split_command",
    "variables_in",
)

PtyMode = Literal["stdout", "full", "pipes"]
OnExit = Literal["stop", "ignore", "restart"]

NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
RESERVED_NAMES = frozenset({"all"})

# `{name}` names a variable; `${name}` is left to the shell. Braces around anything that
# is not a captured variable stay as they are, so code such as f"{i}" passes through.
_VAR_RE = re.compile(r"(?<!\$)\{([A-Za-z_][A-Za-z0-9_]*)\}")

DEFAULT_GRACE = 5.0
"""Seconds a member may take to exit after SIGTERM before SIGKILL."""
DEFAULT_READY_TIMEOUT = 30.0
DEFAULT_MAX_RESTARTS = 5

SHELL_VAR_PREFIX = "PIPEPLEX_VAR_"
"""``{name}`` in a ``shell = true`` command reaches the shell as ``$PIPEPLEX_VAR_name``."""
SHELL = "/bin/sh"
ENV_PROGRAM = "/usr/bin/env"
"""Starts the shell with the variables it uses added to its environment."""


def variables_in(text: str) -> set[str]:
    """The names in ``{name}`` braces in ``text`` (variables or not)."""
    return {m[1] for m in _VAR_RE.finditer(text)}


def expand(text: str, variables: Mapping[str, str]) -> str:
    """Substitute ``{name}`` for each name in ``variables``; leave other braces alone."""
    if "{" not in text:
        return text
    return _VAR_RE.sub(lambda m: variables.get(m[1], m[0]), text)


# What ``{name}`` becomes in a shell command, by where it stands. Unquoted: one word, the
# value as is. Between double quotes: the expansion alone (quotes there would end the
# string). Between single quotes the shell expands nothing: the text stays as written, so a
# shell the command starts (sh -c '... {name}') expands it from the environment. In
# $((...)): the bare expansion (dash refuses quotes there), and only a whole number is let
# through, since bash evaluates the text of a variable in arithmetic (a[$(cmd)]).
_SHELL_FORMS = {
    "top": '"${%s}"', "subst": '"${%s}"', "backtick": '"${%s}"',
    "double": "${%s}", "single": '"${%s}"', "arith": "${%s}",
}
_WHOLE_NUMBER = re.compile(r"[+-]?[0-9]+")
_COMMENT_AFTER = frozenset(" \t\n;&|()<>")


def shell_script(cmd: str, variables: Mapping[str, str]) -> tuple[str, list[str]]:
    """``cmd`` for ``/bin/sh -c``, each ``{name}`` of a variable made an expansion of
    ``$PIPEPLEX_VAR_name``; and the names used, sorted (the caller puts their values in
    the shell's environment).

    Whatever a value holds, it never becomes part of the script: the shell only ever sees
    it as the result of an expansion, which it does not parse as code. The scanner below
    follows quotes, backslashes, comments, ``$(...)``, backticks and ``$((...))`` only to
    choose a form in which the value arrives intact; were it wrong, a value would still be
    data (split into words, or shown as ``"${PIPEPLEX_VAR_name}"``), never code.

    Raises:
        ValueError: a value used in ``$((...))`` is not a whole number.
    """
    found = {m.start(): m for m in _VAR_RE.finditer(cmd) if m[1] in variables}
    if not found:
        return cmd, []
    parts: list[str] = []
    used: set[str] = set()
    stack: list[list[Any]] = [["top", 0]]  # [kind, open parentheses]
    i, done, n = 0, 0, len(cmd)
    while i < n:
        frame = stack[-1]
        kind = frame[0]
        match = found.get(i)
        if match is not None:  # (never inside a comment or after a backslash: skipped)
            name = match[1]
            if kind == "arith" and not _WHOLE_NUMBER.fullmatch(variables[name]):
                raise ValueError(
                    f"{{{name}}} is used in $((...)), where the shell evaluates its text, "
                    f"and its value {variables[name]!r} is not a whole number")
            parts += (cmd[done:i], _SHELL_FORMS[kind] % (SHELL_VAR_PREFIX + name))
            used.add(name)
            i = done = match.end()
            continue
        c = cmd[i]
        if kind == "single":
            if c == "'":
                stack.pop()
            i += 1
            continue
        if c == "\\":
            i += 2
            continue
        if cmd.startswith("$((", i):
            stack.append(["arith", 0])
            i += 3
            continue
        if cmd.startswith("$(", i):
            stack.append(["subst", 0])
            i += 2
            continue
        if c == "`":
            if kind == "backtick":
                stack.pop()
            else:
                stack.append(["backtick", 0])
        elif kind == "double":
            if c == '"':
                stack.pop()
        elif c == '"':
            stack.append(["double", 0])
        elif c == "'":
            stack.append(["single", 0])
        elif kind == "arith":
            if c == "(":
                frame[1] += 1
            elif c == ")":
                if frame[1] == 0 and cmd.startswith("))", i):
                    stack.pop()
                    i += 1
                else:
                    frame[1] -= 1
        elif c == "#" and (i == 0 or cmd[i - 1] in _COMMENT_AFTER):
            end = cmd.find("\n", i)
            i = n if end < 0 else end
            continue
        elif kind == "subst":
            if c == "(":
                frame[1] += 1
            elif c == ")":
                if frame[1] == 0:
                    stack.pop()
                else:
                    frame[1] -= 1
        i += 1
    parts.append(cmd[done:])
    return "".join(parts), sorted(used)


@dataclass(frozen=True, slots=True)
class ProcSpec:
    """One member of the cast, as the user described it."""

    name: str
    cmd: str | tuple[str, ...]
    shell: bool = False
    env: Mapping[str, str] = field(default_factory=dict)
    cwd: str | None = None
    pty: PtyMode = "stdout"
    on_exit: OnExit = "stop"
    input: tuple[str, ...] = ()
    after: tuple[str, ...] = ()
    ready: str | None = None
    ready_port: str | None = None
    ready_timeout: float = DEFAULT_READY_TIMEOUT
    stop_timeout: float | None = None
    max_restarts: int = DEFAULT_MAX_RESTARTS
    autostart: bool = True
    """False: the member starts only when asked (a scenario's ``start`` step)."""
    source: str | None = None
    """Where the member was declared (``cast.toml:12`` or ``-p``), for messages."""

    @property
    def command_text(self) -> str:
        """The command as a user would type it, for messages."""
        return self.cmd if isinstance(self.cmd, str) else shlex.join(self.cmd)

    def argv(self, variables: Mapping[str, str] | None = None) -> list[str]:
        """The argument vector to execute, with variables substituted.

        A shell command that uses variables runs as ``/usr/bin/env PIPEPLEX_VAR_x=VALUE ...
        /bin/sh -c SCRIPT``: the values reach the shell in its environment, never in its
        script (see :func:`shell_script`).

        Raises:
            SpawnError: a value cannot be given to the shell safely (see :func:`shell_script`).
        """
        variables = variables or {}
        if self.shell:
            assert isinstance(self.cmd, str)
            try:
                script, used = shell_script(self.cmd, variables)
            except ValueError as exc:
                raise SpawnError(self.name, self.command_text, str(exc)) from None
            if not used:
                return [SHELL, "-c", script]
            values = [f"{SHELL_VAR_PREFIX}{name}={variables[name]}" for name in used]
            return [ENV_PROGRAM, *values, SHELL, "-c", script]
        words = split_command(self.cmd) if isinstance(self.cmd, str) else self.cmd
        return [expand(word, variables) for word in words]

    def referenced_variables(self) -> set[str]:
        texts = [self.command_text, *self.env.values(), *self.input]
        return set().union(*(variables_in(t) for t in texts))

    def captured_variables(self) -> set[str]:
        return set(re.compile(self.ready).groupindex) if self.ready else set()


@functools.lru_cache(maxsize=4096)
def split_command(cmd: str) -> tuple[str, ...]:
    """``cmd`` split as a shell would (``ValueError`` if it cannot be): once per command,
    not again when it is checked, started and restarted."""
    return tuple(shlex.split(cmd))


@dataclass(frozen=True, slots=True)
class CastSpec:
    """The whole cast, members in declaration order."""

    procs: tuple[ProcSpec, ...]
    path: str | None = None

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(p.name for p in self.procs)

    def __getitem__(self, name: str) -> ProcSpec:
        for proc in self.procs:
            if proc.name == name:
                return proc
        raise KeyError(name)

    def start_waves(self) -> list[list[ProcSpec]]:
        """Members grouped by dependency depth: wave N needs only waves before it.

        Members of one wave start together; stopping goes through the waves backwards.
        """
        depth: dict[str, int] = {}
        by_name = {p.name: p for p in self.procs}

        def depth_of(name: str) -> int:
            if name not in depth:
                deps = by_name[name].after
                depth[name] = 1 + max((depth_of(d) for d in deps), default=-1)
            return depth[name]

        waves: list[list[ProcSpec]] = []
        for proc in self.procs:
            d = depth_of(proc.name)
            while len(waves) <= d:
                waves.append([])
            waves[d].append(proc)
        return waves
