"""Whether a cast is whole: what involves several members (names, ``after``, variables),
after each member's own fields (:mod:`._member_fields`). Every mistake is a
:class:`~pipeplex.errors.CastError` at its file and line; :class:`Mistakes` gathers those of
one reading, to be said together. Whether the programs and folders are on this machine is
:mod:`._programs`'."""


from __future__ import annotations

import contextlib
import itertools
import re
from collections.abc import Iterator, Mapping, Sequence

from .._suggest import close_match, suggest
from ..errors import CastError, CastErrors, ours_in_tracebacks
from ._member_fields import check_fields
from .order import after_first, circle
from .spec import (
    RESERVED_NAMES,
    CastSpec,
    ProcSpec,
    is_port,
    split_command,
    variables_in,
)

__all__ = ("Mistakes", "closure", "identifier", "key_using", "validate_cast")
__tracebackhide__ = ours_in_tracebacks  # (pytest: see there)


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
            elif dep.lower() in RESERVED_NAMES and dep not in seen:
                mistakes.found.append(CastError(
                    f"{proc.name}: after names {dep!r}, which is no member's name: it is "
                    f"reserved ({RESERVED_NAMES[dep.lower()]}); name each member to start "
                    "after", source=proc.where("after")))
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
    ``ready_port``, ``ready_cmd`` and ``stop_cmd`` are used once the member's ``ready`` line
    has matched: they may use what it captures."""
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
        key = key_using(proc, late[0])  # (its ready_cmd or stop_cmd: the others said above)
        raise CastError(f"{proc.name}: {key} uses {{{late[0]}}}, which {provider} captures, "
                        f"but does not start after it; {_add_after(proc, provider)}",
                        source=proc.where(key))
    unknown = port - available - own
    if unknown:
        var = sorted(unknown)[0]
        close = close_match(var, list(captured))
        hint = (_add_after(proc, captured[var], ", which captures it")
                if var in captured else
                f"did you mean {{{close}}}, which {captured[close]} captures?"
                if close is not None else
                f"capture it with a group of that name, in its own ready or in that of a "
                f"member it starts after: ready = 'port (?P<{var}>\\d+)'")
        raise CastError(f"{proc.name}: ready_port uses {{{var}}}, which neither it nor a "
                        f"member it starts after captures; {hint}",
                        source=proc.where("ready_port"))


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


def identifier(name: str) -> str:
    """A member's name as a Python identifier, for a group name in a hint."""
    text = re.sub(r"\W", "_", name)
    return f"_{text}" if text[0].isdigit() else text


def _check_cycles(procs: Mapping[str, ProcSpec]) -> None:
    """Refuse members that wait for each other in a circle, naming the first one found (one
    that names itself is said as such, not here)."""
    found = circle(procs, {name: tuple(dep for dep in proc.after if dep != name)
                           for name, proc in procs.items()})
    if found is not None:
        raise CastError(f"members wait for each other in a circle: {' -> '.join(found)}; "
                        f"{_break_circle(found, procs)}", source=procs[found[0]].where("after"))


def _break_circle(circle: Sequence[str], procs: Mapping[str, ProcSpec]) -> str:
    """What to remove to break ``circle`` (``a, b, a``): one of its links, at its line (in
    its file, when it is not the file the message names: an included one's)."""
    if len(circle) > 4:
        return "remove one of them from the after of the member before it"
    here = (procs[circle[0]].where("after") or "").rpartition(":")[0]
    links = []
    for name, dep in itertools.pairwise(circle):
        where = procs[name].where("after") or ""
        file, _, number = where.rpartition(":")
        line = ("" if not number.isdigit() or where == procs[name].source
                else f" (line {number})" if file == here else f" (at {where})")
        links.append(f"{dep!r} from {name}'s after{line}")
    return "remove " + " or ".join(links)


def key_using(proc: ProcSpec, var: str) -> str:
    """The key of ``proc`` that uses ``{var}``, to point at: its command, else its env,
    else its input, else its ``ready_cmd``, else its ``stop_cmd``."""
    if var in variables_in(proc.command_text):
        return "cmd"
    if any(var in variables_in(v) for v in proc.env.values()):
        return "env"
    if any(var in variables_in(line) for line in proc.input):
        return "input"
    return "stop_cmd" if var in proc.helper_variables("stop_cmd") - proc.helper_variables(
        "ready_cmd") else "ready_cmd"
