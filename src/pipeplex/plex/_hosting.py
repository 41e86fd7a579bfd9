"""How an :class:`~.async_plex.AsyncPlex` hosts its engine, from its start to its close.

The start makes a guardian, an engine with no cast (held open: members come and go), the
transcript and, with ``run_dir``, the run folder, served while the cast runs; the close
stops every member and lets it all go, once, whoever asks and however it is interrupted.

Apart from ``async_plex.py``, which holds what a caller asks of the plex (spawn, load,
expect_any, remove): this is the life of the engine under those calls, and the checks that
a call finds it running, in its own loop.
"""

from __future__ import annotations

import asyncio
import os
import warnings

from .._bus import Bus
from .._events import Note
from ..cast.spec import CastSpec
from ..engine.engine import Engine
from ..engine.stopping import EOF_GRACE
from ..engine.verdict import Failure
from ..errors import PipeplexError, ours_in_tracebacks
from ..expect import Matcher
from ..inputs.folder import FolderInputs
from ..participants import Guardian
from ..report.transcript import TranscriptSink

__all__ = ("EngineHost",)
__tracebackhide__ = ours_in_tracebacks  # (pytest: see there)


class EngineHost:
    """The engine an :class:`~.async_plex.AsyncPlex` runs, and what runs with it: the base of
    the plex, whose calls reach the engine and its matcher through :attr:`engine` and
    :attr:`matcher` while it runs."""

    def __init__(self, *, grace: float, transcript: str | None, run_dir: str | None,
                 env: dict[str, str]) -> None:
        self.grace = grace
        self._env = env
        """What every member's environment gets (a member's own ``env`` wins)."""
        self._transcript_path = transcript
        self._run_dir = run_dir
        self.bus = Bus()
        self._guardian: Guardian | None = None
        self._engine: Engine | None = None
        self._matcher: Matcher | None = None
        self._run: asyncio.Task[int] | None = None
        self._transcript: TranscriptSink | None = None
        self._inputs: FolderInputs | None = None
        self._hosting: asyncio.Task[None] | None = None
        self._closing: asyncio.Task[None] | None = None
        """The one closing of the plex, which every aclose() waits for."""
        self._failures: list[Failure] = []
        """Once it is closed: the members that failed on their own, by the rules of a run's
        exit status (an error at the EOF the close gave one too), for the pytest fixture."""
        self._killed_unclosed: list[str] | None = None
        """Set when the run was cancelled under a plex never closed (``asyncio.run`` ended
        first): the members that that killed."""
        self._held = False
        self._threads = False
        """Set by :class:`Plex`: callers in other threads search the members' output."""

    @property
    def engine(self) -> Engine:
        if self._engine is None:
            raise self._not_running()
        return self._engine

    @property
    def matcher(self) -> Matcher:
        if self._matcher is None:
            raise self._not_running()
        return self._matcher

    def _check_loop(self) -> None:
        """Raise unless called in the event loop the plex started in: its members' pipes
        and futures are that loop's, and from another one a call would wait for ever."""
        run = self._run
        if run is None:
            return
        try:
            here: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
        except RuntimeError:
            here = None
        if here is not run.get_loop():
            raise PipeplexError(
                "this AsyncPlex runs in the event loop it was started in, "
                f"{'not this one' if here is not None else 'and this thread runs none'}: "
                "call it from there (asyncio.run_coroutine_threadsafe(..., loop) from another "
                "thread), or use a pipeplex.Plex, which any thread may call")

    def _not_running(self, block: str = "an async with block") -> PipeplexError:
        if self._run is not None:  # (it ran: a plex is started once)
            return PipeplexError("the plex has been closed, and its members stopped; a new "
                                 "plex runs new ones")
        return PipeplexError(f"the plex is not running: use it in {block}")

    async def _start_engine(self) -> None:
        """Start the engine with no cast, and its outputs; for :meth:`AsyncPlex.start`,
        which raises what this raises."""
        if self._engine is not None or self._run is not None:
            raise PipeplexError("this plex has already been started: use a new one")
        self._guardian = Guardian(
            on_lost=lambda text: self.bus.publish(Note(text, level="warning")))
        engine = self._engine = Engine(
            CastSpec(()), self.bus, grace=self.grace, guardian=self._guardian,
            stdin_grace=EOF_GRACE,
            env_overrides={**self._env, "PIPEPLEX_RUN_ID": self._guardian.token})
        self._matcher = Matcher.of(engine, threads=self._threads)
        try:
            if self._transcript_path is not None:
                self._transcript = TranscriptSink(self._transcript_path, self.bus)
                self.bus.subscribe(self._transcript)
            if self._run_dir is not None:
                self._inputs = FolderInputs(engine, os.fspath(self._run_dir),
                                            given_as="run_dir=", guardian=self._guardian)
                await self._inputs.name_what_was_left()
        except BaseException:
            self._close_outputs()
            self._engine = None
            raise
        engine.hold()  # members come and go; the plex lives until aclose()
        self._held = True
        loop = asyncio.get_running_loop()
        run = self._run = loop.create_task(engine.run())
        run.add_done_callback(self._run_ended)
        try:
            await engine.wait_began()
        except BaseException:  # cancelled before the cast began: as if never started
            run.remove_done_callback(self._run_ended)  # (not a run its loop's end cancelled)
            run.cancel()
            self._close_outputs()
            self._engine = self._run = None
            self._held = False
            raise
        if self._inputs is not None:
            self._hosting = loop.create_task(self._host(self._inputs, engine, self._run))

    def _run_ended(self, run: asyncio.Task[int]) -> None:
        """The run was cancelled without :meth:`aclose` (``asyncio.run`` ended under an
        unclosed plex): its members are killed on the way out; the guardian process and
        the outputs are let go here, as nothing else would."""
        if run.cancelled() and self._closing is None:
            assert self._engine is not None
            self._killed_unclosed = [name for name, member in self._engine.members.items()
                                     if member.signalled_to_stop]
            self._close_outputs()

    def left_open(self) -> str | None:
        """What to say of the plex (after "... left") if its event loop ended under it,
        never closed: what that did to its members, and how to write it. None if it was
        closed (or never started, or its loop has not ended)."""
        killed = getattr(self, "_killed_unclosed", None)  # (not there: __init__ raised)
        if killed is None or self._closing is not None or self._engine is None:
            return None
        them = (f": its event loop's end killed {_listed(killed)} (SIGKILL), without the "
                "grace" if killed else "")
        return (f"a pipeplex.AsyncPlex open, without aclose(){them}; use it as "
                "'async with AsyncPlex() as plex:'")

    def __del__(self) -> None:
        # As an unclosed file: said once nothing holds it, in whatever code runs then.
        said = self.left_open()
        if said is not None:
            warnings.warn(f"this program left {said}", ResourceWarning, stacklevel=1,
                          source=self)

    def _let_go(self) -> None:
        """Release the plex's hold on the engine (once): it may end when it is stopped."""
        if self._held and self._engine is not None:
            self._held = False
            self._engine.release()

    async def _host(self, inputs: FolderInputs, engine: Engine, run: asyncio.Task[int]) -> None:
        """Serve the run folder while the cast runs; once it ends, tell attached clients.

        The cast may also be stopped from outside (``pipeplex stop``) before :meth:`aclose`:
        then the plex lets go of it, so that it ends as a ``pipeplex run`` would.
        """
        async def serve() -> None:
            try:
                await inputs.serve()
            except Exception as exc:  # the control socket broke: end the plex with it
                engine.crash(exc)

        loop = asyncio.get_running_loop()
        serving = loop.create_task(serve())
        stopping = loop.create_task(engine.until_stopping())
        try:
            await asyncio.wait([run, stopping], return_when=asyncio.FIRST_COMPLETED)
            self._let_go()
            await asyncio.wait([run])
            if not run.cancelled() and run.exception() is None:
                await inputs.finish(run.result())
        finally:
            serving.cancel()
            stopping.cancel()
            await asyncio.gather(serving, stopping, return_exceptions=True)
            # The run is over: clients now learn there is none, and the folder is free.
            inputs.close()

    async def aclose(self) -> None:
        """Stop every member (stdin, SIGTERM, grace, SIGKILL) and wait until all are gone.

        Cancelled (a timeout around it, Ctrl-C under ``asyncio.run``), it skips what is
        left of the graces: SIGKILL to every member, then the cancellation goes on. Another
        caller waiting for the same closing is not cancelled with it.
        """
        if self._engine is None or self._run is None:
            return
        run = self._run
        if run.done() and run.get_loop().is_closed():  # (asyncio.run ended without us)
            self._close_outputs()
            self._engine = None
            return
        self._check_loop()
        if self._closing is None:
            self._closing = asyncio.get_running_loop().create_task(self._close(self._engine, run))
        closing = self._closing
        try:
            await asyncio.shield(closing)
        except asyncio.CancelledError:
            if not closing.done():
                run.cancel()  # the engine's way out: SIGKILL to every group, at once
                await asyncio.wait([closing])
            if closing.done() and not closing.cancelled():
                closing.exception()  # (retrieved: this caller raises its cancellation)
            raise

    async def _close(self, engine: Engine, run: asyncio.Task[int]) -> None:
        self.bus.flush_threadsafe()
        self._let_go()
        engine.request_stop()
        try:
            await asyncio.wait([run])
            if not run.cancelled():
                run.result()  # (an error that ended the run)
        finally:
            if self._hosting is not None:
                if not run.done():
                    self._hosting.cancel()
                await asyncio.gather(self._hosting, return_exceptions=True)
            self._close_outputs()
            if self._matcher is not None:
                self._matcher.waits_over()  # (in the caller's loop, which goes on)
            self._failures = list(engine.failures)
            self._engine = None

    def _close_outputs(self) -> None:
        try:
            if self._inputs is not None:
                self._inputs.close()
            if self._guardian is not None:  # (before the transcript: it may have a last word)
                self._guardian.close()
        finally:  # (a Ctrl-C in the guardian's wait: the transcript is closed all the same)
            if self._transcript is not None:
                self._transcript.close()


def _listed(names: list[str]) -> str:
    return f"member {names[0]}" if len(names) == 1 else f"members {', '.join(names)}"
