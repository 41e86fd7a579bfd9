"""The guardian's program: run by :mod:`._guardian_process` as ``python -I -S
/proc/self/fd/N``.

What the guardian does, and how pipeplex talks to it, is told in
:mod:`pipeplex.participants.guardian` (each line it is told, in
:mod:`pipeplex.participants._guardian_news`). pipeplex never imports this file (tests
do): it runs on its own, with nothing but the standard library, so that it starts in
milliseconds. (A file handed over open rather than ``python -c CODE``: ``ps`` shows a
short line, and nothing on it says "pipeplex", so ``pkill -f pipeplex`` leaves it to stop
the cast.)

It reads pipeplex's lines until EOF (pipeplex ended, however it ended), then stops what
it was told of: the process groups (``+PGID``, ``-PGID``), the orphans pipeplex adopted
(``@PID START``, ``~PID``: a daemon that double-forked, left every group and wrote over its
environment, as redis and nginx do to set their process titles), a member caught mid-spawn
(``?TICKS STREAMS``, ``!``), what still holds a member's output pipe that pipeplex read
(``>TICKS PIPES``, ``<PIPE``; not after a clean end, ``.``), and every process carrying
the run's id (``=TOKEN``); and, with those, every process below them (a daemon whose parent
still runs). First, it sets back the terminal a console left raw (``TDEV ...``, ``T``).
Where pipeplex is the cast's subreaper (``*PID:START ...``, the children it had before),
the orphans that come to it are looked for here too (see :meth:`Told.look_below`).

A member with a full terminal (``pty = true``) has it as its controlling terminal: when
pipeplex dies, the kernel closes its master and hangs the terminal up, and the member's shell
dies of that SIGHUP before this process can look below it, leaving the daemon it started
(``setsid env -i``) with no trail. So pipeplex hands each such master over, on the socket
that is this process's stdout (``^PGID`` and the descriptor), and it is held here until its
group is let go (``_PGID``) or everything is stopped: the terminal is hung up only then.
"""

from __future__ import annotations

import _socket
import itertools
import math
import os
import select
import signal
import sys
import time

TYPE_CHECKING = False  # (typing and collections take milliseconds to load)
if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

Found = set[tuple[int, int]]
"""Processes by pid and start time: a pid, freed, may go to a stranger."""


def take_lines(buffer: bytes, take: Callable[[bytes], None]) -> bytes:
    """Give ``take`` each whole line of ``buffer``; what follows the last line end, kept for
    the next read. A line it cannot read must not cost the others their effect."""
    *lines, rest = buffer.split(b"\n")
    for line in lines:
        try:
            take(line)
        except (ValueError, OSError):
            pass
    return rest


class Told:
    """What pipeplex told, line by line."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.groups: dict[int, int | None] = {}
        """The groups pipeplex registered, with their leader's start time as this process
        read it (None: the leader was gone by then): see :meth:`ours`."""
        self.adopted: dict[int, int] = {}
        self.token: bytes | None = None
        self.spawning: tuple[int, set[tuple[bytes, bytes]]] | None = None
        self.pipes: dict[tuple[bytes, bytes], int] = {}
        """Members' output pipes pipeplex reads, with when each was spawned: see
        :func:`holding_pipes`."""
        self.clean = False
        """pipeplex ended well: it had its say on what is left (``.``)."""
        self.terminal: tuple[int, list[int | list[bytes]]] | None = None
        """A terminal pipeplex's console put in raw mode (open), and its settings before."""
        self.spared: set[tuple[int, int]] | None = None
        """pipeplex's children from before the cast, by pid and start time, once it said
        it is the cast's subreaper (``*``): see :meth:`look_below`. None: it is not, and
        what becomes its child is not the cast's."""
        self._looked = 0.0
        self._soon_until = 0.0
        self._clock = clock
        self._buffer = b""

    def drained(self) -> bool:
        """Read what is there; False at EOF."""
        while True:
            try:
                data = os.read(0, 65536)
            except BlockingIOError:
                return True
            if not data:
                return False
            self._buffer = take_lines(self._buffer + data, self.take)

    def take(self, line: bytes) -> None:
        """One line pipeplex told (without its end)."""
        kind, rest = line[:1], line[1:]
        if kind == b"?":
            since, *streams = rest.split(b" ")
            self.spawning = (int(since), {(mnt, link) for mnt, _, link in
                                          (s.partition(b":") for s in streams) if link})
        elif kind == b"!":
            self.spawning = None
        elif kind == b"+":
            pgid = _pid(rest)
            self.groups[pgid] = start_time(pgid)
            self.spawning = None
            self._soon_until = self._clock() + LOOK_SOON_FOR
        elif kind == b">":
            since, *pipes = rest.split(b" ")
            for mnt, _, link in (pipe.partition(b":") for pipe in pipes):
                if link.startswith(b"pipe:"):
                    self.pipes[(mnt, link)] = int(since)
        elif kind == b"<":
            mnt, _, link = rest.partition(b":")
            self.pipes.pop((mnt, link), None)
        elif kind == b".":
            self.clean = True
        elif kind == b"-":
            self.groups.pop(int(rest), None)
        elif kind == b"@":
            pid, when = rest.split(b" ")
            self.adopted[_pid(pid)] = int(when)
        elif kind == b"~":
            self.adopted.pop(int(rest), None)
        elif kind == b"=":
            self.token = b"PIPEPLEX_RUN_ID=" + rest
        elif kind == b"T":
            self._set_terminal(rest)
        elif kind == b"*":
            self.spared = {(_pid(pid), int(when)) for pid, _, when
                           in (child.partition(b":") for child in rest.split())}

    def _set_terminal(self, told: bytes) -> None:
        """``T`` alone: pipeplex set its terminal back. Else the terminal its console made
        raw, by device and name, and its settings before: opened now (never as this
        process's terminal, never through a link), and only if it is that device."""
        if self.terminal is not None:
            os.close(self.terminal[0])
            self.terminal = None
        if not told:
            return
        device, *flags, chars, name = told.split(b" ", 8)
        fd = os.open(name, os.O_RDWR | os.O_NOCTTY | os.O_NOFOLLOW | os.O_NONBLOCK
                     | os.O_CLOEXEC)
        if os.fstat(fd).st_rdev != int(device) or not os.isatty(fd):
            os.close(fd)
            return
        settings: list[int | list[bytes]] = [int(flag) for flag in flags]
        settings.append([bytes([c]) for c in bytes.fromhex(chars.decode())])
        self.terminal = (fd, settings)

    def until_look(self) -> int | None:
        """Milliseconds until the next look below pipeplex is due (0: now); None where it is
        not the cast's subreaper (``*`` not told)."""
        if self.spared is None:
            return None
        every = LOOK_SOON_EVERY if self._clock() < self._soon_until else LOOK_EVERY
        return max(0, math.ceil((self._looked + every - self._clock()) * 1000))

    def look_below(self, parent: int) -> None:
        """Take pipeplex's children for the orphans it adopted, other than the cast's
        groups, this process and the children it had before the cast (a zombie is left for
        it). Nothing tells of an orphan's coming (the SIGCHLD goes to its old parent), and
        pipeplex stopped (SIGSTOP, Ctrl-Z, a debugger) cannot look, nor tell: a daemon a
        member double-forked then, and pipeplex killed, was left to PID 1. So they are
        looked for here, once a second, and ten times a second for a second after each
        spawn, when most daemons fork away; pipeplex tells those it sees itself too.
        What is no longer its child has ended (it was reaped)."""
        self._looked = self._clock()
        found = children(parent)
        spared = self.spared
        if spared is None or os.getppid() != parent:  # (it died as it was read: not every
            return  # child was listed)
        me = os.getpid()
        adopted = {}
        for child in found:
            if child != me and child not in self.groups:
                when = self.adopted.get(child) or started(child)
                if when is not None and (child, when) not in spared:
                    adopted[child] = when
        self.adopted = adopted

    def ours(self) -> set[int]:
        """The groups told, less those whose number a stranger's process has since: a group
        that emptied while pipeplex could not say so (stopped by SIGSTOP, or in a debugger)
        frees its number, which a stranger's ``setsid`` may take. A group keeps its number
        while any process is in it, so where no process has the leader's number the group,
        if any, is still the cast's, and where one has it, it is ours only if it started
        when the leader did."""
        return {pgid for pgid, when in self.groups.items()
                if (now := start_time(pgid)) is None or now == when}


class Masters:
    """The full terminals' masters pipeplex hands over (see the module's docstring), each
    held until its group is let go."""

    def __init__(self) -> None:
        self.held: dict[int, int] = {}
        self._passed: list[int] = []
        """Descriptors received and not yet taken by their line, in order (each ``^PGID``
        comes with one, passed with its first byte)."""
        self._buffer = b""
        try:
            self._socket: _socket.socket | None = _socket.socket(fileno=1)
            self._socket.setblocking(False)
        except OSError:  # (not a socket: nothing is handed over)
            self._socket = None

    def take(self) -> None:
        """Take what was handed over so far."""
        while self._socket is not None:
            try:
                data, ancillary, _, _ = self._socket.recvmsg(
                    4096, _socket.CMSG_SPACE(64 * 4), _socket.MSG_CMSG_CLOEXEC)
            except OSError:  # (BlockingIOError: nothing more for now)
                return
            for level, kind, passed in ancillary:
                if level == _socket.SOL_SOCKET and kind == _socket.SCM_RIGHTS:
                    self._passed += [int.from_bytes(passed[i:i + 4], sys.byteorder)
                                     for i in range(0, len(passed) - 3, 4)]
            if not data:
                return
            self._buffer = take_lines(self._buffer + data, self._take)

    def _take(self, line: bytes) -> None:
        kind, rest = line[:1], line[1:]
        if kind == b"^":
            if not self._passed:
                raise ValueError("a master told without its descriptor")
            master = self._passed.pop(0)
            try:
                pgid = _pid(rest)
            except ValueError:
                os.close(master)
                raise
            self.let_go(pgid)
            self.held[pgid] = master
        elif kind == b"_":
            self.let_go(_pid(rest))

    def let_go(self, pgid: int) -> None:
        master = self.held.pop(pgid, None)
        if master is not None:
            os.close(master)


def set_back(terminal: tuple[int, list[int | list[bytes]]] | None) -> None:
    """The terminal pipeplex died with in raw mode, as it was before: a shell after it (one
    without line editing of its own, as dash) would read every key raw and echo none."""
    if terminal is None:
        return
    import termios  # (only here: the guardian starts without it)

    fd, settings = terminal
    try:
        termios.tcsetattr(fd, termios.TCSANOW, settings)
        os.write(fd, b"\x1b[?2004l\x1b[?25h")  # (bracketed paste off, the cursor shown)
    except (OSError, termios.error):
        pass


def _pid(text: bytes) -> int:
    pid = int(text)
    if not 0 < pid < 1 << 31:
        raise ValueError(pid)
    return pid


LOOK_EVERY = 1.0
LOOK_SOON_EVERY = 0.1
LOOK_SOON_FOR = 1.0
"""Seconds between looks for the orphans pipeplex adopted (see :meth:`Told.look_below`):
one look wakes this process, some 0.3 ms of CPU on a virtual machine, so the more frequent
ones come only for this long after a spawn."""

GATHER_MS = 250
"""How long a burst of lines (a start wave) gathers before it is read."""


def listen(told: Told, masters: Masters, parent: int) -> None:
    """Until pipeplex's end. A start wave writes a line per member: let the rest gather for
    a quarter second, woken early only by pipeplex's end (POLLHUP) or a look that is due,
    instead of waking for each line and taking the core pipeplex spawns on. Unread lines
    wait safely in the pipe. The masters handed over are taken as the lines are (a
    master's news comes before its group's line): one not taken yet is held by the socket
    meanwhile. Where pipeplex is the cast's subreaper, the looks below it come between."""
    os.set_blocking(0, False)
    waiting = select.poll()
    waiting.register(0, select.POLLIN)
    while True:
        waiting.modify(0, select.POLLIN)
        if waiting.poll(told.until_look()):
            masters.take()
            if not told.drained():
                return
            waiting.modify(0, 0)
            due = told.until_look()
            waiting.poll(GATHER_MS if due is None else min(GATHER_MS, due))
            masters.take()
            if not told.drained():
                return
        if told.until_look() == 0:
            told.look_below(parent)


PROC_OURS = True
"""Whether ``/proc`` is this process's PID namespace's (see :func:`proc_is_ours`): set by
:func:`main`. Where it is not, nothing is read there: the groups are signalled by number."""


def proc_is_ours() -> bool:
    """Whether ``/proc`` shows this PID namespace's processes: not where it is missing (a
    chroot), nor in a namespace made without a ``/proc`` of its own (``unshare -p`` without
    ``--mount-proc``), where ``/proc/N`` is some other process than this namespace's N."""
    try:
        return os.readlink("/proc/self") == str(os.getpid())
    except OSError:
        return False


def processes() -> list[str]:
    """The entries of ``/proc`` (the processes' among them are numbers); none where it is
    not ours."""
    return os.listdir("/proc") if PROC_OURS else []


def children(pid: int) -> list[int]:
    """Its children, from each of its threads (as ``participants.orphans`` reads them: a
    copy, the guardian loads nothing of pipeplex)."""
    found: list[int] = []
    if not PROC_OURS:
        return found
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return found
    for task in tasks:
        try:
            with open(f"/proc/{pid}/task/{task}/children", "rb") as f:
                found += [int(child) for child in f.read().split()]
        except OSError:
            pass
    return found


def stat_fields(pid: int | str) -> list[bytes] | None:
    """The fields of ``/proc/PID/stat`` after ``pid (comm)`` (the name may hold spaces and
    parentheses), None once it is gone; as ``participants._proc`` reads them (a copy: the
    guardian loads nothing of pipeplex)."""
    if not PROC_OURS:
        return None
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read()
    except OSError:
        return None
    end = stat.rfind(b")")
    return stat[end + 2:].split() if end >= 0 else None  # (none: read as it went)


def start_time(pid: int) -> int | None:
    """Its start time in clock ticks after boot, a zombie's too; None if there is no such
    process."""
    fields = stat_fields(pid)
    return int(fields[19]) if fields is not None and len(fields) >= 20 else None


def started(pid: int) -> int | None:
    """Its start time in clock ticks after boot; None once it is gone (or a zombie)."""
    fields = stat_fields(pid)
    if fields is None or len(fields) < 20 or exited(pid, fields):
        return None
    return int(fields[19])


def exited(pid: int | str, fields: list[bytes]) -> bool:
    """Dead, or a zombie with no thread left: Linux shows a process Z once its main thread
    has ended, while its other threads may run on (``main`` ends with ``pthread_exit``)."""
    return fields[0] == b"X" or (fields[0] == b"Z" and running_thread(pid) is None)


def running_thread(pid: int | str) -> int | None:
    """A thread of ``pid`` other than its main one, if there is one."""
    try:
        return next((int(t) for t in os.listdir(f"/proc/{pid}/task") if t != str(pid)), None)
    except OSError:
        return None


def proc_entry(pid: int) -> bytes:
    """Where /proc shows its environment and descriptors: ``/proc/PID``, or a thread's
    entry once its main thread has ended (whose own reads then fail)."""
    fields = stat_fields(pid)
    thread = running_thread(pid) if fields is not None and fields[0] == b"Z" else None
    return b"/proc/%d" % pid if thread is None else b"/proc/%d/task/%d" % (pid, thread)


def ignores_sigterm(pid: int) -> bool:
    """Whether it ignores SIGTERM (its ``SigIgn`` in ``/proc/PID/status``)."""
    try:
        with open(proc_entry(pid) + b"/status", "rb") as f:
            status = f.read()
    except OSError:
        return False
    for line in status.split(b"\n"):
        if line.startswith(b"SigIgn:"):
            return bool(int(line[7:].strip(), 16) & 1 << (signal.SIGTERM - 1))
    return False


def streams_of(pid: int) -> set[tuple[bytes, bytes]]:
    """Its stdin, stdout and stderr: (mount id, what /proc names them) each."""
    found = set()
    at = proc_entry(pid)
    for fd in (b"0", b"1", b"2"):
        try:
            link = os.readlink(at + b"/fd/" + fd)
            with open(at + b"/fdinfo/" + fd, "rb") as f:
                info = f.read()
        except OSError:
            continue
        for field in info.split(b"\n"):
            if field.startswith(b"mnt_id:"):
                found.add((field[7:].strip(), link))
    return found


def caught_mid_spawn(told: Told, parent: int, parent_exit: int | None) -> Found:
    """The member pipeplex was spawning as it died: its child exists before the spawn
    returns, unregistered. Known by the streams it was given (it may drop one before we
    look), and by having started since the spawn was told. A pty of ours reads
    "/dev/pts/N (deleted)" once pipeplex's end is complete: a live /dev/pts/N is a
    stranger's terminal that got the number (or one in another container's devpts, which
    the mount id tells apart)."""
    found: Found = set()
    if told.spawning is None:
        return found
    since, streams = told.spawning
    ptys = any(link.startswith(b"/dev/pts/") for _, link in streams)
    if ptys and parent_exit is not None and os.getppid() == parent:
        select.select([parent_exit], [], [], 1.0)  # (a clean close: pipeplex lives, 1 s once)
    ours = {(mnt, link + b" (deleted)" if link.startswith(b"/dev/pts/") else link)
            for mnt, link in streams}
    now = int(time.clock_gettime(time.CLOCK_BOOTTIME) * os.sysconf("SC_CLK_TCK")) + 1
    me = os.getpid()
    for entry in processes():
        if entry.isdigit() and int(entry) != me and streams_of(int(entry)) & ours:
            when = started(int(entry))
            if when is not None and since - 1 <= when <= now:
                found.add((int(entry), when))
    return found


def holding_pipes(told: Told) -> Found:
    """The processes, started since its spawn, that hold as their stdin, stdout or stderr
    an output pipe of a member that pipeplex still read as it died: a member's child that
    left its group (``setsid``) and dropped the run's id (``env -i``), orphaned in the
    moment before pipeplex would have told of its adoption (or with no subreaper to adopt
    it, under the Python API), still holds the member's output when a shell started it
    (``(setsid cmd &)``). A pipe pipeplex reads is known by its inode, which no other pipe
    has while it lives. Not after a clean end: what is left then was pipeplex's to say.
    (Not a pty: its number, freed, goes to a stranger's terminal.)"""
    found: Found = set()
    if not told.pipes or told.clean:
        return found
    me = os.getpid()
    for entry in processes():
        if not entry.isdigit() or int(entry) == me:
            continue
        held = streams_of(int(entry)) & told.pipes.keys()
        when = started(int(entry)) if held else None
        if when is not None and when >= min(told.pipes[stream] for stream in held) - 1:
            found.add((int(entry), when))
    return found


def marked(token: bytes | None) -> Iterator[int]:
    """Every process carrying the run's id in its environment, the newest first, each as
    soon as it is found: one that forks and exits over and over (a new pid each time) is
    signalled in the moment after it is seen, not after the whole of /proc was read."""
    if token is None:
        return
    me = os.getpid()
    for pid in sorted((int(e) for e in processes() if e.isdigit()), reverse=True):
        if pid != me:
            try:
                try:
                    with open(f"/proc/{pid}/environ", "rb") as f:
                        environ = f.read()
                except ProcessLookupError:  # (its main thread ended: see exited)
                    environ = b""
                if not environ and (at := proc_entry(pid)) != b"/proc/%d" % pid:
                    with open(at + b"/environ", "rb") as f:  # (empty, by the kernel's
                        environ = f.read()  # version, rather than ESRCH)
                if token in environ.split(b"\0"):
                    yield pid
            except OSError:
                pass


def descendants(groups: set[int], roots: set[int]) -> Found:
    """The processes below those of ``groups`` and ``roots`` (``roots`` gains the former):
    among them a daemon whose parent, a member's process, still runs, but which left its
    group, dropped the run's id and closed the member's streams. One pass over /proc."""
    parents: dict[int, list[int]] = {}
    me = os.getpid()
    for entry in processes():
        if not entry.isdigit() or int(entry) == me:
            continue
        fields = stat_fields(entry)
        if fields is None or exited(entry, fields):
            continue
        pid, ppid, pgid = int(entry), int(fields[1]), int(fields[2])
        parents.setdefault(ppid, []).append(pid)
        if pgid in groups:
            roots.add(pid)
    found: Found = set()
    todo = list(roots)
    seen = set(roots)
    while todo:
        for child in parents.get(todo.pop(), ()):
            if child not in seen:
                seen.add(child)
                todo.append(child)
                when = started(child)
                if when is not None:
                    found.add((child, when))
    return found


class Stop:
    """Everything to stop, and how to tell what is left."""

    def __init__(self, told: Told, known: Found) -> None:
        self.leaders = {pgid: told.groups[pgid] for pgid in told.ours()}
        """The groups to stop, with their leader's start time (None: gone when told): a
        group that empties as it is stopped frees its number, which a stranger may take
        before the last look."""
        self.groups = set(self.leaders)
        self.token = told.token
        self.told = told
        self.known = known
        self.look_again()

    def look_again(self) -> None:
        """Add the processes below the ones known (and the groups they lead), and those
        that hold a member's output pipe: at the start, and after SIGTERM, which some
        answer by starting a process of their own (one that holds the pipe is found even
        once its parent has exited)."""
        self.known |= descendants(self.groups, {pid for pid, _ in self.known}
                                  | set(marked(self.token))) | holding_pipes(self.told)
        for pid, when in self.known:  # one that leads its group (a member, a daemon): too
            try:
                if started(pid) == when and os.getpgid(pid) == pid:
                    self.groups.add(pid)
                    self.leaders.setdefault(pid, when)
            except OSError:
                pass

    def alive(self) -> set[int]:
        return {pid for pid, when in self.known if started(pid) == when}

    def freeze(self) -> None:
        """SIGSTOP them all, then look below them again, until a look finds none new: a
        stopped process cannot fork, so a child a member started in the moment before the
        SIGTERM (one that leaves its group and drops its environment as that SIGTERM ends
        its parent) is found while its parent still holds it. A few passes at most."""
        for _ in range(5):
            before = set(self.known)
            groups = set(self.groups)
            self.signal_all(signal.SIGSTOP)
            self.look_again()
            if self.known <= before and self.groups <= groups:
                return

    def kill_the_deaf(self) -> None:
        """SIGKILL, while they are stopped, those that ignore SIGTERM: it would only let them
        run on for the half second before the SIGKILL, in which one that starts daemons (a
        loop under ``trap '' TERM``) starts more, in sessions of their own and without the
        run's id, where the last look cannot find them."""
        me = os.getpid()
        found = set(marked(self.token)) | self.alive()
        groups = {pgid for pgid in self.groups  # (not one whose number is a stranger's now)
                  if start_time(pgid) in (None, self.leaders.get(pgid))}
        for entry in processes():
            fields = stat_fields(entry) if entry.isdigit() and int(entry) != me else None
            if fields is not None and int(fields[2]) in groups:
                found.add(int(entry))
        for pid in found:
            if ignores_sigterm(pid):
                try:
                    os.kill(pid, signal.SIGKILL)
                except OSError:
                    pass

    def signal_all(self, sig: int) -> None:
        for pgid in self.groups:
            now = start_time(pgid)
            if now is not None and now != self.leaders.get(pgid):
                continue  # (its number is a stranger's now)
            try:
                os.killpg(pgid, sig)
            except OSError:
                pass
        for pid in itertools.chain(marked(self.token), self.alive()):
            try:
                if os.getpgid(pid) not in self.groups:  # (those had it with their group:
                    os.kill(pid, sig)  # a second SIGTERM means "now" to some programs)
            except OSError:
                pass

    def follow(self) -> None:
        """While they answer SIGTERM: look below them again, and stop (SIGSTOP) what is new,
        to be killed with the rest. A handler may start a helper in a session of its own
        and without the run's id, then exit: the helper is found while its parent lives
        (a look each pass, some 20 ms apart, more with hundreds of processes to read) or
        while it holds a member's output pipe; one whose parent exits between two looks
        goes to PID 1, below nothing followed. What is new gets no SIGTERM of its own: one
        that answered it by handing off to a process of its own in a new session, and
        exiting, would leave that one outside too; stopped, it forks nothing more. (Nor
        does a group a process of theirs made since, with setsid in its handler: it had its
        SIGTERM.)"""
        for _ in range(5):
            before = set(self.known)
            self.look_again()
            new = self.known - before
            if not new:
                return
            for pid, when in new:
                try:
                    if started(pid) == when:
                        os.kill(pid, signal.SIGSTOP)
                except OSError:
                    pass

    def gone_within(self, seconds: float, sig: int | None = None) -> bool:
        """Whether none is left within ``seconds``, signalling them with ``sig`` at each look
        (if given; else following them, :meth:`follow`, a look every 20 ms). None is left
        once looks found none for 50 ms: one look can miss a process that forks anew as
        fast as it can, in a new session each time (listed, then gone as it is read; its
        new pid came after the listing)."""
        deadline = time.monotonic() + seconds
        seen = time.monotonic()
        while (now := time.monotonic()) < deadline:
            if sig is not None:
                self.signal_all(sig)
            else:
                self.follow()
            if self.left():
                seen = now
            elif now - seen >= 0.05:
                return True
            if sig is None:
                time.sleep(0.02)
        return False

    def left(self) -> bool:
        if not PROC_OURS:  # (a chroot without it: the groups, by signal 0)
            return any(_group_alive(pgid) for pgid in self.groups)
        # A zombie left in a group (its parent has not reaped it yet) is dead already.
        if next(marked(self.token), None) is not None or self.alive():
            return True
        for pid in processes():
            fields = stat_fields(pid) if pid.isdigit() else None
            if (fields is not None and int(fields[2]) in self.groups
                    and not exited(pid, fields)):
                return True
        return False


def _group_alive(pgid: int) -> bool:
    """Whether a process is left in the group (a zombie too: without /proc, nothing tells)."""
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # (EPERM: one is there, of another user)
        pass
    return True


def lift_descriptor_limit() -> None:
    """Raise the soft limit on descriptors to the hard one: each full terminal's master is
    held here, and pipeplex, which started this before it knew its cast, lifts its own
    limit for the cast later. A master past the limit would be lost on the way (the kernel
    drops it), and with it what is below that member's shell when pipeplex is killed."""
    import resource  # (0.3 ms: loaded here, not for the module)

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != hard:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        except (ValueError, OSError):  # (never seen: the guardian goes on all the same)
            pass


def main() -> None:
    global PROC_OURS
    if sys.argv[0].startswith("/proc/self/fd/"):  # (how pipeplex runs it: read by now)
        os.close(int(sys.argv[0].rpartition("/")[2]))
    PROC_OURS = proc_is_ours()
    lift_descriptor_limit()
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT):
        signal.signal(sig, signal.SIG_IGN)
    signal.pthread_sigmask(signal.SIG_SETMASK, ())  # (pipeplex run starts it with them held)
    parent = os.getppid()  # pipeplex: at EOF, its exit may not be complete yet
    try:
        parent_exit: int | None = os.pidfd_open(parent)
    except OSError:
        parent_exit = None
    told = Told()
    masters = Masters()  # (held until this process ends, once it has stopped everything)
    listen(told, masters, parent)
    masters.take()  # (what came last, also once pipeplex is gone)
    if not told.clean:
        set_back(told.terminal)
    # Once, as pipeplex ended; then followed by pid and start time.
    known = (caught_mid_spawn(told, parent, parent_exit) | holding_pipes(told)
             | set(told.adopted.items()))
    stop = Stop(told, known)
    if not stop.left():
        return  # (pipeplex stopped everything itself: the usual end)
    stop.freeze()
    stop.kill_the_deaf()
    stop.signal_all(signal.SIGTERM)
    stop.signal_all(signal.SIGCONT)  # (each takes its SIGTERM now, as at a stop)
    if not stop.gone_within(0.5):
        stop.freeze()  # (the last look, with none of them able to fork meanwhile)
        stop.gone_within(1.0, signal.SIGKILL)

if __name__ == "__main__":
    main()
