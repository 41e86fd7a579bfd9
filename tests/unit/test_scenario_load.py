"""Loading scenario files: steps, defaults, golden and normalize rules, and their errors."""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import pytest

from pipeplex.cast.checks import validate_cast
from pipeplex.cast.spec import DEFAULT_READY_TIMEOUT
from pipeplex.errors import CastError, CastErrors
from pipeplex.scenario.load import load_scenario, scenario_from_text
from pipeplex.scenario.model import DEFAULT_TIMEOUT, NormalizeRule, Scenario, Step

FILE = "s.toml"
CAST = """\
[procs.server]
cmd = "srv --port 0"

[procs.alice]
cmd = "client"
"""


def scenario(body: str = "", *, cast: str = CAST) -> Scenario:
    return scenario_from_text(cast + body, FILE)


def step(body: str) -> Step:
    (only,) = scenario("\n[[step]]\n" + body + "\n").steps
    return only


def load_error(body: str, *, cast: str = CAST) -> CastError:
    with pytest.raises(CastError) as caught:
        scenario_from_text(cast + body, FILE)
    return caught.value


def step_error(body: str) -> CastError:
    return load_error("\n[[step]]\n" + body + "\n")


def line_of(body: str, needle: str, *, cast: str = CAST, step_header: bool = True) -> str:
    """``s.toml:N`` for the first line of the whole file that starts with ``needle``."""
    text = cast + ("\n[[step]]\n" + body + "\n" if step_header else body)
    for number, line in enumerate(text.splitlines(), start=1):
        if line.startswith(needle):
            return f"{FILE}:{number}"
    raise AssertionError(f"{needle!r} not in the text")


def bare(found: Step) -> Step:
    return dataclasses.replace(found, source="")


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ('send = "hello"\nto = "alice"', Step("send", "hello", "", target="alice")),
        ('send = "hi all"\nto = "all"', Step("send", "hi all", "", target="all")),
        (
            "expect = '^ready (?P<port>\\d+)$'\nin = \"server\"\nstream = \"stderr\"\n"
            "timeout = 2",
            Step("expect", r"^ready (?P<port>\d+)$", "", target="server", stream="stderr",
                 timeout=2.0),
        ),
        ("expect = 'anyone'", Step("expect", "anyone", "")),
        (
            'expect_not = "error"\nin = "alice"\nstream = "stdout"\nwithin = 0.5',
            Step("expect_not", "error", "", target="alice", stream="stdout", within=0.5),
        ),
        ('wait_exit = "alice"\ncode = 3\ntimeout = 4', Step("wait_exit", "alice", "", code=3,
                                                             timeout=4.0)),
        ('wait_exit = "alice"\ncode = -15', Step("wait_exit", "alice", "", code=-15)),
        ('signal = "INT"\nto = "server"', Step("signal", "INT", "", target="server")),
        ('signal = "sigterm"\nto = "all"', Step("signal", "sigterm", "", target="all")),
        ('signal = 15\nto = "alice"', Step("signal", "15", "", target="alice")),
        ('close = "alice"', Step("close", "alice", "")),
        ('close = "all"', Step("close", "all", "")),
        ("wait_port = 8080\ntimeout = 1.5", Step("wait_port", "8080", "", timeout=1.5)),
        ('wait_port = "8080"', Step("wait_port", "8080", "")),
        ("sleep = 0.25", Step("sleep", "0.25", "")),
        ("sleep = 2", Step("sleep", "2.0", "")),
        ("sleep = 0", Step("sleep", "0.0", "")),
        ("interact = true", Step("interact", "true", "")),
    ],
)
def test_each_action_parses_with_its_options(body: str, expected: Step) -> None:
    """Every action reads its value and options into a Step."""
    assert bare(step(body)) == expected


@pytest.mark.parametrize(
    "body",
    ['send = "x"\nto = "alice"', 'expect = "x"\nin = "server"', "sleep = 1", 'close = "all"'],
)
def test_step_source_is_the_line_of_its_action(body: str) -> None:
    """A step's source is ``file:line`` of its action key."""
    action = body.split(" ", 1)[0]
    assert step(body).source == line_of(body, action + " =")


def test_a_port_to_wait_for_comes_from_a_variable_captured_before() -> None:
    captures = CAST.replace("srv --port 0\"", "srv --port 0\"\nready = 'on (?P<port>\\d+)'")
    waits = scenario('\n[[step]]\nwait_port = "{port}"\n', cast=captures).steps[0]
    assert bare(waits) == Step("wait_port", "{port}", "")
    body = "[[step]]\nexpect = 'at (?P<admin>\\d+)'\n\n[[step]]\nwait_port = \"{admin}\"\n"
    assert scenario("\n" + body).steps[1].value == "{admin}"
    error = load_error('\n[[step]]\nwait_port = "{nope}"\n')
    where = line_of('wait_port = "{nope}"', "wait_port")
    assert str(error) == (
        f"{where}: wait_port uses {{nope}}, which neither a member's ready pattern nor an "
        "earlier expect captures; capture it with a named group, e.g. expect = "
        "'port (?P<nope>\\d+)'")
    later = "[[step]]\nwait_port = \"{admin}\"\n\n[[step]]\nexpect = 'at (?P<admin>\\d+)'\n"
    assert "wait_port uses {admin}" in str(load_error("\n" + later))


def test_normalize_replace_is_checked_as_a_template() -> None:
    for replace, said in (("\\\\9", "invalid group reference 9"), ("\\\\q", "bad escape"),
                          ("\\\\g<x>", "unknown group name 'x'")):
        error = load_error(f"\n[[normalize]]\npattern = 'a'\nreplace = \"{replace}\"\n")
        assert "invalid normalize replace" in str(error) and said in str(error), str(error)
    assert "normalize replace must be a string" in str(
        load_error("\n[[normalize]]\npattern = 'a'\nreplace = { a = 1 }\n"))


def test_steps_keep_their_order() -> None:
    """Steps are kept in the order written, each with its own line."""
    body = '[[step]]\nexpect = "a"\n\n[[step]]\nsend = "b"\nto = "alice"\n\n[[step]]\nsleep = 1\n'
    loaded = scenario("\n" + body)
    assert [s.action for s in loaded.steps] == ["expect", "send", "sleep"]
    assert [s.source for s in loaded.steps] == [f"{FILE}:8", f"{FILE}:11", f"{FILE}:15"]


@pytest.mark.parametrize(
    ("body", "found"),
    [
        ('to = "alice"', "found none"),
        ('send = "x"\nexpect = "y"\nto = "alice"', "found send, expect"),
        ('sleep = 1\ninteract = true', "found sleep, interact"),
    ],
)
def test_a_step_needs_exactly_one_action(body: str, found: str) -> None:
    """A step with no action or with two is rejected, listing what it found."""
    error = step_error(body)
    assert "a step needs exactly one action of send, expect" in error.message
    assert f"({found})" in error.message
    assert error.source == line_of(body, "[[step]]")


def test_misspelt_action_is_suggested() -> None:
    """A step whose only key is a misspelt action suggests the right one."""
    error = step_error('sned = "x"\nto = "alice"')
    assert "unknown key 'sned'; did you mean 'send'?" in error.message


@pytest.mark.parametrize(
    ("body", "key", "hint"),
    [
        ('expect = "x"\ntimout = 2', "timout", "; did you mean 'timeout'?"),
        ('expect = "x"\nwithin = 2', "within", " (valid: in, stream, timeout)"),
        ('send = "x"\nto = "alice"\nin = "alice"', "in", " (valid: to, newline)"),
        ('close = "alice"\nto = "alice"', "to", " (valid: (no options))"),
        ('wait_exit = "alice"\ncodes = 1', "codes", "; did you mean 'code'?"),
    ],
)
def test_unknown_option_is_named_with_a_suggestion_and_its_line(
    body: str, key: str, hint: str
) -> None:
    """An option the action does not take is reported at its line, with a suggestion."""
    error = step_error(body)
    assert f"unknown key {key!r}{hint}" in error.message
    assert error.source == line_of(body, f"{key} =")


@pytest.mark.parametrize(
    ("body", "key"),
    [
        ('send = "x"\nto = "alcie"', "to"),
        ('signal = "INT"\nto = "alcie"', "to"),
        ('expect = "x"\nin = "alcie"', "in"),
        ('expect_not = "x"\nin = "alcie"\nwithin = 1', "in"),
        ('wait_exit = "alcie"', "wait_exit"),
        ('close = "alcie"', "close"),
        ('start = "alcie"', "start"),
    ],
)
def test_undeclared_member_is_rejected_with_a_suggestion(body: str, key: str) -> None:
    """A member name that is not in the cast is reported at its line with the closest name."""
    error = step_error(body)
    assert "no member named 'alcie'; did you mean 'alice'?" in error.message
    assert error.source == line_of(body, f"{key} =")


@pytest.mark.parametrize(
    "body",
    [
        'send = "x"\nto = "all"',
        'signal = "TERM"\nto = "all"',
        'close = "all"',
    ],
)
def test_all_is_accepted_where_everyone_makes_sense(body: str) -> None:
    """``all`` addresses every member in send, signal and close."""
    found = step(body)
    assert "all" in (found.target, found.value)


@pytest.mark.parametrize(
    ("body", "key"),
    [
        ('expect = "x"\nin = "all"', "in"),
        ('expect_not = "x"\nin = "all"\nwithin = 1', "in"),
        ('wait_exit = "all"', "wait_exit"),
        ('start = "all"', "start"),
        ('restart = "all"', "restart"),
    ],
)
def test_all_is_rejected_where_one_member_is_needed(body: str, key: str) -> None:
    """``all`` is not a member for in, wait_exit, start or restart: said so, not as a
    member missing from the cast."""
    error = step_error(body)
    assert f"step: {key} takes one member, not 'all'" in error.message
    assert error.source == line_of(body, f"{key} =")


def test_an_unknown_member_where_all_would_do_lists_all_too() -> None:
    """send's ``to`` takes ``all`` as well: the list of names says so."""
    error = step_error('send = "x"\nto = "zzzzzzz"')
    assert error.message.endswith("(valid: server, alice, all)"), error.message


@pytest.mark.parametrize(
    ("body", "key"),
    [
        ('send = "x"\nto = 3', "to"),
        ('expect = "x"\nin = ["alice"]', "in"),
        ("wait_exit = 1", "wait_exit"),
    ],
)
def test_member_must_be_a_string(body: str, key: str) -> None:
    """A member given as something other than a string is rejected at its line."""
    error = step_error(body)
    assert f"{key} must be a member name" in error.message
    assert error.source == line_of(body, f"{key} =")


def test_a_capture_no_variable_can_name_is_refused() -> None:
    """An expect step's group that is not ASCII could never be used as a {variable}."""
    body = "expect = 'token (?P<tökén>\\w+)'"
    error = step_error(body)
    assert error.message.startswith("expect: 'token (?P<tökén>\\w+)' captures 'tökén', which "
                                    "no field can use as a {variable}")
    assert error.source == line_of(body, "expect =")


@pytest.mark.parametrize(
    ("body", "action"),
    [
        ("expect = '(unclosed'", "expect"),
        ("expect = 'a{port}['", "expect"),
        ("expect_not = '*star'\nwithin = 1", "expect_not"),
        ("expect = 'x{99999999999}'", "expect"),  # (re's OverflowError, not re.error)
    ],
)
def test_invalid_regex_is_reported_with_its_line(body: str, action: str) -> None:
    """A pattern that is not a valid regular expression is reported at file:line."""
    error = step_error(body)
    assert f"{action}: invalid regular expression" in error.message
    assert error.source == line_of(body, f"{action} =")
    assert str(error).startswith(f"{error.source}: ")


@pytest.mark.parametrize(
    "pattern",
    [r"port {port}", r"\d{2}", r"\d{2,3}-{name}", r"${HOME}", r"{token}\s+(?P<n>\w{1,4})"],
)
def test_variables_and_quantifiers_are_valid_patterns(pattern: str) -> None:
    """``{var}`` placeholders and ``{n}`` quantifiers pass the check; the text is kept."""
    assert step(f"expect = '{pattern}'").value == pattern


@pytest.mark.parametrize(
    ("body", "action"),
    [
        ('send = 3\nto = "alice"', "send"),
        ("expect = true", "expect"),
        ("expect_not = ['x']\nwithin = 1", "expect_not"),
    ],
)
def test_text_actions_need_strings(body: str, action: str) -> None:
    """send, expect and expect_not take a string."""
    error = step_error(body)
    assert f"{action} must be a string" in error.message
    assert error.source == line_of(body, f"{action} =")


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ('"BOGUS"', "unknown signal 'BOGUS'"),
        ('"SIGNOPE"', "unknown signal 'SIGNOPE'"),
        ('""', "unknown signal ''"),
        ("999", "no signal number 999"),
        ("true", "a signal is a name or a number (signal = \"TERM\", signal = 15), not true"),
        ("1.5", "a signal is a name or a number (signal = \"TERM\", signal = 15), not 1.5"),
    ],
)
def test_bad_signal_is_rejected(value: str, reason: str) -> None:
    """A signal that is neither a known name nor a known number is rejected at its line."""
    body = f'signal = {value}\nto = "alice"'
    error = step_error(body)
    assert error.message.startswith(f"signal step: {reason}")
    assert error.source == line_of(body, "signal =")


@pytest.mark.parametrize("value", ['"abc"', "0", "65536", "-1", "true", "1.5", '"port"', "[80]"])
def test_wait_port_rejects_what_is_not_a_port(value: str) -> None:
    """wait_port takes a port number or a variable; anything else is rejected at its line."""
    body = f"wait_port = {value}"
    error = step_error(body)
    assert "wait_port must be a port number or a variable" in error.message
    assert error.source == line_of(body, "wait_port =")


@pytest.mark.parametrize("value", ['"{host}:{port}"', '"{port}x"', '"port {port}"'])
def test_wait_port_refuses_variables_that_can_never_make_a_port(value: str) -> None:
    """As ready_port does: text around a variable that is not digits can never be a port,
    which is said at the line, not when the step comes."""
    body = f"wait_port = {value}"
    error = step_error(body)
    assert error.message == (f"wait_port = {value[1:-1]!r} can never be a port number: only "
                             'digits may stand around its {variables} ("{port}", "80{n}")')
    assert error.source == line_of(body, "wait_port =")


@pytest.mark.parametrize("value", ['"70000"', '"0"'])
def test_wait_port_string_out_of_range_is_rejected(value: str) -> None:
    """A port written as a string is range-checked like a number."""
    step_error(f"wait_port = {value}")


@pytest.mark.parametrize("value", ["-1", "-0.5", "true", '"1"', "nan", "inf"])
def test_sleep_must_be_a_non_negative_number(value: str) -> None:
    """sleep rejects negative numbers and non-numbers at its line."""
    body = f"sleep = {value}"
    error = step_error(body)
    assert "sleep must be a number of seconds from 0.001" in error.message
    assert error.source == line_of(body, "sleep =")


@pytest.mark.parametrize(
    ("body", "key"),
    [
        ('expect = "x"\ntimeout = 0', "timeout"),
        ('expect = "x"\ntimeout = -2', "timeout"),
        ('wait_exit = "alice"\ntimeout = "5"', "timeout"),
        ('expect_not = "x"\nwithin = 0', "within"),
        ('expect_not = "x"\nwithin = false', "within"),
        ('expect = "x"\ntimeout = nan', "timeout"),
        ('expect = "x"\ntimeout = inf', "timeout"),
        ('expect = "x"\ntimeout = 1e12', "timeout"),
        ('expect = "x"\ntimeout = 1e-300', "timeout"),  # (no wait the loop can keep)
    ],
)
def test_timeouts_must_be_positive(body: str, key: str) -> None:
    """timeout and within must be positive numbers of seconds."""
    error = step_error(body)
    assert f"{key} must be a number of seconds from 0.001" in error.message
    assert error.source == line_of(body, f"{key} =")


@pytest.mark.parametrize(("value", "shown"), [("false", "false"), ('"yes"', "'yes'"),
                                             ("1", "1")])
def test_interact_must_be_true(value: str, shown: str) -> None:
    """interact accepts only ``true``."""
    body = f"interact = {value}"
    error = step_error(body)
    assert error.message == f"write interact = true, not interact = {shown}"
    assert error.source == line_of(body, "interact =")


@pytest.mark.parametrize(
    ("body", "needed"),
    [
        ('expect_not = "error"', "expect_not step needs within = ..."),
        ('send = "hello"', "send step needs to = ..."),
        ('signal = "INT"', "signal step needs to = ..."),
    ],
)
def test_required_options(body: str, needed: str) -> None:
    """expect_not needs within; send and signal need to."""
    error = step_error(body)
    assert error.message == needed
    assert error.source == line_of(body, "[[step]]")


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ('expect = "x"\nstream = "both"',
         'expect step: stream must be "stdout" or "stderr", not \'both\''),
        ('expect = "x"\nstream = "stdrr"',
         'expect step: stream must be "stdout" or "stderr", not \'stdrr\'; did you mean '
         "'stderr'?"),
        ('wait_exit = "alice"\ncode = "0"',
         "wait_exit step: code must be a whole number, not '0'"),
        ('wait_exit = "alice"\ncode = true',
         "wait_exit step: code must be a whole number, not true"),
        ('wait_exit = "alice"\ncode = 1.5', "wait_exit step: code must be a whole number, not 1.5"),
        ('send = ""\nnewline = false\nto = "alice"',
         "send step: an empty text with newline = false sends nothing; give it the text to "
         "send, or leave newline out to send an empty line"),
        *((f'wait_exit = "alice"\ncode = {code}',
           f"wait_exit step: code {code} is no exit a process can have: an exit code is 0 to "
           "255, a death by a signal -1 to -64 (-15 for SIGTERM)")
          for code in (256, -65, 99999999999999999999)),
    ],
)
def test_option_values_are_checked(body: str, message: str) -> None:
    """stream and code are checked at their line."""
    error = step_error(body)
    assert error.message == message
    key = body.splitlines()[1].split(" ", 1)[0]
    assert error.source == line_of(body, f"{key} =")


def test_stderr_of_a_member_whose_stderr_goes_to_stdout_is_refused() -> None:
    """Nothing comes on its stderr: such a step could only time out."""
    merged = CAST.replace('cmd = "client"', 'cmd = "client"\nstderr = "stdout"')
    body = '\n[[step]]\nexpect = "x"\nin = "alice"\nstream = "stderr"\n'
    error = load_error(body, cast=merged)
    assert error.message == ('expect step: alice has stderr = "stdout": what it writes there '
                             "comes on its stdout, in order (leave stream out)")
    assert error.source == line_of(body, "stream =", cast=merged, step_header=False)


def test_stderr_of_a_member_on_a_full_terminal_is_refused() -> None:
    """With pty = true stderr is the terminal too: the step could only time out, its
    report showing the very line as not seen."""
    full = CAST.replace('cmd = "client"', 'cmd = "client"\npty = true')
    body = '\n[[step]]\nexpect = "x"\nin = "alice"\nstream = "stderr"\n'
    error = load_error(body, cast=full)
    assert error.message == ("expect step: alice has pty = true: what it writes to stderr "
                             "comes on its terminal, with its stdout, in order (leave stream "
                             "out)")
    assert error.source == line_of(body, "stream =", cast=full, step_header=False)


def test_step_must_be_an_array_of_tables() -> None:
    """``step = ...`` as a plain value is rejected."""
    error = load_error("", cast="step = 3\n" + CAST)
    assert "step must be an array of tables" in error.message


def test_each_step_must_be_a_table() -> None:
    """An array of non-tables is rejected."""
    error = load_error("", cast="step = [1]\n" + CAST)
    assert error.message == "each [[step]] must be a table"


def test_unknown_top_level_key_is_suggested() -> None:
    """A misspelt top-level table is named with a suggestion."""
    error = load_error("\n[[stepp]]\nsleep = 1\n")
    assert "unknown table or key 'stepp'; did you mean 'step'?" in error.message


def test_defaults_timeout_applies_to_scenario_and_ready_timeout() -> None:
    """[defaults] timeout becomes the steps' timeout and each member's ready_timeout."""
    cast = "[defaults]\ntimeout = 3\n\n" + CAST + "ready_timeout = 7\n"
    loaded = scenario('\n[[step]]\nexpect = "x"\n', cast=cast)
    assert loaded.timeout == 3.0
    assert loaded.steps[0].timeout is None  # the step falls back on the scenario's timeout
    assert loaded.cast["server"].ready_timeout == 3.0
    assert loaded.cast["alice"].ready_timeout == 7.0  # its own setting wins


def test_default_timeout_without_defaults_table() -> None:
    """Without [defaults], the timeout is the default for steps and readiness alike."""
    loaded = scenario('\n[[step]]\nexpect = "x"\n')
    assert loaded.timeout == DEFAULT_TIMEOUT
    assert {p.ready_timeout for p in loaded.cast.procs} == {DEFAULT_TIMEOUT}


def test_a_plain_cast_file_keeps_the_members_own_ready_timeout() -> None:
    """Without steps or [defaults] (a cast file given to pipeplex run), readiness waits the
    30 s of a member's own default, as when the file is loaded from Python."""
    loaded = scenario()
    assert {p.ready_timeout for p in loaded.cast.procs} == {DEFAULT_READY_TIMEOUT}
    with_defaults = scenario(cast="[defaults]\ntimeout = 4\n\n" + CAST)
    assert {p.ready_timeout for p in with_defaults.cast.procs} == {4.0}


@pytest.mark.parametrize(
    ("defaults", "message"),
    [
        ("timeout = 0",
         "defaults.timeout must be a number of seconds from 0.001 to below 1e9, not 0; for "
         "next to no wait, give a short one such as 0.1"),
        ("timeout = -1",
         "defaults.timeout must be a number of seconds from 0.001 to below 1e9, not -1"),
        ("timeout = true",
         "defaults.timeout must be a number of seconds from 0.001 to below 1e9, not true"),
        ('timeout = "5"',
         "defaults.timeout must be a number of seconds from 0.001 to below 1e9, not '5'; "
         "write 5 (seconds, as a number: no quotes, no unit)"),
        ('timeout = "90s"',
         "defaults.timeout must be a number of seconds from 0.001 to below 1e9, not '90s'; "
         "write 90 (seconds, as a number: no quotes, no unit)"),
        ("timeout = nan",
         "defaults.timeout must be a number of seconds from 0.001 to below 1e9, not nan"),
        ("timeout = inf",
         "defaults.timeout must be a number of seconds from 0.001 to below 1e9, not inf"),
        ("timout = 5", "unknown key 'timout' in [defaults]; did you mean 'timeout'?"),
    ],
)
def test_bad_defaults_are_reported_at_their_line(defaults: str, message: str) -> None:
    """[defaults] accepts only a positive timeout, and says where it is wrong."""
    cast = "[defaults]\n" + defaults + "\n\n" + CAST
    error = load_error("", cast=cast)
    assert error.message == message
    assert error.source == f"{FILE}:2"


def test_golden_is_resolved_against_the_files_folder(tmp_path: Path) -> None:
    """A relative golden path is taken from the scenario file's folder."""
    folder = tmp_path / "suite"
    folder.mkdir()
    path = folder / "chat.toml"
    path.write_text('golden = "expected/chat.golden"\n\n' + CAST, encoding="utf-8")
    loaded = load_scenario(path)
    assert loaded.golden == os.fspath(folder / "expected" / "chat.golden")
    assert loaded.path == os.fspath(path)
    assert loaded.name == "chat"


def test_absolute_golden_path_is_kept(tmp_path: Path) -> None:
    """An absolute golden path is used as written."""
    target = tmp_path / "elsewhere" / "g.txt"
    path = tmp_path / "s.toml"
    path.write_text(f'golden = "{target}"\n\n' + CAST, encoding="utf-8")
    assert load_scenario(path).golden == os.fspath(target)


@pytest.mark.parametrize(
    ("golden", "said"),
    [
        ("s.toml", "names this scenario's own file: --update would replace it with a "
         "transcript; name a file of its own"),
        ("./S.TOML", "names this scenario's own file: --update would replace it with a "
         "transcript; name a file of its own"),
        ("other.toml", "names a .toml file, as scenarios and casts are named: --update would "
         "replace it with a transcript; name a file of its own"),
        (".", "names a folder: name a file"),
    ],
    ids=["itself", "itself-by-another-name", "another-toml", "folder"],
)
def test_a_golden_file_update_would_destroy_is_refused_at_its_line(
        tmp_path: Path, golden: str, said: str) -> None:
    """``--update`` replaces the golden file with a transcript: the scenario's own file, or
    any other .toml (a scenario, a cast), would be lost without a word."""
    path = tmp_path / "s.toml"
    text = f'golden = "{golden}"\n\n' + CAST
    path.write_text(text, encoding="utf-8")
    if golden == "./S.TOML":
        (tmp_path / "S.TOML").symlink_to(path)
    with pytest.raises(CastError) as caught:
        load_scenario(path)
    assert caught.value.message == f"golden = {golden!r} {said}, golden = \"s.golden\""
    assert caught.value.source == f"{path}:1"
    assert path.read_text(encoding="utf-8") == text


@pytest.mark.parametrize("value", ['""', "3", "true"])
def test_golden_must_be_a_file_name(value: str) -> None:
    """golden must be a non-empty string."""
    error = load_error("", cast=f"golden = {value}\n" + CAST)
    assert error.message == "golden must be a file name"
    assert error.source == f"{FILE}:1"


def test_a_golden_name_with_a_nul_is_refused_at_load() -> None:
    """No file has one: it was an internal error (ValueError) when the scenario ran."""
    error = load_error("", cast='golden = "a\\u0000b"\n' + CAST)
    assert error.message == "golden must be a file name (a NUL character, \\u0000, is in none)"
    assert error.source == f"{FILE}:1"


def test_missing_scenario_file(tmp_path: Path) -> None:
    """A missing file is a CastError naming it."""
    missing = tmp_path / "nope.toml"
    with pytest.raises(CastError) as caught:
        load_scenario(missing)
    assert caught.value.source == os.fspath(missing)


@pytest.mark.parametrize("pattern", ["", "x*", "(a)?", "\\b"])
def test_a_normalize_pattern_that_matches_nothing_written_is_refused(pattern: str) -> None:
    """Its replace went between every two characters of the golden text (X[XaX]X...),
    and the golden file was written so; with an empty replace such a rule is harmless
    (trailing blanks, ' *$', stripped)."""
    error = load_error(f"\n[[normalize]]\npattern = '{pattern}'\nreplace = 'X'\n")
    assert "matches where nothing was written, and would put 'X' between the characters " \
        "of lines; make it match some text (x+, not x*)" in str(error), str(error)
    scenario(f"\n[[normalize]]\npattern = '{pattern}'\n")


def test_normalize_rules_are_loaded_in_order() -> None:
    """Each [[normalize]] becomes a rule; replace defaults to the empty string."""
    body = (
        "\n[[normalize]]\npattern = 'took \\d+ ms'\nreplace = 'took N ms'\n"
        "\n[[normalize]]\npattern = '^debug:.*$'\n"
    )
    assert scenario(body).normalize == (
        NormalizeRule(r"took \d+ ms", "took N ms"),
        NormalizeRule("^debug:.*$", ""),
    )


@pytest.mark.parametrize(
    ("rule", "message", "at"),
    [
        ("pattern = '(open'", "invalid normalize pattern '(open': missing )", "pattern"),
        ("pattern = 'took (\\d+ ms'", "invalid normalize pattern 'took (\\d+ ms'", "pattern"),
        ("pattern = 'x{99999999999}'", "invalid normalize pattern 'x{99999999999}': a "
         "repetition count is too large", "pattern"),
        ("replace = 'x'", "each [[normalize]] needs pattern = '...' (and may have replace",
         "[[normalize]]"),
        ("pattern = 'x'\nflags = 'i'", "unknown key 'flags' in [[normalize]] (valid: pattern, "
         "replace)", "flags"),
        ("patern = 'x'", "unknown key 'patern' in [[normalize]]; did you mean 'pattern'?",
         "patern"),
        ("pattern = 'x'\nreplacement = 'y'", "unknown key 'replacement' in [[normalize]]; did "
         "you mean 'replace'?", "replacement"),
        ("pattern = 3", "normalize pattern must be a string, not 3", "pattern"),
        ("pattern = 'x'\nreplace = 3", "normalize replace must be a string, not 3", "replace"),
    ],
)
def test_bad_normalize_rules_are_reported_where_written(rule: str, message: str,
                                                        at: str) -> None:
    """Normalize rules need a valid pattern and nothing but pattern and replace; a wrong
    key is said at its line, with the spelling it was probably meant as."""
    error = load_error("\n[[normalize]]\n" + rule + "\n")
    assert message in error.message
    assert error.source == line_of("\n[[normalize]]\n" + rule + "\n", at, step_header=False)


def test_every_normalize_rules_mistakes_are_said_at_once() -> None:
    error = load_error("\n[[normalize]]\npatern = 'x'\n[[normalize]]\npattern = '('\n")
    assert "2 mistakes" in str(error), str(error)


def test_normalize_must_be_an_array_of_tables() -> None:
    """``normalize = ...`` as a plain value is rejected."""
    error = load_error("", cast="normalize = 'x'\n" + CAST)
    assert "normalize must be an array of tables" in error.message


@pytest.mark.parametrize(
    ("extra", "steps", "on_exit"),
    [
        ("", '\n[[step]]\nsleep = 1\n', {"server": "ignore", "alice": "ignore"}),
        ('on_exit = "stop"\n', '\n[[step]]\nsleep = 1\n', {"server": "ignore", "alice": "stop"}),
        ("", "", {"server": "stop", "alice": "stop"}),
        ('on_exit = "restart"\n', "", {"server": "stop", "alice": "restart"}),
    ],
)
def test_on_exit_defaults_to_ignore_only_with_steps(
    extra: str, steps: str, on_exit: dict[str, str]
) -> None:
    """With steps, members default to on_exit = "ignore"; without, to "stop"."""
    loaded = scenario(steps, cast=CAST + extra)
    assert {p.name: p.on_exit for p in loaded.cast.procs} == on_exit


@pytest.mark.parametrize(("value", "expected"), [("false", False), ("true", True), ("", True)])
def test_autostart_is_parsed(value: str, expected: bool) -> None:
    """``autostart = false`` marks a member that only a start step starts."""
    extra = f"autostart = {value}\n" if value else ""
    loaded = scenario('\n[[step]]\nwait_exit = "alice"\n', cast=CAST + extra)
    assert loaded.cast["alice"].autostart is expected
    assert loaded.cast["server"].autostart is True


def test_a_start_step_takes_only_a_member_that_does_not_start_by_itself() -> None:
    started = scenario('\n[[step]]\nstart = "alice"\ntimeout = 3\n',
                       cast=CAST + "autostart = false\n").steps[0]
    assert bare(started) == Step("start", "alice", "", timeout=3.0)
    error = load_error('\n[[step]]\nstart = "alice"\n')
    where = line_of('start = "alice"', "start")
    assert str(error) == (f"{where}: start step: alice starts by itself; give it "
                          "autostart = false to start it with this step")


@pytest.mark.parametrize(
    ("found", "described"),
    [
        (Step("expect", "ready", "f:1", target="server"), "expect 'ready' in server"),
        (Step("expect", "x", "f:1"), "expect 'x'"),
        (Step("expect", "x", "f:1", target="a", stream="stderr"), "expect 'x' in a (stderr)"),
        (Step("expect_not", "oops", "f:1", within=1.0), "expect_not 'oops'"),
        (Step("send", "hi", "f:1", target="alice"), "send 'hi' to alice"),
        (Step("signal", "INT", "f:1", target="all"), "signal 'INT' to all"),
        (Step("wait_exit", "alice", "f:1", code=3), "wait_exit 'alice' with code 3"),
        (Step("wait_exit", "alice", "f:1", code=0), "wait_exit 'alice' with code 0"),
        (Step("close", "all", "f:1"), "close 'all'"),
        (Step("sleep", "0.5", "f:1"), "sleep '0.5'"),
        (Step("interact", "true", "f:1"), "interact"),
    ],
)
def test_step_describe(found: Step, described: str) -> None:
    """Steps describe themselves briefly for reports."""
    assert found.describe() == described


def test_scenario_name_defaults_without_a_path() -> None:
    """A scenario without a file is called "scenario"; with one, by the file's stem."""
    assert Scenario(scenario().cast).name == "scenario"
    assert scenario().name == "s"


@pytest.mark.parametrize("below", ["\n[[step]]\nexpect = \"x\"\n", ""])
def test_golden_written_below_a_table_says_where_it_goes(below: str) -> None:
    """``golden`` appended at the end of the file belongs, for TOML, to the last table:
    a step's, or a member's. The message says to write it above the first table."""
    error = load_error(below + 'golden = "cast.golden"\n')
    assert "unknown key 'golden'; golden is a top-level key: write it above the first table" \
        in error.message


@pytest.mark.parametrize(
    ("body", "action", "outcome"),
    [
        ("expect = ''", "expect", "pass"),
        ("expect = 'x*'", "expect", "pass"),
        ("expect = '(ready)?'", "expect", "pass"),
        ("expect_not = 'a*'\nwithin = 1", "expect_not", "fail"),
    ],
)
def test_a_pattern_that_matches_nothing_written_is_refused(body: str, action: str,
                                                           outcome: str) -> None:
    """A pattern that matches where nothing was written checks nothing: the step would
    pass (or fail) at once, a slip (a value left empty by a template, a stray ``*``)."""
    error = step_error(body)
    assert f"matches where nothing was written, so this step would {outcome} at once" in (
        error.message)
    assert error.source == line_of(body, f"{action} =")


@pytest.mark.parametrize("pattern", ["^$", "^ready$", "x+", r"\d*ok"])
def test_a_pattern_that_needs_some_text_is_taken(pattern: str) -> None:
    """Only patterns that match in any text (an empty match, somewhere) are refused: an
    empty line (^$) or a pattern that may begin empty but needs text to end is fine."""
    assert step(f"expect = '{pattern}'\nin = 'alice'").value == pattern


def test_every_mistake_of_a_scenario_is_said_at_once() -> None:
    """Its defaults, its steps, its golden file: all of them, in the file's order."""
    error = load_error('\n[[step]]\nsend = "hi"\nin = "nobody"\n\n[[step]]\nexpect = "x*"\n'
                       'in = "alice"\n', cast='golden = "s.toml"\n[defaults]\ntimeout = 0\n'
                       + CAST)
    assert isinstance(error, CastErrors)
    assert [e.source for e in error.errors] == [f"{FILE}:1", f"{FILE}:3", f"{FILE}:12",
                                                f"{FILE}:15"]
    assert str(error).startswith(f"{FILE}: 4 mistakes:\n  {FILE}:1: golden = 's.toml' names ")


def test_the_steps_wait_for_a_cast_without_mistakes() -> None:
    """They are read against its members: a cast's mistakes come alone, with the
    defaults'."""
    error = load_error('\n[[step]]\nsend = "hi"\nin = "nobody"\n',
                       cast='[defaults]\ntimeout = 0\n[procs.a]\ncmd = "x"\npty = 1\n')
    assert isinstance(error, CastErrors)
    assert [e.source for e in error.errors] == [f"{FILE}:2", f"{FILE}:5"]


def test_a_timeout_factor_makes_every_wait_longer_but_a_sleep() -> None:
    """pipeplex test --timeout-factor, for a slower machine: the default, each step's
    timeout and within, each member's ready_timeout and ready_cmd_timeout; a sleep is as
    written."""
    scenario = scenario_from_text(
        '[defaults]\ntimeout = 2\n[procs.a]\ncmd = "x"\nready = "up"\nready_timeout = 3\n'
        "[procs.b]\ncmd = 'y'\nready_cmd = 'true'\nready_cmd_timeout = 0.5\n"
        "[[step]]\nexpect = 'hi'\nin = 'a'\ntimeout = 4\n"
        "[[step]]\nexpect_not = 'no'\nin = 'a'\nwithin = 0.5\n"
        "[[step]]\nsleep = 1\n", FILE)
    scaled = scenario.scaled(3)
    assert scaled.timeout == 6
    assert [p.ready_timeout for p in scaled.cast.procs] == [9, 6]  # (b's: the default's)
    assert [p.ready_cmd_timeout for p in scaled.cast.procs] == [5, 1.5]  # (a has no check)
    validate_cast(scaled.cast)
    # (Kept for the messages that give a limit with the line it was written on.)
    assert [p.timeout_factor for p in scaled.cast.procs] == [3, 3]
    assert scaled.cast.procs[0].where("ready_timeout") == f"{FILE}:6"
    assert [(s.timeout, s.within, s.value) for s in scaled.steps] == [
        (12, None, "hi"), (None, 1.5, "no"), (None, None, "1.0")]
    assert scenario.scaled(1) is scenario
