"""The Python API: a cast you build in code, and pexpect's names across several members.

``AsyncPlex`` is native asyncio; ``Plex`` (``sync_plex.py``) is the same API for synchronous
code, running this one's loop in a background thread. Leaving the ``with`` block stops every
member (close stdin, SIGTERM, grace, SIGKILL) and a guardian process makes sure nothing
outlives it even if the interpreter dies.

This module holds what a caller asks of the plex; how it starts, serves and closes the
engine under those calls is in ``_hosting.py``.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import os
import re
import signal
from collections.abc import Callable, Mapping, Sequence
from collections.abc import Set as AbstractSet
from typing import TYPE_CHECKING

from .._events import SHOWN, InputSent
from ..cast._member_fields import check_fields, check_name, stop_signal_of
from ..cast._programs import check_commands
from ..cast.spec import CastSpec, ProcSpec, StderrMode, split_command
from ..engine.engine import DEFAULT_GRACE
from ..errors import (
    ArgumentError,
    CastError,
    ExpectTimeout,
    PipeplexError,
    UnexpectedExit,
    ours_in_tracebacks,
)
from ..expect.patterns import Pattern
from ..output.merged import MergedTranscript
from ..output.render import Renderer
from ..scenario import load_scenario, run_steps
from ..scenario.model import Scenario
from ._hosting import EngineHost
from .arguments import (
    Patterns,
    PtyOption,
    call_timeout,
    environment_of,
    not_a_member,
    path_of,
    patterns_of,
    positive_seconds,
    pty_mode,
    ready_text,
)
from .async_member import AsyncMember, Members

if TYPE_CHECKING:
    from .sync_plex import Plex

__all__ = ("DEFAULT_TIMEOUT", "AsyncPlex")
__tracebackhide__ = ours_in_tracebacks  # (pytest: see there)

DEFAULT_TIMEOUT = 30.0

STARTED: list[Callable[[AsyncPlex | Plex], None]] = []
"""Told of every plex once it has started, as its caller holds it (a :class:`Plex`, not
the AsyncPlex it runs), in the caller's thread: the pytest plugin, for the casts a test
used, whose transcripts its failure report shows, and those it left open."""


class AsyncPlex(EngineHost):
    """A cast built in code. Use ``async with AsyncPlex() as plex:``.

    Args:
        run_dir: also open this run folder: ``NAME.in`` per member, ``all.in`` and
            ``control.sock``, so ``pipeplex send/status/attach --run-dir DIR`` and
            ``echo hi > DIR/NAME.in`` reach the members while the code drives them.
        transcript: also record every event as JSON Lines in this file.
        grace: seconds between SIGTERM and SIGKILL when stopping a member.
        pty: default terminal mode of members ("stdout", True for a full terminal, False
            for pipes).
        timeout: default seconds for :meth:`AsyncMember.expect` and :meth:`AsyncMember.wait`.
    """

    def __init__(
        self,
        *,
        run_dir: str | os.PathLike[str] | None = None,
        transcript: str | os.PathLike[str] | None = None,
        grace: float = DEFAULT_GRACE,
        pty: PtyOption = "stdout",
        timeout: float = DEFAULT_TIMEOUT,
        env: Mapping[str, str] | None = None,
    ) -> None:
        """``env``: names and values every member's environment gets (a member's own
        ``env`` wins).

        Raises:
            ValueError: a timeout or grace that is not a positive number of seconds, a
                ``pty`` that is not one of the three modes, a ``run_dir`` or
                ``transcript`` that is not a path, or an ``env`` that no environment can
                hold.
        """
        self.timeout = positive_seconds(timeout, "timeout", none_ok=False) or DEFAULT_TIMEOUT
        grace = positive_seconds(grace, "grace", none_ok=False) or DEFAULT_GRACE
        pty_mode(pty)
        self.pty = pty
        super().__init__(grace=grace, transcript=path_of(transcript, "transcript"),
                         run_dir=path_of(run_dir, "run_dir"), env=environment_of(env))
        self._merged = MergedTranscript(Renderer([], sanitize=False))
        self.bus.subscribe(self._merged, (*SHOWN, InputSent))
        self._members: Members[AsyncMember] = Members()
        self._captures: dict[str, tuple[ProcSpec, frozenset[str]]] = {}
        """Per member added whose ``ready`` captures variables: its spec, and those."""
        self._scenario: Scenario | None = None
        self._let_go_failed: list[AsyncMember] = []
        """Members let go of (removed, or their name taken again) that had failed on their
        own: the pytest plugin says those a test never looked at, as it does the others."""

    def __repr__(self) -> str:
        # (Stopped also once its engine stops, which a member's give-up does: it runs
        # nothing more, though the plex is open until closed.)
        state = ("not started" if self._run is None else "running" if not (
            self._run.done() or self.engine.stopping) else "stopping" if any(
                member._process.running for member in self._members.values()) else "stopped")
        counts: dict[str, int] = {}
        for member in self._members.values():
            process = member._process
            kind = ("exited" if process.returncode is not None
                    else "running" if process.running else process.state)
            counts[kind] = counts.get(kind, 0) + 1
        each = ", ".join(f"{n} {kind}" for kind, n in counts.items())
        count = len(self._members)
        return (f"<AsyncPlex {state}, {count} member{'' if count == 1 else 's'}"
                f"{': ' + each if each else ''}>")

    @property
    def members(self) -> Mapping[str, AsyncMember]:
        return self._members

    @property
    def variables(self) -> dict[str, str]:
        """What the members' ``ready`` patterns captured (a named group: ``{"port":
        "40312"}``), each from its member's latest ready run: a copy. A later ``spawn``'s
        ``cmd`` and ``env``, and a loaded cast's steps, use them as ``{port}``."""
        return dict(self.engine.variables)

    def __getitem__(self, name: str) -> AsyncMember:
        try:
            return self._members[name]
        except KeyError:
            raise not_a_member(name, self._members) from None

    def transcript(self, since: float | None = None) -> str:
        """The merged stream so far (its last megabyte), as a person would read it; with
        ``since`` (a ``time.time()``), only what came from then on.

        Raises:
            ValueError: ``since`` is not a number of seconds (nor None).
        """
        if since is not None and (isinstance(since, bool)
                                  or not isinstance(since, int | float) or math.isnan(since)):
            raise ArgumentError(f"since is a time.time(), not {since!r}")
        return self._merged.text(since)

    async def __aenter__(self) -> AsyncPlex:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def start(self) -> None:
        """Start the (empty) cast; :meth:`spawn` and :meth:`load` add members.

        Raises:
            RunDirError: ``run_dir`` cannot be used.
            PipeplexError: the transcript cannot be written, or the plex already started.
        """
        await self._start_engine()
        if not self._threads:  # (a Plex tells of itself)
            for tell in STARTED:
                tell(self)

    def _captured(self) -> set[str]:
        """The variables the plex has, and those its members capture (or will, once
        ready): what a member added now may use in its command."""
        return {*self.engine.variables, *(var for captured in self._capturers().values()
                                          for var in captured)}

    def _capturers(self) -> dict[str, frozenset[str]]:
        """The members whose ``ready`` captures variables, and those variables. (Kept as
        they are added: a spawn looked at every member's pattern, ended ones too, so that a
        plex's spawns took longer the more members it had spawned: 13 ms at 8000.)"""
        members = self.engine.members
        return {name: captured for name, (spec, captured) in self._captures.items()
                if (member := members.get(name)) is not None and member.spec is spec}

    def _check_variables_known(self, procs: Sequence[ProcSpec],
                               captured_there: AbstractSet[str] = frozenset()) -> None:
        """Refuse a ``{name}`` whose value is not known yet: one a member of the plex
        captures once it is ready, and is not yet (spawned at the same time, from another
        task or thread), or one the new member captures itself. It would run with the text
        ``{name}``, as for braces no member fills; a cast file refuses it in the same way,
        for a member that does not start ``after`` the one that captures it.
        ``captured_there``: what a loaded file's members capture (its own checks see to
        those)."""
        engine = self.engine
        for spec in procs:
            # One member captures a name, as in a cast file: a restart of a member that
            # starts after it takes that member's value, never another's of the same name.
            capturers = self._capturers()
            for var in sorted(spec.captured_variables()):
                other = next((name for name, captured in capturers.items()
                              if name != spec.name and var in captured), None)
                if other is not None:
                    own = re.sub(r"\W", "_", f"{spec.name}_{var}")  # (a group's name is a word)
                    raise CastError(f"{spec.name}: its ready captures {{{var}}}, which {other} "
                                    "captures already; one member only may capture a name: "
                                    f"give the group a name of its own (?P<{own}>...), or "
                                    f"remove {other} first", source=spec.source)
            unknown = spec.referenced_variables() - engine.variables.keys() - captured_there
            for var in sorted(unknown):
                if var in spec.captured_variables():
                    raise CastError(f"{spec.name}: uses {{{var}}}, which it captures itself; a "
                                    "captured value is known once its member is ready, so "
                                    "only members spawned after it can use it",
                                    source=spec.source)
                provider = next((name for name, captured in capturers.items()
                                 if var in captured), None)
                if provider is not None:
                    raise CastError(f"{spec.name}: uses {{{var}}}, which {provider} captures "
                                    "once it is ready, and it has not been ready yet: start "
                                    f"{spec.name} once {provider}'s spawn has returned",
                                    source=spec.source)

    def _check_can_add(self, name: str) -> None:
        engine = self.engine
        if engine.stopping:
            reason = engine.stop_reason
            raise PipeplexError(f"cannot add {name!r}: the plex has stopped"
                                f"{f' ({reason})' if reason else ''}; it runs no member any "
                                "more")
        engine.check_can_add(name)  # a name is free again once its member has ended

    def _add(self, spec: ProcSpec, *, alone: bool = False) -> AsyncMember:
        """Add ``spec`` to the running cast (``alone``: a spawn, let go of if it fails)."""
        engine = self.engine
        self._check_can_add(spec.name)
        if self._inputs is not None:
            self._inputs.add(spec.name)  # before the member starts: nothing sent is lost
        if spec.name in engine.members:
            # What the ended member's leftovers still hold goes out first, then is skipped.
            engine.members[spec.name].release_output()
            self._skip_output(spec.name)
            earlier = self._members.get(spec.name)
            if earlier is not None:
                earlier._replaced = True
                self._keep_if_failed(earlier)
        member = self._members[spec.name] = AsyncMember(
            self, engine.add(spec, let_go_on_failure=alone))
        self._captures.pop(spec.name, None)
        if captured := spec.captured_variables():
            self._captures[spec.name] = (spec, frozenset(captured))
        return member

    def _skip_output(self, name: str) -> None:
        """A name used again: the new member's expectations start after what the ended
        member wrote (which stays in the transcript), as for a fresh pexpect child."""
        end = [re.compile(r"\Z")]
        for stream in (None, "stdout", "stderr"):
            self.matcher.buffer(name, stream).search(end)

    async def spawn(
        self,
        name: str,
        cmd: str | os.PathLike[str] | Sequence[str | os.PathLike[str]],
        *,
        env: Mapping[str, str] | None = None,
        cwd: str | os.PathLike[str] | None = None,
        pty: PtyOption | None = None,
        stderr: StderrMode = "apart",
        shell: bool = False,
        ready: str | re.Pattern[str] | None = None,
        ready_timeout: float | None = None,
        stop_signal: int | str = signal.SIGTERM,
        background: bool = False,
    ) -> AsyncMember:
        """Start a member and return its handle (once it runs, and is ready if ``ready``).

        ``cmd`` is a list of arguments, or a string split like a shell would (run through
        ``/bin/sh -c`` only with ``shell=True``).

        A name may be used again once its member has ended (exited, or failed to start or
        get ready): the new member takes the name, and its expectations start after what the
        old one wrote.

        ``stderr="stdout"`` sends its stderr to its stdout: one stream, in the order the
        program wrote it (two streams may come in either order), with nothing on "stderr".

        ``ready`` is a regular expression (a str, or a compiled str pattern: its flags
        apply); ``ready_timeout`` how long it may take to show (the plex's ``timeout`` unless
        given).

        ``stop_signal``: what its stop sends in SIGTERM's place (``signal.SIGINT``,
        ``"INT"``), as a cast's ``stop_signal``; SIGKILL follows after the plex's grace.

        ``background``: it is meant to run until the plex closes, as a loaded cast's members
        do (a server the test's clients talk to), so the pytest plugin does not report it as
        left running.

        Raises:
            CastError: a bad name, ``ready``, ``ready_timeout`` (also one without
                ``ready``) or ``stop_signal``, or the program does not exist.
            ValueError: ``ready`` is neither a str nor a compiled str pattern.
            PipeplexError: a member of that name exists and has not ended.
            SpawnError: the program could not be started.
            NotReady: it exited, or ``ready`` did not show within ``ready_timeout``; the
                member has been stopped (its name is free again), the others go on.
        """
        self._check_loop()
        if not isinstance(name, str):
            raise ArgumentError(f"a member's name is a str, not {name!r}")
        check_name(name, None)
        for flag, value in (("background", background), ("shell", shell)):
            if not isinstance(value, bool):  # (shell="no" would run through /bin/sh)
                raise ArgumentError(f"{name}: {flag} is True or False, not {value!r}")
        if env is not None and not isinstance(env, Mapping):
            raise ArgumentError(f"{name}: env is a mapping of names to values, as "
                                f"{{'DEBUG': '1'}}, not {env!r}")
        ready = ready_text(ready)
        cwd = path_of(cwd, "cwd")
        if ready is None and ready_timeout is not None:
            raise CastError(f"{name}: ready_timeout is how long ready may take to show; give "
                            "ready too", source="spawn()")
        if isinstance(cmd, os.PathLike):  # (a program alone, as subprocess takes it)
            cmd = [cmd]
        if (isinstance(cmd, Mapping | AbstractSet | bytes | bytearray)
                or not isinstance(cmd, str | Sequence)):
            # (a dict would give its keys; a set, its words in any order; bytes, numbers)
            raise ArgumentError(f"{name}: cmd is a list of arguments, a Path or a string, not "
                                f"a value of type {type(cmd).__name__}")
        if not isinstance(cmd, str):
            wrong = next((arg for arg in cmd if not isinstance(arg, str | os.PathLike)), None)
            if wrong is not None:
                raise ArgumentError(f"{name}: each argument of cmd is a string or a Path, not a "
                                    f"value of type {type(wrong).__name__} ({wrong!r})")
        if not cmd or (isinstance(cmd, str) and not cmd.strip()):
            raise CastError(f"{name}: the command is empty", source="spawn()")
        if isinstance(cmd, str) and not shell:
            try:
                split_command(cmd)
            except ValueError as exc:
                raise CastError(f"{name}: cannot split the command: {exc} (pass a list of "
                                "arguments instead)", source="spawn()") from None
        if isinstance(stop_signal, str):
            try:
                stop_signal = stop_signal_of(stop_signal)
            except ValueError as exc:
                raise CastError(f"{name}: stop_signal: {exc}", source="spawn()") from None
        spec = ProcSpec(
            name=name,
            cmd=cmd if isinstance(cmd, str) else tuple(  # (a Path, as subprocess takes it)
                os.fspath(arg) if isinstance(arg, os.PathLike) else arg for arg in cmd),
            shell=shell,
            env=dict(env or {}),
            cwd=cwd,
            pty=pty_mode(self.pty if pty is None else pty),
            stderr=stderr,
            on_exit="ignore",
            ready=ready,
            ready_timeout=self.timeout if ready_timeout is None else ready_timeout,
            stop_signal=stop_signal,
            source="spawn()",
        )
        check_fields(spec)  # a bad ready pattern or ready_timeout, as in a cast
        check_commands(CastSpec((spec,)), self._captured())
        self._check_can_add(name)
        await self.engine.stop_leftovers(name)  # an ended member's, before its name is reused
        self._check_variables_known([spec])  # (now: a member spawned meanwhile may capture it)
        member = self._add(spec, alone=True)
        member.background = background
        try:
            if not await self.engine.wait_ready(name):
                raise PipeplexError(f"{name}: the plex was stopped before it was "
                                    f"{'ready' if ready else 'running'}")
        except PipeplexError:
            if self._members.get(name) is member:  # (not a member given the name since)
                del self._members[name]
                if not self.engine.stopping:  # (else the plex's close lets it all go)
                    # It has been stopped, and nobody holds its handle: let it go, or each
                    # failed spawn under a new name would keep its pipe and its tables.
                    with contextlib.suppress(PipeplexError):
                        await self._forget_member(name, member)
            raise
        return member

    async def remove(self, name: str) -> None:
        """Stop member ``name`` if it runs (stdin closed, SIGTERM, the grace, SIGKILL) and let
        it go: its name is free, its ``NAME.in`` is removed, and the output kept for its
        ``expect`` goes (what it wrote stays in the transcript). Its handle then refuses to
        send, and its ``expect`` finds only EOF.

        A plex that spawns many short-lived members under new names removes them when done:
        each name otherwise keeps its pipe and its unread output until the plex closes.

        A ``spawn`` still waiting for it to be ready raises that it was removed; a restart
        under way (``pipeplex restart``, ``on_exit = "restart"``) does not happen.

        Cancelled (a timeout around it), it skips what is left of the member's grace, as a
        cancelled :meth:`aclose` does: SIGKILL to its process group, and the member is let
        go all the same before the cancellation goes on.

        Raises:
            UnknownMember: no such member.
            PipeplexError: another member starts after it (``after``, in a loaded cast).
        """
        self._check_loop()
        member = self[name]
        try:
            await self._forget_member(name, member)
        finally:
            if member._removed and self._members.get(name) is member:
                del self._members[name]  # (not if a spawn it failed let it go before)
                self._keep_if_failed(member)

    def _keep_if_failed(self, member: AsyncMember) -> None:
        process = member._process
        if (process.returncode not in (None, 0) and not process.ended_by_the_stop
                and not process.ended_by_a_person):
            self._let_go_failed.append(member)

    async def _forget_member(self, name: str, member: AsyncMember) -> None:
        engine, matcher = self.engine, self.matcher
        try:
            await engine.remove(name)
        finally:
            # Let go once the engine has (also when that ended a cancelled remove), not
            # when it refused to.
            if engine.members.get(name) is not member._process:
                member._removed = True
                if name not in engine.members:  # (else a newer member has the name)
                    if self._inputs is not None:
                        self._inputs.remove(name)
                    matcher.forget(name)

    async def expect_any(
        self, patterns: Mapping[str, Pattern | Patterns], timeout: float | None = None
    ) -> tuple[AsyncMember, re.Match[str] | None]:
        """Wait for the first match among several members: ``{"web": "error", "db": "ok"}``.

        Returns the member that matched (its before/after/match are set) and the match (None
        for EOF, and for TIMEOUT, which answers for the first member that lists it).

        A member that exits with 0 (its job done) leaves the others to match; one that
        exits with an error, or the last of them to end, raises ``UnexpectedExit``.

        Raises:
            UnknownMember: a name that is not a member.
            ExpectTimeout, UnexpectedExit: as :meth:`AsyncMember.expect`.
        """
        self._check_loop()
        if not isinstance(patterns, Mapping):
            raise ArgumentError("expect_any() takes a mapping of member names to patterns, as "
                                f"{{'web': 'ready', 'db': 'ok'}}, not {patterns!r}")
        if not patterns:
            raise ArgumentError("expect_any() needs patterns for at least one member")
        by_name = {self[name].name: patterns_of(p)[1] for name, p in patterns.items()}
        never = [(name, self._members[name]._never_starting()) for name in by_name
                 if self._members[name]._process.pid is None]
        if len(never) == len(by_name) and all(why is not None for _, why in never):
            raise PipeplexError("; ".join(f"{name} was never started: {why}"
                                          for name, why in never))
        limit = self.timeout if timeout is None else call_timeout(timeout)
        restarting = [name for name in by_name if self._members[name]._restarts()]
        watched = [name for name in by_name if name not in restarting]
        loop = asyncio.get_running_loop()
        deadline = loop.time() + limit
        while True:
            try:
                found = await self.matcher.expect_each(
                    by_name, timeout=max(deadline - loop.time(), 0.0), watch_exits=watched,
                    watch_over=restarting)
                break
            except UnexpectedExit as exc:
                # One that ended with 0 (its job done) leaves the others to write theirs, as
                # in a scenario's expect; an error, or the last one's end, ends the wait. (A
                # restarting one ends here once its policy gave up on it.)
                (watched if exc.name in watched else restarting).remove(exc.name)
                if exc.returncode != 0 or not (restarting or any(
                        self._members[name].running for name in watched)):
                    ended = self._members.get(exc.name)
                    if ended is None:
                        raise
                    ended._exit_seen = True  # (the caller sees how it ended)
                    raise ended._explained(exc) from None
            except ExpectTimeout as exc:  # (the whole wait, not its last part, is said)
                raise ExpectTimeout(exc.names, exc.patterns, limit, exc.recent,
                                    stream=exc.stream) from None
        member = self._members[found.name]
        member.before, member.after, member.match = found.before, found.after, found.match
        return member, found.match

    async def load(self, path: str | os.PathLike[str]) -> Scenario:
        """Start the members of a scenario (or cast) file; :meth:`run_steps` runs its steps."""
        self._check_loop()
        source = path_of(path, "load()'s path")
        if source is None:
            raise ArgumentError("load() needs the path of a cast or scenario file")
        scenario = load_scenario(source)
        check_commands(scenario.cast, self._captured())
        for spec in scenario.cast.procs:  # all or nothing: no member added if one cannot be
            self._check_can_add(spec.name)
        for spec in scenario.cast.procs:
            await self.engine.stop_leftovers(spec.name)
        for spec in scenario.cast.procs:  # again: a name may have been taken meanwhile
            self._check_can_add(spec.name)
        self._check_variables_known(scenario.cast.procs, {
            var for spec in scenario.cast.procs for var in spec.captured_variables()})
        for spec in scenario.cast.procs:
            self._add(spec)
        self.engine.in_waves([[spec.name for spec in wave]
                              for wave in scenario.cast.start_waves()])
        for spec in scenario.cast.procs:
            # (Not one that waits for an autostart = false member: a step starts that one.)
            if (spec.autostart and self.engine.never_started_for(spec.name) is None
                    and not await self.engine.wait_ready(spec.name)):
                raise PipeplexError(f"{spec.name}: the plex was stopped before it was ready")
        self._scenario = scenario
        return scenario

    async def run_steps(self) -> None:
        """Run the steps of the loaded scenario.

        Raises:
            StepFailed: the first step that failed, with its evidence.
            PipeplexError: a client asked the plex to stop (``pipeplex stop``, with a
                ``run_dir``) before the steps were over, which ends them.
        """
        if self._scenario is None:
            raise PipeplexError("no scenario loaded: call load(path) first")
        self._check_loop()
        results = await run_steps(self._scenario, self.engine, self.matcher)
        failed = next((r.error for r in results if r.error is not None), None)
        if failed is not None:
            raise failed
        planned = [step for step in self._scenario.steps if step.action != "interact"]
        if len(results) < len(planned):  # (a client's pipeplex stop, in the plex's run_dir)
            step = planned[len(results)]
            raise PipeplexError(f"the steps were cut short: the plex was asked to stop "
                                f"({self.engine.stop_cause or 'stopping'}) before "
                                f"{step.source}: {step.describe()}")
