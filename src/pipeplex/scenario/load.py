"""Read a scenario file: the cast's ``[procs.NAME]`` plus ``[defaults]``, ``[[step]]``,
``golden`` and ``[[normalize]]``, each mistake reported with its file and line."""

from __future__ import annotations

import os
import re
from dataclasses import replace
from pathlib import Path
from typing import Any

from .._file_kind import same_file
from .._regex import compile_regex
from .._seconds import SECONDS_SAID, is_seconds, seconds_meant
from .._signals import parse_signal
from .._suggest import close_match, suggest
from ..cast._member_table import suggest_key
from ..cast._toml_file import _Where, parse_toml, read_toml
from ..cast.checks import Mistakes
from ..cast.load import SCENARIO_KEYS, cast_from_data
from ..cast.slips import variable_warnings
from ..cast.spec import (
    DEFAULTS_TIMEOUT,
    CastSpec,
    is_port,
    matches_anywhere,
    quoted,
    toml_value,
    variables_in,
)
from ..cast.variables import is_port_template, never_a_port, unusable_group, with_stand_ins
from ..errors import CastError, ours_in_tracebacks
from .model import ACTIONS, DEFAULT_TIMEOUT, NormalizeRule, Scenario, Step

__all__ = ("load_scenario", "scenario_from_data", "scenario_from_text")
__tracebackhide__ = ours_in_tracebacks  # (pytest: see there)

OPTIONS: dict[str, tuple[str, ...]] = {
    "send": ("to", "newline"),
    "expect": ("in", "stream", "timeout"),
    "expect_not": ("in", "stream", "within"),
    "wait_exit": ("code", "timeout"),
    "signal": ("to",),
    "close": (),
    "wait_port": ("timeout",),
    "sleep": (),
    "interact": (),
    "start": ("timeout",),
    "restart": ("timeout",),
}
NEEDS = {"send": "to", "signal": "to", "expect_not": "within"}


def load_scenario(path: str | os.PathLike[str], *, what: str = "scenario file",
                  **defaults: Any) -> Scenario:
    """Load and validate a scenario (a cast file, with or without steps).

    ``what`` names the file in messages ("no such cast file" for ``pipeplex run``).

    Raises:
        CastError: anything wrong, with ``file:line``.
    """
    shown, text, data = read_toml(path, what)
    return scenario_from_data(data, text, shown, base_dir=Path(path).parent, **defaults)


def collected_as(path: str | os.PathLike[str]) -> tuple[bool, tuple[str, ...]]:
    """What a ``.toml`` file found in a folder of tests is: whether it is another program's
    (a pyproject.toml, a server's configuration beside the scenarios), and the cast files
    it includes (absolute paths: members shared by scenarios, no tests of their own).

    A file is pipeplex's when it has members or steps (``[procs]``, ``[[step]]``), includes
    cast files, or has a table that looks like members or steps under a mistyped name
    (``[proc.server]`` with a ``cmd``, ``[[steps]]`` with an ``expect``), which its load
    then points out. Other keys a scenario has (``golden``, ``skip``, ...) say nothing
    alone: configuration files have keys like them. A file that cannot be read or parsed
    is taken for a scenario: its load says what is wrong."""
    try:
        _, _, data = read_toml(path, "scenario file")
    except CastError:
        return False, ()
    written = data.get("include", ())
    names = [written] if isinstance(written, str) else written
    included = tuple(
        os.path.abspath(Path(path).parent / Path(name).expanduser())
        for name in (names if isinstance(names, list) else ())
        if isinstance(name, str) and name.endswith(".toml"))
    ours = ("procs" in data or "step" in data or bool(included)
            or any(_looks_like_members(value) or _looks_like_steps(value)
                   for value in data.values()))
    return not ours, included


def _looks_like_members(value: Any) -> bool:
    return isinstance(value, dict) and any(
        isinstance(table, dict) and "cmd" in table for table in value.values())


def _looks_like_steps(value: Any) -> bool:
    return isinstance(value, list) and any(
        isinstance(table, dict) and any(key in ACTIONS for key in table) for table in value)


def scenario_from_text(
    text: str, path: str, *, base_dir: Path | None = None, **defaults: Any
) -> Scenario:
    """Build a scenario from TOML text; ``path`` names it in messages."""
    return scenario_from_data(parse_toml(text, path), text, path, base_dir=base_dir, **defaults)


def scenario_from_data(
    data: dict[str, Any], text: str, path: str, *, base_dir: Path | None = None, **defaults: Any
) -> Scenario:
    """Build a scenario from parsed TOML (``text`` locates keys for messages)."""
    where = _Where(path, text)
    mistakes = Mistakes()
    timeout = DEFAULT_TIMEOUT
    with mistakes.collecting():
        timeout = _defaults(data.get("defaults", {}), where)
    timeout_source = None
    if (data.get("step") or "defaults" in data) and "ready_timeout" not in defaults:
        # A scenario's readiness is bounded as its steps are; a plain cast file (run
        # without steps) keeps a member's own default, as it has from Python.
        defaults["ready_timeout"] = timeout
        if isinstance(data.get("defaults"), dict) and "timeout" in data["defaults"]:
            timeout_source = where("defaults", "timeout")
    if data.get("step"):
        # With steps, the script decides when the cast ends: a member that exits (a client
        # that said goodbye) does not stop the others unless it says on_exit = "stop".
        defaults.setdefault("on_exit", "ignore")
    try:
        cast = cast_from_data(data, where=where, base_dir=base_dir,
                              extra_top_keys=SCENARIO_KEYS, **defaults)
    except CastError as exc:  # (the steps are read against the members: not without them)
        mistakes.add(exc)
        raise mistakes.error() from None
    if timeout_source is not None:  # (a member's timeout message names that line)
        cast = _timeout_from(cast, timeout_source)
    raw_steps = data.get("step", [])
    steps: list[Step] = []
    if not isinstance(raw_steps, list):
        mistakes.found.append(CastError("step must be an array of tables: write [[step]]",
                                        source=where("step")))
        raw_steps = []
    for i, raw in enumerate(raw_steps):
        with mistakes.collecting():
            steps.append(_step(i, raw, cast, where))
    golden = data.get("golden")
    with mistakes.collecting():
        golden = _golden(golden, path, base_dir, where)
    rules: tuple[NormalizeRule, ...] = ()
    with mistakes.collecting():
        rules = _normalize(data.get("normalize", []), where)
    skip = data.get("skip")
    if skip is not None and (not isinstance(skip, str) or not skip.strip()):
        mistakes.found.append(CastError(f"skip is why the scenario is skipped, a string "
                                        f"(skip = \"needs postgres\"), not {toml_value(skip)}",
                                        source=where("skip")))
    mistakes.raise_any()
    suspicions = _check_captures(tuple(steps), cast)
    return Scenario(cast, tuple(steps), timeout, golden, rules, path, suspicions, skip)


def _golden(value: object, path: str, base_dir: Path | None, where: _Where) -> str | None:
    """The golden file's path, from the scenario's folder."""
    if value is None:
        return None
    golden = value if isinstance(value, str) else ""
    if not golden or "\0" in golden:
        raise CastError("golden must be a file name"
                        + (" (a NUL character, \\u0000, is in none)" if "\0" in golden
                           else ""), source=where("golden"))
    written = golden
    if base_dir is not None and not Path(golden).is_absolute():
        golden = os.fspath(base_dir / golden)
    _check_golden_is_no_toml(written, golden, path, where)
    return golden


def _check_golden_is_no_toml(written: str, golden: str, path: str, where: _Where) -> None:
    """``pipeplex test --update`` replaces the golden file with a transcript: one that names
    the scenario itself, or any ``.toml`` file (a scenario, a cast), is refused, and so is a
    folder (which could hold no transcript)."""
    name = f'golden = "{Path(path).stem}.golden"'
    if os.path.isdir(golden):
        raise CastError(f"golden = {quoted(written)} names a folder: name a file, {name}",
                        source=where("golden"))
    itself = same_file(Path(golden), Path(path))
    if itself or golden.lower().endswith(".toml"):
        what = ("this scenario's own file" if itself else
                "a .toml file, as scenarios and casts are named")
        raise CastError(f"golden = {quoted(written)} names {what}: --update would replace it "
                        f"with a transcript; name a file of its own, {name}",
                        source=where("golden"))


def _timeout_from(cast: CastSpec, source: str) -> CastSpec:
    """``cast`` with :data:`DEFAULTS_TIMEOUT` at ``source`` for each member whose
    ``ready_timeout`` the ``[defaults] timeout`` set."""
    return replace(cast, procs=tuple(
        proc if "ready_timeout" in proc.key_sources
        else replace(proc, key_sources={**proc.key_sources, DEFAULTS_TIMEOUT: source})
        for proc in cast.procs))


def _defaults(table: Any, where: _Where) -> float:
    if not isinstance(table, dict):
        raise CastError(f"defaults must be a table: [defaults], not {toml_value(table)}",
                        source=where("defaults"))
    for key in table:
        if key != "timeout":
            raise CastError(f"unknown key {key!r} in [defaults]{suggest_key(key, ['timeout'])}",
                            source=where("defaults", key))
    timeout = table.get("timeout", DEFAULT_TIMEOUT)
    if not is_seconds(timeout):
        raise CastError(f"defaults.timeout must be {SECONDS_SAID}, not {toml_value(timeout)}"
                        f"{seconds_meant(timeout)}", source=where("defaults", "timeout"))
    return float(timeout)


def _normalize(rules: Any, where: _Where) -> tuple[NormalizeRule, ...]:
    """The ``[[normalize]]`` rules; every rule's mistakes are said (in one error)."""
    if not isinstance(rules, list):
        raise CastError("normalize must be an array of tables: write [[normalize]]",
                        source=where("normalize"))
    mistakes = Mistakes()
    out = []
    for i, rule in enumerate(rules):
        with mistakes.collecting():
            out.append(_normalize_rule(i, rule, where))
    mistakes.raise_any()
    return tuple(out)


_NORMALIZE_KEYS = ("pattern", "replace")


def _normalize_rule(i: int, rule: Any, where: _Where) -> NormalizeRule:
    here = where("normalize", i)
    if not isinstance(rule, dict):
        raise CastError("each [[normalize]] is a table: pattern = '...', and replace = '...' "
                        "(the empty string if not given)", source=here)
    unknown = next((key for key in rule if key not in _NORMALIZE_KEYS), None)
    if unknown is not None:
        raise CastError(f"unknown key {unknown!r} in [[normalize]]"
                        f"{suggest(unknown, _NORMALIZE_KEYS)}",
                        source=where("normalize", i, unknown))
    if "pattern" not in rule:
        raise CastError("each [[normalize]] needs pattern = '...' (and may have replace = "
                        "'...', the empty string if not given)", source=here)
    pattern, replace = rule["pattern"], rule.get("replace", "")
    if not isinstance(pattern, str):
        raise CastError(f"normalize pattern must be a string, not {toml_value(pattern)}",
                        source=where("normalize", i, "pattern"))
    try:
        compiled = compile_regex(pattern)
    except re.error as exc:
        raise CastError(f"invalid normalize pattern {quoted(pattern)}: {exc}",
                        source=where("normalize", i, "pattern")) from None
    if not isinstance(replace, str):
        raise CastError(f"normalize replace must be a string, not {toml_value(replace)}",
                        source=where("normalize", i, "replace"))
    try:
        compiled.sub(replace, "")  # (the template is read before any match is looked for)
    except (re.error, IndexError) as exc:
        raise CastError(f"invalid normalize replace {quoted(replace)}: {exc}",
                        source=where("normalize", i, "replace")) from None
    if replace and any(m.start() == m.end() for text in ("", "a", "\n", "a1 b.")
                       for m in compiled.finditer(text)):
        raise CastError(f"normalize pattern {quoted(pattern)} matches where nothing was "
                        f"written, and would put {quoted(replace)} between the characters of "
                        "lines; make it match some text (x+, not x*)",
                        source=where("normalize", i, "pattern"))
    return NormalizeRule(pattern, replace)


def _step(index: int, raw: Any, cast: CastSpec, where: _Where) -> Step:
    here = where("step", index) or ""
    if not isinstance(raw, dict):
        raise CastError("each [[step]] must be a table", source=here)
    actions = [key for key in raw if key in ACTIONS]
    if len(actions) != 1:
        found = ", ".join(actions) or "none"
        unknown = [k for k in raw if k not in ACTIONS and k not in _all_options()]
        hint = f"; unknown key {unknown[0]!r}{suggest_key(unknown[0], ACTIONS)}" if unknown else ""
        raise CastError(f"a step needs exactly one action of {', '.join(ACTIONS)} "
                        f"(found {found}){hint}", source=here)
    action = actions[0]
    allowed = OPTIONS[action]
    for key in raw:
        if key != action and key not in allowed:
            valid = list(allowed) or ["(no options)"]
            raise CastError(f"{action} step: unknown key {key!r}{suggest_key(key, valid)}",
                            source=where("step", index, key))
    need = NEEDS.get(action)
    if need and need not in raw:
        raise CastError(f"{action} step needs {need} = ...", source=here)

    def member(key: str, value: Any, allow_all: bool) -> str:
        if not isinstance(value, str):
            raise CastError(f"{action} step: {key} must be a member name, not "
                            f"{toml_value(value)}", source=where("step", index, key))
        if value == "all" and allow_all:
            return value
        if value == "all":
            raise CastError(f"{action} step: {key} takes one member, not 'all'",
                            source=where("step", index, key))
        if value not in cast.names:
            choices = [*cast.names, "all"] if allow_all else list(cast.names)
            raise CastError(f"{action} step: no member named {value!r}{suggest(value, choices)}",
                            source=where("step", index, key))
        return value

    def seconds(key: str, value: Any, zero_ok: bool = False) -> float:
        if not (is_seconds(value) or (zero_ok and value == 0 and not isinstance(value, bool))):
            zero = " (or 0)" if zero_ok else ""
            raise CastError(f"{action} step: {key} must be {SECONDS_SAID}{zero}, not "
                            f"{toml_value(value)}{seconds_meant(value)}",
                            source=where("step", index, key))
        return float(value)

    value = raw[action]
    fields: dict[str, Any] = {}
    if action in ("send", "expect", "expect_not"):
        if not isinstance(value, str):
            raise CastError(f"{action} must be a string, not {toml_value(value)}",
                            source=where("step", index, action))
        if action != "send":
            _check_regex(action, value, where("step", index, action))
    elif action in ("wait_exit", "close", "start", "restart"):
        value = member(action, value, allow_all=action == "close")
        if action == "start" and cast[value].autostart:
            raise CastError(f"start step: {value} starts by itself; give it autostart = false "
                            "to start it with this step", source=where("step", index, action))
    elif action == "signal":
        if isinstance(value, bool) or not isinstance(value, (str, int)):
            raise CastError(f"signal step: a signal is a name or a number (signal = \"TERM\", "
                            f"signal = 15), not {toml_value(value)}",
                            source=where("step", index, action))
        try:
            parse_signal(str(value))
        except ValueError as exc:
            raise CastError(f"signal step: {exc}", source=where("step", index, action)) from None
        value = str(value)
    elif action == "wait_port":
        ok = (isinstance(value, int) and not isinstance(value, bool) and 0 < value < 65536) or (
            isinstance(value, str)
            and (is_port(value) or is_port_template(value)))
        if isinstance(value, str) and not ok and variables_in(value):
            raise CastError(never_a_port(action, value), source=where("step", index, action))
        if not ok:
            raise CastError('wait_port must be a port number or a variable such as "{port}", '
                            f"not {toml_value(value)}", source=where("step", index, action))
        value = str(value)
    elif action == "sleep":
        value = str(seconds("sleep", value, zero_ok=True))
    elif action == "interact":
        if value is not True:
            raise CastError(f"write interact = true, not interact = {toml_value(value)}",
                            source=where("step", index, action))
        value = "true"
    if "to" in raw:
        fields["target"] = member("to", raw["to"], allow_all=True)
    if "in" in raw:
        fields["target"] = member("in", raw["in"], allow_all=False)
    if "stream" in raw:
        if raw["stream"] not in ("stdout", "stderr"):
            raise CastError(f'{action} step: stream must be "stdout" or "stderr", not '
                            f"{toml_value(raw['stream'])}{_closest(raw['stream'], STREAMS)}",
                            source=where("step", index, "stream"))
        fields["stream"] = raw["stream"]
        target = fields.get("target")
        if raw["stream"] == "stderr" and target in cast.names and cast[target].pty == "full":
            raise CastError(f"{action} step: {target} has pty = true: what it writes to "
                            "stderr comes on its terminal, with its stdout, in order (leave "
                            "stream out)", source=where("step", index, "stream"))
        if raw["stream"] == "stderr" and target in cast.names and cast[target].stderr != "apart":
            raise CastError(f'{action} step: {target} has stderr = "stdout": what it writes '
                            "there comes on its stdout, in order (leave stream out)",
                            source=where("step", index, "stream"))
    if "newline" in raw:
        if not isinstance(raw["newline"], bool):
            raise CastError(f"send step: newline is true or false, not "
                            f"{toml_value(raw['newline'])}",
                            source=where("step", index, "newline"))
        fields["newline"] = raw["newline"]
        if not raw["newline"] and raw.get("send") == "":
            raise CastError("send step: an empty text with newline = false sends nothing; "
                            "give it the text to send, or leave newline out to send an "
                            "empty line", source=where("step", index, "newline"))
    if "timeout" in raw:
        fields["timeout"] = seconds("timeout", raw["timeout"])
    if "within" in raw:
        fields["within"] = seconds("within", raw["within"])
    if "code" in raw:
        if not isinstance(raw["code"], int) or isinstance(raw["code"], bool):
            raise CastError(f"wait_exit step: code must be a whole number, not "
                            f"{toml_value(raw['code'])}", source=where("step", index, "code"))
        code = raw["code"]
        if not -64 <= code <= 255:
            raise CastError(f"wait_exit step: code {code} is no exit a process can have: an "
                            "exit code is 0 to 255, a death by a signal -1 to -64 (-15 for "
                            "SIGTERM)", source=where("step", index, "code"))
        fields["code"] = code
    return Step(action, value, where("step", index, action) or here, **fields)


STREAMS = ("stdout", "stderr")


def _closest(value: object, choices: tuple[str, ...]) -> str:
    """``; did you mean 'stderr'?`` for a near miss, else nothing."""
    close = close_match(value, list(choices)) if isinstance(value, str) else None
    return f"; did you mean {close!r}?" if close is not None else ""


def _check_captures(steps: tuple[Step, ...], cast: CastSpec) -> tuple[str, ...]:
    """A port to wait for must come from a variable something captures before that step:
    a member's ``ready`` pattern or an earlier ``expect`` (unlike text sent, where braces
    that name no variable stay as they are). Returns the likely misspellings of a
    variable's name, for the report of a failure (see :func:`_misspelt`)."""
    captured = {var for proc in cast.procs for var in proc.captured_variables()}
    all_captured = captured.union(*(step.captures() for step in steps))
    suspicions: list[str] = []
    for step in steps:
        if step.action == "wait_port":
            unknown = sorted(variables_in(step.value) - captured)
            if unknown:
                raise CastError(
                    f"wait_port uses {{{unknown[0]}}}, which neither a member's ready pattern "
                    f"nor an earlier expect captures; capture it with a named group, e.g. "
                    f"expect = 'port (?P<{unknown[0]}>\\d+)'", source=step.source)
        elif step.action in ("send", "expect", "expect_not"):
            suspicions += _misspelt(step, captured | all_captured)
        captured |= step.captures()
    # And the members' own (a {port} after a ready whose group has no name), which a run
    # shows as it starts, and a test in the report of its failure, guesses too.
    suspicions += [warning for warning in variable_warnings(cast, guesses=True)
                   if not any(f"uses {{{name}}}," in warning for name in all_captured)]
    return tuple(suspicions)


def _misspelt(step: Step, known: set[str]) -> list[str]:
    """A ``{name}`` that nothing captures stays as it is written (braces in code sent to a
    REPL are common), so it is no error; one close to a captured variable's name may be a
    typo, which a failure's report then mentions."""
    found = []
    for name in sorted(variables_in(step.value) - known):
        meant = close_match(name, sorted(known)) if len(name) > 2 else None  # ({i}: code)
        if meant is not None:
            found.append(f"{step.source}: {{{name}}} is no captured variable (it was used as "
                         f"written): did you mean {{{meant}}}?")
    return found


def _all_options() -> set[str]:
    return {option for options in OPTIONS.values() for option in options}


def _check_regex(action: str, pattern: str, source: str | None) -> None:
    try:
        regex = compile_regex(with_stand_ins(pattern), re.MULTILINE)
    except re.error as exc:
        raise CastError(f"{action}: invalid regular expression {quoted(pattern)}: {exc}",
                        source=source) from None
    if action == "expect" and (unusable := unusable_group(regex)) is not None:
        raise CastError(f"expect: {quoted(pattern)} {unusable}", source=source)
    if matches_anywhere(regex):
        outcome = "pass" if action == "expect" else "fail"
        raise CastError(f"{action}: {quoted(pattern)} matches where nothing was written, so "
                        f"this step would {outcome} at once; make it match some text",
                        source=source)

