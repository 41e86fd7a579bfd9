"""What a run says before it starts about what may not be what its author meant: a
``#`` comment left out of a one-line command, a shell's syntax in a command no shell runs,
a shell's own command found on PATH, a path written from the cast file's folder that the
member will not find from its own, a ``{name}`` that no member captures, and a limit on a
health check's run that the whole wait makes moot."""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Mapping

from .._suggest import close_match
from ._member_table import PROC_KEYS, member_key_in_env
from ._programs import SHELL_BUILTINS, beside_the_file
from .checks import closure, identifier, key_using
from .spec import (
    DEFAULT_MAX_RESTARTS,
    DEFAULT_READY_CMD_TIMEOUT,
    CastSpec,
    ProcSpec,
    comment_of,
    expand,
    quoted,
    ready_regex,
    shell_syntax_of,
    split_command,
    variables_in,
)

__all__ = ("cast_warnings", "check_limit_warnings", "comment_warnings", "echo_warning_filled",
           "env_key_warnings", "path_warnings", "shell_syntax_warnings", "variable_warnings")


def cast_warnings(cast_spec: CastSpec) -> list[str]:
    """What a run says before it starts, about what may not be what the user meant:
    comments left out of a one-line command, a shell's syntax in a command no shell runs,
    and ``{names}`` no member captures."""
    return [*comment_warnings(cast_spec), *shell_syntax_warnings(cast_spec),
            *path_warnings(cast_spec), *variable_warnings(cast_spec),
            *check_limit_warnings(cast_spec), *echo_warnings(cast_spec),
            *env_key_warnings(cast_spec)]


def env_key_warnings(cast_spec: CastSpec) -> list[str]:
    """A member's key (``ready = "up"``, ``on_exit = "ignore"``) among its env variables:
    most likely written below its ``[procs.NAME.env]`` header, which takes every key up
    to the next one, rather than above it; the member then runs without it. Said, not
    refused: a program may read an environment variable of that name."""
    return [f"{proc.where(f'env.{key}') or proc.where('env') or proc.name}: {proc.name}'s "
            f"env sets the variable {key} = {quoted(value)}; if it was meant as the "
            f"member's own {key}, {member_key_in_env(proc.name, key)}"
            for proc in cast_spec.procs for key, value in proc.env.items() if key in PROC_KEYS]


def echo_warnings(cast_spec: CastSpec) -> list[str]:
    """A ``ready`` that one of the member's own ``input`` lines matches, on a full terminal
    (``pty = true``): the terminal echoes each line as it is typed, before the program has
    read it, so the echo makes the member ready before it has done anything. (A line with
    ``{variables}`` is looked at again as it is typed: :func:`echo_warning_filled`.)"""
    return [_echo_warning(proc, echoed, f"{proc.where('ready') or proc.name}: {proc.name}'s")
            for proc in cast_spec.procs
            if (echoed := _echoed(proc, [line for line in proc.input
                                         if not variables_in(line)])) is not None]


def echo_warning_filled(proc: ProcSpec, variables: Mapping[str, str]) -> str | None:
    """The same warning, for the member's ``input`` lines with ``{variables}``, once they
    are filled in (as its first run starts: their values were not known before); said
    under its name."""
    filled = [expand(raw, variables) for raw in proc.input if variables_in(raw)]
    echoed = _echoed(proc, filled)
    return None if echoed is None else _echo_warning(proc, echoed, "its",
                                                     " (its {variables} filled in)")


def _echoed(proc: ProcSpec, lines: Iterable[str]) -> str | None:
    if proc.pty != "full" or not proc.ready:
        return None
    regex = ready_regex(proc.ready)
    return next((line for line in lines if regex.search(line)), None)


def _echo_warning(proc: ProcSpec, echoed: str, whose: str, filled: str = "") -> str:
    return (f"{whose} ready {quoted(proc.ready or '')} matches its own input "
            f"line {quoted(echoed)}{filled}, which its terminal (pty = true) shows as it is "
            "typed: that echo makes it ready before it answers; make the pattern match only "
            "the answer (anchored, '^...', or with what the answer adds)")


def check_limit_warnings(cast_spec: CastSpec) -> list[str]:
    """A limit set that can never apply: a ``ready_cmd_timeout`` not below the member's
    ``ready_timeout`` (the wait ends first, so a run of the check that hangs takes all of
    it, as with no limit), and a ``max_restarts`` where nothing restarts the member."""
    return [*(f"{proc.where('ready_cmd_timeout') or proc.name}: {proc.name}'s "
              f"ready_cmd_timeout ({proc.ready_cmd_timeout:g} s) is not below its ready_timeout "
              f"({proc.ready_timeout:g} s), so a run of its ready_cmd that hangs takes the "
              "whole wait; lower ready_cmd_timeout, or raise ready_timeout"
              for proc in cast_spec.procs
              if proc.ready_cmd is not None and proc.ready_cmd_timeout >= proc.ready_timeout
              and _set(proc, "ready_cmd_timeout", DEFAULT_READY_CMD_TIMEOUT)),
            *(f"{proc.where('max_restarts') or proc.name}: {proc.name}'s max_restarts counts "
              "restarts, and nothing restarts it (neither on_exit nor on_failure is "
              "\"restart\"); set one of them to \"restart\", or leave max_restarts out"
              for proc in cast_spec.procs
              if not proc.may_restart and _set(proc, "max_restarts", DEFAULT_MAX_RESTARTS))]


def _set(proc: ProcSpec, key: str, default: object) -> bool:
    """Whether ``key`` was set for ``proc``: written in its file, or, for a spec built in
    code (which has no record of its keys), given another value than the default."""
    if proc.key_sources:
        return key in proc.key_sources
    return bool(getattr(proc, key) != default)


_A_FILE_NAME = re.compile(r"[\w.-]*\w\.[A-Za-z0-9]{1,5}")
"""A word that names a file (``server.py``, ``app.js``) rather than an argument."""


def path_warnings(cast_spec: CastSpec) -> list[str]:
    """An argument that is a relative path (``progs/server.py``) missing from the folder a
    member runs in, but there beside its cast file: the program would not find it (a
    scenario in tests/, run from the project's root). Said, not refused: the member may
    make the file itself."""
    warnings = []
    for proc in cast_spec.procs:
        if proc.shell or proc.cwd is not None or proc.file_folder is None:
            continue
        # (Its program too, named by a path, when it starts later: the check before the
        # start leaves that, which an earlier member may build, to its start. A bare name
        # is looked for in PATH, never in a folder.)
        words = proc.argv()
        later = bool(proc.after) or not proc.autostart
        for word in words[0 if later and "/" in words[0] else 1:]:
            if (not ("/" in word or _A_FILE_NAME.fullmatch(word))
                    or word.startswith(("-", "~", "{")) or "=" in word
                    or os.path.exists(word)):
                continue
            if beside_the_file(proc, word):
                warnings.append(f"{proc.where('cmd') or proc.name}: {proc.name}'s command "
                                f"names {quoted(word)}, which is not in the folder it runs "
                                f"in ({os.getcwd()}, pipeplex's) but in the cast file's "
                                f"({proc.file_folder}): set cwd = \".\" to run {proc.name} "
                                "there")
                break
    return warnings


def comment_warnings(cast_spec: CastSpec) -> list[str]:
    """A ``#`` comment in a command of one line, which a shell would leave out as pipeplex
    does, but which may be meant as an argument (``echo issue #12``): said. (Over several
    lines, comments are what a script has.)"""
    warnings = []
    for proc in cast_spec.procs:
        if isinstance(proc.cmd, str) and not proc.shell and "\n" not in proc.cmd:
            comment = comment_of(proc.cmd)
            if comment is not None:
                word = comment.split()[0]
                warnings.append(f"{proc.where('cmd') or proc.name}: {proc.name}'s command has "
                                f"a comment, {quoted(comment)}, which is not passed to it, as "
                                f"in a shell; quote it ('{word}') if it is meant as an argument")
    return warnings


def shell_syntax_warnings(cast_spec: CastSpec) -> list[str]:
    """An operator, a redirection or an expansion outside quotes in a command that no shell
    runs (``cd web && npm start``, ``server > log``, ``--data $HOME/x``): the program gets it
    as text, which is seldom what was meant. Said, not refused: a program may want the text
    (``find . -exec ls {} ;``), and quoting it says so."""
    warnings = []
    for proc in cast_spec.procs:
        if isinstance(proc.ready_cmd, str) and (found := shell_syntax_of(proc.ready_cmd)):
            piece, kind, word = found
            within = "" if word == piece else f" (in {quoted(word)})"
            warnings.append(f"{proc.where('ready_cmd') or proc.name}: {proc.name}'s ready_cmd "
                            f"has {quoted(piece)} outside quotes, which a shell would read as "
                            f"{kind}; no shell runs it, so it is passed on as text{within}: "
                            "write ready_cmd = \"sh -c '...'\" to have a shell run it, or "
                            "quote it if the text is what you mean")
        if not isinstance(proc.cmd, str) or proc.shell:
            continue
        program = split_command(proc.cmd)[0].rpartition("/")[2]
        fix = ("set shell = true to have /bin/sh run the command" if proc.source != "-p" else
               f"write -p {proc.name}=\"sh -c '...'\" to have a shell run it")
        if split_command(proc.cmd)[0] in SHELL_BUILTINS:  # (one on PATH: else refused)
            warnings.append(f"{proc.where('cmd') or proc.name}: {proc.name}'s command runs "
                            f"{quoted(program)}, a shell's own command, which changes nothing "
                            f"run on its own: {fix}")
            continue
        found = shell_syntax_of(proc.cmd)
        if found is None:
            continue
        piece, kind, word = found
        within = "" if word == piece else f" (in {quoted(word)})"
        warnings.append(f"{proc.where('cmd') or proc.name}: {proc.name}'s command has "
                        f"{quoted(piece)} outside quotes, which a shell would read as {kind}; "
                        f"no shell runs it, so {program} gets it as text{within}: {fix}, or "
                        "quote it if the text is what you mean")
    return warnings


def variable_warnings(cast_spec: CastSpec, *, guesses: bool = False) -> list[str]:
    """What a ``{name}`` that no member captures was most likely meant as: a captured name
    close to it (``{prot}``, ``{port}``), or a named group of a member it starts after that
    has groups without names. Such a name reaches the program as it is written (braces
    that mean something else, an f-string's or ``${HOME}``, must pass), so this is told,
    not refused. ``guesses``: also where it is only a guess, for the report of a failure
    (which a false one costs little): after a member whose ready captures nothing, with
    groups that have no names."""
    captured = {var: proc.name for proc in cast_spec.procs
                for var in sorted(proc.captured_variables())}
    unnamed = [proc.name for proc in cast_spec.procs
               if proc.ready and ready_regex(proc.ready).groups > len(proc.captured_variables())]
    if not captured and not unnamed:
        return []
    procs = {proc.name: proc for proc in cast_spec.procs}
    warnings = []
    for proc in cast_spec.procs:
        used = proc.referenced_variables() | proc.ready_cmd_variables()
        for var in _written_order(proc, used - captured.keys()):
            where = proc.where(key_using(proc, var))
            said = f"{where}: {proc.name} uses {{{var}}}, which no member captures (it is "
            close = close_match(var, list(captured))
            if close is not None:
                warnings.append(f"{said}passed on as written); did you mean {{{close}}}, which "
                                f"{captured[close]} captures?")
                continue
            # (only for a name the pattern mentions, 'port (\d+)' for {port}: not for an
            # awk program's {print} or an f-string's {x})
            # (a ready_cmd runs after the member's own ready line: its groups count too)
            own = [proc.name] if var in proc.ready_cmd_variables() else []
            before = [dep for dep in (*own, *closure(proc, procs)) if dep in unnamed]
            groups = [dep for dep in before
                      if re.search(rf"(?i)\b{re.escape(var)}\b", procs[dep].ready or "")]
            if groups:
                warnings.append(f"{said}passed on as written); {groups[0]}'s ready has a group "
                                f"without a name: name it, (?P<{identifier(var)}>...), to "
                                "capture it")
                continue
            # A guess, after a member whose ready captures nothing at all: its groups
            # without names are the likely slip ('listening on :(\d+)' for {port}).
            bare = [dep for dep in before if not procs[dep].captured_variables()]
            if bare and guesses:
                warnings.append(f"{said}passed on as written); {bare[0]}'s ready captures "
                                "nothing, its groups having no names: if {" + var + "} is "
                                f"what one matches, name it, (?P<{identifier(var)}>...)")
    return warnings


def _written_order(proc: ProcSpec, names: set[str]) -> list[str]:
    """``names`` in the order ``proc`` first writes them (its command, env, input, then
    ``ready_cmd``), so that warnings come in the order a reader meets the slips."""
    check = proc.ready_cmd or ()
    text = "\n".join((proc.command_text, *proc.env.values(), *proc.input,
                      *([check] if isinstance(check, str) else check)))
    return sorted(names, key=lambda var: (text.find(f"{{{var}}}") % (len(text) + 1), var))
