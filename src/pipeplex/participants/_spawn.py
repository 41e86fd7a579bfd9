"""Spawning a member's child in a session of its own: what it is given (its stdin, stdout
and stderr, its environment), the PATH lookup, the signals that could reach it before its
program runs, and why a spawn failed, in words."""

from __future__ import annotations

import contextlib
import errno
import functools
import os
import shlex
import shutil
import signal
import subprocess
from collections.abc import Callable, Mapping

from .. import _descriptor_limit as descriptor_limit
from .._events import Stream
from .._printable import printable
from .._signals import ignored_for_children
from ..cast.spec import ProcSpec, expand
from ._proc import PF_EXITING, PF_FORKNOEXEC, child_flags
from ._pty import make_controlling_tty, open_pty

__all__ = ("GROUP_SIGNALS", "NO_PAGER", "bad_text", "drop_group_signals", "find_executable",
           "forget_executables", "nul_in", "open_streams", "run_environment", "short_of",
           "spawn", "spawn_reason", "spawn_status")

_EXECUTABLES: dict[tuple[str, str], str] = {}
_EXECUTABLES_KEEP = 256


GROUP_SIGNALS = (signal.SIGINT, signal.SIGQUIT, signal.SIGTSTP, signal.SIGHUP, signal.SIGTERM)
"""What comes to a whole process group: a terminal's Ctrl-C, Ctrl-\\ and Ctrl-Z and its hangup,
a supervisor's kill of the group. A child is in pipeplex's group from its fork until its
setsid(), and gets them too in that instant."""

_SPAWN_TRIES = 3

_SHEBANG_MAX = 255
"""The longest ``#!`` line Linux reads (the rest of its 256-byte buffer)."""

NO_PAGER = {name: "cat" for name in ("PAGER", "GIT_PAGER", "MANPAGER", "SYSTEMD_PAGER",
                                     "PSQL_PAGER")}
"""For a member whose stdin is not a terminal: ``git log``, ``man`` or ``psql`` on its
stdout's pty would start ``less``, which reads keys from a terminal nobody types into, shows
one page and quits, and the program dies of SIGPIPE. (A cast's own ``env`` still wins.)"""


def spawn(argv: list[str], *, full_terminal: bool, executable: str | None, stdin: int,
          stdout: int, stderr: int, cwd: str | None,
          env: Mapping[str, str]) -> subprocess.Popen[bytes]:
    """``Popen`` in a session of its own, without what was meant for pipeplex's group.

    A signal sent to pipeplex's group in the instant a child is still in it (a Ctrl-C as a
    start wave spawns) reaches the child too. Spawned by vfork, as most are, the child
    resets its handlers and dies of it before its program runs: it is spawned again (at
    most twice more). A full terminal's child is forked (its set-up runs Python code) and
    would run pipeplex's own handler, telling pipeplex's loop of the signal a second time
    (and a second Ctrl-C skips the grace): pipeplex holds those signals back while it forks,
    and the child drops what came before it takes them again (:func:`_in_child`). So is the
    child of a process that ignores or blocks signals (a program using the Python API): it
    sets them back to the default before its program runs, as a member must start. Either
    way, it gets the limit on descriptors pipeplex was given (:mod:`.._descriptor_limit`)."""
    def popen(preexec_fn: Callable[[], None] | None = None) -> subprocess.Popen[bytes]:
        with descriptor_limit.as_given():
            return subprocess.Popen(argv, executable=executable, stdin=stdin, stdout=stdout,
                                    stderr=stderr, cwd=cwd, env=env, start_new_session=True,
                                    preexec_fn=preexec_fn)

    ignored = ignored_for_children()
    if full_terminal or ignored is not None:
        held = signal.pthread_sigmask(signal.SIG_BLOCK, GROUP_SIGNALS)
        try:
            return popen(functools.partial(_in_child, held, full_terminal, ignored))
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, held)
    child = popen()
    for _ in range(_SPAWN_TRIES - 1):
        if not _killed_before_exec(child.pid):
            break
        child.wait()
        child = popen()
    return child


def _in_child(held: set[int], full_terminal: bool, ignored: frozenset[int] | None) -> None:
    """In a forked child, after its setsid(): drop what pipeplex's group got while the
    child was in it; make the pty its terminal (a full terminal's); and start with every
    signal at its default and none blocked, whatever this process ignored or blocked
    (``ignored``: None when it did neither)."""
    drop_group_signals(held)
    if full_terminal:
        make_controlling_tty()
    if ignored is not None:
        for sig in ignored:
            with contextlib.suppress(OSError, ValueError):  # (the C library's own)
                signal.signal(sig, signal.SIG_DFL)
        signal.pthread_sigmask(signal.SIG_SETMASK, ())


def drop_group_signals(held: set[int]) -> None:
    """In a child, after its setsid(), its :data:`GROUP_SIGNALS` held back since the fork:
    drop one that is pending (setting it ignored drops it), set each back as exec() would
    leave it (default for a caught one, ignored for one the parent ignored), then take
    signals as the parent did before it held them (``held``, its mask then)."""
    for sig in GROUP_SIGNALS:
        ignored = signal.getsignal(sig) == signal.SIG_IGN
        signal.signal(sig, signal.SIG_IGN)
        if not ignored:
            signal.signal(sig, signal.SIG_DFL)
    signal.pthread_sigmask(signal.SIG_SETMASK, held)


def _killed_before_exec(pid: int) -> bool:
    """Whether the child ``pid``, whose vfork has returned, is dying without having run its
    program: of a signal sent to this process's group while the child was in it, held back
    until the child took signals again (after its setsid(), before its exec()).

    One look decides: a vfork returns when the child exits, which marks it exiting first,
    or when its exec() has begun, past any signal of ours (a pending one kills it as it
    takes signals again, before exec). So "exiting, never exec'd" is that death, and
    anything else is a program under way."""
    flags = child_flags(pid)
    return flags is not None and bool(flags & PF_EXITING and flags & PF_FORKNOEXEC)


def open_streams(spec: ProcSpec, columns: int, rows: int, ours: list[int], fds: list[int]
                 ) -> tuple[tuple[int, int, int], int, dict[int, Stream]]:
    """For a run of ``spec``: the child's ends of its stdin, stdout and stderr; ours of its
    stdin (a full terminal's master, which is its output too); and the read ends of its
    output, each with the stream it is. Its ptys are ``columns`` wide and ``rows`` high.
    Every descriptor opened goes to ``fds`` (the child's) or ``ours`` as soon as it exists,
    for the caller to close."""
    if spec.pty == "full":
        master, slave = open_pty(raw=False, columns=columns, rows=rows)
        ours.append(master)
        fds.append(slave)
        return (slave, slave, slave), master, {master: "stdout"}
    in_r, in_w = os.pipe()
    fds.append(in_r)
    ours.append(in_w)
    if spec.pty == "stdout":
        out_r, out_w = open_pty(raw=True, columns=columns, rows=rows)
    else:
        out_r, out_w = os.pipe()
    ours.append(out_r)
    fds.append(out_w)
    readers: dict[int, Stream] = {out_r: "stdout"}
    err_w = out_w  # stderr = "stdout": one stream, in the order written
    if spec.stderr == "apart":
        err_r, err_w = os.pipe()
        ours.append(err_r)
        fds.append(err_w)
        readers[err_r] = "stderr"
    for fd in (in_w, *readers):
        os.set_blocking(fd, False)
    return (in_r, out_w, err_w), in_w, readers


def run_environment(spec: ProcSpec, overrides: Mapping[str, str],
                    variables: Mapping[str, str]) -> dict[str, str]:
    """The environment a run of ``spec`` gets with ``variables``, pipeplex's ``overrides``
    (the run's id...) applied over its own."""
    env = dict(os.environ)
    # Python children flush each write; harmless for everything else.
    env.setdefault("PYTHONUNBUFFERED", "1")
    env.update(overrides)
    if spec.pty != "full":
        env.update(NO_PAGER)
    env.update({key: expand(value, variables) for key, value in spec.env.items()})
    # Ours, whatever came before (a spec built by hand is not checked): they tell which
    # member of which run a process belongs to, and the stop finds by them what it started.
    env["PIPEPLEX_NAME"] = spec.name
    if "PIPEPLEX_RUN_ID" in overrides:
        env["PIPEPLEX_RUN_ID"] = overrides["PIPEPLEX_RUN_ID"]
    return env


def find_executable(program: str, env: Mapping[str, str]) -> str | None:
    """The file ``program`` runs from the child's PATH, looked up once per program and PATH.

    Left to itself, the child tries every PATH entry in turn, and with vfork the loop waits
    for each failed exec (50-100 us a member here). A file found earlier is used while it
    is still executable, as a shell's command hash does. None: let the child search (a name
    with a slash, or a PATH with relative entries, which depend on the member's cwd).
    """
    path = env.get("PATH", os.defpath)
    if "/" in program or not program:
        return None
    key = (program, path)
    found = _EXECUTABLES.get(key)
    if found is not None and os.access(found, os.X_OK):
        return found
    if any(not os.path.isabs(entry) for entry in path.split(os.pathsep)):
        return None
    found = shutil.which(program, path=path)
    if found is not None:
        if len(_EXECUTABLES) >= _EXECUTABLES_KEEP:
            _EXECUTABLES.clear()
        _EXECUTABLES[key] = found
    return found


def forget_executables() -> None:
    """Look every program up again: a file found earlier is gone."""
    _EXECUTABLES.clear()


def _first_line(file: str, size: int = 512) -> bytes:
    """The start of ``file``'s first line (b"" if it cannot be read)."""
    try:
        with open(file, "rb") as f:
            return f.readline(size)
    except OSError:
        return b""


def _interpreter(first: bytes) -> str:
    """The program a ``#!`` line names, as the kernel splits it (a ``\\r`` stays)."""
    line = first[2:].rstrip(b"\n").lstrip(b" \t")
    return line.replace(b"\t", b" ").split(b" ", 1)[0].decode(errors="replace")


def _missing_interpreter(program: str) -> str:
    """Why ``program``, which exists, was not found when run: what it needs to run is not."""
    first = _first_line(program, 256)
    if first.startswith(b"#!"):
        interpreter = _interpreter(first)
        if interpreter.endswith("\r"):
            return (f"its #! line ends in a Windows line end (\\r): {program!r} names "
                    f"{interpreter!r} as its interpreter; convert it with dos2unix")
        return (f"its interpreter was not found: {interpreter or '(none)'!r} "
                f"(the #! line of {program!r})")
    return (f"{program!r} exists, but what it needs to run was not found (its loader: a "
            "program built for another system?)")


def _refused(program: str, file: str) -> str:
    """Why ``program`` (its ``file``), an executable file, could not be run (EACCES): its
    ``#!`` interpreter is not a program, or its file system does not run programs."""
    first = _first_line(file)
    if (first.startswith(b"#!") and (interpreter := _interpreter(first))
            and not (os.path.isfile(interpreter) and os.access(interpreter, os.X_OK))):
        what = ("is a folder; name a program there (#!/bin/sh, #!/usr/bin/env python3)"
                if os.path.isdir(interpreter) else
                "is not executable; make it so (chmod +x), or name another program there"
                if os.path.exists(interpreter) else
                "cannot be reached: a folder on its way may not be entered")
        return f"its interpreter {interpreter!r} (the #! line of {program!r}) {what}"
    return (f"permission denied: {program!r} is executable, but this system refused to run it "
            "(is its file system mounted noexec?)")


def _not_runnable(program: str, file: str, cwd: str | None) -> str:
    """Why ``program`` (its ``file``), which the kernel refused as no program it runs
    (ENOEXEC), did not start: a program built for another system, a script without a
    ``#!`` line, which only a shell would run, or with one the kernel cannot take."""
    first = _first_line(os.path.join(cwd or "", file))
    if first.startswith(b"\x7fELF"):
        return (f"{program!r} is a program built for another system (its processor or its "
                "format): this one cannot run it")
    if first.startswith(b"#!"):
        if not (interpreter := _interpreter(first)):
            return f"the #! line of {program!r} names no interpreter; write one (#!/bin/sh)"
        if len(first.rstrip(b"\n")) >= _SHEBANG_MAX:
            return (f"the #! line of {program!r} is longer than this system reads ("
                    f"{_SHEBANG_MAX} bytes); shorten it (#!/usr/bin/env NAME)")
        return (f"its interpreter {interpreter!r} (the #! line of {program!r}) is not a "
                "program this system can run")
    shown = shlex.quote(program)
    return (f"{program!r} is not a program this system can run (a script without a #! "
            f"line?); begin it with one (#!/bin/sh), or run it with its interpreter (sh "
            f"{shown})")


def bad_text(exc: ValueError) -> str:
    """Why a command or environment could not be handed to the program."""
    if isinstance(exc, UnicodeEncodeError):  # (text from a cast file, in an ASCII locale)
        return (f"its command or environment holds {exc.object[exc.start:exc.end]!r}, which "
                f"the locale's encoding ({exc.encoding}) cannot express; run pipeplex in a "
                "UTF-8 locale (LC_ALL=C.UTF-8) or with PYTHONUTF8=1")
    return f"{exc} in its command or environment"


def nul_in(variables: Mapping[str, str], spec: ProcSpec) -> str | None:
    """Which captured value the member uses holds a NUL byte, which no command line or
    environment can carry: a program's output taken as a value (None: none does)."""
    used = spec.referenced_variables()
    held = sorted(name for name, value in variables.items() if "\0" in value and name in used)
    if not held:
        return None
    name = held[0]
    value = variables[name]
    shown = printable(value[:60]) + ("..." if len(value) > 60 else "")
    return (f"{{{name}}} holds a NUL byte ({shown}), which no command or environment can "
            "carry; make the pattern that captures it (a ready, or an expect step's) match "
            "less (\\w+, [^\\x00]+)")


SHORT_OF = (errno.EMFILE, errno.ENFILE, errno.EAGAIN, errno.ENOMEM)
"""Why a spawn fails when it is no fault of the command: out of descriptors, processes or
memory (fork's EAGAIN is a limit on processes)."""


def spawn_status(exc: OSError) -> int:
    """The exit status a spawn that failed with ``exc`` counts for, as a shell's: 126 for a
    file that is there but cannot be run, 127 for one that is not there (or a folder that
    cannot be entered); 1 when pipeplex or the system was short of something it needs
    (127 would read "command not found")."""
    if exc.errno in SHORT_OF:
        return 1
    return 126 if isinstance(exc, PermissionError) or exc.errno == errno.ENOEXEC else 127


def short_of(exc: OSError) -> str | None:
    """What pipeplex or the system ran out of, when that is why ``exc`` came, and how to
    make room; None for another error."""
    import resource

    if exc.errno == errno.EMFILE:
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        return (f"pipeplex is out of file descriptors (its limit is {soft}, a few for each "
                f"member); raise it with ulimit -n (up to {hard} without root), or run fewer "
                "members")
    if exc.errno == errno.ENFILE:
        return ("the system is out of file descriptors (fs.file-max); end some programs, or "
                "raise it")
    if exc.errno == errno.EAGAIN:
        soft, _ = resource.getrlimit(resource.RLIMIT_NPROC)
        limit = "unlimited" if soft == resource.RLIM_INFINITY else str(soft)
        return (f"no process could be created: this user's limit on processes (ulimit -u: "
                f"{limit}) or the system's (kernel.pid_max, a cgroup's pids.max) is reached; "
                "end some, or raise it")
    if exc.errno == errno.ENOMEM:
        return "the system is out of memory for a new process"
    return None


def spawn_reason(exc: OSError, argv: list[str], executable: str | None = None,
                  cwd: str | None = None) -> str:
    """Why ``argv`` did not start (``executable``: its file, if it was looked up; ``cwd``:
    the folder it was to start in)."""
    short = short_of(exc)
    if short is not None:
        return short
    if cwd is not None and exc.filename == cwd and cwd not in (argv[0], executable):
        fix = ("; give it a folder it may enter (x permission on it and on each folder "
               "above it)" if isinstance(exc, PermissionError) else "")
        return f"cannot enter its cwd {cwd!r}: {exc.strerror or exc}{fix}"
    if isinstance(exc, FileNotFoundError) and exc.filename in (None, argv[0], executable):
        file = executable or (os.path.join(cwd, argv[0]) if cwd and "/" in argv[0] else
                              argv[0] if "/" in argv[0] else None)
        if file is not None and os.path.isfile(file):
            return _missing_interpreter(file)
        return f"command not found: {argv[0]!r}"
    if isinstance(exc, PermissionError):
        file = executable or argv[0]
        path = file if os.path.isabs(file) or not cwd else os.path.join(cwd, file)
        if os.path.isfile(path) and os.access(path, os.X_OK):
            return _refused(argv[0], path)
        if os.path.isfile(path):
            shown = shlex.quote(argv[0])
            return (f"permission denied: {argv[0]!r} is not executable; make it so "
                    f"(chmod +x {shown}), or run it with its interpreter (sh {shown})")
        return f"permission denied: {argv[0]!r} is not executable"
    if exc.errno == errno.E2BIG:
        size = sum(len(os.fsencode(arg)) + 1 for arg in argv)
        return (f"its command is {size:,} bytes long, and with its environment more than this "
                f"system takes ({os.sysconf('SC_ARG_MAX'):,} bytes at most): give the program "
                "its data in a file, or on its stdin")
    if exc.errno == errno.ENOEXEC:
        return _not_runnable(argv[0], executable or argv[0], cwd)
    if exc.filename:
        return f"{exc.strerror}: {exc.filename!r}"
    return exc.strerror or str(exc)

