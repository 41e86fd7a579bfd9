"""Loading and validating casts: TOML files, ``-p`` options and the checks across members."""

from __future__ import annotations

import json
import os
import pickle
import signal
import socket
import sys
from pathlib import Path

import pytest

from pipeplex.cast import CastSpec, ProcSpec, load_cast, parse_proc_option
from pipeplex.cast._programs import check_commands
from pipeplex.cast.checks import validate_cast
from pipeplex.cast.slips import cast_warnings, echo_warning_filled, variable_warnings
from pipeplex.errors import CastError, CastErrors, PipeplexError


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "cast.toml"
    path.write_text(text, encoding="utf-8")
    return path


def load(tmp_path: Path, text: str) -> CastSpec:
    return load_cast(write(tmp_path, text))


def error(tmp_path: Path, text: str) -> tuple[CastError, str]:
    """The CastError for ``text`` and the path it was written to."""
    path = write(tmp_path, text)
    with pytest.raises(CastError) as info:
        load_cast(path)
    return info.value, str(path)


def member(tmp_path: Path, extra: str, name: str = "web") -> ProcSpec:
    """Load a one-member cast with ``extra`` lines after ``cmd``."""
    return load(tmp_path, f'[procs.{name}]\ncmd = "serve"\n{extra}\n')[name]


class TestMinimal:
    def test_minimal_cast(self, tmp_path: Path) -> None:
        """One member with a cmd loads, with defaults and its declaration line."""
        path = write(tmp_path, '# my cast\n[procs.web]\ncmd = "python3 -m http.server"\n')
        cast = load_cast(path)
        assert cast.names == ("web",)
        assert cast.path == str(path)
        web = cast["web"]
        assert web.cmd == "python3 -m http.server"
        assert (web.shell, web.pty, web.on_exit) == (False, "stdout", "stop")
        assert (web.after, web.input, web.env) == ((), (), {})
        assert web.source == f"{path}:2"

    def test_members_keep_declaration_order(self, tmp_path: Path) -> None:
        """Members come out in the order the file declares them."""
        cast = load(tmp_path, '[procs.zed]\ncmd = "a"\n[procs.alpha]\ncmd = "b"\n')
        assert cast.names == ("zed", "alpha")

    def test_cmd_as_list(self, tmp_path: Path) -> None:
        """A list cmd is kept as the argument vector, word for word."""
        web = load(tmp_path, '[procs.web]\ncmd = ["echo", "two words", "$HOME"]\n')["web"]
        assert web.cmd == ("echo", "two words", "$HOME")
        assert web.argv() == ["echo", "two words", "$HOME"]

    def test_shell_with_string_cmd(self, tmp_path: Path) -> None:
        """shell = true runs the string through /bin/sh -c."""
        web = member(tmp_path, "shell = true")
        assert web.shell
        assert web.argv() == ["/bin/sh", "-c", "serve"]

    def test_defaults_apply_unless_the_file_overrides(self, tmp_path: Path) -> None:
        """Keyword defaults fill fields the file leaves out."""
        path = write(tmp_path, '[procs.a]\ncmd = "x"\n[procs.b]\ncmd = "y"\npty = false\n')
        cast = load_cast(path, pty="full")
        assert (cast["a"].pty, cast["b"].pty) == ("full", "pipes")

    def test_cast_errors_are_pipeplex_errors(self) -> None:
        """CastError belongs to the PipeplexError family and keeps source and message apart."""
        err = CastError("bad thing", source="cast.toml:3")
        assert isinstance(err, PipeplexError)
        assert (err.source, err.message) == ("cast.toml:3", "bad thing")
        assert str(err) == "cast.toml:3: bad thing"
        assert str(CastError("bad thing")) == "bad thing"


class TestFileErrors:
    def test_missing_file(self, tmp_path: Path) -> None:
        """A cast file that does not exist is a CastError naming it."""
        path = tmp_path / "nope.toml"
        with pytest.raises(CastError, match="no such cast file") as info:
            load_cast(path)
        assert info.value.source == str(path)

    def test_toml_syntax_error_gives_line_and_column(self, tmp_path: Path) -> None:
        """A TOML syntax error points at ``path:LINE:COL``."""
        err, path = error(tmp_path, "[procs.web]\ncmd = \n")
        assert err.source == f"{path}:2:7"
        assert str(err).startswith(f"{path}:2:7: ")
        assert "(at line" not in err.message

    def test_toml_error_at_end_of_file(self, tmp_path: Path) -> None:
        """An error at the very end names the file and says so in words."""
        err, path = error(tmp_path, '[procs.web]\ncmd = "unterminated')
        assert err.source == path
        assert err.message.startswith("Unterminated string at the end of the file; ")

    def test_a_toml_hint_reads_the_line_toml_counts(self, tmp_path: Path) -> None:
        """U+2028 in a comment is no line end to TOML (nor to its error's line number)."""
        err, _ = error(tmp_path, '# a\u2028b\n[procs.web]\ncmd = "x"\nautostart = True\n')
        assert err.message == "Invalid value; write true in lowercase, as TOML does"

    def test_a_name_with_a_dot_left_unquoted(self, tmp_path: Path) -> None:
        """[procs.api.v2] is a table v2 inside member api: the hint is the quoted name."""
        err, _ = error(tmp_path, '[procs.api.v2]\ncmd = "serve"\n')
        assert err.message == ("api: unknown key 'v2'; for a member named api.v2, quote the "
                               'name: [procs."api.v2"]')
        # (Not for a slip of a key's name, nor for a table that is no member.)
        err, _ = error(tmp_path, '[procs.web]\ncmd = "env"\n[procs.web.evn]\nA = "1"\n')
        assert err.message == "web: unknown key 'evn'; did you mean 'env'?"

    @pytest.mark.parametrize(("line", "message"), [
        ("cmd = python3 -m http.server",
         "Invalid value; put text in quotes: \"...\" (or '...', where a backslash stays as "
         "written)"),
        ("autostart = False", "Invalid value; write false in lowercase, as TOML does"),
        ('ready = "port \\d+"',
         "Unescaped '\\' in a string; in \"...\" a backslash begins an escape such as \\n: "
         "write the value in single quotes, where it stays as written (a regular expression: "
         "'\\d+')"),
        ('cmd = "unterminated\nready = "x"',
         "Illegal character '\\n'; close the string on its line with the quote it began with "
         "(text over several lines goes in \"\"\"...\"\"\" or \'\'\'...\'\'\')"),
        ('cmd = "serve" --port 80',
         "Expected newline or end of document after a statement; write one key = value a "
         "line, with text in quotes"),
        ('cmd = "sh -c "echo hi""',
         "Expected newline or end of document after a statement; a \" inside \"...\" ends the "
         "text: write it in single quotes ('sh -c \"echo hi\"'), or the inner quotes as \\\""),
        ('cmd = "a"\ncmd = "b"', "Cannot overwrite a value; a key may be given once in its "
         "table"),
        ('cmd = "a"\n[procs.web]\ncmd = "b"', "[procs.web] is declared twice; a table may be "
         "given once: merge the two"),
        ('cmd = "a"\n[procs."w.b"]\n[procs."w.b"]', '[procs."w.b"] is declared twice; a table '
         "may be given once: merge the two"),
        ('cmd = "a"\nready_timeout = 05', "Expected newline or end of document after a "
         "statement; a number is written 5, 0.5 or 1_000 (no leading zero, digits after its "
         "point, an underscore only between digits)"),
        ('cmd = "a"\nenv = { A = "1", }', "Invalid initial character for a key part; an inline "
         'table { A = "1", B = "2" } stays on one line, with no comma after its last item (or '
         "write it as a table of its own: [procs.NAME.env])"),
        ('cmd = "a"\nenv = {\n  A = "1"\n}', "Invalid initial character for a key part; an "
         'inline table { A = "1", B = "2" } stays on one line, with no comma after its last '
         "item (or write it as a table of its own: [procs.NAME.env])"),
        ('cmd = "a"\nafter = ["b" "c"]', "Unclosed array; an array's items are separated by "
         'commas, and it ends with ]: ["a", "b"]'),
    ], ids=["bare-text", "capital-bool", "backslash-in-double-quotes", "unclosed-string",
            "two-values", "quotes-in-quotes", "twice", "table-twice", "quoted-table-twice",
            "leading-zero", "inline-table-comma", "inline-table-lines", "array-comma"])
    def test_toml_slips_come_with_what_to_write(self, tmp_path: Path, line: str,
                                                message: str) -> None:
        """tomllib names a slip by its effect; the commonest get what to write instead."""
        err, _ = error(tmp_path, f"[procs.web]\n{line}\n")
        assert err.message == message

    @pytest.mark.parametrize("kind", ["a folder", "a device", "a socket"])
    def test_what_is_not_a_regular_file_is_refused_by_kind(self, tmp_path: Path,
                                                           kind: str) -> None:
        """A folder, a device or a socket is named for what it is, not read (a named pipe:
        see test_cast_limits)."""
        path = tmp_path / "c.toml"
        with socket.socket(socket.AF_UNIX) as sock:
            if kind == "a folder":
                path.mkdir()
            elif kind == "a device":
                path.symlink_to(os.devnull)
            else:
                sock.bind(str(path))
            with pytest.raises(CastError) as info:
                load_cast(path)
        assert str(info.value) == f"{path}: this is {kind}, not a cast file"

    @pytest.mark.parametrize("value", ["[" * 2000 + "]" * 2000, "{a=" * 2000 + "1" + "}" * 2000],
                             ids=["arrays", "inline-tables"])
    def test_toml_nested_too_deeply_is_said(self, tmp_path: Path, value: str) -> None:
        """What tomllib cannot read for Python's stack is a CastError naming the file."""
        err, path = error(tmp_path, f'[procs.web]\ncmd = "x"\ndeep = {value}\n')
        assert err.source == path
        assert err.message == ("cannot read this TOML: its arrays or inline tables are "
                               "nested too deeply (hundreds of levels)")

    def test_a_number_with_too_many_digits_is_said(self, tmp_path: Path) -> None:
        """A number beyond Python's limit on digits is a CastError naming the file."""
        err, path = error(tmp_path, f'[procs.web]\ncmd = "x"\nready_port = {"1" * 5000}\n')
        assert err.source == path
        assert err.message == ("cannot read this TOML: it has a number with too many digits "
                               f"(more than the {sys.get_int_max_str_digits()} Python reads)")

    @pytest.mark.parametrize(
        "text", ["", "# nothing\n", "[procs]\n"], ids=["empty", "comment", "no-members"]
    )
    def test_cast_without_members(self, tmp_path: Path, text: str) -> None:
        """A cast with no member asks for a [procs.NAME] table."""
        err, _ = error(tmp_path, text)
        assert "the cast has no members" in err.message
        assert "[procs.server]" in err.message

    @pytest.mark.parametrize("value", ["5", '"web"', '["a", "b"]'])
    def test_procs_that_is_not_a_table(self, tmp_path: Path, value: str) -> None:
        """``procs = 5`` says procs must be a table of members, at its line, not that the
        cast has no members."""
        err, path = error(tmp_path, f"# members\n\nprocs = {value}\n")
        assert err.source == f"{path}:3"
        assert err.message.startswith("procs must be a table of members, not ")
        assert "the cast has no members" not in err.message
        assert "[procs.server]" in err.message

    def test_unknown_top_level_table(self, tmp_path: Path) -> None:
        """An unknown top-level table is named with its line."""
        err, path = error(tmp_path, '[procs.web]\ncmd = "x"\n\n[settings]\ncolor = true\n')
        assert err.source == f"{path}:4"
        assert "unknown table or key 'settings'" in err.message

    def test_misspelt_procs_table_gives_its_line(self, tmp_path: Path) -> None:
        """A ``[proc.web]`` typo is reported at its line with a suggestion."""
        err, path = error(tmp_path, '[procs.db]\ncmd = "x"\n\n[proc.web]\ncmd = "y"\n')
        assert "did you mean 'procs'?" in err.message
        assert err.source == f"{path}:4"


class TestMemberKeys:
    def test_unknown_key_with_suggestion(self, tmp_path: Path) -> None:
        """A misspelt key is reported at its own line with the closest valid key."""
        err, path = error(tmp_path, '[procs.web]\ncmd = "x"\ncmdd = "y"\n')
        assert err.source == f"{path}:3"
        assert str(err).startswith(f"{path}:3: ")
        assert err.message == "web: unknown key 'cmdd'; did you mean 'cmd'?"

    @pytest.mark.parametrize(("key", "said"), [
        ('restart = "always"', "; a member restarts with on_exit = \"restart\", or "
                               "on_failure = \"restart\" after a failure only (and "
                               "max_restarts: how many times in a row)"),
        ('depends_on = ["db"]', "; a member starts after others with after = [...] (once "
                                "they are ready)"),
        ('working_dir = "/"', "; did you mean 'cwd'?"),
    ])
    def test_another_tools_key_leads_to_this_ones(self, tmp_path: Path, key: str,
                                                   said: str) -> None:
        """docker compose's restart, whose close spelling here is max_restarts, leads to
        on_exit = "restart"; depends_on, which resembles nothing, to after."""
        err, _ = error(tmp_path, f'[procs.web]\ncmd = "x"\n{key}\n')
        assert err.message == f"web: unknown key {key.split(' =')[0]!r}{said}"

    def test_unknown_key_without_close_match_lists_valid_keys(self, tmp_path: Path) -> None:
        """A key resembling nothing gets the list of valid keys."""
        err, _ = error(tmp_path, '[procs.web]\ncmd = "x"\nzzzzzz = 1\n')
        assert "(valid: cmd, shell, env, cwd, pty," in err.message

    def test_member_that_is_not_a_table(self, tmp_path: Path) -> None:
        """``procs.web = "..."`` is rejected: a member is a table."""
        err, _ = error(tmp_path, '[procs]\nweb = "python3"\n')
        assert "procs.web must be a table" in err.message

    def test_missing_cmd(self, tmp_path: Path) -> None:
        """A member without cmd is reported at its header."""
        err, path = error(tmp_path, "[procs.web]\npty = true\n")
        assert err.source == f"{path}:1"
        assert err.message == "web: missing cmd (the command to run)"

    @pytest.mark.parametrize(
        "value",
        ['""', '"   "', "[]", "[true]", "5", "true", "{ a = 1 }"],
        ids=["empty", "blank", "empty-list", "non-string-word", "number", "bool", "table"],
    )
    def test_bad_cmd(self, tmp_path: Path, value: str) -> None:
        """cmd must be a non-empty string or a list of strings."""
        err, path = error(tmp_path, f"[procs.web]\ncmd = {value}\n")
        assert err.source == f"{path}:2"
        assert "cmd must be a non-empty string or a list of strings" in err.message

    def test_cmd_that_cannot_be_split(self, tmp_path: Path) -> None:
        """An unbalanced quote in cmd is reported."""
        err, _ = error(tmp_path, '[procs.web]\ncmd = "echo \'oops"\n')
        assert "web: cannot split cmd" in err.message

    def test_a_command_commented_out_is_refused_at_its_line(self, tmp_path: Path) -> None:
        err, path = error(tmp_path, '[procs.web]\ncmd = "# serve --old"\n')
        assert err.source == f"{path}:2"
        assert err.message == ("web: cannot split cmd: it is only a # comment: nothing is left "
                               "to run")
        with pytest.raises(CastError, match="it is only a # comment"):
            parse_proc_option("web=# serve")

    def test_a_comment_in_a_one_line_command_is_said(self, tmp_path: Path) -> None:
        """A shell leaves it out, and so does pipeplex: but ``echo issue #12 fixed`` may
        well mean it as an argument, so a run says so before it starts (not for a command
        over several lines, a script whose comments are meant)."""
        cast = load(tmp_path, '[procs.web]\ncmd = "echo issue #12 fixed"\n'
                              "[procs.db]\ncmd = \"\"\"serve \\\n  # the port\n  --port 1\"\"\"\n")
        assert cast_warnings(cast) == [
            f"{tmp_path / 'cast.toml'}:2: web's command has a comment, '#12 fixed', which is "
            "not passed to it, as in a shell; quote it ('#12') if it is meant as an argument"]

    def test_a_later_members_program_beside_the_file_is_said_only_by_a_path(
            self, tmp_path: Path) -> None:
        """A member that starts later has its program looked for only then: one named by a
        path from the cast file's folder is said as the run starts; a bare name is looked
        for in PATH, never in a folder, so cwd = "." would change nothing for it."""
        (tmp_path / "tool.sh").write_text("#!/bin/sh\n")
        cast = load(tmp_path, "[procs.a]\ncmd = 'true'\n[procs.b]\ncmd = './tool.sh'\n"
                              "after = ['a']\n[procs.c]\ncmd = 'tool.sh'\nafter = ['a']\n")
        assert [w.split(": ", 1)[1] for w in cast_warnings(cast)] == [
            f"b's command names './tool.sh', which is not in the folder it runs in "
            f"({os.getcwd()}, pipeplex's) but in the cast file's ({tmp_path}): set cwd = \".\" "
            "to run b there"]

    def test_member_keys_written_below_the_env_header_are_said(self, tmp_path: Path) -> None:
        """A table takes every key up to the next header: a member's keys below its
        ``[procs.NAME.env]`` are env variables. One a variable may hold is said (a program
        may read it); one it may not is refused, with why; a key directly below [procs],
        where members go, is refused with where the member's name goes."""
        path = tmp_path / "cast.toml"
        cast = load(tmp_path, '[procs.a]\ncmd = "serve"\n[procs.a.env]\nX = 1\nready = "up"\n')
        fix = ("a table's keys run to the next header; write ready above [procs.a.env], with "
               "a's other keys")
        assert cast_warnings(cast) == [
            f"{path}:5: a's env sets the variable ready = 'up'; if it was meant as the "
            f"member's own ready, ready is a member's key, which written below [procs.a.env] "
            f"is one of env's: {fix}"]
        refused, _ = error(tmp_path, '[procs.a]\ncmd = "serve"\n[procs.a.env]\nX = 1\n'
                                     'after = ["b"]\n')
        assert str(refused) == (
            f"{path}:5: a: env after = ['b']: a value is a string or a number (after is a "
            "member's key, which written below [procs.a.env] is one of env's: a table's keys "
            "run to the next header; write after above [procs.a.env], with a's other keys)")
        unnamed, _ = error(tmp_path, '[procs]\ncmd = "serve"\n')
        assert str(unnamed) == (
            f"{path}:2: procs.cmd = 'serve' is a member's key written below [procs] itself, "
            "where members go: name the member in the header, [procs.NAME] (such as "
            "[procs.server]), and write its keys below it")

    def test_a_slip_in_a_ready_cmd_variable_is_said(self, tmp_path: Path) -> None:
        """A name no member captures reaches the check as written: the run says which one
        was likely meant, at the ready_cmd's line."""
        cast = load(tmp_path, "[procs.web]\ncmd = 'serve'\nready = 'port (?P<port>\\d+)'\n"
                              "ready_cmd = 'test -n {prt}'\n")
        assert cast_warnings(cast) == [
            f"{tmp_path / 'cast.toml'}:4: web uses {{prt}}, which no member captures (it is "
            "passed on as written); did you mean {port}, which web captures?"]

    def test_slips_are_said_in_the_order_they_are_written(self, tmp_path: Path) -> None:
        """Two slips of one member come in the order a reader meets them, not by name."""
        cast = load(tmp_path, "[procs.web]\ncmd = 'serve'\n"
                              "ready = 'on (?P<port>\\d+) (?P<lport>\\d+)'\n"
                              "[procs.cli]\ncmd = 'echo {prot} {lprot}'\nafter = ['web']\n")
        assert [w.split(": ", 1)[1].split(",")[0] for w in cast_warnings(cast)] == [
            "cli uses {prot}", "cli uses {lprot}"]

    def test_a_ready_cmd_timeout_the_whole_wait_makes_moot_is_said(self, tmp_path: Path) -> None:
        """Set at or above ready_timeout, the limit never applies: said at its line. Not
        for the default limit (a ready_timeout under 5 s is no slip), nor one below."""
        cast = load(tmp_path, "[procs.db]\ncmd = 'serve'\nready_cmd = 'pg_isready'\n"
                              "ready_cmd_timeout = 10\nready_timeout = 2\n"
                              "[procs.web]\ncmd = 'serve'\nready_cmd = 'true'\n"
                              "ready_timeout = 2\n"
                              "[procs.app]\ncmd = 'serve'\nready_cmd = 'true'\n"
                              "ready_cmd_timeout = 1\nready_timeout = 2\n")
        assert cast_warnings(cast) == [
            f"{tmp_path / 'cast.toml'}:4: db's ready_cmd_timeout (10 s) is not below its "
            "ready_timeout (2 s), so a run of its ready_cmd that hangs takes the whole wait; "
            "lower ready_cmd_timeout, or raise ready_timeout"]
        built = CastSpec((ProcSpec("db", "x", ready_cmd="true", ready_cmd_timeout=30),))
        assert cast_warnings(built) == [
            "db: db's ready_cmd_timeout (30 s) is not below its ready_timeout (30 s), so a run "
            "of its ready_cmd that hangs takes the whole wait; lower ready_cmd_timeout, or "
            "raise ready_timeout"]

    def test_a_max_restarts_where_nothing_restarts_is_said(self, tmp_path: Path) -> None:
        """It counts restarts: without on_exit or on_failure = "restart" it never applies.
        Said at its line; not where either restarts, nor for a spec that keeps the default."""
        cast = load(tmp_path, "[procs.db]\ncmd = 'serve'\nmax_restarts = 3\n"
                              "[procs.web]\ncmd = 'serve'\nmax_restarts = 3\n"
                              "on_failure = 'restart'\n"
                              "[procs.app]\ncmd = 'serve'\nmax_restarts = 3\non_exit = 'restart'\n")
        assert cast_warnings(cast) == [
            f"{tmp_path / 'cast.toml'}:3: db's max_restarts counts restarts, and nothing "
            "restarts it (neither on_exit nor on_failure is \"restart\"); set one of them to "
            "\"restart\", or leave max_restarts out"]
        assert cast_warnings(CastSpec((ProcSpec("db", "x"),))) == []
        assert cast_warnings(CastSpec((ProcSpec("db", "x", max_restarts=1),)))[0].startswith(
            "db: db's max_restarts counts restarts")

    def test_a_ready_its_own_input_matches_on_a_full_terminal_is_said(
            self, tmp_path: Path) -> None:
        """The terminal echoes the typed line at once: the member would be ready before it
        ran it. Not on a pipe (no echo), nor for a pattern only the answer matches."""
        cast = load(tmp_path, "[procs.sh]\ncmd = 'bash -i'\npty = true\n"
                              "input = ['make', 'echo built']\nready = 'built'\n"
                              "[procs.piped]\ncmd = 'bash'\ninput = ['echo built']\n"
                              "ready = 'built'\n"
                              "[procs.anchored]\ncmd = 'bash -i'\npty = true\n"
                              "input = ['echo built']\nready = '^built'\n")
        assert cast_warnings(cast) == [
            f"{tmp_path / 'cast.toml'}:5: sh's ready 'built' matches its own input line "
            "'echo built', which its terminal (pty = true) shows as it is typed: that echo "
            "makes it ready before it answers; make the pattern match only the answer "
            "(anchored, '^...', or with what the answer adds)"]

    def test_an_input_line_whose_variables_make_its_echo_match_ready_is_said_as_it_starts(
            self, tmp_path: Path) -> None:
        """'connect {port}' cannot be judged before {port} has a value: as the member's
        first run starts, the line filled in is; a line without variables was judged as
        the cast loaded, and is not said twice."""
        cast = load(tmp_path, "[procs.db]\ncmd = 'db'\nready = 'port (?P<port>\\d+)'\n"
                              "[procs.cli]\ncmd = 'sh'\npty = true\nafter = ['db']\n"
                              "input = ['echo hello', 'echo connect {port}']\n"
                              "ready = 'connect \\d+'\n")
        assert cast_warnings(cast) == []
        cli = cast.procs[1]
        assert echo_warning_filled(cli, {"port": "4242"}) == (
            "its ready 'connect \\d+' matches its own input line 'echo connect 4242' (its "
            "{variables} filled in), which its terminal (pty = true) shows as it is typed: that "
            "echo makes it ready before it answers; make the pattern match only the answer "
            "(anchored, '^...', or with what the answer adds)")
        assert echo_warning_filled(cli, {"port": "x"}) is None
        # A line whose raw text matches too is said once, filled in, not also as it loads.
        raw = load(tmp_path, "[procs.cli]\ncmd = 'sh'\npty = true\n"
                             "input = ['connect {port}']\nready = 'connect'\n")
        assert cast_warnings(raw) == []
        assert echo_warning_filled(raw.procs[0], {"port": "1"}) is not None
        assert echo_warning_filled(ProcSpec("p", "sh", input=("echo connect {port}",),
                                            ready="connect \\d+"), {"port": "1"}) is None

    def test_a_ready_cmd_variable_its_own_ready_has_no_name_for_is_said(
            self, tmp_path: Path) -> None:
        """The check runs after the member's own ready line: a group there without a name
        is the likely slip, as in the ready of a member it starts after."""
        cast = load(tmp_path, "[procs.web]\ncmd = 'serve'\nready = 'port (\\d+)'\n"
                              "ready_cmd = 'curl -fs http://127.0.0.1:{port}/'\n")
        assert cast_warnings(cast) == [
            f"{tmp_path / 'cast.toml'}:4: web uses {{port}}, which no member captures (it is "
            "passed on as written); web's ready has a group without a name: name it, "
            "(?P<port>...), to capture it"]

    def test_a_shells_syntax_in_a_ready_cmd_is_said(self, tmp_path: Path) -> None:
        """A health check runs through no shell either: a pipe in it is text to the
        program, and the warning says how to have a shell read it."""
        cast = load(tmp_path, "[procs.web]\ncmd = 'serve'\n"
                              "ready_cmd = 'curl -fs localhost:8000 | grep ok'\n")
        assert cast_warnings(cast) == [
            f"{tmp_path / 'cast.toml'}:3: web's ready_cmd has '|' outside quotes, which a shell "
            "would read as a pipe; no shell runs it, so it is passed on as text: write "
            "ready_cmd = \"sh -c '...'\" to have a shell run it, or quote it if the text is what "
            "you mean"]

    @pytest.mark.parametrize(
        ("cmd", "said"),
        [
            ("echo hello; sleep 5", "';' outside quotes, which a shell would read as an "
             "operator; no shell runs it, so echo gets it as text (in 'hello;')"),
            ("python3 -m http.server > log", "'>' outside quotes, which a shell would read as "
             "a redirection; no shell runs it, so python3 gets it as text"),
            ("serve --data $HOME/x", "'$HOME' outside quotes, which a shell would read as a "
             "variable to expand; no shell runs it, so serve gets it as text (in '$HOME/x')"),
            ("serve --at `date`", "'`' outside quotes, which a shell would read as a command "
             "substitution; no shell runs it, so serve gets it as text (in '`date`')"),
            ("tool a|b", "'|' outside quotes, which a shell would read as a pipe; no shell "
             "runs it, so tool gets it as text (in 'a|b')"),
            ("serve ~/data", "'~' outside quotes, which a shell would read as your home "
             "folder; no shell runs it, so serve gets it as text (in '~/data')"),
            ("echo $1 done", "'$1' outside quotes, which a shell would read as a variable to "
             "expand; no shell runs it, so echo gets it as text"),
            ("printf $'a\\tb'", "\"$'\" outside quotes, which a shell would read as a string "
             "with escapes to decode; no shell runs it, so printf gets it as text (in "
             "\"$'a\\\\tb'\")"),
        ],
        ids=["semicolon", "redirection", "variable", "substitution", "pipe", "tilde",
             "parameter", "ansi-c"],
    )
    def test_a_shells_syntax_in_a_command_no_shell_runs_is_said(
            self, tmp_path: Path, cmd: str, said: str) -> None:
        """The program gets it as text, which is seldom what was meant: the run says so
        before it starts, and how to have a shell read it."""
        cast = load(tmp_path, f"[procs.web]\ncmd = {json.dumps(cmd)}\n")
        assert cast_warnings(cast) == [
            f"{tmp_path / 'cast.toml'}:2: web's command has {said}: set shell = true to have "
            "/bin/sh run the command, or quote it if the text is what you mean"]
        assert cast_warnings(CastSpec((parse_proc_option(f"web={cmd}"),))) == [
            f"-p: web's command has {said}: write -p web=\"sh -c '...'\" to have a shell run "
            "it, or quote it if the text is what you mean"]

    @pytest.mark.parametrize(
        "cmd",
        ['echo "a; b" \'c > d\'', "find . -exec ls {} \\;", 'sh -c "echo $HOME"',
         "python3 -c 'import os; print(os.environ[\"HOME\"])'", "echo a~b --x=~/y",
         '["echo", "a;", "$HOME"]'],
        ids=["quoted", "escaped", "double-quoted-expansion", "script", "tilde-inside",
             "list"],
    )
    def test_a_shells_syntax_quoted_or_escaped_is_not_said(
            self, tmp_path: Path, cmd: str) -> None:
        """Quoting says the text is meant; within double quotes, ``$`` is as often meant
        for the program (``sh -c "echo $HOME"``); a list is used as it is."""
        value = cmd if cmd.startswith("[") else json.dumps(cmd)
        assert cast_warnings(load(tmp_path, f"[procs.web]\ncmd = {value}\n")) == []

    def test_a_shell_command_may_have_a_shells_syntax(self, tmp_path: Path) -> None:
        cast = load(tmp_path, '[procs.web]\ncmd = "cd web && npm start > log"\nshell = true\n')
        assert cast_warnings(cast) == []

    def test_a_shell_script_is_not_split(self, tmp_path: Path) -> None:
        """A shell = true cmd is the shell's to read: an apostrophe in a here-document
        (or a comment) is not an unbalanced quote."""
        cast = load(tmp_path, '[procs.web]\ncmd = """\ncat <<EOF\nit\'s here\nEOF\n"""\n'
                              "shell = true\n")
        assert "it's here" in cast["web"].cmd

    def test_shell_needs_a_string_cmd(self, tmp_path: Path) -> None:
        """shell = true with a list cmd is rejected at the shell line."""
        err, path = error(tmp_path, '[procs.web]\ncmd = ["ls", "-l"]\nshell = true\n')
        assert err.source == f"{path}:3"
        assert err.message == "web: shell = true needs cmd as one string"

    def test_shell_must_be_boolean(self, tmp_path: Path) -> None:
        """shell = "yes" is rejected."""
        err, _ = error(tmp_path, '[procs.web]\ncmd = "x"\nshell = "yes"\n')
        assert "shell must be true or false" in err.message

    @pytest.mark.parametrize(
        ("value", "mode"),
        [("true", "full"), ("false", "pipes"), ('"stdout"', "stdout")],
    )
    def test_pty_modes(self, tmp_path: Path, value: str, mode: str) -> None:
        """pty = true/false/"stdout" select a full terminal, plain pipes or a stdout pty."""
        assert member(tmp_path, f"pty = {value}").pty == mode

    @pytest.mark.parametrize(
        "value",
        [
            '"full"',
            '"pipes"',
            '"yes"',
            "1",
            "0",
            pytest.param(
                "1.0"
            ),
            pytest.param(
                "[true]"
            ),
            pytest.param(
                "{ mode = true }"
            ),
        ],
    )
    def test_pty_other_values_rejected(self, tmp_path: Path, value: str) -> None:
        """Any pty value other than true, false or "stdout" is a CastError at its line."""
        err, path = error(tmp_path, f'[procs.web]\ncmd = "x"\npty = {value}\n')
        assert err.source == f"{path}:3"
        assert err.message.startswith("web: pty must be true (a full terminal)")

    @pytest.mark.parametrize("value", ["apart", "stdout"])
    def test_stderr_modes(self, tmp_path: Path, value: str) -> None:
        assert member(tmp_path, f'stderr = "{value}"').stderr == value
        assert member(tmp_path, "").stderr == "apart"

    @pytest.mark.parametrize("value", ['"merged"', "true", '"STDOUT"'])
    def test_stderr_other_values_rejected(self, tmp_path: Path, value: str) -> None:
        err, path = error(tmp_path, f'[procs.web]\ncmd = "x"\nstderr = {value}\n')
        assert err.source == f"{path}:3"
        assert err.message.startswith('web: stderr must be "apart" (its own stream, marked '
                                      '!) or "stdout" (into stdout, in the order written)')

    @pytest.mark.parametrize("value", ["stop", "ignore", "restart"])
    def test_on_exit_values(self, tmp_path: Path, value: str) -> None:
        """on_exit accepts stop, ignore and restart."""
        assert member(tmp_path, f'on_exit = "{value}"').on_exit == value

    @pytest.mark.parametrize("value", ['"restrat"', '"Stop"', "1", '["stop"]'])
    def test_on_exit_bad_value(self, tmp_path: Path, value: str) -> None:
        """Other on_exit values are rejected with the valid choices."""
        err, _ = error(tmp_path, f'[procs.web]\ncmd = "x"\non_exit = {value}\n')
        assert "on_exit must be 'stop' or 'ignore' or 'restart'" in err.message

    @pytest.mark.parametrize("value", ["stop", "ignore", "restart"])
    def test_on_failure_values(self, tmp_path: Path, value: str) -> None:
        """on_failure takes on_exit's values; unset, it is None (on_exit answers)."""
        spec = member(tmp_path, f'on_exit = "ignore"\non_failure = "{value}"')
        assert (spec.on_exit, spec.on_failure) == ("ignore", value)
        assert (spec.on_end(failed=False), spec.on_end(failed=True)) == ("ignore", value)
        assert spec.policy_said(failed=True) == f"on_failure = {value}"
        plain = member(tmp_path, 'on_exit = "restart"')
        assert plain.on_failure is None and plain.on_end(failed=True) == "restart"
        assert plain.policy_said(failed=True) == "on_exit = restart"

    @pytest.mark.parametrize(("value", "hint"), [
        ("on-failure", '; to restart after a failure only, write on_failure = "restart" (and '
                       'on_exit for an end with 0: "stop", "ignore")'),
        ("on_failure", '; to restart after a failure only, write on_failure = "restart" (and '
                       'on_exit for an end with 0: "stop", "ignore")'),
        ("always", "; did you mean 'restart'?"),
        ("unless-stopped", "; did you mean 'restart'? (a member pipeplex stops is never "
                           "restarted)"),
        ("no", "; did you mean 'stop' (the cast ends with it) or 'ignore' (the others go "
               "on)?")])
    def test_a_restart_policy_of_another_tool_is_told_what_to_write(
            self, tmp_path: Path, value: str, hint: str) -> None:
        """docker compose's and systemd's restart policies, written as on_exit."""
        err, path = error(tmp_path, f'[procs.web]\ncmd = "x"\non_exit = "{value}"\n')
        assert (err.message, err.source) == (
            f"web: on_exit must be 'stop' or 'ignore' or 'restart', not '{value}'{hint}",
            f"{path}:3")

    @pytest.mark.parametrize(("key", "value", "meant"), [
        ("on_exit", "restrat", "restart"), ("on_exit", "Stop", "stop"),
        ("on_failure", "retsart", "restart"),
        ("stderr", "stdou", "stdout"), ("pty", "stdot", "stdout")])
    def test_a_misspelt_value_is_told_the_one_meant(self, tmp_path: Path, key: str,
                                                     value: str, meant: str) -> None:
        err, _ = error(tmp_path, f'[procs.web]\ncmd = "x"\n{key} = "{value}"\n')
        assert err.message.endswith(f", not {value!r}; did you mean {meant!r}?")

    @pytest.mark.parametrize("key", ["input", "after"])
    @pytest.mark.parametrize(
        ("value", "expected"),
        [('"db"', ("db",)), ('["db", "cache"]', ("db", "cache")), ("[]", ())],
        ids=["string", "list", "empty"],
    )
    def test_input_and_after_as_string_or_list(
        self, tmp_path: Path, key: str, value: str, expected: tuple[str, ...]
    ) -> None:
        """input and after take one string or a list of strings."""
        text = '[procs.db]\ncmd = "x"\n[procs.cache]\ncmd = "y"\n[procs.web]\ncmd = "z"\n'
        cast = load(tmp_path, f"{text}{key} = {value}\n")
        assert getattr(cast["web"], key) == expected

    @pytest.mark.parametrize("key", ["input", "after"])
    @pytest.mark.parametrize("value", ["3", "[1, 2]", "{ a = 'b' }"])
    def test_input_and_after_bad_types(self, tmp_path: Path, key: str, value: str) -> None:
        """input and after reject anything but strings."""
        err, _ = error(tmp_path, f'[procs.web]\ncmd = "x"\n{key} = {value}\n')
        assert f"web: {key} must be a list of strings" in err.message

    def test_env_values_become_strings(self, tmp_path: Path) -> None:
        """env numbers are kept as their text."""
        web = member(tmp_path, 'env = { LANG = "C", WORKERS = 4, RATIO = 0.5 }')
        assert web.env == {"LANG": "C", "WORKERS": "4", "RATIO": "0.5"}

    def test_env_that_is_no_table(self, tmp_path: Path) -> None:
        err, _ = error(tmp_path, '[procs.web]\ncmd = "x"\nenv = "LANG=C"\n')
        assert err.message.startswith("web: env must be a table of strings or numbers")

    @pytest.mark.parametrize(("value", "said"), [
        ("false", ' (write it in quotes, in the form the program reads: "false", "0" or "")'),
        ("true", ' (write it in quotes, in the form the program reads: "true" or "1")'),
        ("[1]", "")])
    def test_env_bad_values_are_named_at_their_line(self, tmp_path: Path, value: str,
                                                    said: str) -> None:
        """Booleans and lists are refused, naming the variable, at its own line (in a
        [procs.web.env] table: not the table's header). A boolean is to be quoted as the
        program reads it: no mapping to "1" or "" is guessed."""
        err, path = error(tmp_path, f'[procs.web]\ncmd = "x"\n\n[procs.web.env]\nOK = "1"\n'
                                    f"BAD = {value}\n")
        assert err.message == f"web: env BAD = {value}: a value is a string or a number{said}"
        assert err.source == f"{path}:6"

    @pytest.mark.parametrize(
        ("table", "message"),
        [
            ('{ "A=B" = "x" }',
             "web: env variable name 'A=B' contains '=', which no variable name may hold"),
            ('{ "A\\u0000B" = "x" }',
             "web: env variable name 'A\\x00B' contains a NUL character, which no variable "
             "name may hold"),
            ('{ "" = "x" }', "web: env has an empty variable name"),
            ('{ A = "x\\u0000y" }',
             "web: env variable A has a NUL character in its value, which the environment "
             "cannot hold"),
        ],
        ids=["equals-in-name", "nul-in-name", "empty-name", "nul-in-value"],
    )
    def test_env_the_environment_cannot_hold(
        self, tmp_path: Path, table: str, message: str
    ) -> None:
        """A name with '=' or NUL, an empty name, a value with NUL: refused at load with
        the env line, not when the member starts."""
        err, path = error(tmp_path, f'[procs.web]\ncmd = "x"\n\nenv = {table}\n')
        assert err.message == message
        assert err.source == f"{path}:4"

    @pytest.mark.parametrize("key", ["PIPEPLEX_NAME", "PIPEPLEX_RUN_ID"])
    def test_env_may_not_set_pipeplex_own_variables(self, tmp_path: Path, key: str) -> None:
        """They say which member of which run a process is (what the stop finds by them):
        a member may not pass for another, nor for another run."""
        err, path = error(tmp_path, f'[procs.web]\ncmd = "x"\n\nenv = {{ {key} = "db" }}\n')
        assert err.message == (f"web: env sets {key}, which pipeplex sets itself (it tells "
                               "which member and run a process belongs to, and stops what "
                               "the member started by it): remove it")
        assert err.source == f"{path}:4"

    def test_env_table_error_gives_the_key_line(self, tmp_path: Path) -> None:
        """In an ``[procs.NAME.env]`` table the error points at the bad key's own line."""
        err, path = error(
            tmp_path, '[procs.web]\ncmd = "x"\n\n[procs.web.env]\nGOOD = "1"\n"A=B" = "2"\n')
        assert err.source == f"{path}:6"
        assert "'A=B' contains '='" in err.message

    def test_relative_cwd_is_resolved_against_the_cast_folder(self, tmp_path: Path) -> None:
        """A relative cwd is taken from the cast file's folder, not the current one."""
        assert member(tmp_path, 'cwd = "sub/dir"').cwd == os.fspath(tmp_path / "sub" / "dir")

    def test_absolute_cwd_is_kept(self, tmp_path: Path) -> None:
        """An absolute cwd stays as written."""
        assert member(tmp_path, 'cwd = "/srv/app"').cwd == "/srv/app"

    def test_home_in_cwd_is_expanded(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        """``~`` in cwd means the home folder."""
        monkeypatch.setenv("HOME", "/home/someone")
        assert member(tmp_path, 'cwd = "~/proj"').cwd == "/home/someone/proj"

    @pytest.mark.parametrize("value", ['""', "3"])
    def test_bad_cwd(self, tmp_path: Path, value: str) -> None:
        """cwd must be a non-empty path string."""
        err, _ = error(tmp_path, f'[procs.web]\ncmd = "x"\ncwd = {value}\n')
        assert "web: cwd must be a folder path" in err.message

    @pytest.mark.parametrize(("line", "shown"), [
        ("ready_timeout = true", "not true"),
        ("env = { A = 1, 'B C' = [true, 'x'] }",
         "env 'B C' = [true, 'x']: a value is a string or a number"),
        ('after = ["db", false]', "not ['db', false]"),
    ])
    def test_a_wrong_value_is_shown_as_the_file_writes_it(self, tmp_path: Path, line: str,
                                                          shown: str) -> None:
        """Not as Python's repr (True, {'A': True}), which the user never wrote."""
        err, _ = error(tmp_path, f'[procs.web]\ncmd = "x"\n{line}\n')
        assert err.message.endswith(shown)

    @pytest.mark.parametrize(("line", "said"), [
        ('pty = "true"', "; write true without quotes, as TOML writes a yes or no"),
        ('shell = "False"', "; write false without quotes, as TOML writes a yes or no"),
        ('on_exit = "RESTART"', "; did you mean 'restart'?"),
        ('step = "send"', "; a scenario's step goes in tables of its own: [[step]]"),
    ], ids=["quoted-true", "quoted-false", "capitals", "step-in-a-member"])
    def test_a_near_miss_is_told_what_to_write(self, tmp_path: Path, line: str,
                                               said: str) -> None:
        err, path = error(tmp_path, f'[procs.web]\ncmd = "x"\n{line}\n')
        assert err.message.endswith(said)
        assert err.source == f"{path}:3"

    def test_invalid_ready_pattern_names_the_member(self, tmp_path: Path) -> None:
        """A ready regex that does not compile is reported with the member and its line."""
        err, path = error(tmp_path, '[procs.web]\ncmd = "x"\nready = "port (\\\\d+"\n')
        assert err.source == f"{path}:3"
        assert err.message.startswith("web: invalid ready pattern 'port (\\d+': ")  # (as written)

    @pytest.mark.parametrize(("pattern", "said"), [
        ("x{99999999999}", "a repetition count is too large"),
        ("(" * 3000 + ")" * 3000, "groups are nested too deep"),
    ], ids=["huge-count", "deep-groups"])
    def test_a_ready_pattern_re_cannot_take_is_told_as_any_other_mistake(
            self, tmp_path: Path, pattern: str, said: str) -> None:
        """re refuses these with OverflowError and RecursionError, not re.error: they are
        reported at their line all the same, not as a traceback."""
        err, path = error(tmp_path, f'[procs.web]\ncmd = "x"\nready = "{pattern}"\n')
        assert err.source == f"{path}:3"
        assert err.message.startswith("web: invalid ready pattern ")
        assert err.message.endswith(f": {said}")

    def test_a_group_no_variable_can_name_is_refused(self, tmp_path: Path) -> None:
        """Python takes a group name that is not ASCII, which no {name} can use (a shell
        variable could not be it): the member would be said ready with it, and every
        field that used it would get the braces as they are."""
        err, path = error(tmp_path, '[procs.web]\ncmd = "x"\nready = "p=(?P<pört>\\\\d+)"\n')
        assert err.source == f"{path}:3"
        assert err.message == (
            "web: ready 'p=(?P<pört>\\d+)' captures 'pört', which no field can use as a "
            "{variable}: a variable's name is ASCII letters, digits and _ (port, port_2); "
            "rename the group")

    @pytest.mark.parametrize("pattern", ["x*", "(ok)?", "^", "$|ready"])
    def test_a_ready_pattern_that_matches_where_nothing_was_written_is_refused(
            self, tmp_path: Path, pattern: str) -> None:
        """It would make the member ready at its first output, whatever it says, as an
        expect step with it would pass at once (which a scenario refuses): in a file, and
        in a spec built in code (the API's spawn)."""
        err, path = error(tmp_path, f"[procs.web]\ncmd = \"x\"\nready = '{pattern}'\n")
        said = (f"web: ready '{pattern}' matches where nothing was written, so web would be "
                "ready at its first output; make it match some text")
        assert (err.message, err.source) == (said, f"{path}:3")
        with pytest.raises(CastError) as caught:
            validate_cast(CastSpec((ProcSpec("web", "x", ready=pattern),)))
        assert caught.value.message == said

    @pytest.mark.parametrize("pattern", [r"foo\nbar", r"listening(?:\n|\r\n)port", r"x\n+y"])
    def test_a_ready_pattern_that_needs_a_line_end_is_refused(
            self, tmp_path: Path, pattern: str) -> None:
        """ready is tried on one line at a time, without its end: a pattern every match of
        which holds a \\n would never match, and the member would wait out its ready_timeout
        to fail. In a file, and in a spec built in code."""
        err, path = error(tmp_path, f"[procs.web]\ncmd = \"x\"\nready = '{pattern}'\n")
        said = (f"web: ready '{pattern}' matches only across a line end (\\n), but it is tried "
                "on one line of web's output at a time, without its end, so it would never "
                "match; make it match within a line ($ matches at the line's end)")
        assert (err.message, err.source) == (said, f"{path}:3")
        with pytest.raises(CastError) as caught:
            validate_cast(CastSpec((ProcSpec("web", "x", ready=pattern),)))
        assert caught.value.message == said

    @pytest.mark.parametrize("pattern", [r"[^\n]+ up", r"up\s+now", r"(\n)?up", r"a(?:\n|b)"])
    def test_a_ready_pattern_that_may_match_within_a_line_is_kept(
            self, tmp_path: Path, pattern: str) -> None:
        assert member(tmp_path, f"ready = '{pattern}'").ready == pattern

    def test_ready_pattern_kept(self, tmp_path: Path) -> None:
        """A valid ready pattern is kept and its named groups are captured variables."""
        web = member(tmp_path, "ready = 'listening on (?P<port>\\d+)'")
        assert web.ready == r"listening on (?P<port>\d+)"
        assert web.captured_variables() == {"port"}

    @pytest.mark.parametrize(
        ("value", "expected"),
        [("8080", "8080"), ('"8080"', "8080"), ("1", "1"), ("65535", "65535")],
    )
    def test_ready_port_number(self, tmp_path: Path, value: str, expected: str) -> None:
        """ready_port takes a TCP port as a number or a digit string."""
        assert member(tmp_path, f"ready_port = {value}").ready_port == expected

    def test_ready_port_variable(self, tmp_path: Path) -> None:
        """ready_port may be a variable captured by a member it starts after."""
        cast = load(
            tmp_path,
            "[procs.db]\ncmd = \"x\"\nready = 'port (?P<port>\\d+)'\n"
            '[procs.web]\ncmd = "y"\nafter = "db"\nready_port = "{port}"\n',
        )
        assert cast["web"].ready_port == "{port}"

    @pytest.mark.parametrize(
        "value",
        [
            "0",
            "65536",
            "-1",
            "true",
            '"http"',
            "8080.0",
            pytest.param(
                '"70000"'
            ),
            '"\u00b2"',  # a digit to str.isdigit, no number to int
        ],
    )
    def test_ready_port_bad(self, tmp_path: Path, value: str) -> None:
        """ready_port outside 1-65535 or of another type is rejected."""
        err, _ = error(tmp_path, f'[procs.web]\ncmd = "x"\nready_port = {value}\n')
        assert "web: ready_port must be a TCP port number" in err.message

    @pytest.mark.parametrize("value", ['"{port}x"', '"{host}:{port}"', '"{port} "'])
    def test_ready_port_that_its_variables_can_never_make_a_port(self, tmp_path: Path,
                                                                 value: str) -> None:
        """Text that is no digit beside a variable is said at the file's line, before
        anything starts (it was found only as the member got ready, its program run)."""
        err, path = error(tmp_path, f'[procs.web]\ncmd = "x"\nready_port = {value}\n')
        assert err.source == f"{path}:3"
        assert err.message == (f"web: ready_port = {value[1:-1]!r} can never be a port "
                               'number: only digits may stand around its {variables} ("{port}", '
                               '"80{n}")')
        cast = load(tmp_path, '[procs.db]\ncmd = "x"\nready = "n (?P<n>\\\\d+)"\n'
                              '[procs.web]\ncmd = "y"\nafter = "db"\nready_port = "80{n}"\n')
        assert cast["web"].ready_port == "80{n}"

    def test_ready_exit_is_a_flag_kept(self, tmp_path: Path) -> None:
        """ready_exit = true is kept; it is false unless said."""
        assert member(tmp_path, "ready_exit = true").ready_exit is True
        assert member(tmp_path, "").ready_exit is False

    def test_ready_exit_that_is_not_a_flag_is_said_at_its_line(self, tmp_path: Path) -> None:
        """A string where true or false belongs is said as such, at its line."""
        err, path = error(tmp_path, '[procs.web]\ncmd = "x"\nready_exit = "yes"\n')
        assert err.source == f"{path}:3"
        assert "ready_exit" in err.message and "true or false" in err.message

    @pytest.mark.parametrize("key", ["ready_cmd", "stop_cmd"])
    def test_ready_cmd_is_kept_as_written(self, tmp_path: Path, key: str) -> None:
        """A string stays one (split when it runs, as cmd is); a list becomes a tuple (and
        a stop_cmd likewise)."""
        assert getattr(member(tmp_path, f"{key} = 'pg_isready -q'"), key) == "pg_isready -q"
        assert getattr(member(tmp_path, f"{key} = ['curl', '-f', 'x']"), key) == (
            "curl", "-f", "x")
        assert getattr(member(tmp_path, ""), key) is None

    @pytest.mark.parametrize("key", ["ready_cmd", "stop_cmd"])
    @pytest.mark.parametrize(("value", "said"), [
        ("5", "{key} must be a non-empty string or a list of strings, not 5"),
        ("[]", "{key} must be a non-empty string or a list of strings, not []"),
        ("' '", "{key} must be a non-empty string or a list of strings, not ' '"),
        ("['curl', false]", "{key} must be a non-empty string or a list of strings"),
        ("\"curl 'x\"", "cannot split {key}: No closing quotation"),
    ])
    def test_ready_cmd_bad(self, tmp_path: Path, key: str, value: str, said: str) -> None:
        """What cannot be a command is said at its line."""
        err, path = error(tmp_path, f'[procs.web]\ncmd = "x"\n{key} = {value}\n')
        assert err.source == f"{path}:3"
        assert err.message.startswith(f"web: {said.format(key=key)}"), err.message

    @pytest.mark.parametrize("key", ["ready_cmd", "stop_cmd"])
    def test_ready_cmd_may_use_what_its_own_ready_captures(self, tmp_path: Path,
                                                           key: str) -> None:
        """It runs once the member's line has matched, as ready_port does (and a stop_cmd
        once it started); a value another member captures needs that member in after."""
        good = ("[procs.db]\ncmd = 'x'\nready = 'on (?P<port>\\d+)'\n"
                f"{key} = 'pg_isready -p {{port}}'\n")
        assert load(tmp_path, good)["db"].helper_variables(key) == {"port"}
        err, path = error(tmp_path, f"[procs.web]\ncmd = 'x'\n{key} = ['curl', '{{port}}']\n"
                                    "[procs.db]\ncmd = 'x'\nready = 'on (?P<port>\\d+)'\n")
        assert err.source == f"{path}:3"
        assert err.message == (f'web: {key} uses {{port}}, which db captures, but does not '
                               'start after it; add after = ["db"]')

    def test_a_stop_cmd_whose_program_is_not_found_is_said_at_its_line(
            self, tmp_path: Path) -> None:
        path = write(tmp_path, "[procs.web]\ncmd = 'true'\nstop_cmd = 'no-such-stopper now'\n")
        with pytest.raises(CastError) as info:
            check_commands(load_cast(path))
        assert (info.value.message, info.value.source) == (
            "web: command not found: 'no-such-stopper' (stop_cmd = 'no-such-stopper now'); "
            "check the spelling and PATH", f"{path}:3")

    def test_each_run_of_a_ready_cmd_has_a_limit(self, tmp_path: Path) -> None:
        """5 s unless set: a run that hangs is killed and the check tried again."""
        assert member(tmp_path, "ready_cmd = 'true'").ready_cmd_timeout == 5.0
        assert member(tmp_path, "ready_cmd = 'true'\nready_cmd_timeout = 0.5"
                      ).ready_cmd_timeout == 0.5

    @pytest.mark.parametrize("value", ["0", "-1", "'2'", "true", "nan"])
    def test_ready_cmd_timeout_bad(self, tmp_path: Path, value: str) -> None:
        err, path = error(tmp_path, f'[procs.web]\ncmd = "x"\nready_cmd = "true"\n'
                                    f"ready_cmd_timeout = {value}\n")
        assert err.source == f"{path}:4"
        assert err.message.startswith("web: ready_cmd_timeout must be a number of seconds "
                                      "from 0.001 to below 1e9"), err.message

    def test_a_ready_cmd_timeout_for_every_member_goes_to_those_with_a_check(
            self, tmp_path: Path) -> None:
        """load_cast(path, ready_cmd_timeout=...), as any default: given to the members
        that have a ready_cmd and do not set their own; the others have nothing to limit."""
        path = write(tmp_path, "[procs.db]\ncmd = 'x'\nready_cmd = 'true'\n"
                               "[procs.own]\ncmd = 'x'\nready_cmd = 'true'\n"
                               "ready_cmd_timeout = 1\n[procs.web]\ncmd = 'x'\n")
        cast = load_cast(path, ready_cmd_timeout=2)
        assert [p.ready_cmd_timeout for p in cast.procs] == [2, 1, 5]
        assert parse_proc_option("a=x", ready_cmd_timeout=2).ready_cmd_timeout == 5

    def test_ready_cmd_timeout_without_a_ready_cmd_is_refused(self, tmp_path: Path) -> None:
        """A limit with nothing to limit is a slip (the check left out, or moved to another
        member): said at its line, and so in a spec built in code."""
        err, path = error(tmp_path, '[procs.web]\ncmd = "x"\nready_cmd_timeout = 2\n')
        assert err.source == f"{path}:3"
        assert err.message == ("web: ready_cmd_timeout limits each run of a ready_cmd, and this "
                               "member has none: add its ready_cmd, or remove "
                               "ready_cmd_timeout")
        with pytest.raises(CastError) as caught:
            validate_cast(CastSpec((ProcSpec("web", "x", ready_cmd_timeout=2),)))
        assert caught.value.message == err.message

    @pytest.mark.parametrize("other", ["ready = 'done'", "ready_port = 8080",
                                       "ready_cmd = 'true'"])
    def test_ready_exit_with_another_readiness_is_refused(self, tmp_path: Path,
                                                         other: str) -> None:
        """A member is ready at one thing: its exit, or a line, a port and a health check;
        in a file, and in a spec built in code."""
        err, path = error(tmp_path, f'[procs.web]\ncmd = "x"\nready_exit = true\n{other}\n')
        key = other.split()[0]
        assert err.source == f"{path}:3"
        assert err.message.startswith(f"web: ready_exit = true cannot go with {key}: a member "
                                      "is ready either when it exits with 0 or when ")
        assert err.message.endswith("; keep the one the members after it need")
        with pytest.raises(CastError) as caught:
            validate_cast(CastSpec((ProcSpec("web", "x", ready_exit=True,
                                             **{key: other.split(" = ")[1].strip("'")}),)))
        assert caught.value.message == err.message

    def test_a_misspelt_procs_table_is_said_alone(self, tmp_path: Path) -> None:
        """[proc.web]: the misspelling is the cause; "the cast has no members", which
        follows from it, is not said before it."""
        err, path = error(tmp_path, '[proc.web]\ncmd = "x"\n')
        assert (err.message, err.source) == (
            "unknown table or key 'proc'; did you mean 'procs'?", f"{path}:1")

    @pytest.mark.parametrize(("table", "key"), [("services", "command"), ("members", "cmd"),
                                                ("program", "cmd")])
    def test_members_under_another_tables_name_are_said_alone(self, tmp_path: Path, table: str,
                                                             key: str) -> None:
        """[services.web] with a command, as docker compose writes it: the table's name is
        the cause, said with where the members go; "the cast has no members" is not said."""
        err, path = error(tmp_path, f'[{table}.web]\n{key} = "x"\n\n[{table}.db]\ncmd = "y"\n')
        assert (err.message, err.source) == (
            f"unknown table or key {table!r}; a cast's members are [procs.NAME] tables: write "
            f"[procs.web] in place of [{table}.web]", f"{path}:1")

    def test_a_table_of_other_tables_without_commands_is_no_cast(self, tmp_path: Path) -> None:
        err, _ = error(tmp_path, '[settings.colors]\nserver = "red"\n')
        assert isinstance(err, CastErrors)
        assert [e.message.split(":")[0] for e in err.errors] == [
            "the cast has no members", "unknown table or key 'settings' (valid"]

    def test_a_scenario_given_as_a_cast_says_how_to_load_it(self, tmp_path: Path) -> None:
        err, _ = error(tmp_path, '[procs.web]\ncmd = "x"\n\n[[step]]\nsleep = 0\n')
        assert err.message == ("unknown table or key 'step'; steps are a scenario file's (as "
                               "pipeplex run and test read it): load it with load_scenario() "
                               "or Plex.load()")
        err, _ = error(tmp_path, '[defaults]\ntimeout = 3\n\n[procs.web]\ncmd = "x"\n')
        assert err.message == ("unknown table or key 'defaults'; 'defaults' is a scenario "
                               "file's (as pipeplex run and test read it): load it with "
                               "load_scenario() or Plex.load()")

    @pytest.mark.parametrize(("keys", "line", "said"), [
        ('env = { A = "1" }\ncmd = "no-such-program-here"\n', 3, "command not found"),
        ('cmd = "true"\n\ncwd = "/no/such/folder/here"\n', 4, "is not a folder"),
    ])
    def test_what_the_start_checks_is_said_at_its_key(
            self, tmp_path: Path, keys: str, line: int, said: str) -> None:
        path = write(tmp_path, "[procs.web]\n" + keys)
        with pytest.raises(CastError) as info:
            check_commands(load_cast(path))
        assert info.value.source == f"{path}:{line}" and said in info.value.message

    def test_a_byte_order_mark_is_no_key(self, tmp_path: Path) -> None:
        path = tmp_path / "cast.toml"
        path.write_bytes(b'\xef\xbb\xbf[procs.web]\ncmd = "x"\n')
        assert load_cast(path)["web"].cmd == "x"

    def test_text_that_is_not_utf8_is_said_with_its_line(self, tmp_path: Path) -> None:
        path = tmp_path / "cast.toml"
        path.write_bytes(b'[procs.web]\ncmd = "caf\xe9"\n')
        with pytest.raises(CastError) as info:
            load_cast(path)
        assert str(info.value) == (f"{path}:2: not UTF-8 text (byte 0xe9); save the cast file "
                                   "as UTF-8")

    def test_a_file_too_long_for_a_cast_is_refused_unread(self, tmp_path: Path) -> None:
        path = tmp_path / "cast.toml"
        with open(path, "wb") as f:
            f.truncate(16 * 2**20 + 1)  # (sparse: no disk used)
        with pytest.raises(CastError, match="the cast file is longer than 16 MiB"):
            load_cast(path)

    def test_a_home_folder_of_no_user_is_said(self, tmp_path: Path) -> None:
        err, _ = error(tmp_path, '[procs.web]\ncmd = "x"\ncwd = "~nosuchuser-here/x"\n')
        assert err.message == ("web: cwd '~nosuchuser-here/x' names a home folder of a user "
                               "this machine does not have")

    @pytest.mark.parametrize("cmd", ['"echo a\\u0000b"', '["echo", "a\\u0000b"]'])
    def test_a_nul_in_the_command_is_refused_before_anything_starts(
            self, tmp_path: Path, cmd: str) -> None:
        """Said at the line of cmd, as every other cmd error (not of the member's table)."""
        path = write(tmp_path, f'[procs.ok]\ncmd = "true"\n\n[procs.web]\ncmd = {cmd}\n')
        with pytest.raises(CastError) as info:
            validate_cast(load_cast(path))
        assert info.value.message == ("web: the command has a NUL character (\\u0000), which "
                                      "no command line can carry")
        assert info.value.source == f"{path}:5"

    @pytest.mark.parametrize("key", ["ready_timeout", "stop_timeout"])
    def test_timeouts(self, tmp_path: Path, key: str) -> None:
        """Timeouts accept positive numbers and store seconds as float."""
        assert getattr(member(tmp_path, f"{key} = 5"), key) == 5.0
        assert getattr(member(tmp_path, f"{key} = 0.25"), key) == 0.25

    @pytest.mark.parametrize("key", ["ready_timeout", "stop_timeout"])
    @pytest.mark.parametrize("value", ["0", "-1", "true", '"5"'])
    def test_bad_timeouts(self, tmp_path: Path, key: str, value: str) -> None:
        """Timeouts reject zero, negatives, booleans and strings."""
        err, _ = error(tmp_path, f'[procs.web]\ncmd = "x"\n{key} = {value}\n')
        assert f"web: {key} must be a number of seconds from 0.001" in err.message

    @pytest.mark.parametrize(("value", "meant"), [
        ('"5"', "5"), ('"5s"', "5"), ('"1.5 sec"', "1.5"), ('"500ms"', "0.5"), ('"2m"', "120"),
        ('"1h"', "3600")])
    def test_a_timeout_written_as_text_is_told_as_a_number(self, tmp_path: Path, value: str,
                                                           meant: str) -> None:
        err, _ = error(tmp_path, f'[procs.web]\ncmd = "x"\nstop_timeout = {value}\n')
        assert err.message.endswith(f"; write {meant} (seconds, as a number: no quotes, no "
                                    "unit)"), err.message

    @pytest.mark.parametrize("value", ['"soon"', '"0s"', '"5 fortnights"', '"-1s"', "true"])
    def test_a_timeout_that_is_no_duration_gets_no_number_offered(self, tmp_path: Path,
                                                                   value: str) -> None:
        err, _ = error(tmp_path, f'[procs.web]\ncmd = "x"\nready_timeout = {value}\n')
        assert "write" not in err.message, err.message

    @pytest.mark.parametrize("key", ["cmd", "ready_cmd"])
    def test_a_number_among_a_commands_arguments_is_told_to_be_quoted(self, tmp_path: Path,
                                                                      key: str) -> None:
        """cmd = ["python3", "-m", "http.server", 8000]: TOML makes 8000 a number."""
        extra = "" if key == "cmd" else 'cmd = "x"\n'
        err, path = error(tmp_path, f'[procs.web]\n{extra}{key} = ["serve", "--port", 8000]\n')
        assert (err.message, err.source) == (
            f'web: argument 3 of {key} is the number 8000; write it in quotes, "8000": a '
            "command's arguments are text", f"{path}:{2 if key == 'cmd' else 3}")

    def test_env_as_a_list_of_assignments_is_told_as_a_table(self, tmp_path: Path) -> None:
        """env = ["A=1"], as docker compose's list form writes it."""
        err, _ = error(tmp_path, '[procs.web]\ncmd = "x"\nenv = ["LANG=C", "URL=a?b=c", "X.Y=1"]\n')
        assert err.message == ("web: env is a table, not a list: write env = { LANG = 'C', "
                               "URL = 'a?b=c', 'X.Y' = '1' }")

    @pytest.mark.parametrize(("value", "number"), [
        ('"INT"', signal.SIGINT), ('"SIGQUIT"', signal.SIGQUIT), ('"winch"', signal.SIGWINCH),
        ("2", signal.SIGINT), ('"15"', signal.SIGTERM), ('"KILL"', signal.SIGKILL),
        ('"RTMIN+3"', signal.SIGRTMIN + 3)])
    def test_stop_signal(self, tmp_path: Path, value: str, number: int) -> None:
        """stop_signal takes a signal as kill -l names it, or its number."""
        assert member(tmp_path, f"stop_signal = {value}").stop_signal == number

    def test_stop_signal_is_sigterm_unless_given(self, tmp_path: Path) -> None:
        assert member(tmp_path, "").stop_signal == signal.SIGTERM

    @pytest.mark.parametrize(("value", "message"), [
        ('"STOP"', "stop_signal: STOP would suspend a member rather than stop it; give a "
                   "signal a program ends on (TERM, the default, INT, QUIT, HUP...)"),
        ('"SIGTSTP"', "stop_signal: TSTP would suspend a member rather than stop it; give a "
                      "signal a program ends on (TERM, the default, INT, QUIT, HUP...)"),
        ("18", "stop_signal: CONT only resumes a suspended process, and the stop sends it "
               "anyway; give a signal a program ends on (TERM, the default, INT, QUIT, HUP...)"),
        ('"TERMINATE"', "stop_signal: unknown signal 'TERMINATE' (try TERM, INT, HUP, KILL, "
                        "USR1 or a number)"),
        ("99", "stop_signal: no signal number 99 on this system"),
        ("0", 'stop_signal must be a signal\'s name or number ("INT", "QUIT", "SIGTERM", 2), '
              "not 0"),
        ("true", 'stop_signal must be a signal\'s name or number ("INT", "QUIT", "SIGTERM", '
                 "2), not true"),
        ("[2]", 'stop_signal must be a signal\'s name or number ("INT", "QUIT", "SIGTERM", '
                "2), not [2]"),
    ])
    def test_bad_stop_signal(self, tmp_path: Path, value: str, message: str) -> None:
        """A signal that is none, or would suspend or resume the member instead of stopping
        it, is refused at its line."""
        err, path = error(tmp_path, f'[procs.web]\ncmd = "x"\nstop_signal = {value}\n')
        assert err.message == f"web: {message}"
        assert err.source == f"{path}:3"

    def test_max_restarts(self, tmp_path: Path) -> None:
        """max_restarts accepts 0 and more."""
        assert member(tmp_path, "max_restarts = 0").max_restarts == 0

    @pytest.mark.parametrize("value", ["-1", "1.5", "true"])
    def test_bad_max_restarts(self, tmp_path: Path, value: str) -> None:
        """max_restarts rejects negatives, fractions and booleans."""
        err, _ = error(tmp_path, f'[procs.web]\ncmd = "x"\nmax_restarts = {value}\n')
        assert "max_restarts must be a whole number" in err.message


class TestNames:
    @pytest.mark.parametrize(
        "name",
        ["../x", "a/b", "-rf", "a" * 65, ".hidden", "", "two words", "caf\u00e9"],
        ids=["dotdot", "slash", "option", "too-long", "dot-first", "empty", "space", "non-ascii"],
    )
    def test_bad_member_names(self, tmp_path: Path, name: str) -> None:
        """Names that could escape a folder or look like options are rejected at their line."""
        err, path = error(tmp_path, f'[procs.db]\ncmd = "x"\n[procs."{name}"]\ncmd = "x"\n')
        assert err.source == f"{path}:3"
        assert err.message.startswith(f"invalid member name {name!r}")

    @pytest.mark.parametrize(("name", "why"), [
        ("all", "it addresses every member"),
        ("pipeplex", "pipeplex's own lines go under it"),
    ])
    def test_reserved_names(self, tmp_path: Path, name: str, why: str) -> None:
        """``all`` addresses every member; under ``pipeplex`` a member's lines would pass
        for pipeplex's own notes about the run."""
        err, _ = error(tmp_path, f'[procs.{name}]\ncmd = "x"\n')
        assert err.message == f"the name {name!r} is reserved ({why}); choose another"
        with pytest.raises(CastError, match=f"the name {name!r} is reserved"):
            parse_proc_option(f"{name}=x")

    @pytest.mark.parametrize(("name", "reserved"), [("ALL", "all"), ("Pipeplex", "pipeplex")])
    def test_reserved_names_in_another_case(self, tmp_path: Path, name: str,
                                            reserved: str) -> None:
        """``Pipeplex * ...`` beside ``pipeplex * ...`` in the stream: refused too."""
        err, _ = error(tmp_path, f'[procs.{name}]\ncmd = "x"\n')
        assert err.message.startswith(f"the name {name!r} reads as {reserved!r}, which is "
                                      "reserved (")

    def test_names_apart_only_by_case(self, tmp_path: Path) -> None:
        """a and A: a.in and A.in are one file where names are caseless."""
        err, path = error(tmp_path, '[procs.a]\ncmd = "x"\n[procs.A]\ncmd = "x"\n')
        assert str(err) == (f"{path}:3: member name 'A' differs from 'a' (at {path}:1) only "
                            "by case: their NAME.in files are one file where names are "
                            "caseless (macOS), and they read alike in the stream; give them "
                            "names apart")

    @pytest.mark.parametrize("name", ["a" * 64, "web-1.v2_x", "9lives", "A"])
    def test_good_member_names(self, tmp_path: Path, name: str) -> None:
        """Letters, digits, '_', '.' and '-' up to 64 characters are accepted."""
        assert load(tmp_path, f'[procs."{name}"]\ncmd = "x"\n').names == (name,)


class TestAcrossMembers:
    def test_braces_no_member_captures_are_literal(self, tmp_path: Path) -> None:
        """Braces around a name no member captures (code such as f"{i}") stay as written."""
        cast = load(
            tmp_path,
            '[procs.py]\ncmd = ["python3", "-c", "print(f\'{i}\')"]\ninput = "x = {i}"\n',
        )
        assert cast["py"].argv() == ["python3", "-c", "print(f'{i}')"]
        assert cast["py"].input == ("x = {i}",)

    @pytest.mark.parametrize(
        "where",
        ['cmd = "y {port}"', 'cmd = "y"\nenv = { P = "{port}" }', 'cmd = "y"\ninput = "{port}"'],
        ids=["cmd", "env", "input"],
    )
    def test_variable_from_a_member_not_waited_for(self, tmp_path: Path, where: str) -> None:
        """Using {port} captured by a member not in ``after`` names it and suggests waiting,
        at the line that uses it."""
        err, path = error(
            tmp_path,
            f"[procs.db]\ncmd = \"x\"\nready = 'port (?P<port>\\d+)'\n[procs.web]\n{where}\n",
        )
        assert err.source == f"{path}:{4 + where.count(chr(10)) + 1}"
        assert err.message == (
            'web: uses {port}, which db captures, but does not start after it; add after = ["db"]'
        )

    @pytest.mark.parametrize(("cmd", "hint"), [
        ("sh -c 'echo {port}'", True), ("bash -c 'echo {port}'", True), ("echo {port}", False),
    ])
    def test_only_a_shell_script_is_told_how_to_write_the_braces(self, cmd: str,
                                                                 hint: bool) -> None:
        """A backslash keeps the braces as text only in a script a shell runs: elsewhere
        the hint would lead to the same error again."""
        db = ProcSpec("db", "x", ready=r"port (?P<port>\d+)")
        with pytest.raises(CastError) as info:
            validate_cast(CastSpec((db, ProcSpec("web", cmd))))
        said = "; for the text {port} itself, write \\{port}"
        assert info.value.message.endswith(said) == hint, info.value.message
        with pytest.raises(CastError) as info:
            validate_cast(CastSpec((db, ProcSpec("web", "x", shell=True, env={"P": "{port}"}))))
        assert said not in info.value.message  # (an env value is no script)

    def test_a_p_member_using_a_captured_variable_is_told_to_go_to_the_cast_file(self) -> None:
        """-p gives no after: the advice for a -p member is what it can do."""
        db = ProcSpec("db", "x", ready=r"port (?P<port>\d+)")
        web = parse_proc_option("web=y {port}")
        with pytest.raises(CastError) as info:
            validate_cast(CastSpec((db, web)))
        assert info.value.message == (
            "web: uses {port}, which db captures, but does not start after it; declare web "
            'in a cast file instead, with after = ["db"] (-p gives no after)')
        ported = parse_proc_option("web=y", ready_port="{port}")
        with pytest.raises(CastError) as info:
            validate_cast(CastSpec((db, ported)))
        assert info.value.message.endswith(
            'declare web in a cast file instead, with after = ["db"], which captures it '
            "(-p gives no after)")

    @pytest.mark.parametrize("where", ['cmd = "y {port}"', 'cmd = "y"\nenv = { P = "{port}" }'])
    def test_variable_captured_by_an_indirect_dependency(self, tmp_path: Path, where: str) -> None:
        """A variable captured anywhere up the ``after`` chain is available."""
        cast = load(
            tmp_path,
            "[procs.db]\ncmd = \"x\"\nready = 'port (?P<port>\\d+)'\n"
            '[procs.api]\ncmd = "a"\nafter = "db"\n'
            f'[procs.web]\n{where}\nafter = "api"\n',
        )
        assert cast.names == ("db", "api", "web")

    def test_ready_port_variable_nobody_captures(self, tmp_path: Path) -> None:
        """ready_port = "{port}" with no ready pattern capturing it explains how to capture
        it: by that name, which its own ready may capture too."""
        err, path = error(tmp_path, '[procs.web]\ncmd = "serve"\nready_port = "{pid}"\n')
        assert err.source == f"{path}:3"  # (the key's line)
        assert err.message == (
            "web: ready_port uses {pid}, which neither it nor a member it starts after "
            "captures; capture it with a group of that name, in its own ready or in that of a "
            "member it starts after: ready = 'port (?P<pid>\\d+)'")

    def test_ready_port_variable_misspelt_is_told_the_one_meant(self, tmp_path: Path) -> None:
        err, _ = error(tmp_path, "[procs.db]\ncmd = \"x\"\nready = 'port (?P<port>\\d+)'\n"
                                 '[procs.web]\ncmd = "serve"\nafter = "db"\n'
                                 'ready_port = "{prot}"\n')
        assert err.message == ("web: ready_port uses {prot}, which neither it nor a member it "
                               "starts after captures; did you mean {port}, which db captures?")

    def test_a_misspelt_variable_is_told_the_one_meant(self, tmp_path: Path) -> None:
        """{prot} for {port} would reach curl as it is: the run says so before it starts."""
        cast = load(tmp_path, "[procs.db]\ncmd = \"x\"\nready = 'port (?P<port>\\d+)'\n"
                              '[procs.c]\ncmd = "curl http://127.0.0.1:{prot}/ ${HOME} {x}"\n'
                              'after = "db"\n')
        assert variable_warnings(cast) == [
            f"{tmp_path / 'cast.toml'}:5: c uses {{prot}}, which no member captures (it is "
            "passed on as written); did you mean {port}, which db captures?"]

    def test_a_variable_a_group_without_a_name_would_capture_is_told_to_name_it(
            self, tmp_path: Path) -> None:
        cast = load(tmp_path, "[procs.db]\ncmd = \"x\"\nready = 'port (\\d+)'\n"
                              '[procs.c]\ncmd = "c"\ninput = ["{port}"]\nafter = "db"\n')
        assert variable_warnings(cast) == [
            f"{tmp_path / 'cast.toml'}:6: c uses {{port}}, which no member captures (it is "
            "passed on as written); db's ready has a group without a name: name it, "
            "(?P<port>...), to capture it"]

    def test_braces_a_group_without_a_name_does_not_mention_are_not_told(
            self, tmp_path: Path) -> None:
        """awk's {print}, an f-string's {x}: not what 'ready (\\d+)' would capture."""
        cast = load(tmp_path, "[procs.db]\ncmd = \"x\"\nready = 'ready (\\d+)'\n"
                              '[procs.c]\ncmd = "awk \'{print}\'"\nafter = "db"\n')
        assert variable_warnings(cast) == []

    def test_a_failures_report_guesses_at_a_group_without_a_name_too(
            self, tmp_path: Path) -> None:
        """'listening on :(\\d+)' and {port}: said with a test's failure (where a wrong
        guess costs little), not as every run starts (awk's {print} would be told too)."""
        cast = load(tmp_path, "[procs.db]\ncmd = \"x\"\nready = 'listening on :(\\d+)'\n"
                              '[procs.c]\ncmd = "c {port}"\nafter = "db"\n')
        assert variable_warnings(cast) == []
        assert variable_warnings(cast, guesses=True) == [
            f"{tmp_path / 'cast.toml'}:5: c uses {{port}}, which no member captures (it is "
            "passed on as written); db's ready captures nothing, its groups having no names: "
            "if {port} is what one matches, name it, (?P<port>...)"]

    def test_braces_that_are_no_variable_of_the_cast_are_not_told(self, tmp_path: Path) -> None:
        cast = load(tmp_path, "[procs.db]\ncmd = \"x\"\nready = 'port (?P<port>\\d+)'\n"
                              '[procs.c]\ncmd = "python3 -c \'print(f{{x}})\' ${HOME} {port}"\n'
                              'after = "db"\n')
        assert variable_warnings(cast) == []

    def test_ready_port_variable_from_own_pattern(self, tmp_path: Path) -> None:
        """ready_port may use a port the member's own ready pattern captures."""
        web = member(tmp_path, "ready = 'port (?P<port>\\d+)'\nready_port = \"{port}\"")
        assert web.ready_port == "{port}"

    def test_ready_port_variable_from_a_member_not_waited_for(self, tmp_path: Path) -> None:
        """ready_port using a variable of a member not in ``after`` suggests waiting for it."""
        err, _ = error(
            tmp_path,
            "[procs.db]\ncmd = \"x\"\nready = 'port (?P<port>\\d+)'\n"
            '[procs.web]\ncmd = "y"\nready_port = "{port}"\n',
        )
        assert 'add after = ["db"]' in err.message

    def test_after_unknown_member_suggests(self, tmp_path: Path) -> None:
        """after naming a non-member suggests the closest member name."""
        err, path = error(
            tmp_path, '[procs.database]\ncmd = "x"\n[procs.web]\ncmd = "y"\nafter = "databse"\n'
        )
        assert err.source == f"{path}:5"  # (the key's line)
        assert (
            err.message
            == "web: after names 'databse', which is not a member; did you mean 'database'?"
        )

    @pytest.mark.parametrize(("after", "said"), [
        ("B", "which is not a member; did you mean 'b'?"),  # (its case the whole difference)
        ("Databse", "which is not a member; did you mean 'database'?"),
        ("all", "which is no member's name: it is reserved (it addresses every member); "
                "name each member to start after"),
        ("PipePlex", "which is no member's name: it is reserved (pipeplex's own lines go "
                     "under it); name each member to start after")])
    def test_after_a_name_in_another_case_or_a_reserved_one(
            self, tmp_path: Path, after: str, said: str) -> None:
        """A name that differs only by case is suggested; a reserved one is said to be."""
        err, _ = error(tmp_path, '[procs.b]\ncmd = "x"\n[procs.database]\ncmd = "x"\n'
                                 f'[procs.web]\ncmd = "y"\nafter = "{after}"\n')
        assert err.message == f"web: after names {after!r}, {said}"

    def test_after_itself(self, tmp_path: Path) -> None:
        """A member cannot start after itself."""
        err, _ = error(tmp_path, '[procs.web]\ncmd = "x"\nafter = "web"\n')
        assert err.message == "web: a member cannot start after itself"

    def test_after_cycle(self, tmp_path: Path) -> None:
        """Members waiting for each other are reported as a circle."""
        err, _ = error(
            tmp_path,
            '[procs.a]\ncmd = "x"\nafter = "b"\n[procs.b]\ncmd = "y"\nafter = ["a"]\n',
        )
        assert err.message == ("members wait for each other in a circle: a -> b -> a; remove "
                               "'b' from a's after (line 3) or 'a' from b's after (line 6)")
        assert err.source == f"{tmp_path / 'cast.toml'}:3"

    def test_a_cycle_through_an_included_file_names_each_links_file(
            self, tmp_path: Path) -> None:
        """A link in another file than the one the message is at is given with its file:
        its line alone would point into the wrong one."""
        (tmp_path / "base.toml").write_text('[procs.db]\ncmd = "x"\nafter = ["web"]\n')
        err, path = error(tmp_path, 'include = "base.toml"\n'
                                    '[procs.web]\ncmd = "y"\nafter = ["db"]\n')
        assert err.source == f"{tmp_path / 'base.toml'}:3"
        assert err.message == ("members wait for each other in a circle: db -> web -> db; "
                               "remove 'web' from db's after (line 3) or 'db' from web's after "
                               f"(at {path}:4)")

    def test_longer_cycle_behind_a_good_member(self, tmp_path: Path) -> None:
        """A circle is found even when entered from a member outside it."""
        err, _ = error(
            tmp_path,
            '[procs.top]\ncmd = "t"\nafter = "a"\n'
            '[procs.a]\ncmd = "x"\nafter = "b"\n'
            '[procs.b]\ncmd = "y"\nafter = "c"\n'
            '[procs.c]\ncmd = "z"\nafter = "a"\n',
        )
        assert err.message == ("members wait for each other in a circle: a -> b -> c -> a; "
                               "remove 'b' from a's after (line 6) or 'c' from b's after "
                               "(line 9) or 'a' from c's after (line 12)")

    def test_duplicate_names(self) -> None:
        """validate_cast rejects a name declared twice and says where the first one is."""
        cast = CastSpec(
            (ProcSpec("web", "a", source="cast.toml:1"), ProcSpec("web", "b", source="-p"))
        )
        with pytest.raises(CastError) as info:
            validate_cast(cast)
        assert info.value.source == "-p"
        assert info.value.message == "duplicate member name 'web' (also declared at cast.toml:1)"

    def test_duplicate_names_from_the_command_line(self) -> None:
        """A duplicate of a member without a source refers to the command line."""
        cast = CastSpec((ProcSpec("web", "a"), ProcSpec("web", "b")))
        with pytest.raises(CastError, match=r"also declared at the command line"):
            validate_cast(cast)

    @pytest.mark.parametrize(("fields", "message"), [
        ({"ready_port": "0"}, "ready_port must be a TCP port number (1-65535) as a string, or "
                              "a variable such as '{port}', not '0'"),
        ({"ready_port": "65536"}, "ready_port must be a TCP port number (1-65535) as a "
                                  "string, or a variable such as '{port}', not '65536'"),
        ({"ready_port": "-1"}, "ready_port must be a TCP port number (1-65535) as a string, "
                               "or a variable such as '{port}', not '-1'"),
        ({"ready_timeout": 0},
         "ready_timeout must be a number of seconds from 0.001 to below 1e9, not 0"),
        ({"ready_timeout": -2.5},
         "ready_timeout must be a number of seconds from 0.001 to below 1e9, not -2.5"),
        ({"ready_timeout": float("nan")},
         "ready_timeout must be a number of seconds from 0.001 to below 1e9, not nan"),
        ({"ready_timeout": True},
         "ready_timeout must be a number of seconds from 0.001 to below 1e9, not True"),
        ({"stop_timeout": 0},
         "stop_timeout must be a number of seconds from 0.001 to below 1e9, not 0"),
        ({"stop_timeout": float("inf")},
         "stop_timeout must be a number of seconds from 0.001 to below 1e9, not inf"),
        ({"max_restarts": -1}, "max_restarts must be a whole number, 0 or more, not -1"),
        ({"on_failure": "always"}, "on_failure must be one of 'stop', 'ignore', 'restart' (or "
                                   "None: as on_exit), not 'always'"),
        ({"stop_signal": "INT"},
         "stop_signal is a signal's number here (signal.SIGINT), not 'INT'"),
        ({"stop_signal": signal.SIGSTOP}, "stop_signal: STOP would suspend a member rather "
                                          "than stop it; give a signal a program ends on "
                                          "(TERM, the default, INT, QUIT, HUP...)"),
        ({"stop_signal": 0}, 'stop_signal must be a signal\'s name or number ("INT", "QUIT", '
                             '"SIGTERM", 2), not 0'),
        ({"env": {"A=B": "x"}},
         "env variable name 'A=B' contains '=', which no variable name may hold"),
        ({"env": {"A\0": "x"}},
         "env variable name 'A\\x00' contains a NUL character, which no variable name may hold"),
        ({"env": {"": "x"}}, "env has an empty variable name"),
        ({"env": {"A": "x\0"}},
         "env variable A has a NUL character in its value, which the environment cannot hold"),
    ])
    def test_fields_of_a_spec_built_in_code(self, fields: dict[str, object],
                                             message: str) -> None:
        """What the TOML loader refuses key by key is refused in a spec built in code, with
        the member and the field named."""
        proc = ProcSpec("web", "srv", source="app.py", **fields)  # type: ignore[arg-type]
        with pytest.raises(CastError) as info:
            validate_cast(CastSpec((proc,)))
        assert info.value.message == f"web: {message}"
        assert info.value.source == "app.py"

    @pytest.mark.parametrize("port", ["1", "65535", "8080", "{port}"])
    def test_good_ready_ports_of_a_spec_built_in_code(self, port: str) -> None:
        """A port in range passes, and one with a variable is checked once expanded."""
        server = ProcSpec("server", "srv", ready=r"port (?P<port>\d+)", ready_port=port)
        validate_cast(CastSpec((server,)))


class TestProcOption:
    def test_name_and_command(self) -> None:
        """``NAME=COMMAND`` gives a member with the command as one string."""
        proc = parse_proc_option("web=python3 -m http.server 8000")
        assert (proc.name, proc.cmd, proc.source) == ("web", "python3 -m http.server 8000", "-p")
        assert proc.argv() == ["python3", "-m", "http.server", "8000"]

    def test_only_the_first_equals_splits(self) -> None:
        """Later ``=`` signs belong to the command; spaces around the name are dropped."""
        proc = parse_proc_option(" env = env A=1 B=2")
        assert proc.name == "env"
        assert proc.argv() == ["env", "A=1", "B=2"]

    def test_defaults(self) -> None:
        """Keyword defaults are applied to the member."""
        assert parse_proc_option("sh=bash", pty="full").pty == "full"

    @pytest.mark.parametrize("option", ["web", "web python3"])
    def test_missing_equals(self, option: str) -> None:
        """Without ``=``, the expected form is shown."""
        with pytest.raises(CastError, match="expected NAME=COMMAND") as info:
            parse_proc_option(option)
        assert info.value.source == f"-p {option}"

    @pytest.mark.parametrize("option", ["web=", "web=   "])
    def test_missing_command(self, option: str) -> None:
        with pytest.raises(CastError) as info:
            parse_proc_option(option)
        assert info.value.message == ("the command is empty: give it after the =, e.g. -p "
                                      "web='python3 -m http.server'")
        assert info.value.source == f"-p {option}"

    def test_an_env_number_that_is_no_number_is_refused(self, tmp_path: Path) -> None:
        """nan and inf became the texts 'nan' and 'inf', unsaid."""
        err, path = error(tmp_path, '[procs.web]\ncmd = "x"\nenv = { X = nan }\n')
        assert err.message == ('web: env X = nan: a number here is finite (write "nan" in '
                               "quotes if the text is meant)")
        assert err.source == f"{path}:3"

    @pytest.mark.parametrize("option", ["-rf=ls", "a/b=ls", "=ls", "../x=ls"])
    def test_bad_name(self, option: str) -> None:
        """An invalid member name is rejected, naming the option."""
        with pytest.raises(CastError, match="invalid member name") as info:
            parse_proc_option(option)
        assert str(info.value).startswith(f"-p {option}: ")

    def test_reserved_name(self) -> None:
        """``all`` cannot name a member on the command line either."""
        with pytest.raises(CastError, match="reserved"):
            parse_proc_option("all=ls")

    def test_command_that_cannot_be_split(self) -> None:
        """An unbalanced quote is reported."""
        with pytest.raises(CastError, match="cannot split the command"):
            parse_proc_option("web=echo 'oops")


def executable(path: Path, mode: int = 0o755) -> Path:
    path.write_text("#!/bin/sh\n")
    path.chmod(mode)
    return path


class TestCheckCommands:
    def test_program_found_on_path(self, tmp_path: Path) -> None:
        """A program found on the member's PATH passes."""
        executable(tmp_path / "mytool")
        check_commands(CastSpec((ProcSpec("web", "mytool --serve", env={"PATH": str(tmp_path)}),)))

    def test_missing_program(self, tmp_path: Path) -> None:
        """A program missing from PATH is named with its member."""
        proc = ProcSpec("web", "no-such-tool --serve", env={"PATH": str(tmp_path)}, source="c:1")
        with pytest.raises(CastError) as info:
            check_commands(CastSpec((proc,)))
        assert info.value.source == "c:1"
        assert info.value.message.startswith("web: command not found: 'no-such-tool'")
        assert "'no-such-tool --serve'" in info.value.message

    def test_a_name_of_a_file_in_its_folder_is_told_to_take_a_slash(
            self, tmp_path: Path) -> None:
        """`run.sh` is looked for in PATH, as a shell and subprocess do: a file of that
        name where it runs gets the fix, ./run.sh."""
        executable(tmp_path / "run.sh")
        proc = ProcSpec("web", ["run.sh"], cwd=str(tmp_path))
        with pytest.raises(CastError, match=r"web: command not found: 'run\.sh' .*; a file of "
                           r"that name is in the folder it runs in, but a name without a / "
                           r"is looked for in PATH: write \./run\.sh for that file$"):
            check_commands(CastSpec((proc,)))

    def test_missing_relative_path(self, tmp_path: Path) -> None:
        """A relative program path is looked up in the member's cwd."""
        proc = ProcSpec("web", ["./run.sh"], cwd=str(tmp_path))
        with pytest.raises(CastError, match=r"web: command not found: '\./run\.sh'"):
            check_commands(CastSpec((proc,)))
        executable(tmp_path / "run.sh")
        check_commands(CastSpec((proc,)))

    @pytest.mark.parametrize("make", ["plain-file", "folder"])
    def test_path_that_is_not_executable(self, tmp_path: Path, make: str) -> None:
        """A path to a non-executable file or a folder is reported as such."""
        target = tmp_path / "thing"
        if make == "folder":
            target.mkdir()
        else:
            executable(target, mode=0o644)
        with pytest.raises(CastError) as info:
            check_commands(CastSpec((ProcSpec("web", [str(target), "-v"]),)))
        assert info.value.message.startswith(f"web: {str(target)!r} is not an executable file")

    def test_cwd_that_is_not_a_folder(self, tmp_path: Path) -> None:
        """A cwd that does not exist is reported before anything starts."""
        proc = ProcSpec("web", ["./run.sh"], cwd=str(tmp_path / "missing"))
        with pytest.raises(CastError, match=r"web: cwd .* is not a folder"):
            check_commands(CastSpec((proc,)))

    @pytest.mark.parametrize(
        "proc",
        [
            ProcSpec("web", "echo {port}", after=("db",)),
            ProcSpec("web", "echo hi | cat", shell=True),
            ProcSpec("web", "{program} --serve", after=("db",)),
        ],
        ids=["variable-argument", "shell", "variable-program"],
    )
    def test_cwd_is_checked_for_every_kind_of_command(
        self, tmp_path: Path, proc: ProcSpec
    ) -> None:
        """A missing cwd is reported before anything starts even when the program itself
        can only be found at start (a shell command, a variable in the command)."""
        db = ProcSpec("db", "true", ready=r"(?P<port>\d+) (?P<program>\S+)")
        cwd = str(tmp_path / "missing")
        cast = CastSpec((db, ProcSpec(proc.name, proc.cmd, shell=proc.shell, after=proc.after,
                                      cwd=cwd, source="cast.toml:7")))
        with pytest.raises(CastError) as info:
            check_commands(cast)
        assert info.value.message == f"web: cwd {cwd!r} is not a folder"
        assert info.value.source == "cast.toml:7"

    def test_shell_and_variable_commands_are_not_checked(self, tmp_path: Path) -> None:
        """Shell commands and commands with variables are left to start time (braces that
        no member fills are text, and do not make a command one of those)."""
        path = {"PATH": str(tmp_path)}
        check_commands(
            CastSpec(
                (
                    ProcSpec("a", "no-such-tool | cat", shell=True, env=path),
                    ProcSpec("s", "true", ready=r"(?P<port>\d+)"),
                    ProcSpec("b", "no-such-tool {port}", env=path, after=("s",)),
                )
            )
        )

    def test_a_member_that_starts_later_may_run_what_an_earlier_one_builds(
            self, tmp_path: Path) -> None:
        """Its program file is looked for when it starts; a PATH tool is checked now."""
        executable(tmp_path / "make")
        path = {"PATH": str(tmp_path)}
        builds = ProcSpec("build", "make", env=path, ready="built")
        later = CastSpec((builds, ProcSpec("app", "./app", after=("build",), env=path),
                          ProcSpec("tool", "./tool", autostart=False, env=path)))
        check_commands(later)  # (no error)
        with pytest.raises(CastError, match="app: command not found: 'pyhton'"):
            check_commands(CastSpec((builds, ProcSpec("app", "pyhton x", after=("build",),
                                                      env=path))))
        with pytest.raises(CastError, match=r"app: command not found: '\./app'"):
            check_commands(CastSpec((ProcSpec("app", "./app", env=path),)))

    @pytest.mark.parametrize(
        ("cmd", "by_file", "by_hand"),
        [
            ("cd web && npm start", "'cd' is a shell's own command, and no shell runs this "
             "one: set shell = true (or cwd = 'FOLDER' instead of cd)",
             "'cd' is a shell's own command, and no shell runs this one: write -p "
             "web=\"sh -c '...'\""),
            ("PORT=80 serve", "'PORT=80' sets a variable only in a shell, and no shell runs "
             "this command: use env = { PORT = '80' }",
             "'PORT=80' sets a variable only in a shell, and no shell runs this command: use "
             "env PORT=80 COMMAND"),
            ("~/bin/serve", "no shell runs this command, so ~ is not your home folder: write "
             "the path in full, or set shell = true",
             "no shell runs this command, so ~ is not your home folder: write the path in "
             "full, or write -p web=\"sh -c '...'\""),
        ],
        ids=["builtin", "assignment", "tilde"],
    )
    def test_a_program_only_a_shell_knows_is_explained(
            self, tmp_path: Path, cmd: str, by_file: str, by_hand: str) -> None:
        """``cd``, ``PORT=80`` and ``~`` are not found because no shell runs the command:
        the message says so, and what to write instead."""
        proc = ProcSpec("web", cmd, source="cast.toml:2")
        with pytest.raises(CastError) as info:
            check_commands(CastSpec((proc,)))
        assert info.value.message == (f"web: command not found: {cmd.split()[0]!r} (cmd = "
                                      f"{cmd!r}); {by_file}")
        with pytest.raises(CastError) as info:
            check_commands(CastSpec((parse_proc_option(f"web={cmd}"),)))
        assert info.value.message.endswith(f"; {by_hand}")

    @pytest.mark.parametrize(("cmd", "said"), [
        ("ls; echo", "';' outside quotes, which a shell would read as an operator"),
        ("$HOME/bin/serve --x", "'$HOME' outside quotes, which a shell would read as a "
         "variable to expand"),
        ("`which python3` -V", "'`' outside quotes, which a shell would read as a command "
         "substitution"),
    ], ids=["operator", "variable", "substitution"])
    def test_a_shells_syntax_in_the_program_explains_why_it_is_not_found(
            self, cmd: str, said: str) -> None:
        """The warning of it comes only as the run starts, which a missing program stops
        first: the refusal says it instead of "check the spelling"."""
        with pytest.raises(CastError) as info:
            check_commands(CastSpec((ProcSpec("web", cmd, source="c:1"),)))
        assert info.value.message.endswith(
            f"; it has {said}, and no shell runs this command: set shell = true")

    def test_a_shells_own_command_found_on_path_is_said(self, tmp_path: Path) -> None:
        """Some systems have a cd on PATH (POSIX asks for one), which changes nothing run
        on its own: not refused, but said, as the run starts."""
        executable(tmp_path / "cd")
        cast = CastSpec((ProcSpec("web", "cd web", env={"PATH": str(tmp_path)},
                                  source="c:1"),))
        check_commands(cast)
        assert cast_warnings(cast) == [
            "c:1: web's command runs 'cd', a shell's own command, which changes nothing run "
            "on its own: set shell = true to have /bin/sh run the command"]

    def test_later_member_checked_too(self, tmp_path: Path) -> None:
        """Every member is checked, not only the first."""
        executable(tmp_path / "good")
        path = {"PATH": str(tmp_path)}
        cast = CastSpec((ProcSpec("a", "good", env=path), ProcSpec("b", "bad", env=path)))
        with pytest.raises(CastError, match="b: command not found: 'bad'"):
            check_commands(cast)


class TestSeveralMistakes:
    """A file's mistakes are said at once, in the file's order: one run to learn them all,
    not one run each (a file with six took six runs, its errors out of order)."""

    def test_every_mistake_of_every_member_is_said_in_the_files_order(
            self, tmp_path: Path) -> None:
        err, path = error(tmp_path, '[procs.a]\ncmd = "echo hi"\nready = "list(en"\n'
                                    'on_exti = "stop"\n\n[procs.b]\ncmd = "cat"\n'
                                    'pty = "yes"\nstop_timeout = -1\n[server]\n')
        assert isinstance(err, CastErrors)
        assert [(e.source, e.message.partition(":")[0]) for e in err.errors] == [
            (f"{path}:3", "a"), (f"{path}:4", "a"), (f"{path}:8", "b"), (f"{path}:9", "b"),
            (f"{path}:10", "unknown table or key 'server' (valid")]
        lines = str(err).splitlines()
        assert lines[0] == f"{path}: 5 mistakes:"
        assert lines[1] == (f"  {path}:3: a: invalid ready pattern 'list(en': missing ), "
                            "unterminated subpattern at position 4")
        assert (err.source, err.message) == (err.errors[0].source, err.errors[0].message)

    def test_one_mistake_is_a_plain_cast_error(self, tmp_path: Path) -> None:
        err, path = error(tmp_path, '[procs.a]\ncmd = "x"\npty = "yes"\n')
        assert type(err) is CastError
        assert err.source == f"{path}:3"

    def test_the_members_together_are_checked_once_each_member_is_whole(
            self, tmp_path: Path) -> None:
        """after, duplicates, circles, variables: every one in one run, once no member's own
        keys are wrong (they read the members' fields). A member whose after names one that
        is not there, directly or through others (g, after a), is not told what its
        variables need: its after, put right, may give it."""
        err, path = error(tmp_path, '[procs.a]\ncmd = "x {port}"\nafter = ["sever"]\n'
                                    '[procs.b]\ncmd = "x"\nafter = ["b", ""]\n'
                                    '[procs.c]\ncmd = "x {port}"\nready = "(?P<port>\\\\d+)"\n'
                                    '[procs.d]\ncmd = "x {port}"\n'
                                    '[procs.e]\ncmd = "x"\nafter = ["f"]\n'
                                    '[procs.f]\ncmd = "x"\nafter = ["e"]\n'
                                    '[procs.g]\ncmd = "x {port}"\nafter = ["a"]\n')
        assert isinstance(err, CastErrors)
        assert [e.message for e in err.errors] == [
            "a: after names 'sever', which is not a member (valid: b, c, d, e, f, g)",
            "b: a member cannot start after itself",
            "b: after holds an empty name ('')",
            "c: uses {port}, which it captures itself; a captured value is known once its "
            "member is ready, so only members that start after it can use it",
            'd: uses {port}, which c captures, but does not start after it; add after = ["c"]',
            "members wait for each other in a circle: e -> f -> e; remove 'f' from e's after "
            "(line 14) or 'e' from f's after (line 17)"]
        err, path = error(tmp_path, '[procs.c]\ncmd = "x {port}"\nready = "(?P<port>\\\\d+)"\n'
                                    '[procs.d]\ncmd = "x {port}"\n'
                                    '[procs.e]\ncmd = "x"\nready_port = "{prot}"\n')
        assert isinstance(err, CastErrors)
        assert [e.source for e in err.errors] == [f"{path}:2", f"{path}:5", f"{path}:8"]

    @pytest.mark.parametrize(("proc", "said"), [
        (ProcSpec("a", "true", after="xy"), "a: after must be a tuple of strings, not 'xy'"),
        (ProcSpec("a", "true", after=(1,)), "a: after must be a tuple of strings, not (1,)"),
        (ProcSpec(["x"], "true"), "invalid member name ['x']"),  # type: ignore[arg-type]
    ], ids=["after-a-string", "after-a-number", "name-a-list"])
    def test_a_members_own_mistakes_come_before_what_involves_others(
            self, proc: ProcSpec, said: str) -> None:
        """A spec built in code: its after and name are read by the checks across members
        only once they are what they must be (after = "xy" gave a mistake a letter, and a
        number or a list crashed them)."""
        with pytest.raises(CastError) as caught:
            validate_cast(CastSpec((proc, ProcSpec("b", "true", after=("nobody",)))))
        assert type(caught.value) is CastError
        assert caught.value.message == said

    def test_shell_true_with_a_bad_cmd_is_said_once(self, tmp_path: Path) -> None:
        err, _ = error(tmp_path, '[procs.a]\nshell = true\ncmd = 42\n'
                                    '[procs.b]\nshell = true\n')
        assert isinstance(err, CastErrors)
        assert [e.message for e in err.errors] == [
            "a: cmd must be a non-empty string or a list of strings, not 42",
            "b: missing cmd (the command to run)"]

    def test_every_missing_program_and_folder_is_said(self, tmp_path: Path) -> None:
        path = {"PATH": str(tmp_path)}
        cast = CastSpec((ProcSpec("a", "nosuch", env=path, source="c:1"),
                         ProcSpec("b", "true", cwd=str(tmp_path / "gone"), source="c:2"),
                         ProcSpec("c", "nosuch2", env=path, source="c:3")))
        with pytest.raises(CastErrors) as caught:
            check_commands(cast)
        gone = str(tmp_path / "gone")
        assert [e.message.split(":")[:2] for e in caught.value.errors] == [
            ["a", " command not found"], ["b", f" cwd '{gone}' is not a folder"],
            ["c", " command not found"]]

    def test_a_long_list_is_cut_and_counted(self) -> None:
        errors = [CastError(f"m{i}: bad", source=f"f.toml:{i}") for i in range(25, 0, -1)]
        text = str(CastErrors(errors))
        assert text.splitlines()[1] == "  f.toml:1: m1: bad"
        assert text.splitlines()[-1] == "  and 5 more"
        assert len(text.splitlines()) == 1 + CastErrors.SHOWN + 1

    def test_they_can_be_pickled(self) -> None:
        """For multiprocessing and pytest-xdist, as every PipeplexError."""
        again = pickle.loads(pickle.dumps(CastErrors([CastError("a", source="f:2"),
                                                      CastError("b", source="f:1")])))
        assert [str(e) for e in again.errors] == ["f:1: b", "f:2: a"]
        assert str(again).startswith("f: 2 mistakes:")


@pytest.mark.parametrize(("text", "line", "said"), [
    ('[[procs.a]]\ncmd = "true"\n', 1,
     "procs.a is written [[procs.a]], an array of tables: write [procs.a], in single "
     "brackets (a member is one table)"),
    ('[procs]\na = "true"\n', 2,
     "procs.a must be a table with at least cmd = ..., not 'true': write [procs.a] and "
     "cmd = ... on the next line"),
])
def test_a_member_not_written_as_one_table_is_told_how(
        tmp_path: Path, text: str, line: int, said: str) -> None:
    """[[procs.a]] with its cmd was told that it needed a cmd."""
    exc, path = error(tmp_path, text)
    assert str(exc) == f"{path}:{line}: {said}"


def test_a_program_named_by_braces_no_member_fills_is_checked_at_load(tmp_path: Path) -> None:
    """cmd = "{prog} x" with nothing capturing prog: the braces stay as written, and the
    program '{prog}' was not found only as the member started, with no line."""
    path = write(tmp_path, '[procs.a]\ncmd = "{prog} x"\n')
    with pytest.raises(CastError) as info:
        check_commands(load_cast(path))
    assert str(info.value) == (f"{path}:2: a: command not found: '{{prog}}' (cmd = '{{prog}} "
                               "x'); no member captures {prog} (a named group of a ready "
                               "pattern), so it stays as written")
    filled = write(tmp_path, '[procs.s]\ncmd = "true"\nready = "(?P<prog>\\\\w+)"\n'
                             '[procs.a]\ncmd = "{prog} x"\nafter = ["s"]\n')
    check_commands(load_cast(filled))  # (filled by s as a starts: looked for then)


def test_an_empty_program_is_said_so(tmp_path: Path) -> None:
    """cmd = ["", "x"] was 'command not found: ''; check the spelling and PATH'."""
    path = write(tmp_path, '[procs.a]\ncmd = ["", "x"]\n')
    with pytest.raises(CastError) as info:
        check_commands(load_cast(path))
    assert str(info.value) == (f"{path}:2: a: the program, cmd's first word, is empty (cmd = "
                               "\"'' x\"): name the program to run there")


def test_an_include_that_cannot_be_looked_at_is_not_said_missing(tmp_path: Path) -> None:
    """A name too long (or a folder on the way that may not be entered) was 'no such cast
    file'."""
    name = "n" * 300 + ".toml"
    exc, path = error(tmp_path, f'include = "{name}"\n[procs.a]\ncmd = "true"\n')
    assert str(exc) == (f"{path}:1: include: cannot read the cast file '{name}': File name "
                        "too long")
    exc, path = error(tmp_path, 'include = "a\\u0000b.toml"\n[procs.a]\ncmd = "true"\n')
    assert str(exc).startswith(f"{path}:1: include: no such cast file 'a\\x00b.toml'"), exc

