"""A member that is a local child process: its spawn, its exit, its signals and its stop.

The child runs in its own session and process group, so a signal reaches everything it
started. pipeplex owns every file descriptor: output is read with ``add_reader`` and
``os.read`` in large chunks (no StreamReader line limit, no thread per child), and the
exit is seen through a pidfd, so asyncio's child watcher (a thread per child on 3.11)
is never involved. The two halves of a member's streams are collaborators of their own:
its output in ``_output.py`` (the readers, and the grace after the exit), its input in
``_stdin.py`` (the queue and the writer); so are its terminal (``_terminal.py``: its ptys'
size, a full terminal's master and foreground job), its process group (``_group.py``: the
signals to it, and the groups ended runs leave) and the verdict on whose doing its end was
once a stop took it over (``_stop_verdict.py``). What a child is given, and its spawn, are
``_spawn.py``'s. Each asks of the process only what its ``Protocol`` says.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import time
import warnings
import weakref
from collections.abc import Callable, Mapping
from typing import Literal

from .._bus import Bus
from .._events import Exited, Note, Started
from .._signals import SIGCHLD_IGNORED, reap_children_again, signals_cleaned
from ..cast._programs import beside_hint
from ..cast.spec import ProcSpec, expand
from ..errors import SpawnError
from ._group import MemberGroup, exits_within
from ._output import OutputReaders
from ._proc import FLAGS, GONE, PF_EXITING, PPID, STATE, stat_fields, suspended
from ._spawn import (
    bad_text,
    find_executable,
    forget_executables,
    nul_in,
    open_streams,
    run_environment,
    short_of,
    spawn,
    spawn_reason,
    spawn_status,
)
from ._stdin import Stdin
from ._stop_verdict import StopVerdict
from ._terminal import Terminal
from .guardian import Guardian

__all__ = ("Process", "ProcessState", "reap_children_again_said")

ProcessState = Literal["pending", "running", "stopping", "exited", "failed"]


def reap_children_again_said(bus: Bus) -> None:
    """SIGCHLD set back to its default where a program using the API ignored it, said on
    ``bus`` and as a ``RuntimeWarning`` (see :func:`reap_children_again`)."""
    if reap_children_again():
        bus.publish(Note(SIGCHLD_IGNORED, level="warning"))
        with contextlib.suppress(Warning):  # (made an error: the start would fail)
            warnings.warn(SIGCHLD_IGNORED, RuntimeWarning, stacklevel=1)

_seen_at: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, float] = weakref.WeakKeyDictionary()
"""Per loop, when its pass saw exits (weakly: a loop closed before its next pass goes)."""


def _seen_now(loop: asyncio.AbstractEventLoop) -> float:
    """When the exits a pass of ``loop`` handles were seen: one time for all of them, the
    pass's first. Seen together, they are together, whatever their handlers cost in
    between (a busy machine's preemption, a look at what a member left in its group): a
    member that failed because another one ended is then never judged to have ended
    first."""
    seen = _seen_at.get(loop)
    if seen is None:
        seen = _seen_at[loop] = time.monotonic()
        loop.call_soon(_seen_at.pop, loop, None)  # (runs after this pass's callbacks)
    return seen


class Process:
    """One child program of the cast.

    Create it, then ``await start()``; ``wait_exited()`` returns after the program ended
    *and* everything it wrote has been published. Output, start and exit become events
    on the bus.
    """

    def __init__(
        self,
        spec: ProcSpec,
        bus: Bus,
        *,
        on_crash: Callable[[BaseException], None],
        columns: int = 80,
        rows: int = 24,
        env_overrides: Mapping[str, str] | None = None,
        guardian: Guardian | None = None,
    ) -> None:
        self.spec = spec
        self.name = spec.name
        self.state: ProcessState = "pending"
        self.pid: int | None = None
        self.returncode: int | None = None
        self.verdict = StopVerdict(self)
        """Whose doing the run's end was, once a stop takes it over."""
        self.started_at: float | None = None
        self.spawned_at: float | None = None
        """When the spawn of its latest run began (``started_at`` comes once it is done):
        whatever that run started, started since."""
        self.ended_at: float | None = None
        self.last_run: tuple[float | None, float] | None = None
        """When the latest run that ended began and ended (kept through the next start)."""
        self._bus = bus
        self._on_crash = on_crash
        self._env_overrides = dict(env_overrides or {})
        self._guardian = guardian
        self._popen: subprocess.Popen[bytes] | None = None
        self.group = MemberGroup(self, guardian)
        """Its process group, run after run, and those of ended runs that are not empty."""
        self.output = OutputReaders(self, bus, guardian)
        """The output side: the readers of its stdout and stderr, run after run."""
        self.terminal = Terminal(self, columns, rows)
        """Its ptys' size, and a full terminal's master and foreground job."""
        self.stdin = Stdin(self, bus, self.output, self.terminal)
        """The input side: its stdin, and what waits to be written to it."""
        self._pidfd: int | None = None
        self._exit_seen: asyncio.Future[int] | None = None
        self._done: asyncio.Future[int] | None = None
        self._stop_begun: asyncio.Future[None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def __repr__(self) -> str:
        pid = f" pid={self.pid}" if self.pid else ""
        code = f" returncode={self.returncode}" if self.returncode is not None else ""
        return f"<Process {self.name!r}{pid} {self.state}{code}>"

    # Starting -------------------------------------------------------------------------

    async def start(self, variables: Mapping[str, str] | None = None) -> None:
        """Spawn the program.

        Raises:
            SpawnError: the program does not exist, is not executable, or its cwd is missing;
                or its pipes cannot be opened (pipeplex is out of descriptors).
        """
        # (Each side keeps the loop at hand: its callbacks are the hot path.)
        loop = self._loop = self.output.loop = self.stdin.loop = asyncio.get_running_loop()
        self.stdin.tell_dropped()
        reap_children_again_said(self._bus)  # (a program using the API set it since then)
        variables = variables or {}
        spec = self.spec
        argv = spec.argv(variables)
        env = self.environment(variables)
        self.output.release_output()  # what the last run's leftovers held (stopped by now)
        fds: list[int] = []  # the child's ends, closed in the parent after the spawn
        ours: list[int] = []
        try:
            try:
                children, self.stdin.fd, readers = open_streams(
                    spec, self.terminal.columns, self.terminal.rows, ours, fds)
                self.stdin.is_pty = spec.pty == "full"
                self.output.read_from(readers)
            except OSError as exc:  # out of descriptors (EMFILE), of ptys...
                raise SpawnError(self.name, spec.command_text,
                                 "cannot open its stdin and output: "
                                 f"{short_of(exc) or exc.strerror or exc}",
                                 spawn_status(exc)) from None
            executable = find_executable(argv[0], env)
            if self._guardian is not None:
                self._guardian.spawning(children)
            spawned_at = time.monotonic()
            try:
                # Spawning blocks only for fork+exec, not on the child: fine in the loop.
                self._popen = spawn(argv, full_terminal=spec.pty == "full",
                                    executable=executable, stdin=children[0],
                                    stdout=children[1], stderr=children[2], cwd=spec.cwd,
                                    env=env)
            except OSError as exc:
                self._spawn_failed()
                if executable is not None:
                    forget_executables()
                reason = spawn_reason(exc, argv, executable, spec.cwd)
                if reason.startswith("command not found"):
                    reason += beside_hint(spec, argv[0])
                raise SpawnError(self.name, spec.command_text, reason,
                                 spawn_status(exc)) from None
            except ValueError as exc:  # a NUL byte, or "=" in an environment variable's name
                self._spawn_failed()
                raise SpawnError(self.name, spec.command_text,
                                 nul_in(variables, spec) or bad_text(exc)) from None
            except subprocess.SubprocessError:  # the preexec_fn failed: the child is reaped
                self._spawn_failed()
                raise
        except BaseException:
            for fd in ours:
                os.close(fd)
            self.output.read_from({})
            self.stdin.fd = None
            self.state = "failed"
            raise
        finally:
            for fd in fds:
                os.close(fd)
        self.pid = self._popen.pid
        self.group.new_run()
        if self._guardian is not None:
            # (A full terminal's master, held by the guardian: see _guardian_news.)
            self._guardian.register(self.pid, outputs=self.output.readers,
                                    master=self.stdin.fd if spec.pty == "full" else None)
        self.state = "running"
        self.verdict.new_run()
        self.returncode = None
        self.started_at = time.monotonic()
        self.spawned_at = spawned_at
        self.ended_at = None
        self._exit_seen = loop.create_future()
        self._done = loop.create_future()
        self._stop_begun = loop.create_future()
        self.stdin.new_run()
        self.output.new_run()
        self._bus.publish(Started(self.name, self.pid, tuple(argv),
                                  terminal=spec.pty == "full"))
        self._pidfd = os.pidfd_open(self.pid)
        loop.add_reader(self._pidfd, self._guard(self._on_pidfd))
        self.output.start_reading()
        for line in spec.input:
            self.stdin.send((expand(line, variables) + "\n").encode())

    def _spawn_failed(self) -> None:
        """No child was made: the guardian forgets the spawn. (After any other error, such
        as a Ctrl-C inside ``Popen``, a child may be running: the spawn stays told.)"""
        if self._guardian is not None:
            self._guardian.spawn_failed()

    def environment(self, variables: Mapping[str, str]) -> dict[str, str]:
        """The environment a run of this member gets with ``variables``, and its
        ``ready_cmd`` too."""
        return run_environment(self.spec, self._env_overrides, variables)

    def _guard(self, callback: Callable[[], object]) -> Callable[[], None]:
        """Route an exception in a loop callback to the engine instead of a log line."""

        def guarded() -> None:
            try:
                callback()
            except Exception as exc:
                self._on_crash(exc)

        return guarded

    # Exit -----------------------------------------------------------------------------

    def _on_pidfd(self) -> None:
        assert self._loop is not None and self._pidfd is not None and self._popen is not None
        lost = not signals_cleaned() and _reaped_by_the_kernel(self._popen.pid)
        returncode = self._popen.poll()
        if returncode is None:  # not yet; pidfds can wake early only in theory
            return
        if lost:
            said = (f"the exit status of {self.name} is lost: SIGCHLD was ignored in this "
                    f"process as it exited, so the kernel reaped it (it reads {returncode}); "
                    "pipeplex set SIGCHLD back to its default") if reap_children_again() else (
                f"the exit status of {self.name} is lost: something else in this process "
                f"reaped it first (os.wait(), os.waitpid() on its pid or on -1, or SIGCHLD "
                f"ignored for a moment), so it reads {returncode}; leave the members' exits "
                "to pipeplex (wait(), returncode)")
            self._bus.publish(Note(said, level="warning"))
            with contextlib.suppress(Warning):  # (made an error: not in the loop's callback)
                warnings.warn(said, RuntimeWarning, stacklevel=1)
        self._loop.remove_reader(self._pidfd)
        os.close(self._pidfd)
        self._pidfd = None
        self.returncode = returncode
        self.ended_at = _seen_now(self._loop)
        self.last_run = (self.started_at, self.ended_at)
        self.terminal.close_kept()
        self.group.leader_exited(self._popen.pid)
        assert self._exit_seen is not None
        self._exit_seen.set_result(returncode)
        self.output.exited()
        self._maybe_done()

    def has_exited(self) -> bool:
        """Whether this run's process has exited, though the loop may not have seen it yet
        (its pidfd's turn had not come when a deadline did: pipeplex itself was suspended
        with Ctrl-Z, say, and both came due at once)."""
        if self.returncode is not None or self._popen is None:
            return self.returncode is not None
        try:
            return os.waitid(os.P_PID, self._popen.pid,
                             os.WEXITED | os.WNOHANG | os.WNOWAIT) is not None
        except ChildProcessError:  # (reaped by the kernel: SIGCHLD ignored)
            return True

    def _output_ended(self, fd: int) -> None:
        """The readers are done with ``fd`` (its end was read, or it is let go): closed, as
        every descriptor of the member is, here; then the run may be over."""
        stdin = self.stdin
        with stdin.lock:
            if fd == stdin.fd:  # the pty master doubles as stdin in full-terminal mode
                stdin.gone()
            if stdin.is_pty and self.returncode is None:
                # Closing a terminal's master hangs it up: SIGHUP would reach a program that
                # closed its output on its way out (coreutils do) but has not exited yet.
                # Kept until the exit, as a terminal window does.
                self.terminal.keep_open(fd)
            else:
                os.close(fd)
        self._maybe_done()

    def close(self, exit_by: float = 0.0) -> None:
        """The cast is over: stop reading what processes of an ended run still hold open, and
        stop watching their groups. A run whose exit is unread (SIGKILLed as a failed or
        cancelled cast ended) is waited for until ``exit_by`` (``time.monotonic()``, blocking),
        reaped, and its descriptors closed: a later turn of the loop may never come (a Plex's)."""
        self.stdin.tell_dropped()
        if self._pidfd is not None:
            self._let_go_of_run(exit_by)
        self.output.release_output()
        self.group.close()

    def _let_go_of_run(self, exit_by: float) -> None:
        assert self._pidfd is not None and self._loop is not None
        if exits_within(self._pidfd, exit_by - time.monotonic()):
            self._on_pidfd()  # (the exit, as the loop would have read it)
        if self._pidfd is not None:  # (still running: another user's, or stuck in the kernel)
            self._loop.remove_reader(self._pidfd)
            os.close(self._pidfd)
            self._pidfd = None
        self.output.let_go()
        self.stdin.drop()
        self.terminal.close_kept()  # (the program never exited: kept for nothing)

    def _maybe_done(self) -> None:
        if self.returncode is None or self._done is None:
            return
        output = self.output
        if self._done.done():
            if not output.readers:
                self._bus.remove_source(output)  # the last output held open reached its EOF
                if output.held_output_end is not None and not output.held_output_end.done():
                    output.held_output_end.set_result(None)
            return
        if output.readers and not output.held:
            return
        output.stop_drain()
        unread = self.stdin.input_waiting
        self.stdin.drop()
        if unread:
            self._bus.publish(Note(f"ended with {unread} bytes of input it never read; "
                                   "dropped", name=self.name, level="warning"))
        if not output.readers:
            self._bus.remove_source(output)
        self.state = "exited"
        assert self.started_at is not None and self.ended_at is not None
        self._bus.publish(
            Exited(self.name, self.returncode, self.verdict.ended_by_the_stop,
                   self.ended_at - self.started_at, stop_signal=self.spec.stop_signal)
        )
        self._done.set_result(self.returncode)

    @property
    def running(self) -> bool:
        """True from a successful start until the program has exited."""
        return self.state in ("running", "stopping") and self.returncode is None

    @property
    def exit_future(self) -> asyncio.Future[int]:
        """Resolves with the returncode when this run of the program exits."""
        if self._exit_seen is None:
            raise RuntimeError(f"{self.name} was never started")
        return self._exit_seen

    @property
    def stop_future(self) -> asyncio.Future[None]:
        """Done once a stop takes this run over (what waits on the run, a health check,
        gives up then rather than at its exit)."""
        if self._stop_begun is None:
            raise RuntimeError(f"{self.name} was never started")
        return self._stop_begun

    @property
    def done_future(self) -> asyncio.Future[int]:
        """Resolves with the returncode once this run exited and its output is drained."""
        if self._done is None:
            raise RuntimeError(f"{self.name} was never started")
        return self._done

    async def wait_exited(self) -> int:
        """Wait until the program ended and its output is drained; return its returncode."""
        if self._done is None:
            raise RuntimeError(f"{self.name} was never started")
        return await asyncio.shield(self._done)

    async def wait_exit_seen(self) -> int:
        """Wait only for the program's exit, not for its output to drain."""
        if self._exit_seen is None:
            raise RuntimeError(f"{self.name} was never started")
        return await asyncio.shield(self._exit_seen)

    # Its input and output, as callers know them ----------------------------------------

    @property
    def input_open(self) -> bool:
        """Whether a line sent now can reach the program (see :attr:`Stdin.input_open`)."""
        return self.stdin.input_open

    @property
    def input_waiting(self) -> int:
        """Bytes sent to the member that its stdin has not taken yet."""
        return self.stdin.input_waiting

    @property
    def input_full(self) -> bool:
        """Whether the member has INPUT_FULL bytes or more of input it has not read."""
        return self.stdin.input_full

    @property
    def reads_secret(self) -> bool:
        """Whether the member's full terminal reads a password (see
        :attr:`Stdin.reads_secret`)."""
        return self.stdin.reads_secret

    async def input_room(self) -> None:
        """See :meth:`Stdin.input_room`."""
        await self.stdin.input_room()

    def send(self, data: bytes, *, record: bool = True) -> bool:
        """Queue ``data`` for the member's stdin (see :meth:`Stdin.send`)."""
        return self.stdin.send(data, record=record)

    def send_threadsafe(self, data: bytes) -> bool:
        """:meth:`send` from another thread (see :meth:`Stdin.send_threadsafe`)."""
        return self.stdin.send_threadsafe(data)

    def close_input(self) -> None:
        """Close the member's stdin once queued input is written (see
        :meth:`Stdin.close_input`)."""
        self.stdin.close_input()

    def release_output(self) -> None:
        """See :meth:`OutputReaders.release_output`."""
        self.output.release_output()

    # Signals --------------------------------------------------------------------------

    def signal(self, sig: int) -> bool:
        """See :meth:`MemberGroup.signal`."""
        return self.group.signal(sig)

    def signal_to_stop(self, sig: int) -> bool:
        """:meth:`signal`, from a stop: its end from now on may be the stop's doing (see
        :meth:`StopVerdict.signalling`)."""
        self.verdict.signalling(sig)
        return self.signal(sig)

    def stop_command_runs(self) -> None:
        """The stop runs its ``stop_cmd``: its end from now on is the stop's doing, as after
        a signal of the stop's (see :meth:`StopVerdict.asked_by_command`)."""
        self.verdict.asked_by_command()

    def begin_stop(self) -> None:
        """The stop takes this run over (its exit is then expected; see
        :meth:`StopVerdict.begin`)."""
        self.verdict.begin()
        self.state = "stopping"
        if self._stop_begun is not None and not self._stop_begun.done():
            self._stop_begun.set_result(None)

    @property
    def stopping(self) -> bool:
        """See :attr:`StopVerdict.stopping`."""
        return self.verdict.stopping

    @property
    def signalled_to_stop(self) -> bool:
        """See :attr:`StopVerdict.signalled_to_stop`."""
        return self.verdict.signalled_to_stop

    @property
    def exited_before_stop(self) -> bool:
        """See :attr:`StopVerdict.exited_before_stop`."""
        return self.verdict.exited_before_stop

    @property
    def ended_by_the_stop(self) -> bool:
        """See :attr:`StopVerdict.ended_by_the_stop`."""
        return self.verdict.ended_by_the_stop

    @property
    def ended_by_a_person(self) -> bool:
        """See :attr:`StopVerdict.ended_by_a_person`."""
        return self.verdict.ended_by_a_person

    def _exited_unread(self) -> bool:
        """Its process has exited, and its pidfd says so, unread yet."""
        return self._pidfd is not None and exits_within(self._pidfd, 0)

    def _exiting(self) -> bool:
        """Its process is exiting, not a zombie yet. (A zombie leader whose pidfd does not
        say it exited is a program whose main thread ended while its other threads run
        on, ``pthread_exit``: its leader keeps PF_EXITING for as long as they do.)"""
        if self.pid is None or not self.running:
            return False
        fields = stat_fields(self.pid)
        return (fields is not None and int(fields[PPID]) == os.getpid()
                and fields[STATE] not in GONE and bool(int(fields[FLAGS]) & PF_EXITING))

    def signal_as_asked(self, sig: int) -> bool:
        """Send ``sig`` as a person asks for it (the console, ``pipeplex signal``, the API):
        to the member's process group, except that INT, QUIT and TSTP to a member on a full
        terminal go where those keys would send them, to the terminal's foreground job (the
        command its shell runs, in a group of its own); False if nothing was left."""
        self.verdict.asked(sig)
        return self.terminal.to_job(sig) or self.signal(sig)

    def hang_up(self) -> None:
        """What closing a terminal window does, for a stop: SIGHUP (and SIGCONT) to the
        full terminal's foreground job and to the member's group. An interactive shell
        ignores SIGTERM, and the command it runs is in a group of its own: without this
        both would wait out the grace for SIGKILL."""
        self.terminal.hang_up_job()
        self.signal_to_stop(signal.SIGHUP)

    def resize(self, columns: int, rows: int) -> None:
        """See :meth:`Terminal.resize`."""
        self.terminal.resize(columns, rows)

    def group_alive(self) -> bool:
        """See :meth:`MemberGroup.alive`."""
        return self.group.alive()

    def has_leftovers(self) -> bool:
        """See :meth:`MemberGroup.has_leftovers`."""
        return self.group.has_leftovers()

    def statistics(self) -> dict[str, object]:
        # Its program has exited: so it says, even while its last output is still read.
        exited = self.returncode is not None and self.state in ("running", "stopping")
        state: str = "exited" if exited else self.state
        if state == "running" and self.pid is not None and suspended(self.pid):
            state = "suspended"
        return {
            "name": self.name,
            "pid": self.pid,
            "state": state,
            "returncode": self.returncode,
            "pending_input": self.stdin.input_waiting,
        }


def _reaped_by_the_kernel(pid: int) -> bool:
    """Whether child ``pid``, which has exited, is gone without a wait of ours: SIGCHLD
    was ignored as it exited (a program using the API set it), and its status with it.
    (Looked at without taking it: ``Popen`` then takes it as usual.)"""
    try:
        os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG | os.WNOWAIT)
    except ChildProcessError:
        return True
    return False
