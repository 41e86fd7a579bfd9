"""Whether a cast can run here: each member's program (and its ``ready_cmd``'s) and its
folder, looked for on this machine before anything starts, with what to write instead when
one is not there (a shell's own command, a path written from the cast file's folder). Apart
from :mod:`.checks`, which reads the cast alone: these look at the file system and PATH."""


from __future__ import annotations

import os
import re
import shutil
import stat
from collections.abc import Iterable
from pathlib import Path

from ..errors import CastError, ours_in_tracebacks
from .checks import Mistakes
from .spec import (
    HELPERS,
    CastSpec,
    HelperKey,
    ProcSpec,
    quoted,
    shell_syntax_of,
    split_command,
    variables_in,
)

__all__ = ("SHELL_BUILTINS", "beside_hint", "beside_the_file", "check_commands")
__tracebackhide__ = ours_in_tracebacks  # (pytest: see there)


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
    for helper in HELPERS:
        if getattr(proc, helper) is not None:
            _check_helper_program(proc, helper, found)
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
                            f"{_no_shell_hint(proc) or beside_hint(proc, program)}",
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
        beside, _ = _look_at(cwd / program)  # (a name too long for a file: nothing there)
        here = beside is not None and stat.S_ISREG(beside.st_mode) and (
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


def _check_helper_program(proc: ProcSpec, key: HelperKey,
                          found: dict[tuple[str, str], bool]) -> None:
    """A ``ready_cmd`` or ``stop_cmd`` (``key``) whose program is not on PATH (one named by
    a path may be built by then, and one named by a variable is known later: they are
    looked for when it runs)."""
    cmd = getattr(proc, key)
    assert cmd is not None
    program = (split_command(cmd) if isinstance(cmd, str) else cmd)[0]
    if "/" not in program and not variables_in(program) and not _on_path(
            program, proc.env.get("PATH", os.environ.get("PATH", os.defpath)), found):
        raise CastError(f"{proc.name}: command not found: {program!r} ({key} = "
                        f"{proc.helper_text(key)}); check the spelling and PATH",
                        source=proc.where(key))


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
    return _look_at(there / path)[0] is not None and there.resolve() != Path.cwd().resolve()


def beside_hint(proc: ProcSpec, program: str) -> str:
    """For a ``program`` not found: where it is, and what to write, if it is beside the
    cast file; else ''."""
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
