"""A member that is a local child process: its spawn, its exit, its signals and its stop.

The child runs in its own session and process group, so a signal reaches everything it
started. pipeplex owns every file descriptor: output is read with ``add_reader`` and
``os.read`` in large chunks (no StreamReader line limit, no thread per child), and the
exit is seen through a pidfd, so asyncio's child watcher (a thread per child on 3.11)
is never involved. The two halves of a member's streams are collaborators of their own:
its output in ``_output.py`` (the readers, and the grace after the exit), its input in
``_stdin.py`` (the queue and the writer).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Callable, Mapping
from typing import Literal

from .._bus import Bus
from .._events import Exited, Note, Started, Stream
from .._signals import signal_name
from ..cast.spec import ProcSpec, expand
from ..errors import SignalRefused, SpawnError
from ._group import exits_within, live_in_group, owner, unwatch_group, watch_group
from ._output import OutputReaders
from ._proc import FLAGS, GONE, PF_EXITING, PPID, STATE, child_flags, signal_pending, stat_fields
from ._pty import open_pty, set_size
from ._spawn import (
    bad_text,
    find_executable,
    forget_executables,
    nul_in,
    spawn,
    spawn_reason,
    spawn_status,
)
from ._stdin import Stdin
from .guardian import Guardian

__all__ = ("Process", "ProcessState")

ProcessState = Literal["pending", "running", "stopping", "exited", "failed"]

NO_PAGER = {name: "cat" for name in ("PAGER", "GIT_PAGER", "MANPAGER", "SYSTEMD_PAGER",
                                     "PSQL_PAGER")}
"""For a member whose stdin is not a terminal: ``git log``, ``man`` or ``psql`` on its
stdout's pty would start ``less``, which reads keys from a terminal nobody types into, shows
one page and quits, and the program dies of SIGPIPE. (A cast's own ``env`` still wins.)"""
_KEYBOARD_SIGNALS = frozenset({signal.SIGINT, signal.SIGQUIT, signal.SIGTSTP})
"""What a terminal's keys send (Ctrl-C, Ctrl-\\, Ctrl-Z), to its foreground job."""

_seen_at: dict[asyncio.AbstractEventLoop, float] = {}


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
        self.stopping = False
        """True once pipeplex decided to stop this member (its exit is then expected)."""
        self.signalled_to_stop = False
        """The stop signalled it (SIGTERM, SIGKILL) before it exited: its exit is the stop's
        doing. One that ends at the EOF a stop gave it, before any signal, ended on its own."""
        self.signals_asked: set[int] = set()
        """Signals a person sent this run (:meth:`signal_as_asked`): one of them that ends
        it, even as a stop begins, ended it on its own."""
        self.exited_before_stop = False
        """Its process had already exited when the stop took this run over (:meth:`begin_stop`),
        its exit not read yet: it ended on its own, before the stop, whatever came after."""
        self.started_at: float | None = None
        self.ended_at: float | None = None
        self.last_run: tuple[float | None, float] | None = None
        """When the latest run that ended began and ended (kept through the next start)."""
        self._bus = bus
        self._on_crash = on_crash
        self._columns = columns
        self._rows = rows
        self._env_overrides = dict(env_overrides or {})
        self._guardian = guardian
        self._popen: subprocess.Popen[bytes] | None = None
        self.output = OutputReaders(self, bus, guardian)
        """The output side: the readers of its stdout and stderr, run after run."""
        self.stdin = Stdin(self, bus, self.output)
        """The input side: its stdin, and what waits to be written to it."""
        self._open_master: int | None = None
        """A full terminal's master whose reading ended before the program did (see
        :meth:`_output_ended`)."""
        self._pidfd: int | None = None
        self._exit_seen: asyncio.Future[int] | None = None
        self._done: asyncio.Future[int] | None = None
        self._stop_begun: asyncio.Future[None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._group_gone = True
        self._watched_groups: set[int] = set()
        """Groups of ended runs that processes still hold, watched until they are empty."""

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
        variables = variables or {}
        spec = self.spec
        argv = spec.argv(variables)
        env = self.environment(variables)
        self.output.release_output()  # what the last run's leftovers held (stopped by now)
        fds: list[int] = []  # the child's ends, closed in the parent after the spawn
        ours: list[int] = []
        try:
            try:
                stdin_child, stdout_child, stderr_child = self._open_streams(ours, fds)
            except OSError as exc:  # out of descriptors (EMFILE), of ptys...
                raise SpawnError(self.name, spec.command_text,
                                 f"cannot open its stdin and output: {exc.strerror or exc}"
                                 ) from None
            executable = find_executable(argv[0], env)
            if self._guardian is not None:
                self._guardian.spawning((stdin_child, stdout_child, stderr_child))
            try:
                # Spawning blocks only for fork+exec, not on the child: fine in the loop.
                self._popen = spawn(argv, full_terminal=spec.pty == "full",
                                    executable=executable, stdin=stdin_child,
                                    stdout=stdout_child, stderr=stderr_child, cwd=spec.cwd,
                                    env=env)
            except OSError as exc:
                self._spawn_failed()
                if executable is not None:
                    forget_executables()
                raise SpawnError(self.name, spec.command_text,
                                 spawn_reason(exc, argv, executable, spec.cwd),
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
        self._group_gone = False
        if self._guardian is not None:
            self._guardian.register(self.pid, outputs=self.output.readers)
        self.state = "running"
        self.stopping = False
        self.signalled_to_stop = False
        self.exited_before_stop = False
        self.signals_asked.clear()
        self.returncode = None
        self.started_at = time.monotonic()
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

    def _open_streams(self, ours: list[int], fds: list[int]) -> tuple[int, int, int]:
        """The child's ends of its stdin, stdout and stderr. Every descriptor opened goes to
        ``fds`` (the child's) or ``ours`` as soon as it exists, for the caller to close."""
        if self.spec.pty == "full":
            master, slave = open_pty(raw=False, columns=self._columns, rows=self._rows)
            ours.append(master)
            fds.append(slave)
            self.stdin.fd, self.stdin.is_pty = master, True
            self.output.read_from({master: "stdout"})
            return slave, slave, slave
        in_r, in_w = os.pipe()
        fds.append(in_r)
        ours.append(in_w)
        if self.spec.pty == "stdout":
            out_r, out_w = open_pty(raw=True, columns=self._columns, rows=self._rows)
        else:
            out_r, out_w = os.pipe()
        ours.append(out_r)
        fds.append(out_w)
        self.stdin.fd = in_w
        readers: dict[int, Stream] = {out_r: "stdout"}
        err_w = out_w  # stderr = "stdout": one stream, in the order written
        if self.spec.stderr == "apart":
            err_r, err_w = os.pipe()
            ours.append(err_r)
            fds.append(err_w)
            readers[err_r] = "stderr"
        for fd in (in_w, *readers):
            os.set_blocking(fd, False)
        self.output.read_from(readers)
        return in_r, out_w, err_w

    def environment(self, variables: Mapping[str, str]) -> dict[str, str]:
        """The environment a run of this member gets with ``variables``, and its
        ``ready_cmd`` too."""
        env = dict(os.environ)
        # Python children flush each write; harmless for everything else.
        env.setdefault("PYTHONUNBUFFERED", "1")
        env.update(self._env_overrides)
        if self.spec.pty != "full":
            env.update(NO_PAGER)
        env.update({key: expand(value, variables) for key, value in self.spec.env.items()})
        # Ours, whatever came before (a spec built by hand is not checked): they tell which
        # member of which run a process belongs to, and the stop finds by them what it started.
        env["PIPEPLEX_NAME"] = self.name
        if "PIPEPLEX_RUN_ID" in self._env_overrides:
            env["PIPEPLEX_RUN_ID"] = self._env_overrides["PIPEPLEX_RUN_ID"]
        return env

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
        returncode = self._popen.poll()
        if returncode is None:  # not yet; pidfds can wake early only in theory
            return
        self._loop.remove_reader(self._pidfd)
        os.close(self._pidfd)
        self._pidfd = None
        self.returncode = returncode
        self.ended_at = _seen_now(self._loop)
        self.last_run = (self.started_at, self.ended_at)
        if self._open_master is not None:
            os.close(self._open_master)
            self._open_master = None
        # Once the group is empty its id may go to a stranger: it is never signalled after.
        if self.group_alive():  # a process it started lives on (or a zombie, not reaped yet)
            self._watched_groups.add(self._popen.pid)
            watch_group(self._popen.pid, self._group_emptied)
        assert self._exit_seen is not None
        self._exit_seen.set_result(returncode)
        self.output.exited()
        self._maybe_done()

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
                self._open_master = fd
            else:
                os.close(fd)
        self._maybe_done()

    def _group_emptied(self, pgid: int) -> None:
        self._watched_groups.discard(pgid)
        if pgid == self.pid:
            self._group_gone = True
        if self._guardian is not None:
            self._guardian.unregister(pgid)

    def close(self) -> None:
        """The cast is over: stop reading what processes of an ended run still hold open,
        and stop watching their groups."""
        self.stdin.tell_dropped()
        self.output.release_output()
        for pgid in self._watched_groups:
            unwatch_group(pgid)
        self._watched_groups.clear()

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
            Exited(self.name, self.returncode, self.ended_by_the_stop,
                   self.ended_at - self.started_at)
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
        """Send ``sig`` to the member's whole process group; False if nothing was left.

        Raises:
            SignalRefused: every process left in the group runs as another user, and this
                one may not signal them; they run on (and their group stays registered).
        """
        if self.pid is None or self._group_gone:
            return False
        try:
            if self.returncode is not None and os.path.exists(f"/proc/{self.pid}"):
                # Its leader was reaped, and a group keeps its number while it has any
                # process: a process of that number now means the group emptied unseen
                # (pipeplex stopped meanwhile) and a stranger's setsid took the number.
                raise ProcessLookupError
            os.killpg(self.pid, sig)
        except ProcessLookupError:
            self._group_gone = True
            if self._guardian is not None:
                self._guardian.unregister(self.pid)
            return False
        except PermissionError:
            raise SignalRefused(self.name, self.pid, signal_name(sig),
                                owner(live_in_group(self.pid))) from None
        return True

    def signal_to_stop(self, sig: int) -> bool:
        """:meth:`signal`, from a stop: an exit from now on is the stop's doing, and a death
        by ``sig`` the stop's, though a person sent it before (the member lived on) — unless
        the person's is still on its way (pending, the member stopped or not yet run since),
        or the member is exiting or has exited, its exit not yet read: then the person's
        signal, an instant before the stop, is what ends it (see :attr:`ended_by_a_person`)."""
        if self.returncode is None:
            self.signalled_to_stop = True
            if (sig in self.signals_asked and not self._exited_unread()
                    and not _on_its_way(self.pid, sig)):
                self.signals_asked.discard(sig)
        return self.signal(sig)

    def begin_stop(self) -> None:
        """The stop takes this run over (its exit is then expected). A process that has
        already exited, its exit not read yet, ended before the stop (a server that crashed
        as a scenario's last step matched, its client's exit seen first): so it is judged
        (:attr:`exited_before_stop`), not as an end the stop caused. Only the stop's first
        touch looks: by the next (its SIGTERM after the EOF), the exit may be the stop's. A
        process on its way out (Linux's PF_EXITING: it has called ``exit``, and becomes a
        zombie a millisecond or so later) has ended before the stop too."""
        if not self.stopping:
            self.exited_before_stop = self._exited_unread() or self._exiting()
        self.stopping = True
        self.state = "stopping"
        if self._stop_begun is not None and not self._stop_begun.done():
            self._stop_begun.set_result(None)

    @property
    def ended_by_the_stop(self) -> bool:
        """Its end was the stop's doing: a signal of the stop's, not a person's, and not an
        end it had come to before the stop reached it (its exit then says ``stopped``)."""
        return (self.stopping and self.signalled_to_stop and not self.ended_by_a_person
                and not self.exited_before_stop)

    @property
    def ended_by_a_person(self) -> bool:
        """Its exit was by a signal a person sent (:meth:`signal_as_asked`), which it did not
        live through until the stop sent the same: its own end, not the stop's."""
        return (self.returncode is not None and self.returncode < 0
                and -self.returncode in self.signals_asked)

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
        if self.returncode is None:
            self.signals_asked.add(sig)
        if sig in _KEYBOARD_SIGNALS and (job := self._foreground_job()) is not None:
            try:
                os.killpg(job, sig)
                return True
            except (ProcessLookupError, PermissionError):  # (ended; or a setuid job)
                pass
        return self.signal(sig)

    def _foreground_job(self) -> int | None:
        """The process group of the command a full terminal's shell runs in the foreground
        (job control), when it is not the member's own."""
        terminal = self._terminal()
        if terminal is None or self.returncode is not None:
            return None
        try:
            job = os.tcgetpgrp(terminal)
            # A group of the member's session (the member leads it), which tcsetpgrp
            # allows, still there: the terminal keeps the number of a job that ended,
            # which may since be a stranger's.
            ours = job > 0 and job != self.pid and os.getsid(job) == self.pid
        except OSError:
            ours = False
        return job if ours else None

    def hang_up(self) -> None:
        """What closing a terminal window does, for a stop: SIGHUP (and SIGCONT) to the
        full terminal's foreground job and to the member's group. An interactive shell
        ignores SIGTERM, and the command it runs is in a group of its own: without this
        both would wait out the grace for SIGKILL."""
        if (job := self._foreground_job()) is not None:
            for sig in (signal.SIGHUP, signal.SIGCONT):
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(job, sig)
        self.signal_to_stop(signal.SIGHUP)

    def resize(self, columns: int, rows: int) -> None:
        """Make the member's pty ``columns`` wide and ``rows`` high, from now on and at its
        next start: pipeplex's terminal, less the name's column, as at the start."""
        self._columns, self._rows = columns, rows
        if self.spec.pty == "full":
            master = self._terminal()
        elif self.spec.pty == "stdout":
            master = next((fd for fd, stream in self.output.readers.items()
                           if stream == "stdout"), None)
        else:
            master = None
        if master is not None:
            try:
                set_size(master, columns, rows)
            except OSError:  # (its program is gone and took the pty's last slave with it)
                pass

    def _terminal(self) -> int | None:
        """The master side of the member's full terminal, while it is open."""
        if self.spec.pty != "full":
            return None
        if self._open_master is not None:
            return self._open_master
        return next(iter(self.output.readers), None)

    def group_alive(self) -> bool:
        """True while any process remains in the member's process group."""
        try:
            return self.signal(0)
        except SignalRefused:  # (there, as another user)
            return True

    def has_leftovers(self) -> bool:
        """True while a process that has not exited remains in the member's process group.

        Unlike :meth:`group_alive`, a zombie that its new parent has not reaped yet does not
        count.
        """
        return self.pid is not None and self.group_alive() and bool(live_in_group(self.pid))

    def statistics(self) -> dict[str, object]:
        # Its program has exited: so it says, even while its last output is still read.
        exited = self.returncode is not None and self.state in ("running", "stopping")
        state: str = "exited" if exited else self.state
        if state == "running" and self.pid is not None and _suspended(self.pid):
            state = "suspended"
        return {
            "name": self.name,
            "pid": self.pid,
            "state": state,
            "returncode": self.returncode,
            "pending_input": self.stdin.input_waiting,
        }


def _suspended(pid: int) -> bool:
    """Whether ``pid`` is stopped by a signal (SIGSTOP, SIGTSTP...) until a SIGCONT."""
    fields = stat_fields(pid)
    return fields is not None and fields[STATE] == b"T"  # (not "t": held by a debugger)


def _on_its_way(pid: int | None, sig: int) -> bool:
    """Whether ``sig`` was sent to our child ``pid`` and will end it: it waits to be taken
    (pending: the child is stopped, or has not run since), or the child is exiting."""
    if pid is None:
        return False
    # Pending first, then exiting: a child that takes the signal between the two looks is
    # exiting by the second (the other order missed it: not exiting yet, no longer pending).
    pending = signal_pending(pid, sig)
    flags = child_flags(pid)  # (None: gone, or no child of ours)
    return flags is not None and (pending or bool(flags & PF_EXITING))

