"""Whether a cast is whole and can run here: each member's fields (for a spec built in
code, as the loader reads them for a file), what involves several members (names,
``after``, variables), and the programs and folders on this machine. Every mistake is a
:class:`~pipeplex.errors.CastError` at its file and line; :class:`Mistakes` gathers those
of one reading, to be said together."""

from __future__ import annotations

import contextlib
import itertools
import os
import re
import shutil
import stat
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from .._printable import quoted as shown
from .._seconds import SECONDS_SAID, is_seconds
from .._suggest import close_match, suggest
from ..errors import CastError, CastErrors, ours_in_tracebacks
from .order import after_first, circle
from .spec import (
    DEFAULT_READY_CMD_TIMEOUT,
    MAX_ARGUMENT,
    NAME_RE,
    RESERVED_NAMES,
    CastSpec,
    OnExit,
    ProcSpec,
    PtyMode,
    StderrMode,
    is_port,
    is_port_template,
    matches_anywhere,
    quoted,
    ready_regex,
    shell_syntax_of,
    split_command,
    variables_in,
)

__all__ = ("ON_EXIT", "PTY_MODES", "SHELL_BUILTINS", "STDERR_MODES", "Mistakes",
           "beside_the_file", "check_commands", "check_fields", "check_name", "closure",
           "command_too_long", "env_problem", "identifier", "key_using", "ready_problem",
           "validate_cast")
__tracebackhide__ = ours_in_tracebacks  # (pytest: see there)


ON_EXIT: tuple[OnExit, ...] = ("stop", "ignore", "restart")


PTY_MODES: tuple[PtyMode, ...] = ("stdout", "full", "pipes")


STDERR_MODES: tuple[StderrMode, ...] = ("apart", "stdout")


def check_name(name: str, source: str | None) -> None:
    if not NAME_RE.fullmatch(name):
        raise CastError(
            f"invalid member name {shown(name)}: use 1 to 64 ASCII letters, digits, '_', '.' "
            "or '-', starting with a letter or digit",
            source=source,
        )
    if name.lower() in RESERVED_NAMES:
        reserved = name.lower()
        what = (f"the name {name!r} is reserved" if name == reserved else
                f"the name {name!r} reads as {reserved!r}, which is reserved")
        raise CastError(f"{what} ({RESERVED_NAMES[reserved]}); choose another", source=source)


class Mistakes:
    """The mistakes found in a file so far, each a :class:`CastError`, to be said all at
    once (:meth:`raise_any`) rather than one a run: each check that can fail on its own
    runs in :meth:`collecting`."""

    def __init__(self) -> None:
        self.found: list[CastError] = []

    @contextlib.contextmanager
    def collecting(self) -> Iterator[None]:
        try:
            yield
        except CastError as exc:
            self.add(exc)

    def add(self, error: CastError) -> None:
        self.found += error.errors if isinstance(error, CastErrors) else (error,)

    def raise_any(self) -> None:
        """Raise what was found, if anything (see :meth:`error`)."""
        if self.found:
            raise self.error()

    def error(self) -> CastError:
        """What was found: the one mistake, or :class:`CastErrors` (at least one); raised
        from where it is raised again (not also from where it was first)."""
        error = self.found[0] if len(self.found) == 1 else CastErrors(self.found)
        return error.with_traceback(None)


def validate_cast(cast_spec: CastSpec) -> CastSpec:
    """Check what involves several members: names, ``after`` and variables.

    Also each member's own fields, as the loaders do key by key, for specs built in code.
    """
    mistakes = Mistakes()
    seen: dict[str, ProcSpec] = {}
    for proc in cast_spec.procs:
        with mistakes.collecting():
            check_fields(proc)
    mistakes.raise_any()  # (what follows reads each member's name and after)
    folded: dict[str, ProcSpec] = {}
    for proc in cast_spec.procs:
        if proc.name in seen:
            earlier = seen[proc.name].source
            also = ("another -p gives it too" if earlier == "-p" and proc.source == "-p" else
                    f"also declared at {earlier or 'the command line'}")
            mistakes.found.append(CastError(f"duplicate member name {proc.name!r} ({also})",
                                            source=proc.source))
        elif (alike := folded.get(proc.name.casefold())) is not None:
            mistakes.found.append(CastError(
                f"member name {proc.name!r} differs from {alike.name!r} (at "
                f"{alike.source or 'the command line'}) only by case: their NAME.in files "
                "are one file where names are caseless (macOS), and they read alike in the "
                "stream; give them names apart", source=proc.source))
        seen[proc.name] = proc
        folded.setdefault(proc.name.casefold(), proc)
    for proc in cast_spec.procs:
        for dep in proc.after:
            if dep == proc.name:
                mistakes.found.append(CastError(
                    f"{proc.name}: a member cannot start after itself",
                    source=proc.where("after")))
            elif not dep:
                mistakes.found.append(CastError(
                    f"{proc.name}: after holds an empty name ('')", source=proc.where("after")))
            elif dep not in seen:
                others = [name for name in seen if name != proc.name]
                mistakes.found.append(CastError(
                    f"{proc.name}: after names {dep!r}, which is not a member"
                    f"{suggest(dep, others) if others else ' (the cast has no other)'}",
                    source=proc.where("after")))
    # What follows reads the graph as if those were gone: its mistakes are said with them.
    with mistakes.collecting():
        _check_cycles(seen)
    captures = {proc.name: proc.captured_variables() for proc in cast_spec.procs}
    captured: dict[str, str] = {}
    for proc in cast_spec.procs:
        for var in sorted(captures[proc.name]):
            if var in captured:  # one namespace: which value {var} meant would depend on timing
                mistakes.found.append(CastError(
                    f"{proc.name}: its ready captures {{{var}}}, which {captured[var]} "
                    f"captures too; give the groups different names, e.g. "
                    f"(?P<{identifier(proc.name)}_{var}>...)", source=proc.where("ready")))
            else:
                captured[var] = proc.name
    # Members that start after one that is not there, directly or through others: their
    # after, once right, may give what they use.
    misnamed = {proc.name for proc in cast_spec.procs
                if any(dep not in seen for dep in closure(proc, seen))}
    for proc in cast_spec.procs:
        if proc.name not in misnamed:
            with mistakes.collecting():
                _check_variables(proc, captures, captured, seen)
    mistakes.raise_any()
    return cast_spec


def _check_variables(proc: ProcSpec, captures: Mapping[str, set[str]],
                     captured: Mapping[str, str], seen: Mapping[str, ProcSpec]) -> None:
    """Refuse a ``{name}`` in ``proc`` that a member captures, but one ``proc`` does not
    start after (or ``proc`` itself), and a ``ready_port`` variable none of them captures.
    ``ready_port`` and ``ready_cmd`` are used once the member's ``ready`` line has matched:
    they may use what it captures."""
    own = captures[proc.name]
    used = proc.referenced_variables() & captured.keys()
    port = (variables_in(proc.ready_port)
            if proc.ready_port and not is_port(proc.ready_port) else set())
    check_vars = (proc.ready_cmd_variables() & captured.keys()) - own
    wanted = used | (port - own) | check_vars
    available: set[str] = set()
    for dep in closure(proc, seen) if wanted else ():
        available |= captures[dep]
        if wanted <= available:  # (a long chain of after need not be walked to its end)
            break
    missing = used - available
    if missing:
        var = sorted(missing)[0]
        provider = captured[var]
        key = key_using(proc, var)
        where = proc.where(key)
        # (A backslash keeps the braces only in a script a shell runs.)
        text = (f"; for the text {{{var}}} itself, write \\{{{var}}}"
                if key == "cmd" and _shell_script(proc) else "")
        if provider == proc.name:
            raise CastError(f"{proc.name}: uses {{{var}}}, which it captures itself; a "
                            "captured value is known once its member is ready, so only "
                            f"members that start after it can use it{text}", source=where)
        raise CastError(f"{proc.name}: uses {{{var}}}, which {provider} captures, but "
                        f"does not start after it; {_add_after(proc, provider)}{text}",
                        source=where)
    if late := sorted(check_vars - available):
        provider = captured[late[0]]
        raise CastError(f"{proc.name}: ready_cmd uses {{{late[0]}}}, which {provider} captures, "
                        f"but does not start after it; {_add_after(proc, provider)}",
                        source=proc.where("ready_cmd"))
    unknown = port - available - own
    if unknown:
        var = sorted(unknown)[0]
        close = close_match(var, list(captured))
        hint = (_add_after(proc, captured[var], ", which captures it")
                if var in captured else
                f"did you mean {{{close}}}, which {captured[close]} captures?"
                if close is not None else
                "capture it with a named group, e.g. ready = 'port (?P<port>\\d+)'")
        raise CastError(f"{proc.name}: ready_port uses {{{var}}}, which no member it "
                        f"starts after captures; {hint}", source=proc.where("ready_port"))


def _shell_script(proc: ProcSpec) -> bool:
    """Whether ``proc``'s command is a script a shell runs (``shell = true``, or a shell's
    ``-c`` operand), where ``\\{name}`` is the text ``{name}``."""
    from .shell import shell_script_operand

    if proc.shell:
        return True
    try:
        words = split_command(proc.cmd) if isinstance(proc.cmd, str) else proc.cmd
    except ValueError:
        return False
    return shell_script_operand(words) is not None


def _add_after(proc: ProcSpec, provider: str, why: str = "") -> str:
    """What to do for ``proc`` to start after ``provider``: a -p member has no after."""
    if proc.source == "-p":
        return (f"declare {proc.name} in a cast file instead, with after = "
                f"[\"{provider}\"]{why} (-p gives no after)")
    return f"add after = [\"{provider}\"]{why}"


def closure(proc: ProcSpec, procs: Mapping[str, ProcSpec]) -> Iterator[str]:
    """The members ``proc`` starts after, directly or through others, each once: those it
    names first."""
    return after_first(proc.name, lambda name: procs[name].after if name in procs else ())


def check_fields(proc: ProcSpec) -> None:
    """Refuse a member whose fields a loader would have refused (a spec built in code)."""
    if not isinstance(proc.name, str):
        raise CastError(f"invalid member name {proc.name!r}", source=proc.source)
    check_name(proc.name, proc.source)

    def bad(what: str, key: str = "cmd") -> CastError:
        return CastError(f"{proc.name}: {what}", source=proc.where(key))

    problem = command_too_long(proc.cmd, shell=proc.shell)
    if problem:
        raise bad(problem)
    if isinstance(proc.cmd, str):
        if not proc.cmd.strip():
            raise bad("the command is empty")
        if not proc.shell and proc.source is None:  # a loader split it already
            try:
                split_command(proc.cmd)
            except ValueError as exc:
                raise bad(f"cannot split the command: {exc}") from None
    elif proc.shell:
        raise bad("shell = true needs the command as one string")
    elif not proc.cmd or not all(isinstance(arg, str) for arg in proc.cmd):
        raise bad("cmd must be a string, or a non-empty list (or tuple) of strings")
    words = [proc.cmd] if isinstance(proc.cmd, str) else proc.cmd
    if any("\0" in word for word in words):
        raise bad("the command has a NUL character (\\u0000), which no command line can "
                  "carry")
    if proc.pty not in PTY_MODES:
        raise bad(f"pty must be one of {', '.join(map(repr, PTY_MODES))}, not {proc.pty!r}",
                  "pty")
    if proc.stderr not in STDERR_MODES:
        raise bad(f"stderr must be one of {', '.join(map(repr, STDERR_MODES))}, "
                  f"not {proc.stderr!r}", "stderr")
    if proc.on_exit not in ON_EXIT:
        raise bad(f"on_exit must be one of {', '.join(map(repr, ON_EXIT))}, "
                  f"not {proc.on_exit!r}", "on_exit")
    for key in ("after", "input"):
        value = getattr(proc, key)
        if isinstance(value, str) or not all(isinstance(v, str) for v in value):
            raise bad(f"{key} must be a tuple of strings, not {value!r}", key)
    for key, value in proc.env.items():
        if not (isinstance(key, str) and isinstance(value, str)):
            raise bad(f"env names and values must be strings, not {key!r}: {value!r}", "env")
    for key, value in proc.env.items():
        problem = env_problem(key, value)
        if problem:
            raise bad(f"env {problem}", "env")
    if proc.ready is not None:
        if not isinstance(proc.ready, str):  # (a spec built by hand is not checked)
            raise bad(f"ready must be a regular expression as a string, not {proc.ready!r}",
                      "ready")
        try:
            regex = ready_regex(proc.ready)
        except re.error as exc:
            raise bad(f"ready is not a valid regular expression: {exc}", "ready") from None
        if (problem := ready_problem(proc.name, proc.ready, regex)) is not None:
            raise bad(problem, "ready")
    port = proc.ready_port
    if port is not None and not (
        isinstance(port, str)
        and (is_port_template(port) or is_port(port))
    ):  # one with a {variable} is checked once expanded, when the member gets ready
        if isinstance(port, str) and variables_in(port):
            raise bad(never_a_port(port), "ready_port")
        raise bad(f"ready_port must be a TCP port number (1-65535) as a string, or a variable "
                  f"such as '{{port}}', not {port!r}", "ready_port")
    if proc.ready_cmd is not None:
        _check_ready_cmd(proc, bad)
    if not isinstance(proc.ready_exit, bool):
        raise bad(f"ready_exit must be true or false, not {proc.ready_exit!r}", "ready_exit")
    others = {"ready": "a line matches", "ready_port": "its port accepts connections",
              "ready_cmd": "its ready_cmd exits with 0"}
    if proc.ready_exit and (other := next(
            (key for key in others if getattr(proc, key) is not None), None)):
        when = others[other]
        raise bad(f"ready_exit = true cannot go with {other}: a member is ready either when "
                  f"it exits with 0 or when {when}; keep the one the members after it need",
                  "ready_exit")
    if proc.ready_cmd is None and ("ready_cmd_timeout" in proc.key_sources
                                   or proc.ready_cmd_timeout != DEFAULT_READY_CMD_TIMEOUT):
        raise bad("ready_cmd_timeout limits each run of a ready_cmd, and this member has "
                  "none: add its ready_cmd, or remove ready_cmd_timeout", "ready_cmd_timeout")
    for key in ("ready_timeout", "ready_cmd_timeout", "stop_timeout"):
        value = getattr(proc, key)
        if value is None and key == "stop_timeout":
            continue
        if not is_seconds(value):
            raise bad(f"{key} must be {SECONDS_SAID}, not {value!r}", key)
    if (not isinstance(proc.max_restarts, int) or isinstance(proc.max_restarts, bool)
            or proc.max_restarts < 0):
        raise bad(f"max_restarts must be a whole number, 0 or more, not {proc.max_restarts!r}",
                  "max_restarts")


def _check_ready_cmd(proc: ProcSpec, bad: Callable[[str, str], CastError]) -> None:
    """What the loader refuses in a ``ready_cmd`` (``load._read_cmd``), in the same words,
    for a spec built in code."""
    cmd = proc.ready_cmd
    problem = command_too_long(cmd, key="ready_cmd")
    if problem:
        raise bad(problem, "ready_cmd")
    if (not (isinstance(cmd, str) and cmd.strip()) and not (
            isinstance(cmd, list | tuple) and cmd and all(isinstance(w, str) for w in cmd))):
        raise bad(f"ready_cmd must be a non-empty string or a list of strings, not {cmd!r}",
                  "ready_cmd")
    if isinstance(cmd, str):
        try:
            split_command(cmd)
        except ValueError as exc:
            raise bad(f"cannot split ready_cmd: {exc}", "ready_cmd") from None
    if any("\0" in word for word in ([cmd] if isinstance(cmd, str) else cmd)):
        raise bad("ready_cmd has a NUL character (\\u0000), which no command line can carry",
                  "ready_cmd")


def command_too_long(cmd: object, *, shell: bool = False, key: str = "cmd") -> str | None:
    """Why Linux would refuse ``cmd`` (the member's ``key``), or None: a command string, or
    an argument of a list, of :data:`MAX_ARGUMENT` bytes or more. Said at load, before a
    string is split (which would take minutes), not when the member starts."""
    if isinstance(cmd, str):
        size = _bytes(cmd)
        if size < MAX_ARGUMENT:
            return None
        hint = (", and a shell's script is one: put the script in a file and run that file"
                if shell else ": write a longer command as a list of arguments, each under "
                "128 KiB")
        return (f"{key} is {size:,} bytes long; a command string must be under 128 KiB, as "
                f"Linux refuses an argument that long{hint}")
    if isinstance(cmd, list | tuple):
        for number, arg in enumerate(cmd, start=1):
            if isinstance(arg, str) and (size := _bytes(arg)) >= MAX_ARGUMENT:
                return (f"argument {number} of {key} is {size:,} bytes long, and Linux refuses "
                        "an argument of 128 KiB or more: put the text in a file and give "
                        "the program its name")
    return None


def _bytes(text: str) -> int:
    """How many bytes ``text`` takes on a command line, in UTF-8."""
    return len(text.encode("utf-8", "surrogatepass"))


def env_problem(key: str, value: str) -> str | None:
    """Why the environment cannot hold ``key=value``, or None: checked at load, since the
    spawn would refuse it only once the member starts."""
    if not key:
        return "has an empty variable name"
    if "=" in key or "\0" in key:
        char = "'='" if "=" in key else "a NUL character"
        return f"variable name {key!r} contains {char}, which no variable name may hold"
    if "\0" in value:
        return (f"variable {key} has a NUL character in its value, which the environment "
                "cannot hold")
    if (size := _bytes(key) + 1 + _bytes(value)) >= MAX_ARGUMENT:
        return (f"variable {key} is {size:,} bytes long with its name, and Linux refuses a "
                "variable of 128 KiB or more: put the text in a file and give the program "
                "its name")
    if key in ("PIPEPLEX_NAME", "PIPEPLEX_RUN_ID"):
        return (f"sets {key}, which pipeplex sets itself (it tells which member and run a "
                "process belongs to, and stops what the member started by it): remove it")
    return None


def identifier(name: str) -> str:
    """A member's name as a Python identifier, for a group name in a hint."""
    text = re.sub(r"\W", "_", name)
    return f"_{text}" if text[0].isdigit() else text


def never_a_port(port: str) -> str:
    """Why ``ready_port`` = ``port``, with a ``{variable}``, is refused."""
    return (f"ready_port = {port!r} can never be a port number: only digits may stand "
            "around its {variables} (\"{port}\", \"80{n}\")")


def _check_cycles(procs: Mapping[str, ProcSpec]) -> None:
    """Refuse members that wait for each other in a circle, naming the first one found (one
    that names itself is said as such, not here)."""
    found = circle(procs, {name: tuple(dep for dep in proc.after if dep != name)
                           for name, proc in procs.items()})
    if found is not None:
        raise CastError(f"members wait for each other in a circle: {' -> '.join(found)}; "
                        f"{_break_circle(found, procs)}", source=procs[found[0]].where("after"))


def _break_circle(circle: Sequence[str], procs: Mapping[str, ProcSpec]) -> str:
    """What to remove to break ``circle`` (``a, b, a``): one of its links, at its line."""
    if len(circle) > 4:
        return "remove one of them from the after of the member before it"
    links = []
    for name, dep in itertools.pairwise(circle):
        where = procs[name].where("after") or ""
        number = where.rpartition(":")[2]
        line = f" (line {number})" if number.isdigit() and where != procs[name].source else ""
        links.append(f"{dep!r} from {name}'s after{line}")
    return "remove " + " or ".join(links)


def ready_problem(name: str, pattern: str, regex: re.Pattern[str]) -> str | None:
    """What is surely a slip in a ``ready`` pattern, in words; None if nothing is."""
    if matches_anywhere(regex):
        return (f"ready {quoted(pattern)} matches where nothing was written, so {name} would "
                "be ready at its first output; make it match some text")
    if _needs_line_end(pattern):
        return (f"ready {quoted(pattern)} matches only across a line end (\\n), but it is "
                f"tried on one line of {name}'s output at a time, without its end, so it would "
                "never match; make it match within a line ($ matches at the line's end)")
    return None


def _needs_line_end(pattern: str) -> bool:
    """Whether every match of ``pattern`` holds a ``\\n`` (``foo\\nbar``; not ``[^\\n]``,
    ``\\s``, nor ``(\\n)?``). Read from the pattern's parse (``re._parser``, Python's own):
    should a later Python change it, the check is left out rather than wrong."""
    try:
        from re import _parser  # type: ignore[attr-defined]

        return _requires_line_end(_parser.parse(pattern))
    except Exception:  # (a parse this check cannot read: no verdict, rather than a wrong one)
        return False


def _requires_line_end(items: Any) -> bool:
    for op, arg in items:
        kind = str(op)
        if kind == "LITERAL" and arg == ord("\n"):
            return True
        if kind == "SUBPATTERN" and _requires_line_end(arg[-1]):
            return True
        if kind in ("MAX_REPEAT", "MIN_REPEAT", "POSSESSIVE_REPEAT") and arg[0] >= 1 and (
                _requires_line_end(arg[2])):
            return True
        if kind == "BRANCH" and all(_requires_line_end(branch) for branch in arg[1]):
            return True
        if kind == "ATOMIC_GROUP" and _requires_line_end(arg):
            return True
        if kind == "ASSERT" and _requires_line_end(arg[1]):  # (a look around, on one line)
            return True
    return False


def check_commands(cast_spec: CastSpec, captured: Iterable[str] = ()) -> None:
    """Fail early, before anything starts, when a member's program does not exist.
    ``captured``: the variables that members outside ``cast_spec`` capture (a running
    plex's, for the members added to it), which its commands may use as well.

    A member that starts later (``after`` others, or ``autostart = false``) may run what an
    earlier one builds (``./app`` after ``make``): its program file is looked for when it
    starts. A program it finds on PATH, and its cwd, are checked now all the same: a
    misspelt tool or folder is the usual mistake.
    """
    found: dict[tuple[str, str], bool] = {}  # (program, PATH): a cast often repeats both
    known = {*captured, *(var for proc in cast_spec.procs for var in proc.captured_variables())}
    mistakes = Mistakes()
    for proc in cast_spec.procs:
        with mistakes.collecting():
            _check_command(proc, found, known)
    mistakes.raise_any()


def _check_command(proc: ProcSpec, found: dict[tuple[str, str], bool],
                   captured: set[str]) -> None:
    later = bool(proc.after) or not proc.autostart
    cwd = Path(proc.cwd) if proc.cwd else Path.cwd()
    if proc.cwd:  # also for a shell, or a command with variables
        found_cwd, why = _look_at(cwd)
        if found_cwd is None or not stat.S_ISDIR(found_cwd.st_mode):
            what = f"cannot be reached{why}" if why else "is not a folder"
            raise CastError(f"{proc.name}: cwd {proc.cwd!r} {what}", source=proc.where("cwd"))
        if not os.access(cwd, os.X_OK):
            raise CastError(f"{proc.name}: cwd {proc.cwd!r} cannot be entered: permission "
                            "denied; give it a folder it may enter", source=proc.where("cwd"))
    if proc.ready_cmd is not None:
        _check_ready_cmd_program(proc, found)
    if proc.shell or variables_in(proc.command_text) & captured:
        return  # the shell finds the program; a variable may name it
    program = proc.argv()[0]
    if not program:
        raise CastError(f"{proc.name}: the program, cmd's first word, is empty (cmd = "
                        f"{proc.command_text!r}): name the program to run there",
                        source=proc.where("cmd"))
    uncaptured = sorted(variables_in(program))  # (braces no member fills: text as written)
    if uncaptured and later:
        return  # (a scenario's expect step may capture it before the member starts)
    if "/" in program and later:
        return
    if "/" in program:
        target = cwd / program
        found_program, why = _look_at(target)
        if found_program is None and not why:
            raise CastError(f"{proc.name}: command not found: {program!r} "
                            f"(cmd = {proc.command_text!r})"
                            f"{_no_shell_hint(proc) or _beside_hint(proc, program)}",
                            source=proc.where("cmd"))
        if found_program is None:
            raise CastError(f"{proc.name}: {program!r} cannot be reached{why} (cmd = "
                            f"{proc.command_text!r})", source=proc.where("cmd"))
        is_dir = stat.S_ISDIR(found_program.st_mode)
        if is_dir or not os.access(target, os.X_OK):
            fix = "" if is_dir else "; chmod +x it, or run it with its interpreter"
            raise CastError(f"{proc.name}: {program!r} is not an executable file "
                            f"(cmd = {proc.command_text!r}){fix}", source=proc.where("cmd"))
    elif not _on_path(program, proc.env.get("PATH", os.environ.get("PATH", os.defpath)),
                      found):
        own = "PATH" in proc.env and f"; its env sets PATH to {proc.env['PATH']!r}, which lacks it"
        here = (cwd / program).is_file() and (
            f"; a file of that name is in the folder it runs in, but a name without a / is "
            f"looked for in PATH: write ./{program} for that file")
        hint = (f"; no member captures {{{uncaptured[0]}}} (a named group of a ready "
                "pattern), so it stays as written" if uncaptured else
                _no_shell_hint(proc) or own or here or "; check the spelling and PATH")
        raise CastError(f"{proc.name}: command not found: {program!r} (cmd = "
                        f"{proc.command_text!r}){hint}",
                        source=proc.where("env" if own and not uncaptured else "cmd"))


def _look_at(path: Path) -> tuple[os.stat_result | None, str]:
    """``path``'s status, or None and why it cannot be had: '' where there is nothing
    there, else the reason (a folder on the way that may not be entered, a name too long)."""
    try:
        return path.stat(), ""
    except (FileNotFoundError, NotADirectoryError):
        return None, ""
    except PermissionError:
        return None, ": permission denied (a folder on its way may not be entered)"
    except OSError as exc:
        return None, f": {exc.strerror or exc}"
    except ValueError:  # (a NUL in the name)
        return None, ": a name with a NUL byte in it"


def _check_ready_cmd_program(proc: ProcSpec, found: dict[tuple[str, str], bool]) -> None:
    """A ``ready_cmd`` whose program is not on PATH (one named by a path may be built by
    then, and one named by a variable is known later: they are looked for when it runs)."""
    assert proc.ready_cmd is not None
    cmd = proc.ready_cmd
    program = (split_command(cmd) if isinstance(cmd, str) else cmd)[0]
    if "/" not in program and not variables_in(program) and not _on_path(
            program, proc.env.get("PATH", os.environ.get("PATH", os.defpath)), found):
        raise CastError(f"{proc.name}: command not found: {program!r} (ready_cmd = "
                        f"{proc.ready_cmd_text}); check the spelling and PATH",
                        source=proc.where("ready_cmd"))


SHELL_BUILTINS = frozenset({".", "[[", "alias", "case", "cd", "declare", "eval", "exec",
                             "export", "for", "if", "local", "readonly", "set", "source",
                             "trap", "ulimit", "umask", "unset", "until", "while"})
"""A shell's own commands and words, which mean nothing as a program: some systems have a
``cd`` file on PATH (POSIX asks for one), which changes nothing run on its own."""


_ASSIGNMENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*=")


def _no_shell_hint(proc: ProcSpec) -> str:
    """Why a program was not found, when it is something only a shell knows (``cd``, ``~``,
    ``PORT=1 server``): a hint to append to the message, else ''."""
    program = proc.argv()[0]
    by_hand = proc.source == "-p"
    shell = (f"write -p {proc.name}=\"sh -c '...'\"" if by_hand else "set shell = true")
    if _ASSIGNMENT.match(program):
        name, _, value = program.partition("=")
        where = f"env {program} COMMAND" if by_hand else f"env = {{ {name} = {quoted(value)} }}"
        return (f"; {quoted(program)} sets a variable only in a shell, and no shell runs this "
                f"command: use {where}")
    if program.startswith("~"):
        return (f"; no shell runs this command, so ~ is not your home folder: write the path "
                f"in full, or {shell}")
    if program in SHELL_BUILTINS:
        cwd = "" if by_hand or program != "cd" else " (or cwd = 'FOLDER' instead of cd)"
        return (f"; {quoted(program)} is a shell's own command, and no shell runs this one: "
                f"{shell}{cwd}")
    found = shell_syntax_of(proc.cmd, first_word=True) if isinstance(proc.cmd, str) else None
    if found is not None:
        return (f"; it has {quoted(found[0])} outside quotes, which a shell would read as "
                f"{found[1]}, and no shell runs this command: {shell}")
    return ""


def beside_the_file(proc: ProcSpec, path: str) -> bool:
    """Whether the relative ``path``, which ``proc`` looks for in the folder it runs in
    (pipeplex's: it sets no cwd), is beside its cast file instead, where a path in a file
    is naturally written from (a scenario in tests/, run from the project's root)."""
    if proc.cwd is not None or proc.file_folder is None or os.path.isabs(path):
        return False
    there = Path(proc.file_folder)
    return (there / path).exists() and there.resolve() != Path.cwd().resolve()


def _beside_hint(proc: ProcSpec, program: str) -> str:
    if not beside_the_file(proc, program):
        return ""
    return (f"; it is looked for in the folder pipeplex runs in ({os.getcwd()}), not in the "
            f"cast file's ({proc.file_folder}), where it is: set cwd = \".\" to run "
            f"{proc.name} there")


def _on_path(program: str, path: str, found: dict[tuple[str, str], bool]) -> bool:
    key = (program, path)
    if key not in found:
        found[key] = shutil.which(program, path=path) is not None
    return found[key]


def key_using(proc: ProcSpec, var: str) -> str:
    """The key of ``proc`` that uses ``{var}``, to point at: its command, else its env,
    else its input, else its ``ready_cmd``."""
    if var in variables_in(proc.command_text):
        return "cmd"
    if any(var in variables_in(v) for v in proc.env.values()):
        return "env"
    return "input" if any(var in variables_in(line) for line in proc.input) else "ready_cmd"
