"""What a cast cannot be turned into: captured values that run as shell code, records
written through planted links, and mistakes that surface only once members run."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from .helpers import run

HOSTILE = ("x; touch M1 $(touch M2) `touch M3` ' ; touch M4 ; ' \" ; touch M5 ; \" "
           "& touch M6 | touch M7 > M8 end")


def _toml(value: str) -> str:
    return json.dumps(value)  # a JSON string is a TOML basic string


def test_captured_value_never_runs_in_a_shell_command(tmp_path: Path, run_dir: Path) -> None:
    """A server prints shell syntax where a variable is captured: the client's shell
    command gets it as data, unquoted or between double quotes, and runs none of it."""
    work = tmp_path / "work"
    work.mkdir()
    server = tmp_path / "server.py"
    server.write_text(f"import sys\nprint('hello ' + {HOSTILE!r}, flush=True)\nsys.stdin.read()\n")
    cast = tmp_path / "cast.toml"
    cast.write_text(
        "[procs.server]\n"
        f"cmd = [{_toml(sys.executable)}, {_toml(str(server))}]\n"
        "ready = 'hello (?P<who>.+)'\n"
        "[procs.client]\n"
        "cmd = '''printf 'got:%s|%s\\n' {who} \"{who}\"'''\n"
        "shell = true\n"
        'after = ["server"]\n'
    )
    result = run("run", cast, "--run-dir", run_dir, "--no-console", cwd=work)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"client | got:{HOSTILE}|{HOSTILE}\n" in result.stdout
    assert sorted(p.name for p in work.iterdir()) == []


# One line a server prints: a value of each kind, for the clients below.
VALUES_LINE = f"hello {HOSTILE} a[1] tmp=* port=8080"
CLIENTS = {
    "sh-without-shell-true": (
        "cmd = " + _toml("sh -c 'printf \"got:[%s]\\n\" \"{who}\"'") + "\n",
        [f"client | got:[{HOSTILE} a[1]]"]),
    "bash-list-without-shell-true": (
        "cmd = [" + ", ".join(map(_toml, ["bash", "-c", "printf 'got:[%s]\\n' {who}"])) + "]\n",
        [f"client | got:[{HOSTILE} a[1]]"]),
    "here-document-then-rm": (
        "cmd = " + _toml("cat <<EOF\nit's cleaning up\nEOF\nrm -f -- \"{tmp}\"   # that's the "
                         "temp file\nprintf 'left:%s\\n' *\n") + "\nshell = true\n",
        ["client | it's cleaning up", "client | left:keep"]),
    "arithmetic-for-an-inner-shell": (
        "cmd = " + _toml("sh -c 'echo next: $(( {port} + 1 ))'") + "\nshell = true\n",
        ["client | next: 8081"]),
    "python-reads-its-environment": (
        "cmd = [" + ", ".join(map(_toml, [
            sys.executable, "-c", "import os; print('hello', os.environ['WHO'])"])) + "]\n"
        'env = { WHO = "{who}" }\n',
        [f"client | hello {HOSTILE} a[1]"]),
}


@pytest.mark.parametrize(("client", "lines"), CLIENTS.values(), ids=CLIENTS.keys())
def test_captured_value_never_runs_in_a_shell_script(
    tmp_path: Path, run_dir: Path, client: str, lines: list[str]
) -> None:
    """A server prints shell syntax and a ``*`` where variables are captured: a shell the
    client runs, with or without shell = true, gets them as data, in an inner shell, after
    a here-document, in arithmetic; nothing runs, nothing is globbed or removed."""
    work = tmp_path / "work"
    work.mkdir()
    (work / "keep").write_text("")
    cast = _values_cast(tmp_path, client)
    result = run("run", cast, "--run-dir", run_dir, "--no-console", cwd=work)
    assert result.returncode == 0, result.stdout + result.stderr
    output = [line for line in result.stdout.splitlines() if line.startswith("client | ")]
    assert output == lines
    assert sorted(p.name for p in work.iterdir()) == ["keep"]


def test_value_that_is_not_a_number_never_reaches_arithmetic(
    tmp_path: Path, run_dir: Path
) -> None:
    """bash evaluates the text of a value in arithmetic (a[$(cmd)] runs cmd): a member that
    would get anything but a whole number there does not start, and says why."""
    work = tmp_path / "work"
    work.mkdir()
    cast = _values_cast(tmp_path, "cmd = ['bash', '-c', 'echo $(( {who} + 1 ))']\n")
    result = run("run", cast, "--run-dir", run_dir, "--no-console", cwd=work)
    assert result.returncode == 127, result.stdout + result.stderr
    assert ("client: cannot start \"bash -c 'echo $(( {who} + 1 ))'\": {who} is used in "
            "$((...)), where the shell evaluates its text, and its value") in result.stdout
    assert "client * started" not in result.stdout
    assert sorted(p.name for p in work.iterdir()) == []


def _values_cast(folder: Path, client: str) -> Path:
    """A cast whose server prints VALUES_LINE, and whose client is ``client`` (TOML)."""
    server = folder / "server.py"
    server.write_text(f"import sys\nprint({VALUES_LINE!r}, flush=True)\nsys.stdin.read()\n")
    cast = folder / "cast.toml"
    cast.write_text(
        "[procs.server]\n"
        f"cmd = [{_toml(sys.executable)}, {_toml(str(server))}]\n"
        "ready = 'hello (?P<who>.+) tmp=(?P<tmp>\\S+) port=(?P<port>\\d+)$'\n"
        "[procs.client]\n"
        f"{client}"
        'after = ["server"]\n'
    )
    return cast


def test_transcript_through_a_planted_link_is_refused(tmp_path: Path, run_dir: Path) -> None:
    """--transcript at a symbolic link: status 2 before anything starts, the file it points
    to left as it was."""
    victim = tmp_path / "victim"
    victim.write_text("original\n")
    victim.chmod(0o644)
    link = tmp_path / "t.jsonl"
    link.symlink_to(victim)
    result = run("run", "-p", "a=echo secret", "--transcript", link, "--run-dir", run_dir,
                 "--no-console")
    assert result.returncode == 2
    assert result.stderr == (f"pipeplex: error: cannot write the transcript {link}: it is a "
                             "symbolic link, which pipeplex does not follow; remove it, or give "
                             "another file\n")
    assert "started" not in result.stdout
    assert not run_dir.exists()
    assert victim.read_text() == "original\n"
    assert victim.stat().st_mode & 0o777 == 0o644


def test_log_through_a_planted_link_is_refused(tmp_path: Path, run_dir: Path) -> None:
    """--log-dir with a symbolic link as a member's log: the run says so and goes on, and
    the file it points to is left as it was."""
    victim = tmp_path / "victim"
    victim.write_text("original\n")
    victim.chmod(0o644)
    logs = tmp_path / "logs"
    logs.mkdir()
    (logs / "a.log").symlink_to(victim)
    result = run("run", "-p", "a=echo secret", "--log-dir", logs, "--run-dir", run_dir,
                 "--no-console")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "a | secret" in result.stdout
    assert (f"cannot write the log {logs / 'a.log'}: it is a symbolic link, which pipeplex "
            "does not follow") in result.stdout
    assert victim.read_text() == "original\n"
    assert victim.stat().st_mode & 0o777 == 0o644


def test_missing_cwd_of_a_member_with_variables_is_reported_before_start(
    tmp_path: Path, run_dir: Path
) -> None:
    """The cwd of a member whose command uses a variable is checked before anything starts,
    with the file and line."""
    cast = tmp_path / "cast.toml"
    cast.write_text(
        "[procs.server]\n"
        "cmd = ['sh', '-c', 'echo port 5; sleep 100']\n"
        "ready = 'port (?P<port>\\d+)'\n"
        "\n"
        "[procs.client]\n"
        'cmd = "echo {port}"\n'
        'cwd = "no-such-folder"\n'
        'after = ["server"]\n'
    )
    result = run("run", cast, "--run-dir", run_dir, "--no-console")
    assert result.returncode == 2
    assert result.stderr == (f"pipeplex: error: {cast}:7: client: cwd "
                             f"{str(tmp_path / 'no-such-folder')!r} is not a folder\n")
    assert "started" not in result.stdout


def test_env_name_with_equals_is_reported_before_start(tmp_path: Path, run_dir: Path) -> None:
    """An env name the environment cannot hold is refused at load, with its line."""
    cast = tmp_path / "cast.toml"
    cast.write_text('[procs.a]\ncmd = "echo"\nenv = {"A=B" = "x"}\n')
    result = run("run", cast, "--run-dir", run_dir, "--no-console")
    assert result.returncode == 2
    assert result.stderr == (f"pipeplex: error: {cast}:3: a: env variable name 'A=B' contains "
                             "'=', which no variable name may hold\n")


def test_a_value_with_a_command_in_a_subscript_is_not_given_to_a_shell(
    tmp_path: Path, run_dir: Path
) -> None:
    """a[$(cmd)] runs cmd wherever bash evaluates the value in arithmetic, seen or not:
    a shell script never gets such a value; its member does not start, and says why."""
    server = tmp_path / "server.py"
    server.write_text("import sys\nprint('v=a[$(touch PWNED)]', flush=True)\n"
                      "sys.stdin.read()\n")
    cast = tmp_path / "cast.toml"
    cast.write_text(f"[procs.server]\ncmd = [{_toml(sys.executable)}, {_toml(str(server))}]\n"
                    "ready = 'v=(?P<v>.*)'\n"
                    "[procs.client]\ncmd = 'X={v}; echo $((X + 1))'\nshell = true\n"
                    "after = ['server']\n")
    work = tmp_path / "work"
    work.mkdir()
    result = run("run", cast, "--run-dir", run_dir, "--no-console", cwd=work)
    assert result.returncode == 127, result.stdout + result.stderr
    assert "an array subscript with a command in it" in result.stdout
    assert sorted(p.name for p in work.iterdir()) == []
