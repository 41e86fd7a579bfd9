"""A scenario as plain, validated data: the cast, its steps, and how to compare its output."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Literal

from .._regex import compile_regex
from ..cast.spec import CastSpec, ProcSpec, quoted
from ..cast.variables import with_stand_ins

__all__ = ("ACTIONS", "DEFAULT_TIMEOUT", "Action", "NormalizeRule", "Scenario", "Step")

Action = Literal[
    "send", "expect", "expect_not", "wait_exit", "signal", "close", "wait_port", "sleep",
    "interact", "start", "restart",
]
ACTIONS: tuple[Action, ...] = (
    "send", "expect", "expect_not", "wait_exit", "signal", "close", "wait_port", "sleep",
    "interact", "start", "restart",
)
DEFAULT_TIMEOUT = 10.0


@dataclass(frozen=True, slots=True)
class Step:
    """One ``[[step]]``: an action and its options.

    ``value`` is the action key's value: the text to send, the pattern, the member to wait
    for, the signal, the port or the seconds, as written (variables are expanded when the
    step runs). ``target`` is ``to`` or ``in``.
    """

    action: Action
    value: str
    source: str
    """``file:line`` of the step, for reports."""
    target: str | None = None
    timeout: float | None = None
    stream: Literal["stdout", "stderr"] | None = None
    code: int | None = None
    within: float | None = None
    newline: bool = True
    """A ``send`` step's text ends with a newline (``newline = false``: sent as written, a
    key press or a control character such as ``"\u0003"``)."""

    def captures(self) -> set[str]:
        """The variables an ``expect`` step captures (its named groups); none for another.
        Read from its pattern with a stand-in for each ``{variable}`` it uses, which is
        filled in only when it runs."""
        if self.action != "expect":
            return set()
        return set(compile_regex(with_stand_ins(self.value)).groupindex)

    def describe(self, value: str | None = None, *, secret: bool = False) -> str:
        """A short, readable form for reports: ``expect 'ready' in server``; with ``value``,
        what the step's ``{variables}`` made of it, when they changed it:
        ``send '{port}' (= '40312') to all``. ``secret``: a ``send`` that answered a
        password prompt, shown as stars, as its input record is (``send '*******' to db``)."""
        said = quoted(self.value) if self.action != "interact" else ""
        if secret:
            said = quoted("*" * len(value if value is not None else self.value))
        elif value is not None and value != self.value:
            said += f" (= {quoted(value)})"
        words = [self.action, said]
        if self.target:
            words.append(("to " if self.action in ("send", "signal") else "in ") + self.target)
        if self.stream:
            words.append(f"({self.stream})")
        if self.code is not None:
            words.append(f"with code {self.code}")
        if not self.newline:
            words.append("(no newline)")
        return " ".join(w for w in words if w)


@dataclass(frozen=True, slots=True)
class NormalizeRule:
    """A ``[[normalize]]`` rule for golden transcripts: regex ``pattern`` → ``replace``."""

    pattern: str
    replace: str


@dataclass(frozen=True, slots=True)
class Scenario:
    """A cast with steps, loaded from one file."""

    cast: CastSpec
    steps: tuple[Step, ...] = ()
    timeout: float = DEFAULT_TIMEOUT
    golden: str | None = None
    normalize: tuple[NormalizeRule, ...] = field(default=())
    path: str | None = None
    suspicions: tuple[str, ...] = ()
    skip: str | None = None
    """Why ``pipeplex test`` (and pytest) skip it (``skip = "needs postgres"``): not run,
    and counted apart. ``pipeplex run`` runs it all the same."""
    """What may explain a failure, found at load: a ``{name}`` close to a captured
    variable's name, which is sent as written (see the report's notes)."""

    @property
    def name(self) -> str:
        from pathlib import Path

        return Path(self.path).stem if self.path else "scenario"

    def scaled(self, factor: float) -> Scenario:
        """The scenario with every limit on a wait ``factor`` times as long, for a slower
        machine (``pipeplex test --timeout-factor``): its default, its steps' ``timeout``
        and ``within``, and its members' ``ready_timeout`` and ``ready_cmd_timeout``. A
        ``sleep`` stays as written."""
        if factor == 1:
            return self
        steps = tuple(replace(step, timeout=step.timeout and step.timeout * factor,
                              within=step.within and step.within * factor)
                      for step in self.steps)
        procs = tuple(_scaled(proc, factor) for proc in self.cast.procs)
        return replace(self, cast=replace(self.cast, procs=procs), steps=steps,
                       timeout=self.timeout * factor)


def _scaled(proc: ProcSpec, factor: float) -> ProcSpec:
    """``proc`` with its waits ``factor`` times as long (its check's only if it has one: a
    limit with nothing to limit is refused), and the factor kept for its messages."""
    scaled = replace(proc, ready_timeout=proc.ready_timeout * factor,
                     timeout_factor=proc.timeout_factor * factor)
    if proc.ready_cmd is None:
        return scaled
    return replace(scaled, ready_cmd_timeout=proc.ready_cmd_timeout * factor)
