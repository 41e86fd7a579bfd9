"""The validated description of a cast: plain, frozen data that the engine runs.

Variables captured by ``ready`` patterns (``(?P<port>\\d+)``) are substituted into later
members' commands, environment and input as ``{port}``. Substitution works on each
argument separately, so a variable can never add arguments or reach a shell unasked.
"""

from __future__ import annotations

import functools
import re
import shlex
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

__all__ = (
    "NAME_RE",
    "CastSpec",
    "OnExit",
    "ProcSpec",
    "PtyMode",
    "expand",
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


def variables_in(text: str) -> set[str]:
    """The names in ``{name}`` braces in ``text`` (variables or not)."""
    return {m[1] for m in _VAR_RE.finditer(text)}


def expand(text: str, variables: Mapping[str, str]) -> str:
    """Substitute ``{name}`` for each name in ``variables``; leave other braces alone."""
    if "{" not in text:
        return text
    return _VAR_RE.sub(lambda m: variables.get(m[1], m[0]), text)


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
        """The argument vector to execute, with variables substituted."""
        variables = variables or {}
        if self.shell:
            assert isinstance(self.cmd, str)
            return ["/bin/sh", "-c", expand(self.cmd, variables)]
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
