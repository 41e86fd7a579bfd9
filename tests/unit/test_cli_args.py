"""The command line: options and arguments in any order, usage errors said by the command
that has them (status 2), and values checked before anything starts."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipeplex.cli import _command_parser, main


def _usage_error(capsys: pytest.CaptureFixture[str], *words: str) -> str:
    with pytest.raises(SystemExit) as exited:
        main(list(words))
    assert exited.value.code == 2
    return capsys.readouterr().err


def test_options_and_arguments_come_in_any_order(tmp_path: Path) -> None:
    run = _command_parser("run").parse_words(
        ["-p", "a=echo one", "cast.toml", "--grace", "0.5", "--proc=b=echo two", "--no-color"])
    assert run.procs == ["a=echo one", "b=echo two"]
    assert run.cast_file == Path("cast.toml")
    assert run.grace == 0.5 and run.no_color
    send = _command_parser("send").parse_words(
        ["srv", "hello", "--run-dir", str(tmp_path), "world", "-n"])
    assert (send.name, send.text, send.run_dir, send.no_newline) == (
        "srv", ["hello", "world"], tmp_path, True)


def test_everything_after_a_double_dash_is_an_argument_even_a_double_dash() -> None:
    send = _command_parser("send")
    after_name = send.parse_words(["srv", "--", "-v", "--eof"])
    assert after_name.text == ["-v", "--eof"] and not after_name.eof
    before_name = send.parse_words(["--run-dir", "R", "--", "srv", "--eof", "--run-dir", "S"])
    assert before_name.name == "srv" and before_name.text == ["--eof", "--run-dir", "S"]
    assert before_name.run_dir == Path("R") and not before_name.eof
    assert send.parse_words(["srv", "--", "a", "--", "b"]).text == ["a", "--", "b"]
    assert send.parse_words(["srv", "--", "--"]).text == ["--"]
    run = _command_parser("run").parse_words(["-p", "a=true", "--", "-odd.toml"])
    assert run.cast_file == Path("-odd.toml")


def test_a_double_dash_right_after_the_command_ends_its_options(
        capsys: pytest.CaptureFixture[str], tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """send -- srv --eof --run-dir R: the text "--eof --run-dir R" to srv of the run of this
    folder (none here: status 4), not an end of input for srv of the run at R."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path))
    with pytest.raises(SystemExit) as exited:
        main(["send", "--", "srv", "--eof", "--run-dir", str(tmp_path / "R")])
    assert exited.value.code == 4
    assert "/R" not in capsys.readouterr().err


def test_an_option_takes_the_next_word_whatever_it_is() -> None:
    """As getopt does: ``--run-dir --`` names a folder called ``--``; ``--proc=--`` too."""
    send = _command_parser("send").parse_words(["srv", "--run-dir", "--", "x"])
    assert (send.run_dir, send.text) == (Path("--"), ["x"])
    run = _command_parser("run").parse_words(["--proc=--", "-p", "", "-p=x", "-pa=b"])
    assert run.procs == ["--", "", "=x", "a=b"]


def test_an_option_value_may_start_with_a_dash() -> None:
    run = _command_parser("run").parse_words(
        ["--run-dir", "-odd", "-p", "-x", "--transcript", "-t.jsonl", "--grace", "1"])
    assert (run.run_dir, run.procs, run.transcript, run.grace) == (
        Path("-odd"), ["-x"], Path("-t.jsonl"), 1.0)
    assert _command_parser("attach").parse_words(["--name", "-x"]).name == "-x"


@pytest.mark.parametrize("command", ["run", "demo", "attach", "test", "replay"])
def test_every_command_that_colours_takes_no_color(command: str, tmp_path: Path) -> None:
    given = tmp_path / "given"
    given.write_text("")
    arguments = [str(given)] if command in ("test", "replay") else []
    assert _command_parser(command).parse_words(["--no-color", *arguments]).no_color


@pytest.mark.parametrize(("command", "said"), [
    ("run", "without colour, members get NO_COLOR=1"),
    ("demo", "without colour, members get NO_COLOR=1"),
    ("test", "members get NO_COLOR=1 whatever it is"),  # (a test reads the same everywhere)
    ("attach", "colour names, marks and notes (auto:"),  # (it starts no member)
    ("replay", "colour names, marks and notes (auto:"),
])
def test_the_help_says_what_colour_means_for_the_members(command: str, said: str) -> None:
    help_text = " ".join(_command_parser(command).format_help().split())
    assert said in help_text


def test_the_help_names_the_run_folders_default_as_the_docs_do() -> None:
    help_text = " ".join(_command_parser("run").format_help().split())
    assert "under $XDG_RUNTIME_DIR/pipeplex or $TMPDIR/pipeplex-UID)" in help_text


def test_the_help_of_list_says_it_follows_lf_too() -> None:
    """--list prints what --lf would run as well as what -k would (docs/cli.md)."""
    help_text = " ".join(_command_parser("test").format_help().split())
    assert "would run (after -k and --lf)" in help_text


def test_an_option_before_the_command_is_named(capsys: pytest.CaptureFixture[str]) -> None:
    assert "unknown option '--bogus'" in _usage_error(capsys, "--bogus", "run")


def test_a_reader_that_leaves_early_ends_the_command_quietly(tmp_path: Path) -> None:
    """``pipeplex replay T | head -1``: no traceback from the closed pipe."""
    import json
    import subprocess
    import sys

    transcript = tmp_path / "t.jsonl"
    transcript.write_text("".join(json.dumps({"t": 1.0, "p": "a", "s": "out", "d": f"{i}\n"})
                                  + "\n" for i in range(20000)))
    replay = subprocess.Popen([sys.executable, "-m", "pipeplex", "replay", str(transcript)],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert replay.stdout is not None and replay.stderr is not None
    assert replay.stdout.readline() == b"a | 0\n"
    replay.stdout.close()  # more than a pipe's worth is still to come: its next write fails
    err = replay.stderr.read()
    replay.stderr.close()
    assert replay.wait(timeout=60) == 1
    assert err == b""


def test_a_usage_error_is_said_by_the_command_that_has_it(
        capsys: pytest.CaptureFixture[str]) -> None:
    err = _usage_error(capsys, "run", "-p", "a=true", "--bogus")
    assert "pipeplex run: error: unrecognized arguments: --bogus" in err
    err = _usage_error(capsys, "run", "-p")
    assert "pipeplex run: error: argument -p/--proc: expected one argument" in err


def test_long_options_are_never_guessed_from_a_prefix(capsys: pytest.CaptureFixture[str]) -> None:
    assert "unrecognized arguments: --pro" in _usage_error(capsys, "run", "--pro", "a=true")


@pytest.mark.parametrize(
    ("words", "said"),
    [
        (["stauts"], "no command 'stauts'; did you mean 'status'?"),
        (["run", "-p", "a=true", "--no-colour"],
         "unrecognized arguments: --no-colour; did you mean --no-color?"),
        (["send", "a", "--run-dri=R"],
         "unrecognized arguments: --run-dri=R; did you mean --run-dir?"),
        (["status", "--zzzz"], "unrecognized arguments: --zzzz\n"),
        (["run", "-p", "web=python3", "-m", "http.server"], "unrecognized arguments: -m; a -p "
         "command of several words is one argument: quote it whole (-p 'web=python3 -m "
         "http.server')\n"),
        (["run", "a.toml", "b.toml"], "unrecognized arguments: b.toml; a run takes one cast "
         "file: put the members of several in one (pipeplex test takes several scenario "
         "files)\n"),
        (["--verison"], "unknown option '--verison'; did you mean --version? (a command's"),
        (["--run-dir", "R", "status"], "unknown option '--run-dir' (a command's options come"),
        # What was meant is clear: run's options, or a cast file, or a folder of scenarios.
        (["-p", "a=cat", "-p", "b=echo hi"],
         "unknown option '-p'; did you mean pipeplex run -p a=cat -p 'b=echo hi'?"),
        (["web.toml"], "no command 'web.toml'; did you mean pipeplex run web.toml (or pipeplex "
         "test, for a scenario)?"),
        (["/"], "no command '/'; did you mean pipeplex test /, to run the scenarios in it?"),
        # A word typed on a Latin-1 terminal (not UTF-8), shown as the byte typed.
        (["st\udcff"], "no command 'st\\xff'"),
        (["status", "x\udcff"], "unrecognized arguments: x\\xff\n"),
    ],
)
def test_a_mistyped_command_or_option_gets_the_close_one_named(
        capsys: pytest.CaptureFixture[str], words: list[str], said: str) -> None:
    assert said in _usage_error(capsys, *words)


@pytest.mark.parametrize(
    ("words", "said"),
    [
        (["run", "-p", "a=true", "--grace", "0"],
         "'0' is not a number of seconds from 0.001 to below 1e9; for next to no wait, give a "
         "short one such as 0.1"),
        (["run", "-p", "a=true", "--grace", "1e-300"],
         "'1e-300' is not a number of seconds from 0.001 to below 1e9"),
        (["run", "-p", "a=true", "--grace", "soon"], "'soon' is not a number of seconds"),
        (["run", "-p", "a=true", "--grace", "500ms"],
         "'500ms' is not a number of seconds; write 0.5 (seconds, without a unit)"),
        (["run", "-p", "a=true", "--stop-signal", "TSTP"],
         "argument --stop-signal: TSTP would suspend a member rather than stop it"),
        (["run", "-p", "a=true", "--color", "blue"], "invalid choice: 'blue'"),
        (["signal", "a", "BOGUS"], "unknown signal 'BOGUS'"),
        (["replay", "/nonexistent/t.jsonl"], "'/nonexistent/t.jsonl' does not exist"),
        (["bogus"], "no command 'bogus' (valid: run, demo, send, status,"),
        (["send"], "the following arguments are required: NAME"),
    ],
)
def test_bad_values_are_usage_errors_naming_the_value(
        capsys: pytest.CaptureFixture[str], words: list[str], said: str) -> None:
    assert said in _usage_error(capsys, *words)


def test_a_folder_is_no_cast_file_and_a_file_no_run_folder(
        capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    err = _usage_error(capsys, "run", str(tmp_path))
    assert f"argument CAST_FILE: '{tmp_path}' is a folder, not a file" in err
    plain = tmp_path / "plain"
    plain.write_text("")
    err = _usage_error(capsys, "status", "--run-dir", str(plain))
    assert f"argument --run-dir: '{plain}' is a file, not a folder" in err


def test_no_command_shows_the_commands(capsys: pytest.CaptureFixture[str]) -> None:
    err = _usage_error(capsys)
    for command in ("run", "send", "status", "signal", "restart", "stop", "attach", "test",
                    "replay", "demo"):
        assert f"\n  {command} " in err


def test_the_client_commands_load_neither_the_engine_nor_the_cast() -> None:
    """``pipeplex send`` in a script's loop pays for its imports at each call."""
    import subprocess
    import sys

    code = ("import sys; from pipeplex import cli; cli._command_parser('send'); "
            "print(sorted(m for m in sys.modules if m.startswith(('pipeplex.cast', "
            "'pipeplex.engine', 'asyncio', 'click'))))")
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            check=True, timeout=60).stdout.strip()
    assert loaded == "[]"
