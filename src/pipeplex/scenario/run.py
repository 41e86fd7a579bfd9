"""Run a scenario's steps against a running engine, one after the other.

Each step either succeeds or raises :class:`StepFailed`, which names the step (file and
line), what it waited for, for how long, and the member's recent output. Named groups in an
``expect`` pattern become variables for the steps after it, like those of ``ready``.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

from .._events import Note
from .._regex import compile_regex
from .._seconds import seconds_said
from .._signals import describe_returncode, parse_signal, signal_name
from ..cast.spec import expand, is_port, quoted, variables_in
from ..engine.engine import Engine
from ..errors import ExpectTimeout, PipeplexError, SignalRefused, UnexpectedExit
from ..expect import EOF, TIMEOUT, Expectation, Matcher
from ..inputs.router import ALL
from ..participants import Process
from ..readiness.lines import waits_for_prompt
from ..readiness.ports import LOOPBACK_SAID, PORT_POLL, port_accepts
from .model import Scenario, Step

__all__ = ("StepFailed", "StepResult", "run_steps", "stop_asked")


class StepFailed(PipeplexError):
    """A step did not do what it promised."""

    def __init__(self, step: Step, message: str, *, member: str | None = None,
                 waited: float = 0.0) -> None:
        self.step = step
        self.message = message
        self.member = member
        self.waited = waited
        self.value: str | None = None
        """What the step's ``{variables}`` made of its value (set by the runner)."""
        self.secret = False
        """A ``send`` that answered a password prompt (set by the runner)."""
        self.in_stop = False
        """The stop of the cast had begun when it failed (set by the runner): a stop
        asked for (a signal, ``pipeplex stop``) may be what failed it."""
        super().__init__(message)

    def __str__(self) -> str:
        said = self.step.describe(self.value, secret=self.secret)
        return f"{self.step.source}: {said}: {self.message}"


@dataclass(frozen=True, slots=True)
class StepResult:
    step: Step
    seconds: float
    error: StepFailed | None = None
    value: str | None = None
    """What the step's ``{variables}`` made of its value."""
    secret: bool = False
    """A ``send`` that answered a password prompt: reports show it as stars."""

    @property
    def ok(self) -> bool:
        return self.error is None


async def run_steps(
    scenario: Scenario,
    engine: Engine,
    matcher: Matcher,
    *,
    interactive: bool = False,
    on_result: Callable[[StepResult], None] = lambda result: None,
) -> list[StepResult]:
    """Run the steps in order; stop at the first failure (it is the last result), or
    before the next step once a person or a client asked the cast to stop (a signal,
    ``pipeplex stop``, ``:quit``): what was left of the script is theirs to cut short.

    ``interactive``: an ``interact`` step ends the steps and leaves the cast to the person
    (``pipeplex run``); otherwise ``interact`` steps are skipped (``pipeplex test``).
    """
    results: list[StepResult] = []
    capturers = _capturers(scenario)
    for step in scenario.steps:
        if step.action == "interact":
            if interactive:
                break
            continue
        if stop_asked(engine):
            break
        began = time.monotonic()
        value = None
        # (Looked at as it is sent: nothing awaits between here and the send.)
        targets = (engine.router.resolve(step.target)
                   if step.action == "send" and step.target is not None else [])
        secret = any(member.reads_secret for member in targets)
        if secret:
            _warn_of_plain_targets(engine, step, targets)
        try:
            value = _value(step, engine.variables, capturers)
            await _run_step(step, scenario, engine, matcher, value)
            result = StepResult(step, time.monotonic() - began, value=value, secret=secret)
        except StepFailed as exc:
            exc.value, exc.secret, exc.in_stop = value, secret, engine.stopping
            result = StepResult(step, time.monotonic() - began, exc, value=value, secret=secret)
        results.append(result)
        on_result(result)
        if result.error is not None:
            break
    return results


def stop_asked(engine: Engine) -> bool:
    """Whether the cast's stop began because a person or a client asked for it (a signal,
    ``pipeplex stop``, ``:quit``), rather than the cast coming to it on its own (a member's
    end, which a request that comes later does not undo)."""
    return engine.stopping and engine.stop_began_asked


async def _unless_the_cast_stops(work: Awaitable[object], engine: Engine) -> bool:
    """Carry out ``work`` unless the cast begins to stop first, which cancels it: whether
    it came to its end. (A sleep, or a port no member may open any more, is no longer
    worth waiting for then.)"""
    task = asyncio.ensure_future(work)
    try:
        await asyncio.wait((task, engine.state.stop), return_when=asyncio.FIRST_COMPLETED)
    finally:
        if not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
    if task.cancelled():
        return False
    task.result()  # (its error, if it failed)
    return True


async def _expect(step: Step, engine: Engine, matcher: Matcher, names: list[str], value: str,
                  timeout: float) -> Expectation:
    """An ``expect`` step's wait. With ``in``, the member's exit fails it at once. In any
    member's output, one that ends with 0 (its job done) leaves the others to write it; an
    exit with an error, or the last one of those that were running, fails it."""
    if step.target:
        blocked = engine.never_started_for(step.target)
        if blocked is not None:  # (it would time out: nothing can start it while we wait)
            why = "has" if blocked == step.target else f"starts after {blocked}, which has"
            raise StepFailed(step, f"{step.target} was never started: it {why} autostart = "
                                   f"false, and no start step started it", member=step.target)
        # A member that its policy restarts has not ended at an exit: the step waits for
        # its next run (up to its timeout; one that gives up is said in the report).
        restarts = engine.will_restart(step.target)
        return await matcher.expect(names, [value], timeout=timeout, stream=step.stream,
                                    watch_exits=() if restarts else None)
    running = [n for n in names if engine.members[n].running]
    deadline = time.monotonic() + timeout
    while True:
        try:
            return await matcher.expect(names, [value], stream=step.stream,
                                        timeout=max(deadline - time.monotonic(), 0.0),
                                        watch_exits=running)
        except UnexpectedExit as exc:
            # (One that had ended before the step: once nothing more can come of it, its
            # end ends the wait, as the cast's end would.)
            if exc.name not in running or exc.returncode != 0 or len(running) == 1:
                raise
            running.remove(exc.name)
        except ExpectTimeout as exc:  # (the whole wait, not its last part, is said)
            raise ExpectTimeout(exc.names, exc.patterns, timeout, exc.recent,
                                stream=exc.stream) from None


def _seen_before(engine: Engine, names: Sequence[str], pattern: str,
                 stream: str | None) -> str:
    """Why a pattern that timed out was not found in what the report shows, when one of
    the recent lines of ``names`` in ``stream`` (each marked as the stream marks it: ``| ``
    stdout, ``! `` stderr) would match it: an earlier expect read past that line (a prompt
    it matched ends in the middle of it), or the pattern's ``^`` asks for the start of a
    line where a prompt comes first. "" when none would."""
    lines = [line[2:] + "\n" for name in names for line in engine.recent.tail(name)
             if stream is None or (stream == "stderr") == line.startswith("! ")]
    if (len(names) == 1 and lines and waits_for_prompt(pattern)
            and _after_a_prompt(pattern, lines[-1])):
        # (Said first: what is awaited is more likely the latest line than one read past.)
        return (" (the last line below holds it, but not at its start, where ^ matches: two "
                "prompts on one line (`... >>> `) when a line was sent before the prompt it "
                "answers came, so expect each prompt before the next send; or after another "
                "prompt, say; leave the ^ out)")
    if any(re.search(pattern, line, re.MULTILINE) for line in lines):
        return (" (a line below matches: an earlier expect had read past it, or past its "
                "start, and each one reads on from where the one before matched)")
    if any(_after_a_prompt(pattern, line) for line in lines):
        return (" (a line below holds it, but not at its start, where ^ matches: after a "
                "prompt, say; leave the ^ out)")
    return ""


_PROMPT_BEFORE = re.compile(r"[>:#%$?.] ?$")
"""The end of a prompt (``calc> ``, ``... ``, ``$ ``), for what comes before a match."""


def _after_a_prompt(pattern: str, line: str) -> bool:
    """Whether ``line`` holds what ``pattern`` (``^...``) wants, but after a prompt: not
    after other text (``not ok 2`` is no ``^ok 2`` for want of a ``^``)."""
    if not pattern.startswith("^") or re.search(pattern, line, re.MULTILINE):
        return False
    found = re.search(pattern[1:], line, re.MULTILINE)
    return found is not None and _PROMPT_BEFORE.search(line[:found.start()]) is not None


def _capturers(scenario: Scenario) -> dict[str, str]:
    """Each variable the scenario captures, with what captures it (in words)."""
    capturers = {name: f"{proc.name}'s ready pattern captures it, and {proc.name} has not "
                       "been ready yet"
                 for proc in scenario.cast.procs for name in proc.captured_variables()}
    for step in scenario.steps:
        for name in step.captures():
            capturers.setdefault(name, "the expect step that captures it matched without "
                                       "its group")
    return capturers


def _value(step: Step, variables: dict[str, str], capturers: dict[str, str]) -> str:
    """The step's value with the variables captured so far. In a pattern a value stands
    for itself: a captured ``a.b`` matches ``a.b`` only, and ``a(b`` breaks nothing.
    Braces that name nothing captured yet stay as they are (code such as f"{x}" sent to
    a REPL), but not in a port to wait for: that step fails, saying what captures it."""
    unknown = sorted(variables_in(step.value) & capturers.keys() - variables.keys())
    if unknown and step.action == "wait_port":
        raise StepFailed(step, f"{{{unknown[0]}}} is not known yet: {capturers[unknown[0]]}")
    if step.action not in ("expect", "expect_not"):
        return expand(step.value, variables)
    pattern = expand(step.value, variables, quote=re.escape)
    try:
        compile_regex(pattern)
    except re.error as exc:  # (a {name} nothing captured, left as it is, where it cannot be)
        raise StepFailed(step, f"the pattern became {quoted(pattern)}, which is not a valid "
                               f"regular expression: {exc}") from None
    return pattern


async def _run_step(step: Step, scenario: Scenario, engine: Engine, matcher: Matcher,
                    value: str) -> None:
    """Carry out ``step`` (``value``: its value with the variables captured so far). What
    went wrong becomes a :class:`StepFailed` that says it in the scenario's words."""
    action = _STEP_ACTIONS.get(step.action)
    if action is None:  # (interact: done by the caller)
        return
    names = [step.target] if step.target and step.target != "all" else list(engine.members)
    run = _Run(engine, matcher, step.timeout or scenario.timeout, names)
    try:
        await action(step, value, run)
    except ExpectTimeout as exc:
        who = exc.names[0] if len(exc.names) == 1 else None
        earlier = scenario.steps[:scenario.steps.index(step)]
        hint = (_seen_before(engine, exc.names, value, step.stream)
                if step.action == "expect" and any(s.action == "expect" for s in earlier)
                else "")
        # (A prompt awaited of a member whose run wrote nothing: maybe one it writes on a
        # terminal only, which its silence then says.)
        silent = (who is not None and step.action == "expect"
                  and not engine.recent.latest_run(who))
        recent = engine.recent.describe(who, awaiting=value) if silent and who else exc.recent
        raise StepFailed(step, f"not seen within {seconds_said(exc.waited)} s{hint}\n{recent}",
                         member=who, waited=exc.waited) from None
    except UnexpectedExit as exc:
        how = describe_returncode(exc.returncode)
        when = (f"{exc.waited:.1f} s into this step" if exc.waited >= 0.05
                else "as this step began")
        if exc.output_held:  # (the exit may have come before: the output's end is what came)
            when = f"and its output, held open by a process it started, ended {when}"
            how += ","
        raise StepFailed(step, f"{exc.name} {how} {when}{_why_gone(engine, exc.name)}\n"
                         f"{exc.recent}", member=exc.name, waited=exc.waited) from None
    except StepFailed:
        raise
    except PipeplexError as exc:
        member = value if step.action in ("start", "restart") else step.target
        # The note goes on the summary line: the lines below it are the member's own output.
        summary, newline, evidence = str(exc).partition("\n")
        why = "" if engine.stop_reason and engine.stop_reason in summary else (
            _why_stopping(engine, member))
        raise StepFailed(step, f"{summary}{why}{newline}{evidence}", member=member) from None


class _Run:
    """What a step is carried out with: the engine, the matcher, its timeout, and the
    members it is about (its target; every member for none, or ``all``)."""

    __slots__ = ("engine", "matcher", "names", "timeout")

    def __init__(self, engine: Engine, matcher: Matcher, timeout: float,
                 names: list[str]) -> None:
        self.engine, self.matcher, self.timeout, self.names = engine, matcher, timeout, names


async def _send(step: Step, value: str, run: _Run) -> None:
    assert step.target is not None
    if not run.engine.router.send(step.target, (value + "\n" * step.newline).encode()):
        raise StepFailed(step, f"{step.target} is not running (or its stdin is closed)"
                               f"{_why_stopping(run.engine, step.target)}", member=step.target)


async def _expect_step(step: Step, value: str, run: _Run) -> None:
    found = await _expect(step, run.engine, run.matcher, run.names, value, run.timeout)
    if found.match is not None:
        # (A group the match leaves out leaves its variable as it was: a step's pattern may
        # share a name with a member's ready, which it must not blank.)
        run.engine.variables.update({k: v for k, v in found.match.groupdict().items()
                                     if v is not None})


async def _expect_not(step: Step, value: str, run: _Run) -> None:
    assert step.within is not None
    found = await run.matcher.expect(run.names, [value, EOF, TIMEOUT], timeout=step.within,
                                     stream=step.stream, watch_exits=[])
    if found.index == 0:
        raise StepFailed(step, f"it appeared in the output of {found.name}: "
                         f"{found.after!r}\n{run.engine.recent.describe(found.name)}",
                         member=found.name)


async def _wait_exit(step: Step, value: str, run: _Run) -> None:
    engine, timeout = run.engine, run.timeout
    process = engine.members[value]
    if process.pid is None:
        raise StepFailed(step, f"{value} was never started", member=value)
    started = process.started_at  # (the run waited for: a restart may follow its end first)
    try:
        code = await asyncio.wait_for(asyncio.shield(process.done_future), timeout)
    except TimeoutError:
        raise StepFailed(step, f"{value} was still running after {seconds_said(timeout)} s\n"
                         f"{engine.recent.describe(value)}", member=value,
                         waited=timeout) from None
    if step.code is None:
        return
    if code != step.code:
        hint = (f" (a death by {signal_name(-code)} is code = {code})"
                if code < 0 and step.code == 128 - code else "")
        raise StepFailed(step, f"{value} {describe_returncode(code)}, expected code "
                         f"{step.code}{hint}{_why_stopping(engine, value)}\n"
                         f"{engine.recent.describe(value)}", member=value)
    ended = process.last_run
    if started is not None and ended is not None and ended[0] == started:
        engine.exit_checked(value, started, ended[1])  # (as expected: not a failure)


async def _signal(step: Step, value: str, run: _Run) -> None:
    assert step.target is not None
    try:
        reached = run.engine.router.signal(step.target, parse_signal(value))
    except SignalRefused as exc:
        raise StepFailed(step, str(exc), member=step.target) from None
    if not reached:
        raise StepFailed(step, f"{step.target} is not running"
                               f"{_why_stopping(run.engine, step.target)}", member=step.target)


async def _close(step: Step, value: str, run: _Run) -> None:
    if value != ALL and run.engine.members[value].pid is None:  # (its stdin is still to come)
        raise StepFailed(step, f"{value} was never started: there is no stdin of it to close",
                         member=value)
    run.engine.router.close_input(value)


async def _wait_port(step: Step, value: str, run: _Run) -> None:
    if not is_port(value):
        raise StepFailed(step, f"{value!r} is not a TCP port number (1-65535)")
    began = time.monotonic()
    if run.engine.stopping:  # (before this step began: one look, as nothing opens it now)
        with contextlib.suppress(TimeoutError):
            return await asyncio.wait_for(port_accepts(int(value)), PORT_POLL)
        raise StepFailed(step, f"nothing accepted connections on port {value} of "
                         f"{LOOPBACK_SAID} as this step began"
                         f"{_why_stopping(run.engine, None)}")
    try:
        accepted = await _unless_the_cast_stops(
            asyncio.wait_for(port_accepts(int(value)), run.timeout), run.engine)
    except TimeoutError:
        raise StepFailed(step, f"nothing accepted connections on port {value} of "
                         f"{LOOPBACK_SAID} within {seconds_said(run.timeout)} s",
                         waited=run.timeout) from None
    if not accepted:
        waited = time.monotonic() - began
        when = f"{waited:.1f} s into this step" if waited >= 0.05 else "as this step began"
        raise StepFailed(step, f"nothing accepted connections on port {value} of "
                         f"{LOOPBACK_SAID} before the cast began to stop, {when}"
                         f"{_why_stopping(run.engine, None)}", waited=waited)


async def _sleep(step: Step, value: str, run: _Run) -> None:
    """A pause, cut short when the cast begins to stop: the steps after it then meet the
    cast as it is (what they wait for may have come before its end). Cut short by a stop
    that a person or a client asked for, it did not pass: the script ends there."""
    began = time.monotonic()
    if not await _unless_the_cast_stops(asyncio.sleep(float(value)), run.engine) and (
            stop_asked(run.engine)):
        raise StepFailed(step, f"cut short {time.monotonic() - began:.1f} s into it"
                               f"{_why_stopping(run.engine, None)}")


async def _restart(step: Step, value: str, run: _Run) -> None:
    """Stop the member as the cast's stop would, start it again, and wait until its new
    run is ready (as a start step waits for its first)."""
    try:
        async with asyncio.timeout(run.timeout):
            await run.engine.restart(value)
            if not await run.engine.wait_up_again(value):
                raise StepFailed(step, run.engine.why_not_up_again(value), member=value)
    except TimeoutError:
        raise StepFailed(step, f"{value} was not ready again within {seconds_said(run.timeout)} s"
                         f"{_waiting(run.engine, value)}\n"
                         f"{run.engine.recent.describe(value)}", member=value,
                         waited=run.timeout) from None


async def _start(step: Step, value: str, run: _Run) -> None:
    try:
        await asyncio.wait_for(run.engine.start(value, f'a restart = "{value}" step'),
                               run.timeout)
    except TimeoutError:
        raise StepFailed(step, f"{value} was not ready within {seconds_said(run.timeout)} s"
                         f"{_waiting(run.engine, value)}\n"
                         f"{run.engine.recent.describe(value)}", member=value,
                         waited=run.timeout) from None


def _waiting(engine: Engine, name: str) -> str:
    """What ``name`` was still waiting for to be ready, for a step that gave up on it."""
    waiting = engine.waiting_for(name)
    return f", waiting for {waiting}" if waiting else ""


_STEP_ACTIONS: dict[str, Callable[[Step, str, _Run], Awaitable[None]]] = {
    "send": _send, "expect": _expect_step, "expect_not": _expect_not, "wait_exit": _wait_exit,
    "signal": _signal, "close": _close, "wait_port": _wait_port, "sleep": _sleep,
    "start": _start, "restart": _restart,
}
"""How each action is carried out (``interact`` is the caller's: it hands the run over)."""


def _warn_of_plain_targets(engine: Engine, step: Step, targets: Sequence[Process]) -> None:
    """A password (a target's terminal does not echo) sent to members of which some read
    it as plain text: their input record, and what they echo of it, keep it, where the
    step is said in stars."""
    plain = [member.name for member in targets if not member.reads_secret]
    if plain:
        reader = next(member.name for member in targets if member.reads_secret)
        engine.bus.publish(Note(
            f"{step.source}: the password sent to {step.target} also reaches "
            f"{', '.join(plain)}, which read{'s' if len(plain) == 1 else ''} it as text: "
            f"{'its' if len(plain) == 1 else 'their'} records and echo keep it; send it to "
            f"{reader} alone", level="warning"))


def _why_gone(engine: Engine, name: str | None) -> str:
    """What else a failure must say: that ``name`` will not be started again, and why (a
    member it starts after ended for good); or why the cast is stopping (see
    :func:`_why_stopping`)."""
    held = engine.outcomes.ended_for_good.get(name, "") if name is not None else ""
    if held.startswith("which was not started"):
        return f"; it {held.removeprefix('which ')}"
    return _why_stopping(engine, name)


def _why_stopping(engine: Engine, name: str | None) -> str:
    """Why the cast is stopping, when that is not the step's own doing (a member with
    on_exit = "stop" that ended) nor the failure of ``name`` being said: a member that could
    not get ready stops the cast, and that is the failure itself."""
    if engine.stopping and engine.stop_reason and (name is None or engine.stopped_by != name):
        return f" (the cast was stopping: {engine.stop_reason})"
    return ""
