"""Scenarios through the real CLI: pipeplex test, golden files, JUnit, transcripts, replay."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from .helpers import DEADLINE, PIPEPLEX, Pipeplex, run

EXAMPLES = Path(__file__).parents[2] / "examples"


@pytest.fixture(autouse=True)
def venv_python_first(monkeypatch: pytest.MonkeyPatch) -> None:
    """Example scenarios run `python3`; make it the Python that has pipeplex installed."""
    monkeypatch.setenv("PATH", f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")


def _scenario(tmp_path: Path, body: str, name: str = "case.toml") -> Path:
    path = tmp_path / name
    path.write_text(body)
    return path


CAT = '[procs.c]\ncmd = "cat"\n'


@pytest.mark.parametrize("example", sorted(p.name for p in EXAMPLES.glob("*.toml")))
def test_example_scenarios_pass(example: str) -> None:
    """Every scenario shipped in examples/ passes."""
    if example == "repl.toml" and shutil.which("sqlite3") is None:
        pytest.skip("sqlite3 is not installed")
    result = run("test", "-v", EXAMPLES / example, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 passed, 0 failed" in result.stdout


def test_a_big_cast_passes_under_a_low_soft_limit_on_descriptors(tmp_path: Path) -> None:
    """pipeplex run lifts its soft limit for a big cast; pipeplex test did not, and the same
    file failed there with "Too many open files" as if a member were at fault."""
    import resource

    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard < 1024:
        pytest.skip(f"the hard limit on descriptors ({hard}) is too low to be lifted to")
    case = _scenario(tmp_path, "".join(f'[procs.m{i}]\ncmd = "cat"\n' for i in range(40))
                     + "[[step]]\nsend = 'hi'\nto = 'm39'\n[[step]]\nexpect = '^hi$'\n"
                       "in = 'm39'\n")
    result = subprocess.run(["sh", "-c", 'ulimit -Sn 64 && exec "$@"', "sh", *PIPEPLEX, "test",
                             str(case)], stdin=subprocess.DEVNULL, capture_output=True,
                            text=True, timeout=DEADLINE)
    assert result.returncode == 0, result.stdout + result.stderr


GOLDEN_INTERRUPTED = """\
import asyncio, os, signal, sys, threading
from pathlib import Path
from pipeplex.scenario import suite
from pipeplex.test_mode.command import run_tests

compare = suite._check_golden

def interrupted_meanwhile(*args):
    # A Ctrl-C comes as the golden text is compared; the comparison goes on until the loop
    # has taken it in (a loop that is busy comparing never does: a deadline ends the wait).
    os.kill(os.getpid(), signal.SIGINT)
    heard = threading.Event()
    loop.call_soon_threadsafe(heard.set)
    print("loop free:", heard.wait(10), flush=True)
    return compare(*args)

suite._check_golden = interrupted_meanwhile
loop = None
real_run = asyncio.run

def run(main, **kwargs):
    global loop
    async def with_loop():
        global loop
        loop = asyncio.get_running_loop()
        return await main
    return real_run(with_loop(), **kwargs)

asyncio.run = run
run_tests([Path(p) for p in sys.argv[1:]], verbose=True, junit=None, transcript=None,
          log_dir=None, update=False, grace=5.0, color="never")
"""


def test_a_ctrl_c_as_a_golden_file_is_compared_ends_the_run_interrupted(
        tmp_path: Path) -> None:
    """The golden text of a long run (a million lines) takes seconds to build and compare,
    and that was done in the loop: a Ctrl-C meanwhile was never heard (the run passed, with
    status 0), or was laid on the next file once it started. The comparison now leaves the
    loop free: the Ctrl-C ends the run with 130, naming this file, and no other runs."""
    case = _scenario(tmp_path, 'golden = "case.golden"\n' + CAT
                     + "[[step]]\nsend = 'x'\nto = 'c'\n[[step]]\nexpect = '^x$'\nin = 'c'\n")
    other = _scenario(tmp_path, CAT, "other.toml")
    assert run("test", "--update", case).returncode == 0
    result = subprocess.run([sys.executable, "-c", GOLDEN_INTERRUPTED, str(case), str(other)],
                            capture_output=True, text=True, timeout=DEADLINE)
    assert result.returncode == 130, result.stdout + result.stderr
    assert "loop free: True" in result.stdout, result.stdout
    assert f"INTERRUPTED {case}" in result.stdout and str(other) not in result.stdout, \
        result.stdout


def test_a_ctrl_c_in_the_stop_after_a_failed_step_keeps_the_failure(tmp_path: Path) -> None:
    """A step failed, and a Ctrl-C came as its member (which ignores SIGTERM) was stopped:
    the report said only "interrupted after its steps", and the failed step, its file and
    line were nowhere."""
    case = _scenario(tmp_path, '[procs.a]\ncmd = "sh -c \'trap \\"\\" TERM; echo up; '
                     'while :; do sleep 1; done\'"\nstop_timeout = 30\n'
                     "[[step]]\nexpect = 'never'\nin = 'a'\ntimeout = 0.2\n")
    with Pipeplex("test", "-v", case) as test:
        test.expect(r"FAIL .* expect 'never' in a")  # (its stop, 30 s of grace, begins)
        test.signal(signal.SIGINT)
        assert test.wait() == 130, test.text
    assert re.search(rf"^  {re.escape(str(case))}:5: expect 'never' in a: not seen within "
                     r"0\.2 s$", test.text, re.MULTILINE), test.text
    assert ("interrupted by SIGINT as its members were stopped after that failure: its "
            "members were killed") in test.text, test.text


def test_a_passing_and_a_failing_scenario(tmp_path: Path) -> None:
    """A dot per pass, F per failure, the evidence, a summary, and exit 1."""
    good = _scenario(tmp_path, CAT + '[[step]]\nsend = "hi"\nto = "c"\n[[step]]\nexpect = "^hi$"\n',
                     "good.toml")
    bad = _scenario(tmp_path, CAT + '[[step]]\nsend = "hi"\nto = "c"\n'
                    '[[step]]\nexpect = "^bye$"\nin = "c"\ntimeout = 0.3\n', "bad.toml")
    result = run("test", good, bad)
    assert result.returncode == 1, result.stdout
    assert ".F" in result.stdout
    assert f"{bad}:7: expect '^bye$' in c: not seen within 0.3 s" in result.stdout
    assert "last output of c:" in result.stdout
    assert "    | hi" in result.stdout
    assert "1 passed, 1 failed" in result.stdout


def test_a_password_a_step_sends_is_kept_out_of_every_record(tmp_path: Path) -> None:
    """A send step that answers a password prompt (getpass, on a full terminal) is shown as
    stars wherever the step is said: -v, the transcript's step notes, JUnit; as its input
    record is. (A failing step after it puts it in the failure report too.)"""
    login = ("import getpass\np = getpass.getpass('Password: ')\n"
             "print('ok' if p[::-1] == '2retnuh' else 'bad', flush=True)\ninput()")
    case = _scenario(tmp_path, f'[procs.login]\ncmd = {json.dumps([sys.executable, "-c", login])}\n'
                     'pty = true\n[[step]]\nexpect = "Password: $"\nin = "login"\n'
                     '[[step]]\nsend = "hunter2"\nto = "login"\n'
                     '[[step]]\nexpect = "^ok"\nin = "login"\n'
                     '[[step]]\nexpect = "^never"\nin = "login"\ntimeout = 0.2\n')
    junit, transcript = tmp_path / "report.xml", tmp_path / "t.jsonl"
    result = run("test", "-v", case, "--junit", junit, "--transcript", transcript)
    assert result.returncode == 1, result.stdout
    assert "send '*******' to login" in result.stdout, result.stdout
    for said in (result.stdout, result.stderr, junit.read_text(), transcript.read_text()):
        assert "hunter2" not in said, said
    assert "send '*******' to login: ok" in transcript.read_text()


def test_a_password_sent_to_all_also_reaching_a_plain_member_is_warned_of(
        tmp_path: Path) -> None:
    """The step is said in stars, but a member that reads it as text keeps it in its input
    record and its echo: said, with the fix."""
    # (Both read to their end: two that fail at the stop's EOF are judged by which ended
    # first, and this test is about the warning.)
    login = ("import getpass, sys\np = getpass.getpass('Password: ')\n"
             "print('ok', len(p), flush=True)\nsys.stdin.read()")
    other = "import sys\nprint('got', len(sys.stdin.readline()), flush=True)\nsys.stdin.read()"
    commands = [json.dumps([sys.executable, "-c", code]) for code in (login, other)]
    case = _scenario(tmp_path, f"[procs.login]\ncmd = {commands[0]}\n"
                     f"pty = true\n[procs.other]\ncmd = {commands[1]}\n"
                     '[[step]]\nexpect = "Password: $"\nin = "login"\n'
                     '[[step]]\nsend = "hunter2"\nto = "all"\n'
                     '[[step]]\nexpect = "^ok 7"\nin = "login"\n')
    result = run("test", "-v", case)
    assert result.returncode == 0, result.stdout
    assert (f"{case}:10: the password sent to all also reaches other, which reads it as "
            "text: its records and echo keep it; send it to login alone") in result.stderr, \
        result.stderr


def test_several_failures_end_with_a_line_each(tmp_path: Path) -> None:
    """Where one looks at the end of a long report, as in pytest's short summary: each
    failed scenario's first line (which step, and why), just above the counts."""
    bad = CAT + '[[step]]\nexpect = "^bye$"\nin = "c"\ntimeout = 0.2\n'
    first, second = _scenario(tmp_path, bad, "a.toml"), _scenario(tmp_path, bad, "b.toml")
    result = run("test", first, _scenario(tmp_path, CAT, "ok.toml"), second)
    assert result.returncode == 1
    assert (f"\n\nFAILED {first}:4: expect '^bye$' in c: not seen within 0.2 s\n"
            f"FAILED {second}:4: expect '^bye$' in c: not seen within 0.2 s\n"
            "1 passed, 2 failed in ") in result.stdout, result.stdout[-300:]
    assert "pty = true gives it one" not in result.stdout  # (^bye$ is no prompt)


def test_a_folder_runs_each_scenario_file_in_it_and_its_subfolders(tmp_path: Path) -> None:
    """As pytest collects a folder: its .toml files and its subfolders', in name order;
    hidden ones, other files and a file named already are left out."""
    scenarios = tmp_path / "scenarios"
    (scenarios / "chat").mkdir(parents=True)
    (scenarios / ".cache").mkdir()
    passing = CAT + '[[step]]\nsend = "hi"\nto = "c"\n[[step]]\nexpect = "^hi$"\n'
    _scenario(scenarios / "chat", passing, "b.toml")
    _scenario(scenarios, passing, "a.toml")
    (scenarios / "notes.txt").write_text("not a scenario")
    _scenario(scenarios / ".cache", "not toml at all [", "x.toml")
    result = run("test", "-v", scenarios / "a.toml", scenarios)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "2 passed, 0 failed" in result.stdout
    shown = result.stdout
    assert shown.index(str(scenarios / "a.toml")) < shown.index(str(scenarios / "chat" / "b.toml"))


def test_a_folder_with_no_scenario_file_is_a_usage_error(tmp_path: Path) -> None:
    (tmp_path / "readme.txt").write_text("")
    result = run("test", tmp_path)
    assert result.returncode == 2
    assert result.stderr == f"pipeplex: error: {str(tmp_path)!r} holds no .toml file to test\n"


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to run as another user")
def test_a_folder_or_a_file_that_cannot_be_read_is_said_not_skipped() -> None:
    """A subfolder os.walk could not list was left out without a word, and the run passed;
    a file below a folder that cannot be entered was a traceback."""
    if shutil.which("setpriv") is None:
        pytest.skip("setpriv is not installed")
    with tempfile.TemporaryDirectory(prefix="pipeplex-test-") as place:  # (others may enter)
        os.chmod(place, 0o755)
        _unreadable_for_nobody(Path(place))


def _unreadable_for_nobody(place: Path) -> None:
    scenarios = place / "scenarios"
    (scenarios / "locked").mkdir(parents=True, mode=0o755)
    _scenario(scenarios, CAT, "a.toml").chmod(0o644)
    _scenario(scenarios / "locked", CAT, "b.toml")
    (scenarios / "locked").chmod(0o700)
    nobody = ["setpriv", "--reuid", "65534", "--regid", "65534", "--clear-groups"]
    as_nobody = [*nobody, *PIPEPLEX, "test"]
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parents[2] / "src")}
    # An interpreter below a folder of root's (pyenv's in /root) cannot be run by another
    # user at all: the loader cannot reach its libpython, or the kernel its binary.
    probe = subprocess.run([*nobody, sys.executable, "-S", "-c", "pass"],
                           capture_output=True, text=True, stdin=subprocess.DEVNULL,
                           timeout=60, env=env)
    if probe.returncode != 0:
        pytest.skip(f"this Python cannot be run by another user: {probe.stderr.strip()}")
    folder = subprocess.run([*as_nobody, str(scenarios)], capture_output=True, text=True,
                            stdin=subprocess.DEVNULL, timeout=60, env=env)
    assert folder.returncode == 2, folder.stdout + folder.stderr
    assert folder.stderr == (f"pipeplex: error: cannot read the folder "
                             f"{str(scenarios / 'locked')!r}: Permission denied\n")
    below = subprocess.run([*as_nobody, str(scenarios / "locked" / "b.toml")],
                           capture_output=True, text=True, stdin=subprocess.DEVNULL,
                           timeout=60, env=env)
    assert "Traceback" not in below.stderr, below.stderr
    assert below.returncode == 2, below.stdout + below.stderr


def test_silence_through_a_pipe_is_said_to_be_maybe_a_buffer(tmp_path: Path) -> None:
    """pty = false and nothing seen: the program may have written into its own buffer."""
    buffered = json.dumps([sys.executable, "-c", "import sys; print('ready'); sys.stdin.read()"])
    steps = '[[step]]\nexpect = "^ready$"\nin = "s"\ntimeout = 0.3\n'
    case = _scenario(tmp_path, f"[procs.s]\ncmd = {buffered}\npty = false\n"
                     f"env = {{ PYTHONUNBUFFERED = '' }}\n{steps}")
    result = run("test", case)
    assert result.returncode == 1, result.stdout
    assert ("s wrote nothing (its output is a pipe (pty = false), and a program that buffers "
            'its output off a terminal shows nothing until it flushes; pty = "stdout" gives '
            "it one)") in result.stdout
    on_a_terminal = _scenario(tmp_path, f"[procs.s]\ncmd = {buffered}\n"
                              f"env = {{ PYTHONUNBUFFERED = '' }}\n{steps}", "pty.toml")
    assert run("test", on_a_terminal).returncode == 0


def test_silence_of_the_latest_run_is_explained_after_an_earlier_run_spoke(
        tmp_path: Path) -> None:
    """The hint looks at the run awaited: an earlier run's lines do not hide it."""
    script = tmp_path / "twice.py"
    script.write_text("import pathlib, sys\n"
                      f"again = pathlib.Path({str(tmp_path / 'again')!r})\n"
                      "if not again.exists():\n    print('first', flush=True)\n"
                      "again.touch()\nsys.stdin.read()\n")
    case = _scenario(tmp_path, f"[procs.s]\ncmd = {json.dumps([sys.executable, str(script)])}\n"
                     "pty = 'stdout'\n"
                     "[[step]]\nexpect = '^first$'\nin = 's'\n[[step]]\nrestart = 's'\n"
                     "[[step]]\nexpect = 'sqlite> $'\nin = 's'\ntimeout = 0.3\n")
    result = run("test", case)
    assert result.returncode == 1, result.stdout
    assert ("wrote nothing in its latest run (a program that prompts only when its stdin is a "
            "terminal") in result.stdout, result.stdout


def test_members_get_the_same_terminal_type_wherever_the_test_runs(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """TERM=dumb (and NO_COLOR=1), not the caller's xterm: ls and grep would colour, and
    readline add bracketed-paste sequences, on a developer's terminal and not in CI."""
    monkeypatch.setenv("TERM", "xterm-256color")
    case = _scenario(tmp_path, (
        '[procs.a]\ncmd = "sh -c \'echo term=$TERM color=$NO_COLOR; exec cat\'"\n'
        '[procs.b]\ncmd = "sh -c \'echo term=$TERM; exec cat\'"\nenv = { TERM = "vt100" }\n'
        '[[step]]\nexpect = \'^term=dumb color=1$\'\nin = "a"\n'
        '[[step]]\nexpect = \'^term=vt100$\'\nin = "b"\n'))
    result = run("test", case)
    assert result.returncode == 0, result.stdout + result.stderr


def _ipv6_loopback() -> bool:
    import socket

    try:
        with socket.socket(socket.AF_INET6) as probe:
            probe.bind(("::1", 0))
    except OSError:
        return False
    return True


@pytest.mark.skipif(not _ipv6_loopback(), reason="no IPv6 loopback here")
def test_a_port_is_waited_for_on_either_loopback_address(tmp_path: Path) -> None:
    """A server told to listen on localhost takes ::1 on many systems (node from 17 on):
    ready_port and wait_port take a connection there as one on 127.0.0.1."""
    server = ("import socket; s = socket.socket(socket.AF_INET6); s.bind(('::1', 0)); "
              "print('port', s.getsockname()[1], flush=True); s.listen(); "
              "[s.accept()[0].close() for _ in range(2)]; print('served', flush=True)")
    case = _scenario(tmp_path, (
        f'[procs.v6]\ncmd = {json.dumps([sys.executable, "-c", server])}\n'
        "ready = 'port (?P<port>\\d+)'\nready_port = \"{port}\"\nready_timeout = 30\n"
        '[[step]]\nwait_port = "{port}"\n'
        "[[step]]\nexpect = '^served$'\n"))
    result = run("test", case)
    assert result.returncode == 0, result.stdout + result.stderr


def test_a_python_repl_scenario_in_the_default_mode(tmp_path: Path) -> None:
    """python -i writes its prompts to stderr, its answers to stdout, and prompts again
    after a line that prints nothing: each prompt and each answer is a line of its own."""
    case = _scenario(tmp_path, (
        f'[procs.py]\ncmd = {json.dumps([sys.executable, "-i", "-q"])}\n'
        'env = { PYTHONSTARTUP = "" }\n'
        "[[step]]\nexpect = '^>>> $'\n"
        '[[step]]\nsend = "x = 6 * 7"\nto = "py"\n'
        "[[step]]\nexpect = '^>>> $'\n"
        '[[step]]\nsend = "print(f\'x={x}\')"\nto = "py"\n'
        "[[step]]\nexpect = '^x=(?P<x>\\d+)$'\n"
        "[[step]]\nexpect = '^>>> $'\n"
        '[[step]]\nsend = "print({x} + 1)"\nto = "py"\n'
        "[[step]]\nexpect = '^43$'\n"))
    result = run("test", "-v", case)
    assert result.returncode == 0, result.stdout + result.stderr


def test_a_member_dying_fails_the_step_at_once(tmp_path: Path) -> None:
    """An expectation on a member that exits fails with its exit code, not a timeout."""
    case = _scenario(tmp_path, '[procs.m]\ncmd = "sh -c \'echo bye; exit 4\'"\n'
                     '[[step]]\nexpect = "never"\nin = "m"\ntimeout = 60\n')
    result = run("test", case, timeout=30)
    assert result.returncode == 1
    assert "m exited with code 4" in result.stdout


def test_a_member_failing_at_the_stops_eof_fails_the_scenario(tmp_path: Path) -> None:
    """A client that crashes right after its last expected line fails every time: here its
    exit always comes at the EOF that begins the stop (before, it passed then)."""
    code = "import sys; print('bye', flush=True); sys.stdin.read(); sys.exit(3)"
    case = _scenario(tmp_path, f'[procs.client]\ncmd = {json.dumps([sys.executable, "-c", code])}\n'
                     "[[step]]\nexpect = '^bye$'\nin = 'client'\n")
    result = run("test", case)
    assert result.returncode == 1, result.stdout
    assert "client exited with code 3" in result.stdout


def test_a_member_failing_because_another_ended_at_the_stop_is_not_blamed(
        tmp_path: Path) -> None:
    """Two members of one wave get the stop's EOF together: the server ends (0), and its
    client, which does not read stdin, then fails because the server went away. The stop
    caused that: the scenario passes, as pipeplex run's :quit exits 0."""
    result = run("test", _client_failing_as_its_server_ends_at_the_stop(tmp_path))
    assert result.returncode == 0, result.stdout


@pytest.mark.stress
@pytest.mark.skipif(os.environ.get("PIPEPLEX_STRESS") != "1",
                    reason="heavy (about 30 s): set PIPEPLEX_STRESS=1")
def test_a_member_failing_because_another_ended_at_the_stop_is_not_blamed_on_a_busy_machine(
        tmp_path: Path) -> None:
    """The same, with every core busy: the client may end before pipeplex turns from the
    server's EOF to its own, and was then taken for one that ended before the stop (about
    one run in ten failed so with three busy loops on two cores)."""
    case = _client_failing_as_its_server_ends_at_the_stop(tmp_path)
    hogs = [subprocess.Popen([sys.executable, "-c", "while True: pass"])
            for _ in range(2 * (os.cpu_count() or 1))]
    try:
        for _ in range(60):
            result = run("test", case)
            assert result.returncode == 0, result.stdout
    finally:
        for hog in hogs:
            hog.kill()
            hog.wait()


def _client_failing_as_its_server_ends_at_the_stop(tmp_path: Path) -> Path:
    fifo, pid = tmp_path / "link", tmp_path / "server.pid"
    os.mkfifo(fifo)
    server = ["sh", "-c", f"exec 3>{fifo}; echo $$ > {pid}; echo up; exec cat"]
    # The client's EOF comes as the server's end closes the pipe, an instant before that
    # end is complete: it fails once the server is gone (a zombie), as a real client
    # notices a server gone, not between its descriptors closing and its exit.
    client = ["sh", "-c", f"read x < {fifo}; p=$(cat {pid}); while kill -0 $p 2>/dev/null "
              f"&& ! grep -q '^State:.Z' /proc/$p/status; do :; done; exit 1"]
    return _scenario(tmp_path, f"[procs.server]\ncmd = {json.dumps(server)}\n"
                               f"[procs.client]\ncmd = {json.dumps(client)}\n"
                               "[[step]]\nexpect = '^up$'\nin = 'server'\n")


def test_a_server_that_crashes_as_its_client_leaves_at_the_stop_fails(tmp_path: Path) -> None:
    """The client (after the server) ends at the stop's EOF, and the server then exits
    with 1 as the connection closes: a bug of the server's, not the stop's doing (only a
    member started before or with it ending first excuses that)."""
    fifo = tmp_path / "link"
    os.mkfifo(fifo)
    server = ["sh", "-c", f"echo listening; read x < {fifo}; echo lost my client >&2; exit 1"]
    client = ["sh", "-c", f"exec 3>{fifo}; echo connected; exec cat"]
    body = (f"[procs.server]\ncmd = {json.dumps(server)}\nready = '^listening$'\n"
            f"[procs.client]\ncmd = {json.dumps(client)}\nafter = ['server']\n"
            "[[step]]\nexpect = '^connected$'\nin = 'client'\n")
    result = run("test", _scenario(tmp_path, body))
    assert result.returncode == 1, result.stdout
    assert "server exited with code 1" in result.stdout
    assert "lost my client" in result.stdout


def test_a_cast_file_without_steps_is_a_test_of_its_start_and_stop(tmp_path: Path) -> None:
    """Collected from a folder, a plain cast file passes when its members start and end
    well, and -v says that is all it checked."""
    result = run("test", "-v", _scenario(tmp_path, CAT))
    assert result.returncode == 0, result.stdout
    assert "  (no steps: its members started, got ready and ended well)\n" in result.stdout
    failing = _scenario(tmp_path, "[procs.f]\ncmd = \"sh -c 'exit 3'\"\n", "f.toml")
    assert run("test", "-v", failing).returncode == 1


def test_a_failure_after_a_ready_that_captures_nothing_guesses_why(tmp_path: Path) -> None:
    """{port} after 'listening on :(\\d+)', whose group has no name: the report says so."""
    body = ("[procs.server]\ncmd = \"sh -c 'echo listening on :4242; exec cat'\"\n"
            "ready = 'listening on :(\\d+)'\n"
            "[procs.client]\ncmd = 'echo connected to {port}'\nafter = ['server']\n"
            "[[step]]\nexpect = '^connected to 4242$'\nin = 'client'\n")
    result = run("test", _scenario(tmp_path, body))
    assert result.returncode == 1, result.stdout
    assert ("note: " in result.stdout and "client uses {port}, which no member captures (it "
            "is passed on as written); server's ready captures nothing, its groups having no "
            "names: if {port} is what one matches, name it, (?P<port>...)" in result.stdout)
    # A client that failed of it: the run's end says the same guess; the report, once.
    failed = run("test", _scenario(tmp_path, body.replace("'echo connected to {port}'",
                                                          "\"sh -c 'exit 4' {port}\""),
                                   "failed.toml"))
    assert failed.returncode == 1, failed.stdout
    assert failed.stdout.count("name it, (?P<port>...)") == 1, failed.stdout


def test_wait_exit_without_code_waits_but_does_not_excuse_a_crash(tmp_path: Path) -> None:
    crash = ("[procs.client]\ncmd = \"sh -c 'echo working; exit 3'\"\n"
             "[[step]]\nwait_exit = 'client'\n")
    result = run("test", _scenario(tmp_path, crash))
    assert result.returncode == 1, result.stdout
    assert "client exited with code 3" in result.stdout
    # With code, the exit is checked by the step, and accounted for.
    checked = _scenario(tmp_path, crash + "code = 3\n", "checked.toml")
    assert run("test", checked).returncode == 0


def test_a_wait_exit_with_code_passes_for_a_run_a_restart_ended(tmp_path: Path,
                                                                  run_dir: Path) -> None:
    """The run the step waited for ended with -15 (the restart's SIGTERM), and the next one
    had begun by the time the step looked: that was an internal error."""
    case = _scenario(tmp_path, "[procs.a]\ncmd = 'sleep 60'\non_exit = 'ignore'\n"
                     "[[step]]\nwait_exit = 'a'\ncode = -15\ntimeout = 60\n")
    with Pipeplex("run", case, "--run-dir", run_dir, "--no-console") as plex:
        plex.expect(r"^a \* started")
        assert run("restart", "a", "--run-dir", run_dir).returncode == 0
        plex.expect(r"^pipeplex \* 1 step done; the cast goes on$")
        plex.signal(signal.SIGTERM)
        assert plex.wait() == 143
    assert "Traceback" not in plex.text, plex.text


def test_pipeplex_run_accounts_for_an_exit_a_step_checked_too(tmp_path: Path,
                                                              run_dir: Path) -> None:
    """The same script under pipeplex run: its status is 0, as pipeplex test's verdict is
    a pass; and with every member ended, the steps' end does not say the cast goes on."""
    case = _scenario(tmp_path, "[procs.client]\ncmd = \"sh -c 'echo working; exit 3'\"\n"
                     "[[step]]\nwait_exit = 'client'\ncode = 3\n")
    result = run("run", case, "--run-dir", run_dir, "--no-console")
    assert result.returncode == 0, result.stdout
    assert "pipeplex * 1 step done\n" in result.stdout
    assert "the cast goes on" not in result.stdout
    # A death by a signal that a step checked: the run stopped by SIGTERM says that.
    killed = _scenario(tmp_path, "[procs.worker]\ncmd = 'cat'\non_exit = 'ignore'\n"
                       "[procs.other]\ncmd = 'cat'\n"
                       "[[step]]\nsignal = 'USR1'\nto = 'worker'\n"
                       "[[step]]\nwait_exit = 'worker'\ncode = -10\n", "killed.toml")
    with Pipeplex("run", killed, "--run-dir", run_dir, "--no-console") as plex:
        plex.expect(r"^pipeplex \* 2 steps done; the cast goes on$")
        plex.signal(signal.SIGTERM)
        assert plex.wait() == 128 + signal.SIGTERM


def test_an_expect_of_any_member_after_the_last_one_ended_fails_with_its_exit(
        tmp_path: Path) -> None:
    """Nothing more can come: the step fails as that member's end, at once (it crashed with
    an internal error when that end came while it waited)."""
    case = _scenario(tmp_path, "[procs.a]\ncmd = 'echo a'\non_exit = 'ignore'\n"
                     "[[step]]\nwait_exit = 'a'\n[[step]]\nexpect = 'zzz'\ntimeout = 30\n")
    result = run("test", case)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "case.toml:7: expect 'zzz': a exited with code 0 as this step began" in result.stdout
    assert "internal error" not in result.stderr


def test_an_expect_waits_through_a_restart(tmp_path: Path) -> None:
    """A poller that ends with 0 and is restarted: an expect for its next run's first line,
    begun at its exit (in the restart's pause), waits for that run rather than failing."""
    case = _scenario(tmp_path, "[procs.poller]\ncmd = \"sh -c 'echo poll; echo done'\"\n"
                     "on_exit = 'restart'\nmax_restarts = 100\n"
                     "[[step]]\nexpect = '^done$'\nin = 'poller'\n"
                     "[[step]]\nexpect = '^poll$'\nin = 'poller'\n")
    result = run("test", "-v", case)
    assert result.returncode == 0, result.stdout


def test_an_expect_waits_through_a_restart_on_failure(tmp_path: Path) -> None:
    """on_failure = restart: a worker that crashes is restarted, and an expect for what
    its next run writes waits for that run; its clean exit then ends it, and the scenario
    passes (the crash was restarted, not a failure)."""
    case = _scenario(tmp_path, "[procs.worker]\n"
                     "cmd = \"sh -c 'if [ -e ran ]; then echo second; else touch ran; echo "
                     "first; exit 3; fi'\"\n"
                     f"cwd = '{tmp_path}'\non_exit = 'ignore'\non_failure = 'restart'\n"
                     "[[step]]\nexpect = '^second$'\nin = 'worker'\n"
                     "[[step]]\nwait_exit = 'worker'\ncode = 0\n")
    result = run("test", "-v", case)
    assert result.returncode == 0, result.stdout


ON_FAILURE_RESTART = "on_exit = 'ignore'\non_failure = 'restart'\n"


@pytest.mark.parametrize(("policy", "first"), [
    (ON_FAILURE_RESTART, "[[step]]\nwait_exit = 'job'\ncode = 0\n"),
    (ON_FAILURE_RESTART, ""),
    ("on_exit = 'restart'\nmax_restarts = 1\n", ""),
], ids=["begun-after-the-exit", "begun-before", "give-up"])
def test_an_expect_on_a_member_no_run_of_which_follows_ends_with_its_exit(
        tmp_path: Path, policy: str, first: str) -> None:
    """An expect on a member its policy may restart waits through its exits for a next
    run; once none follows (a clean exit that on_failure = restart lets end, or a give-up)
    it fails with that exit, whether it began before it or after, not at its own
    timeout."""
    case = _scenario(tmp_path, "[procs.job]\ncmd = \"sh -c 'sleep 0.3; echo done'\"\n"
                     f"{policy}[procs.keep]\ncmd = 'sleep 60'\n{first}"
                     "[[step]]\nexpect = 'never-there'\nin = 'job'\ntimeout = 60\n")
    result = run("test", "--grace", "0.2", case, timeout=50)
    assert result.returncode == 1, result.stdout
    assert "expect 'never-there' in job: job exited with code 0" in result.stdout, result.stdout
    assert "timed out" not in result.stdout, result.stdout


def test_a_clean_exit_that_on_failure_does_not_restart_holds_nothing_back(
        tmp_path: Path) -> None:
    """A job that got ready and ended with 0, under on_failure = restart, is done: no next
    run is waited for, so a member after it starts."""
    case = _scenario(tmp_path, "[procs.job]\ncmd = \"sh -c 'echo ready; exit 0'\"\n"
                     "ready = '^ready$'\non_exit = 'ignore'\non_failure = 'restart'\n"
                     "[procs.svc]\ncmd = \"sh -c 'echo svc up; exec sleep 60'\"\n"
                     "after = ['job']\nautostart = false\n"
                     "[[step]]\nwait_exit = 'job'\ncode = 0\n"
                     "[[step]]\nstart = 'svc'\ntimeout = 20\n"
                     "[[step]]\nexpect = '^svc up$'\nin = 'svc'\n")
    result = run("test", "--grace", "0.2", case)
    assert result.returncode == 0, result.stdout


def test_an_expect_on_a_member_given_up_on_ends_with_its_exit_while_a_leftover_holds_its_output(
        tmp_path: Path) -> None:
    """Its policy gives up at once; a worker in its group holds its output open, so the
    exit's end, for the step, is that output's (the worker is killed as the member's
    leftovers are): the step fails with the exit then, not at its own timeout."""
    case = _scenario(tmp_path, "[procs.a]\n"
                     "cmd = \"sh -c 'echo run; (trap \\\"\\\" TERM; exec sleep 30) & exit 1'\"\n"
                     "on_exit = 'restart'\nmax_restarts = 0\n"
                     "[[step]]\nexpect = 'never-there'\nin = 'a'\ntimeout = 60\n")
    result = run("test", "--grace", "0.2", case)
    assert result.returncode == 1, result.stdout
    assert ("expect 'never-there' in a: a exited with code 1, and its output, held open by a "
            "process it started, ended ") in result.stdout, result.stdout


def test_wait_exit_with_code_accounts_for_that_exit_only(tmp_path: Path) -> None:
    """A restarting worker's first run ends with 0, checked by wait_exit; its next run
    crashes with 5: that crash still fails the scenario."""
    runs = tmp_path / "runs"
    worker = (f"if [ -e {runs} ]; then echo second run; exit 5; fi; touch {runs}; "
              "echo first run; exit 0")
    case = _scenario(tmp_path, f"[procs.worker]\ncmd = {json.dumps(['sh', '-c', worker])}\n"
                     "on_exit = 'restart'\n"
                     "[[step]]\nwait_exit = 'worker'\ncode = 0\n"
                     "[[step]]\nexpect = '^second run$'\nin = 'worker'\n"
                     "[[step]]\nwait_exit = 'worker'\n")
    result = run("test", case)
    assert result.returncode == 1, result.stdout
    assert "worker exited with code 5" in result.stdout


@pytest.mark.parametrize("verbose", [True, False])
def test_a_reader_that_leaves_ends_the_test_quietly(tmp_path: Path, verbose: bool) -> None:
    """pipeplex test [-v] | head: the closed pipe ends it, status 1, no traceback, and no
    word of records that nobody asked for."""
    steps = '[[step]]\nsend = "hi"\nto = "c"\n[[step]]\nexpect = "^hi$"\n' * 50
    case = _scenario(tmp_path, CAT + steps)
    test = subprocess.Popen([*PIPEPLEX, "test", *(["-v"] if verbose else []), str(case)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert test.stdout is not None and test.stderr is not None
    try:
        if verbose:
            assert test.stdout.readline() == f"{case}\n".encode()
        test.stdout.close()  # step lines, or the dot, are still to come
        assert test.wait(timeout=60) == 1
        assert test.stderr.read() == b""
    finally:
        test.kill()
        test.wait()
        test.stderr.close()


def test_file_names_reach_the_terminal_escaped_as_member_output_does(tmp_path: Path) -> None:
    """A scenario file whose name holds ESC[2J, a control character or a byte that is not
    UTF-8 is shown with those escaped (\\x1b, \\x01, \\xff) wherever the report names it:
    the -v lines, the FAILED header and its file:line, an ERROR line."""
    failing = tmp_path / os.fsdecode(b"x\x1b[2Jy\x9b.toml")
    failing.write_text(CAT + '[[step]]\nexpect = "^never$"\ntimeout = 0.2\n')
    broken = tmp_path / os.fsdecode(b"bad\x01name\xff.toml")
    broken.write_text(CAT + '[[step]]\nexpct = "x"\n')
    result = subprocess.run([*PIPEPLEX, "test", "-v", "--color", "never", os.fsencode(tmp_path)],
                            capture_output=True, timeout=30, stdin=subprocess.DEVNULL)
    assert result.returncode == 2, result.stdout
    assert not any(byte in result.stdout for byte in (b"\x1b", b"\x01", b"\x9b", b"\xff")), (
        result.stdout)
    out = result.stdout.decode("utf-8")
    shown = f"{tmp_path}/x\\x1b[2Jy\\x9b.toml"
    assert f"ERROR {tmp_path}/bad\\x01name\\xff.toml:3: " in out
    assert f"\n{shown}\n  FAIL " in out and f"s  expect '^never$'  ({shown}:4)\n" in out
    assert f"\nFAILED {shown}\n  {shown}:4: expect '^never$': not seen within 0.2 s\n" in out


def test_a_scenario_that_cannot_be_loaded_exits_2(tmp_path: Path) -> None:
    """Load errors name the file and line and give exit status 2."""
    case = _scenario(tmp_path, CAT + '[[step]]\nsend = "x"\nto = "nobody"\n')
    result = run("test", case)
    assert result.returncode == 2
    assert f"{case}:5: send step: no member named 'nobody'" in result.stdout


def test_a_missing_program_or_cwd_is_a_load_error_as_in_run(tmp_path: Path) -> None:
    """Said before anything starts, with the file and line, as pipeplex run says it."""
    missing = _scenario(tmp_path, '[procs.a]\ncmd = "nosuchprog --x"\n', "missing.toml")
    nowhere = _scenario(tmp_path, '[procs.a]\ncmd = "sleep 1"\ncwd = "nosuchdir"\n',
                        "nowhere.toml")
    result = run("test", missing, nowhere)
    assert result.returncode == 2, result.stdout
    assert f"ERROR {missing}:2: a: command not found: 'nosuchprog'" in result.stdout
    assert f"{nowhere}:3: a: cwd " in result.stdout and "is not a folder" in result.stdout


def test_load_errors_are_said_before_the_other_scenarios_run(tmp_path: Path) -> None:
    """A file that cannot be loaded is said at once, not after every other scenario ran:
    CI shows it while the rest goes on."""
    missing = _scenario(tmp_path, '[procs.a]\ncmd = "nosuchprog --x"\n', "missing.toml")
    good = _scenario(tmp_path, CAT + '[[step]]\nsend = "hello"\nto = "c"\n[[step]]\n'
                     'expect = "hello"\n', "good.toml")
    result = run("test", "-v", good, missing)
    assert result.returncode == 2, result.stdout
    error = result.stdout.index(f"ERROR {missing}:2:")
    assert error < result.stdout.index("expect 'hello'"), result.stdout
    assert "1 passed, 0 failed, 1 could not be loaded" in result.stdout


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT, signal.SIGUSR1])
def test_an_interrupted_test_run_reports_what_it_ran(tmp_path: Path, sig: int) -> None:
    """A CI job cancelled or timed out (SIGTERM, twice at once, as timeout(1) and runners
    do; or Ctrl-C): the results so far, the interrupted scenario and what did not run, in
    the summary and in the JUnit file; no traceback. A signal a run would pass on to its
    members (SIGUSR1) interrupts a test run the same way (it ended it, unreported)."""
    ok = _scenario(tmp_path, CAT + '[[step]]\nsend = "hi"\nto = "c"\n[[step]]\nexpect = "^hi$"\n',
                   "ok.toml")
    long = _scenario(tmp_path, '[procs.s]\ncmd = "sh -c \'echo up; exec sleep 60\'"\n'
                     "[[step]]\nexpect = 'up'\n[[step]]\nexpect = 'never'\ntimeout = 60\n",
                     "long.toml")
    report = tmp_path / "report.xml"
    with Pipeplex("test", "-v", "--junit", report, ok, long, ok) as plex:
        plex.expect(r"ok .* expect 'up'")  # (its member runs)
        plex.signal(sig)
        plex.signal(sig)
        assert plex.wait() == 128 + sig
    assert f"INTERRUPTED {long}" in plex.text
    name = signal.Signals(sig).name
    # Where it was stuck, and what its members last wrote: what a cancelled CI job needs.
    assert f"interrupted by {name} at {long}:6: expect 'never'" in plex.text
    assert "last output of s:\n      | up" in plex.text
    assert f"1 passed, 0 failed, interrupted by {name} (1 not run)" in plex.text
    assert "Traceback" not in plex.text
    suites = {s.get("name"): s for s in ET.parse(report).getroot().findall("testsuite")}
    ran, skipped = suites[str(ok)].findall("testcase")
    assert ran.find("failure") is None and ran.find("skipped") is None
    assert (skipped.find("skipped").get("message")  # type: ignore[union-attr]
            == f"not run: {name} interrupted the run before it")
    assert suites[str(ok)].get("skipped") == "1"
    error = suites[str(long)].find("testcase/error")
    assert error is not None and f"interrupted by {name}" in (error.get("message") or "")
    assert "last output of s:" in (error.text or "") + (error.get("message") or "")
    # The merged stream to where it was stuck, as a failed scenario's: a timed-out CI job's
    # XML is all it keeps.
    out = suites[str(long)].find("testcase/system-out")
    assert out is not None and "s | up" in (out.text or ""), ET.tostring(suites[str(long)])


def test_a_test_interrupted_before_its_members_are_up_says_so(tmp_path: Path) -> None:
    """No step ran yet, and none had begun: its member was still getting ready, and what
    for is said."""
    import select

    started = tmp_path / "started"
    os.mkfifo(started)
    slow = _scenario(tmp_path, f'[procs.s]\ncmd = "sh -c \'echo > {started}; exec sleep 60\'"\n'
                     "ready = 'never'\nready_timeout = 60\n[[step]]\nexpect = 'x'\n",
                     "slow.toml")
    reader = os.open(started, os.O_RDONLY | os.O_NONBLOCK)  # (before the member's writer)
    try:
        with Pipeplex("test", slow) as plex:
            assert select.select([reader], [], [], 30)[0], "the member did not start"
            plex.signal(signal.SIGTERM)
            assert plex.wait() == 128 + signal.SIGTERM
    finally:
        os.close(reader)
    assert "interrupted by SIGTERM as its members started, before its first step" in plex.text
    # What it was still waiting for: what a CI job cancelled as it hung needs most.
    assert "s was waiting for output matching ready = 'never'\n" in plex.text, plex.text


def test_a_death_by_signal_checked_with_the_shells_number_gets_a_hint(tmp_path: Path) -> None:
    case = _scenario(tmp_path, '[procs.a]\ncmd = "sh -c \'kill -USR1 $$\'"\n'
                     "[[step]]\nwait_exit = 'a'\ncode = 138\n")
    result = run("test", case)
    assert result.returncode == 1
    assert ("a killed by SIGUSR1, expected code 138 (a death by SIGUSR1 is code = -10)"
            in result.stdout)


def test_a_step_failure_names_the_member_that_failed_meanwhile(tmp_path: Path) -> None:
    """The client's step fails because the server crashed (and stopped the cast): the
    report says so, with the server's last output, not only what the client did."""
    case = _scenario(tmp_path, (
        "[procs.s]\ncmd = \"sh -c 'read x; echo boom >&2; exit 2'\"\non_exit = 'stop'\n"
        + CAT + "[[step]]\nsend = 'go'\nto = 's'\n"
        "[[step]]\nexpect = '^never$'\nin = 'c'\ntimeout = 30\n"))
    result = run("test", case)
    assert result.returncode == 1, result.stdout
    assert "meanwhile s exited with code 2" in result.stdout
    assert "! boom" in result.stdout


def test_a_step_failure_names_what_failed_as_the_cast_stopped_too(tmp_path: Path) -> None:
    """A member that fails once the stop began (here at its EOF) counts toward the status,
    so the report names it too, told apart from what failed before (a crash seen only as
    the stop began, its client's end seen first, was left out)."""
    case = _scenario(tmp_path, (
        "[procs.a]\ncmd = \"sh -c 'echo up; read x || { echo no input >&2; exit 4; }'\"\n"
        "[procs.b]\ncmd = 'echo b'\non_exit = 'ignore'\n"
        "[[step]]\nexpect = '^up$'\nin = 'a'\n"
        "[[step]]\nexpect = '^never$'\nin = 'b'\ntimeout = 30\n"))
    result = run("test", case)
    assert result.returncode == 1, result.stdout
    assert "in b: b exited with code 0" in result.stdout
    assert "then, as the cast stopped, a exited with code 4" in result.stdout
    assert "! no input" in result.stdout


def test_an_expectation_in_any_output_outlives_a_member_that_ends_well(tmp_path: Path) -> None:
    """Without ``in``, one member ending with 0 (its job done) leaves the others to write
    the pattern; one ending with an error fails the step at once."""
    fifo = tmp_path / "pid"
    os.mkfifo(fifo)
    # slow writes "done" once quick has exited and pipeplex has reaped it.
    slow = (f"read pid < {fifo}; while kill -0 $pid 2>/dev/null; do :; done; "
            "echo done; exec sleep 60")
    body = (f"[procs.slow]\ncmd = {json.dumps(['sh', '-c', slow])}\n"
            f"[procs.quick]\ncmd = {json.dumps(['sh', '-c', f'echo $$ > {fifo}; exit CODE'])}\n"
            "[[step]]\nexpect = '^done$'\ntimeout = 30\n")
    assert run("test", _scenario(tmp_path, body.replace("CODE", "0"))).returncode == 0
    failed = run("test", _scenario(tmp_path, body.replace("CODE", "5"), "failing.toml"))
    assert failed.returncode == 1
    assert "quick exited with code 5" in failed.stdout


def test_a_cast_that_never_comes_up_is_said_with_where_and_why(tmp_path: Path) -> None:
    """No step ran: said so; the member's file and line; its exit before it was ready."""
    early = _scenario(tmp_path, "[procs.server]\ncmd = \"sh -c 'echo bind failed >&2; exit 4'\"\n"
                      "ready = 'listening on (?P<port>\\d+)'\n[[step]]\nexpect = 'x'\n",
                      "early.toml")
    result = run("test", "-v", early)
    assert result.returncode == 1
    assert "FAIL before the first step" in result.stdout
    assert f"{early}:1: server exited with code 4 before it was ready" in result.stdout
    later = _scenario(tmp_path, "[procs.server]\ncmd = 'sh -c \"exit 5\"'\nready = 'never'\n"
                      "autostart = false\n[[step]]\nstart = 'server'\n", "later.toml")
    result = run("test", later)
    assert f"{later}:6: start 'server': server exited with code 5 before it was ready" in (
        result.stdout)
    assert result.stdout.count("exited with code 5") == 1, result.stdout


def test_a_failed_start_shows_the_members_output_as_it_wrote_it(tmp_path: Path) -> None:
    """The cast stops because late could not get ready: that is the failure said, so no
    note about the stop is added; and none lands in the lines late wrote (the report, the
    JUnit file and pipeplex run show the same)."""
    case = _scenario(tmp_path, CAT + "[procs.late]\ncmd = \"sh -c 'echo starting; exit 3'\"\n"
                     "autostart = false\nready = 'up'\n[[step]]\nstart = 'late'\n")
    said = (f"{case}:8: start 'late': late exited with code 3 before it was ready\n"
            "last output of late:\n    | starting\n")
    report = tmp_path / "junit.xml"
    result = run("test", case, "--junit", report)
    assert result.returncode == 1, result.stdout
    assert "".join(f"  {line}\n" for line in said.splitlines()) in result.stdout
    failure = ET.parse(report).getroot().find(".//failure")
    assert failure is not None and failure.text == said.rstrip("\n")
    result = run("run", case, "--no-console", "--run-dir", tmp_path / "run")
    assert result.returncode == 3, result.stdout
    assert "".join(f"pipeplex * {'step failed: ' * (i == 0)}{line}\n"
                   for i, line in enumerate(said.splitlines())) in result.stdout


def test_expecting_from_a_member_nothing_started_fails_at_once(tmp_path: Path) -> None:
    case = _scenario(tmp_path, "[procs.late]\ncmd = 'cat'\nautostart = false\n"
                     "[[step]]\nexpect = 'x'\nin = 'late'\ntimeout = 60\n")
    result = run("test", case, timeout=30)
    assert result.returncode == 1
    assert ("late was never started: it has autostart = false, and no start step started it"
            in result.stdout)


def test_a_file_that_cannot_be_loaded_is_the_same_test_in_junit(tmp_path: Path) -> None:
    """Named as its scenario is once it loads (the file, and its stem), so a CI history
    keeps one test for it."""
    case = _scenario(tmp_path, CAT + "[[step]]\nexpct = 'x'\n", "typo.toml")
    report = tmp_path / "r.xml"
    assert run("test", "--junit", report, case).returncode == 2
    [testcase] = ET.parse(report).getroot().findall("testsuite/testcase")
    assert (testcase.get("file"), testcase.get("name")) == (str(case), "typo")
    assert testcase.find("error") is not None


def test_a_line_an_earlier_expect_read_past_gets_a_hint(tmp_path: Path) -> None:
    case = _scenario(tmp_path, "[procs.w]\ncmd = \"sh -c 'echo A; echo B; exec sleep 60'\"\n"
                     "[[step]]\nexpect = '^B$'\n[[step]]\nexpect = '^A$'\nin = 'w'\n"
                     "timeout = 0.2\n")
    result = run("test", case)
    assert result.returncode == 1
    assert "not seen within 0.2 s (a line below matches: an earlier expect had read past it" in (
        result.stdout)


@pytest.mark.parametrize(("pattern", "hint"), [
    ("calc> 42\\n", "(a line below matches: an earlier expect had read past it, or past its "
                     "start, and each"),
    ("^42$", "(a line below holds it, but not at its start, where ^ matches: after a prompt, "
             "say; leave the ^ out)"),
])
def test_a_prompt_an_earlier_expect_ended_in_gets_a_hint(tmp_path: Path, pattern: str,
                                                         hint: str) -> None:
    """After an expect of a prompt that ends mid-line, the answer on that line is neither
    at a line's start nor after the cursor with the prompt: the report says why, where
    its "last output" shows a line that seems to match."""
    code = ("import sys\nwhile True:\n sys.stdout.write('calc> '); sys.stdout.flush()\n"
            " line = sys.stdin.readline()\n if not line: break\n print(eval(line))\n")
    case = _scenario(tmp_path, f"[procs.calc]\ncmd = {json.dumps([sys.executable, '-c', code])}"
                               "\n[[step]]\nexpect = 'calc> $'\n[[step]]\nsend = '6*7'\n"
                               f"to = 'calc'\n[[step]]\nexpect = '{pattern}'\ntimeout = 0.3\n")
    result = run("test", case)
    assert result.returncode == 1
    assert f"not seen within 0.3 s {hint}" in result.stdout, result.stdout


def test_two_prompts_on_the_last_line_get_a_hint_of_their_own(tmp_path: Path) -> None:
    """A REPL sent two lines before its first prompt came writes two prompts on one line
    (`... >>> `): the prompt awaited with ^ is there, not at the line's start. That is said,
    rather than that an earlier expect read past the older prompt lines that match."""
    code = "import sys\nsys.stdout.write('>>> \\n... >>> ')\nsys.stdout.flush()\nsys.stdin.read()"
    case = _scenario(tmp_path, f"[procs.py]\ncmd = {json.dumps([sys.executable, '-c', code])}\n"
                     '[[step]]\nexpect = "^>>> $"\n'
                     '[[step]]\nexpect = "^>>> $"\ntimeout = 0.3\n')
    result = run("test", case)
    assert result.returncode == 1
    assert ("not seen within 0.3 s (the last line below holds it, but not at its start, where "
            "^ matches: two prompts on one line") in result.stdout, result.stdout


def test_a_line_that_only_contains_what_was_awaited_is_no_glued_prompt(tmp_path: Path) -> None:
    """`^ok 2` against TAP's `not ok 2`: no prompt, and leaving the ^ out would make the
    failing test pass. No hint about prompts is given."""
    code = "import sys\nprint('ok 1\\nnot ok 2 - frobnicate', flush=True)\nsys.stdin.read()"
    case = _scenario(tmp_path, f"[procs.t]\ncmd = {json.dumps([sys.executable, '-c', code])}\n"
                     '[[step]]\nexpect = "^ok 1"\n'
                     '[[step]]\nexpect = "^ok 2"\ntimeout = 0.3\n')
    result = run("test", case)
    assert result.returncode == 1
    assert "expect '^ok 2': not seen within 0.3 s\n" in result.stdout, result.stdout


def test_a_prompt_awaited_of_a_member_that_wrote_nothing_suggests_a_terminal(
        tmp_path: Path) -> None:
    """In the default mode stdin is a pipe, and bash's read -p (as psql, sqlite3) prompts
    only on a terminal: a step that waits for that prompt from a member that wrote nothing
    says so, and what gives it one."""
    case = _scenario(tmp_path, '[procs.ask]\ncmd = "bash -c \'read -p \\"Name: \\" n; '
                     'echo hello $n\'"\n[[step]]\nexpect = "Name: $"\nin = "ask"\n'
                     'timeout = 0.3\n')
    result = run("test", case)
    assert result.returncode == 1, result.stdout
    assert ("ask wrote nothing (a program that prompts only when its stdin is a terminal, as "
            "sqlite3 and psql do, writes no prompt with pty = \"stdout\"; pty = true gives it "
            "one)") in result.stdout, result.stdout


def test_a_failure_notes_a_near_miss_of_a_captured_variables_name(tmp_path: Path) -> None:
    """{tokn} beside a captured token is sent as written (braces are text when they name
    nothing captured), and the failure it leads to says it may be a typo."""
    body = ("[procs.s]\ncmd = 'cat'\n[[step]]\nsend = 'token abc'\nto = 's'\n"
            "[[step]]\nexpect = 'token (?P<token>\\w+)'\n[[step]]\nsend = 'SEND'\nto = 's'\n"
            "[[step]]\nexpect = 'EXPECT'\ntimeout = 0.3\n")
    typo = _scenario(tmp_path, body.replace("SEND", "login {tokn}")
                     .replace("EXPECT", "^login abc$"), "typo.toml")
    result = run("test", typo)
    assert result.returncode == 1
    assert (f"note: {typo}:9: {{tokn}} is no captured variable (it was used as written): did "
            "you mean {token}?") in result.stdout
    # Braces that name nothing close to a variable are text, as they always were.
    code = _scenario(tmp_path, body.replace("SEND", "echo {i} {token}")
                     .replace("EXPECT", "^echo \\{i\\} abc$"), "code.toml")
    assert run("test", code).returncode == 0


def test_patterns_are_shown_as_written_in_the_file(tmp_path: Path) -> None:
    """Between single quotes with single backslashes, as they can be pasted back."""
    case = _scenario(tmp_path, CAT + "[[step]]\nsend = 'n 42'\nto = 'c'\n"
                     "[[step]]\nexpect = '^n (?P<n>\\d+)$'\n")
    result = run("test", "-v", case)
    assert result.returncode == 0
    assert "expect '^n (?P<n>\\d+)$'" in result.stdout


def test_a_member_may_run_what_an_earlier_one_builds(tmp_path: Path) -> None:
    """./app does not exist when the scenario loads: the member that builds it comes first,
    and ends just as its dependent starts."""
    build = "printf '#!/bin/sh\\necho app runs\\n' > app; chmod +x app; echo built"
    case = _scenario(tmp_path, f"[procs.build]\ncmd = {json.dumps(['sh', '-c', build])}\n"
                     "ready = 'built'\n[procs.app]\ncmd = './app'\nafter = ['build']\n"
                     "[[step]]\nexpect = '^app runs$'\nin = 'app'\n")
    for _ in range(3):  # (the builder's end and its dependent's start race: a few times)
        (tmp_path / "app").unlink(missing_ok=True)
        result = run("test", case, cwd=tmp_path)
        assert result.returncode == 0, result.stdout


def test_golden_update_then_compare(tmp_path: Path) -> None:
    """--update writes the golden file; a later difference fails with a diff."""
    body = ('golden = "case.golden"\n' + CAT
            + '[[step]]\nsend = "hello"\nto = "c"\n[[step]]\nexpect = "^hello$"\n')
    case = _scenario(tmp_path, body)
    first = run("test", "--update", case)
    assert first.returncode == 0 and "(1 golden file written)" in first.stdout, first.stdout
    golden = (tmp_path / "case.golden").read_text()
    assert golden == "[c]\n> hello\n| hello\n= exited with code 0\n"  # (at the stop's EOF)
    assert run("test", case).returncode == 0
    os.utime(tmp_path / "case.golden", ns=(0, 0))
    again = run("test", "--update", case)  # (the same text: the file is left as it is)
    assert "(0 golden files written, 1 unchanged)" in again.stdout, again.stdout
    assert (tmp_path / "case.golden").stat().st_mtime_ns == 0
    (tmp_path / "case.golden").write_text(golden.replace("| hello", "| goodbye"))
    result = run("test", case)
    assert result.returncode == 1
    assert "-| goodbye" in result.stdout
    assert "+| hello" in result.stdout
    assert (f"the transcript differs from {tmp_path / 'case.golden'} (if this run is right, "
            "pipeplex test --update records it):") in result.stdout


def test_golden_normalises_ports_and_pids(tmp_path: Path) -> None:
    """Captured variables and pids are replaced, so the golden file is stable; a value of
    under three characters is not (a shard 1 would stand for every other 1 too)."""
    code = ("import os, sys; print('port', 41000 + os.getpid() % 1000, 'shard 1 of 1 on pid',"
            " os.getpid(), flush=True); sys.stdin.read()")
    body = ('golden = "g.txt"\n[procs.s]\n'
            f'cmd = {json.dumps([sys.executable, "-c", code])}\n'
            "ready = 'port (?P<port>\\d+) shard (?P<shard>\\d+)'\n[[step]]\n"
            "expect = 'on pid \\d+'\n")
    case = _scenario(tmp_path, body)
    assert run("test", "--update", case).returncode == 0
    text = (tmp_path / "g.txt").read_text()
    assert "| port {port} shard 1 of 1 on pid {pid}\n" in text


def test_junit_report(tmp_path: Path) -> None:
    """--junit writes a report with one testcase per scenario and the failure's evidence
    (a control character shown escaped: XML 1.0 cannot hold it; a colour taken out)."""
    bad = _scenario(tmp_path, CAT + '[[step]]\nsend = "\\u001b[31m\\u0001red"\nto = "c"\n'
                    '[[step]]\nexpect = "^never$"\ntimeout = 0.2\n', "bad.toml")
    report = tmp_path / "report.xml"
    result = run("test", "--junit", report, bad)
    assert result.returncode == 1
    root = ET.parse(report).getroot()
    case = root.find("testsuite/testcase")
    assert case is not None
    assert case.get("name") == "bad"
    failure = case.find("failure")
    assert failure is not None
    assert "not seen within 0.2 s" in (failure.get("message") or "")
    assert "\\x01red" in (failure.text or "") and "[31m" not in (failure.text or "")


def test_transcript_and_replay(tmp_path: Path) -> None:
    """--transcript records events as JSON Lines; replay shows the merged stream again."""
    case = _scenario(tmp_path, CAT + '[[step]]\nsend = "one"\nto = "c"\n[[step]]\nexpect = "one"\n')
    transcript = tmp_path / "t.jsonl"
    assert run("test", "--transcript", transcript, case).returncode == 0
    records = [json.loads(line) for line in transcript.read_text().splitlines()]
    kinds = {(r["s"], r.get("e")) for r in records}
    assert {("in", None), ("out", None), ("event", "start"), ("event", "exit"),
            ("event", "match")} <= kinds
    assert oct(transcript.stat().st_mode & 0o777) == "0o600"
    replay = run("replay", "--color", "never", transcript)
    assert replay.returncode == 0
    assert "c | one\n" in replay.stdout
    assert "c > one" not in replay.stdout  # (the stream never shows what was sent)
    with_input = run("replay", "--input", "--color", "never", transcript)
    assert with_input.returncode == 0
    # Each step's end is recorded: the members' lines fall between the steps they answered.
    # (In how long: a loaded machine takes its time.)
    assert re.search(rf"c > one\npipeplex \* step {re.escape(str(case))}:4: send 'one' to c: "
                     r"ok in [\d.]+", with_input.stdout), with_input.stdout
    assert re.search(rf"c \| one\npipeplex \* step {re.escape(str(case))}:7: expect 'one': "
                     r"ok in [\d.]+", with_input.stdout), with_input.stdout
    assert "c > [EOF]\n" in with_input.stdout  # (the stop closed its stdin)


def test_replay_of_a_transcript_cut_short_says_so(tmp_path: Path) -> None:
    """A run killed outright leaves a transcript without its end: replayed, it said nothing
    of that and exited 0. Every run ends with a summary of each member it started."""
    case = _scenario(tmp_path, CAT + '[[step]]\nsend = "one"\nto = "c"\n[[step]]\n'
                                    'expect = "one"\n')
    transcript = tmp_path / "t.jsonl"
    assert run("test", "--transcript", transcript, case).returncode == 0
    whole = run("replay", transcript)
    assert (whole.returncode, whole.stderr) == (0, "")
    lines = transcript.read_text().splitlines()
    summary = next(i for i, line in enumerate(lines) if '"summary: ' in line)
    cut = tmp_path / "cut.jsonl"
    cut.write_text("\n".join(lines[:summary]) + "\n")
    replayed = run("replay", cut)
    assert replayed.returncode == 1
    assert replayed.stderr == (f"pipeplex: warning: {cut} ends before its run did: c started "
                               "and got no summary (the run was killed, or is still going)\n")
    assert "c | one\n" in replayed.stdout


def test_replay_shows_warnings_and_errors_as_the_run_did(tmp_path: Path) -> None:
    """A note's level is in the record: replay colours it as the run did (they all came
    out dim, as information)."""
    transcript = tmp_path / "t.jsonl"
    notes = [{"t": 1.0 + i, "p": None, "s": "event", "e": "note", "d": level, "level": level}
             for i, level in enumerate(("info", "warning", "error"))]
    transcript.write_text("".join(json.dumps(note) + "\n" for note in notes))
    replay = run("replay", "--color", "always", transcript)
    assert replay.returncode == 0, replay.stderr
    shown = {line.rsplit(" * ", 1)[1] for line in replay.stdout.splitlines()}
    assert shown == {"\x1b[2minfo\x1b[0m", "\x1b[33mwarning\x1b[0m", "\x1b[1;31merror\x1b[0m"}


def test_replay_of_a_full_terminal_member_shows_its_lines_as_the_run_did(
        tmp_path: Path) -> None:
    """A member on a full terminal writes \\r\\n (\\r\\r\\n for its own \\r\\n): the run
    folds it, and so must replay, which knows the member's mode from its start record."""
    cast = tmp_path / "cast.toml"
    cast.write_text('[procs.t]\ncmd = "printf \'one\\\\ntwo\\\\r\\\\n\'"\npty = true\n')
    transcript = tmp_path / "t.jsonl"

    def lines(*args: str | Path) -> list[bytes]:  # (bytes: text mode would fold the \\r)
        out = subprocess.run([*PIPEPLEX, *map(str, args)], capture_output=True, timeout=60,
                             stdin=subprocess.DEVNULL).stdout
        return [line for line in out.splitlines(keepends=True) if line.startswith(b"t |")]

    live = lines("run", cast, "--transcript", transcript, "--run-dir", tmp_path / "run")
    starts = [json.loads(line) for line in transcript.read_text().splitlines()
              if '"start"' in line]
    assert starts[0]["terminal"] is True
    assert live == [b"t | one\n", b"t | two\r\n"]
    assert lines("replay", "--color", "never", transcript) == live


def test_a_transcript_folder_stays_a_folder_when_a_glob_matched_one_file(
        tmp_path: Path) -> None:
    """``--transcript out/ tests/*.toml`` in CI: with one file matched, PATH was taken for a
    file (a folder there: not run, status 2; with its slash: a file written). A folder that
    is one, or is written as one, now gets a transcript per scenario whatever the count."""
    case = _scenario(tmp_path, CAT + '[[step]]\nsend = "one"\nto = "c"\n[[step]]\n'
                     'expect = "one"\n', "one.toml")
    existing = tmp_path / "existing"
    existing.mkdir()
    assert run("test", "--transcript", existing, case).returncode == 0
    assert (existing / "one.jsonl").is_file()
    assert run("test", "--transcript", f"{tmp_path / 'new'}/", case).returncode == 0
    assert (tmp_path / "new" / "one.jsonl").is_file()


def test_run_executes_steps_then_keeps_the_cast(tmp_path: Path) -> None:
    """pipeplex run FILE runs the steps; a failing expectation stops the run with status 1."""
    case = _scenario(tmp_path, CAT + '[[step]]\nsend = "hi"\nto = "c"\n[[step]]\nexpect = "^hi$"\n'
                     '[[step]]\nclose = "c"\n')
    result = run("run", case, "--run-dir", tmp_path / "run")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "c | hi" in result.stdout
    failing = _scenario(tmp_path, CAT + '[[step]]\nexpect = "^nothing$"\ntimeout = 0.2\n', "f.toml")
    result = run("run", failing, "--run-dir", tmp_path / "run2")
    assert result.returncode == 1
    assert "not seen within 0.2 s" in result.stdout


LAZY_CHAIN = """
[procs.lazy]
cmd = "sh -c 'echo lazy up; exec cat'"
autostart = false
ready = "lazy up"
[procs.dep]
cmd = "sh -c 'echo dep up; exec cat'"
after = ["lazy"]
ready = "dep up"
[procs.dep2]
cmd = "sh -c 'echo dep2 up; exec cat'"
after = ["dep"]

[[step]]
start = "lazy"
[[step]]
expect = "dep2 up"
in = "dep2"
[[step]]
close = "dep2"
"""


def test_steps_start_a_member_that_others_wait_for(tmp_path: Path, run_dir: Path) -> None:
    """The members after an autostart = false one do not hold the steps back (they could
    only start once a step starts it), and start after it once a step did."""
    case = _scenario(tmp_path, LAZY_CHAIN)
    result = run("test", case, timeout=30)
    assert result.returncode == 0, result.stdout + result.stderr
    with Pipeplex("run", case, "--run-dir", run_dir, "--no-console") as plex:
        plex.expect(r"^dep2 +\| dep2 up$")
        plex.expect(r"3 steps done")
        plex.signal(signal.SIGTERM)
        assert plex.wait() == 143


def test_records_of_pipeplex_test_refused_or_shared_names(tmp_path: Path) -> None:
    """A record that cannot be written is one clear error (no traceback, status 2), for
    its scenario only (which does not run); two scenarios of the same file name keep a
    transcript each."""
    for folder in ("d1", "d2"):
        (tmp_path / folder).mkdir()
        _scenario(tmp_path / folder, f'[procs.a]\ncmd = "echo from-{folder}"\n'
                  f'[[step]]\nexpect = "from-{folder}"\nin = "a"\n', name="s.toml")
    (tmp_path / "loglink").symlink_to(tmp_path / "d1")
    refused = run("test", tmp_path / "d1" / "s.toml", "--log-dir", tmp_path / "loglink")
    assert refused.returncode == 2
    assert "it is a symbolic link, which pipeplex does not follow" in refused.stdout
    assert "Traceback" not in refused.stderr
    (tmp_path / "trdir").mkdir()
    (tmp_path / "trdir" / "s-2.jsonl").symlink_to(tmp_path / "elsewhere")
    one_refused = run("test", tmp_path / "d1" / "s.toml", tmp_path / "d2" / "s.toml",
                      "--transcript", tmp_path / "trdir", "--junit", tmp_path / "j.xml")
    assert one_refused.returncode == 2, one_refused.stdout
    assert "1 passed, 0 failed, 1 could not be recorded (not run)" in one_refused.stdout
    assert "s-2.jsonl: it is a symbolic link" in one_refused.stdout
    assert len(ET.parse(tmp_path / "j.xml").getroot().findall(".//testcase")) == 2
    both = run("test", tmp_path / "d1" / "s.toml", tmp_path / "d2" / "s.toml",
               "--transcript", tmp_path / "records")
    assert both.returncode == 0, both.stdout + both.stderr
    texts = sorted(p.read_text() for p in (tmp_path / "records").iterdir())
    assert len(texts) == 2
    assert "from-d1" in texts[0] and "from-d2" in texts[1]


PRINTS = '[procs.p]\ncmd = ["printf", "tok a(b\\nport abc\\nseen a(b\\n"]\n'


@pytest.mark.parametrize(("steps", "said"), [
    # A captured value stands for itself in a pattern: "a(b" is no broken pattern.
    ("[[step]]\nexpect = '^tok (?P<tok>.+)$'\n[[step]]\nexpect = '^seen {tok}$'\n", None),
    ("[[step]]\nexpect = '^port (?P<port>.+)$'\n[[step]]\nwait_port = \"{port}\"\n",
     "wait_port '{port}' (= 'abc'): 'abc' is not a TCP port number (1-65535)"),
    ("[[step]]\nexpect = '^(?P<{x}>tok)'\n",
     "the pattern became '^(?P<{x}>tok)', which is not a valid regular expression"),
])
def test_captured_values_in_steps_never_end_in_a_traceback(
        tmp_path: Path, steps: str, said: str | None) -> None:
    result = run("test", _scenario(tmp_path, PRINTS + steps))
    assert "Traceback" not in result.stderr, result.stderr
    if said is None:
        assert result.returncode == 0, result.stdout
    else:
        assert result.returncode == 1 and said in result.stdout, result.stdout


def test_a_port_waited_for_before_its_member_is_ready_is_said_unknown(tmp_path: Path) -> None:
    """A member that is not started yet (autostart = false) captures it: the step says so,
    rather than that '{port}' is no port number."""
    result = run("test", _scenario(tmp_path, (
        "[procs.srv]\ncmd = \"echo port 1\"\nready = 'port (?P<port>\\d+)'\n"
        "autostart = false\n[[step]]\nwait_port = \"{port}\"\n[[step]]\nstart = \"srv\"\n")))
    assert result.returncode == 1, result.stdout
    assert ("wait_port '{port}': {port} is not known yet: srv's ready pattern captures it, and "
            "srv has not been ready yet") in result.stdout, result.stdout


def test_a_broken_golden_file_fails_its_scenario_and_loses_no_other(tmp_path: Path) -> None:
    broken = _scenario(tmp_path, 'golden = "b.golden"\n' + CAT + '[[step]]\nsend = "hi"\n'
                       'to = "c"\n[[step]]\nexpect = "^hi$"\n', "broken.toml")
    (tmp_path / "b.golden").write_bytes(b"\xff\xfe not text\n")
    good = _scenario(tmp_path, CAT + '[[step]]\nsend = "hi"\nto = "c"\n[[step]]\n'
                     'expect = "^hi$"\n', "good.toml")
    report = tmp_path / "junit.xml"
    result = run("test", broken, good, "--junit", report)
    assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr
    # (Its line and the byte's value: "byte 0" was its offset, read as a NUL.)
    assert f"golden file {tmp_path / 'b.golden'}:1 is not UTF-8 text (byte 0xff)" in result.stdout
    assert "1 passed, 1 failed" in result.stdout
    assert len(ET.parse(report).getroot().findall(".//testcase")) == 2


def test_a_junit_report_that_cannot_be_written_is_refused_before_the_tests(
        tmp_path: Path) -> None:
    scenario = _scenario(tmp_path, CAT + '[[step]]\nsend = "hi"\nto = "c"\n')
    (tmp_path / "a-file").write_text("")
    result = run("test", scenario, "--junit", tmp_path / "a-file" / "junit.xml")
    assert result.returncode == 2
    assert "is not a folder" in result.stderr and result.stdout == ""


def test_the_junit_reports_folders_are_made_as_pytest_makes_them(tmp_path: Path) -> None:
    """``--junit reports/pipeplex.xml`` on a fresh checkout: its folder is made."""
    scenario = _scenario(tmp_path, CAT + '[[step]]\nsend = "hi"\nto = "c"\n')
    report = tmp_path / "reports" / "ci" / "junit.xml"
    result = run("test", scenario, "--junit", report)
    assert result.returncode == 0, result.stderr
    assert len(ET.parse(report).getroot().findall(".//testcase")) == 1


def test_an_internal_error_in_one_scenario_loses_no_other_result(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    """A pipeplex bug met by one scenario is reported with its traceback, counted as a
    failure, and the others still run and reach the summary and the JUnit report."""
    from pipeplex.test_mode import command, sequence

    real = sequence.run_scenario

    async def run_scenario(scenario: object, **options: object) -> object:
        if getattr(scenario, "name", "") == "crash":
            raise RuntimeError("a bug")
        return await real(scenario, **options)  # type: ignore[arg-type]

    monkeypatch.setattr(sequence, "run_scenario", run_scenario)
    body = CAT + '[[step]]\nsend = "hi"\nto = "c"\n[[step]]\nexpect = "^hi$"\n'
    files = [_scenario(tmp_path, body, "crash.toml"), _scenario(tmp_path, body, "good.toml")]
    report = tmp_path / "junit.xml"
    with pytest.raises(SystemExit) as exited:
        command.run_tests(files, verbose=False, junit=report, transcript=None,
                                log_dir=None, update=False, grace=1.0, color="never")
    assert exited.value.code == 1
    out, err = capsys.readouterr()
    assert "pipeplex failed while running it: RuntimeError: a bug" in out
    assert "1 passed, 1 failed" in out
    assert "internal error while running" in err and "RuntimeError: a bug" in err
    assert len(ET.parse(report).getroot().findall(".//testcase")) == 2


def test_a_full_terminal_is_not_hung_up_on_a_program_that_closed_it_on_its_way_out(
        tmp_path: Path) -> None:
    """Programs close their output before they exit (coreutils do): the terminal's end
    stays open until the exit, so no SIGHUP kills them in between (cat ended so 1 time
    in 12 with pty = true)."""
    # It lingers after closing its output until the stop's SIGTERM: through the moment
    # the old code hung its terminal up (at the EIO of its last close), and the stop's
    # EOF grace. A SIGHUP would end it with an error before the stop signals it: a failure.
    code = ("import os, signal, sys\n"
            "signal.signal(signal.SIGTERM, lambda *a: os._exit(0))\n"
            "print('closing', flush=True)\n"
            "for fd in (0, 1, 2): os.close(fd)\n"
            "while True: signal.pause()\n")
    case = _scenario(tmp_path, f"[procs.p]\ncmd = {json.dumps([sys.executable, '-c', code])}\n"
                               "pty = true\n[[step]]\nexpect = '^closing'\nin = 'p'\n")
    result = run("test", case)
    assert result.returncode == 0, result.stdout


def test_replay_shows_every_readable_record_and_says_which_it_skipped(tmp_path: Path) -> None:
    """A killed run's transcript ends in a cut-off line; a record may hold a field of the
    wrong kind: what can be read is shown, the rest named on stderr, status 1."""
    good = [json.dumps({"t": 1.0, "p": "a", "s": "out", "d": f"line {i}\n"}) for i in range(3)]
    transcript = tmp_path / "t.jsonl"
    transcript.write_bytes(
        (good[0] + "\n" + json.dumps({"t": "soon", "p": "a", "s": "out", "d": "x\n"}) + "\n"
         + good[1] + "\n" + "\xff\n").encode("latin-1") + (good[2] + "\n").encode()
        + b'{"t": 2.0, "p": "a", "s": "out", "d": "cut')
    result = run("replay", transcript)
    assert result.returncode == 1
    assert result.stdout == "a | line 0\na | line 1\na | line 2\n"
    assert result.stderr == (
        f"pipeplex: warning: {transcript}:2: a record with a field of the wrong kind "
        "(ValueError: could not convert string to float: 'soon'); skipped\n"
        f"pipeplex: warning: {transcript}:4: not a transcript record: not UTF-8 (byte 0xff, "
        "the line's 1st); "
        "skipped\n"
        f"pipeplex: warning: {transcript}:6: not a transcript record: Unterminated string "
        "starting at column 39 (the line is cut off); skipped\n")


def test_replay_skips_a_record_whose_member_name_is_no_name(tmp_path: Path) -> None:
    """A transcript from elsewhere (a CI artifact) whose names carry escape sequences would
    write to the clipboard, set the title or make the terminal answer: no name of a run's
    member can, so such a record is skipped and said."""
    evil = "web\x1b]52;c;ZWNobyBwd25lZAo=\x07"
    transcript = tmp_path / "t.jsonl"
    transcript.write_text(json.dumps({"t": 1.0, "p": "web", "s": "out", "d": "fine\n"}) + "\n"
                          + json.dumps({"t": 1.0, "p": evil, "s": "out", "d": "x\n"}) + "\n")
    result = run("replay", transcript)
    assert result.returncode == 1
    assert result.stdout == "web | fine\n"
    assert "\x1b" not in result.stderr
    assert f"{transcript}:2: a record with a field of the wrong kind (ValueError: p is " in \
        result.stderr


def test_replay_of_a_file_that_is_no_transcript_says_so_once(tmp_path: Path) -> None:
    cast = _scenario(tmp_path, CAT, "cast.toml")
    result = run("replay", cast)
    assert result.returncode == 1
    assert result.stdout == ""
    assert result.stderr == (
        f"pipeplex: error: {cast} holds no transcript record ({cast}:1: not a transcript "
        "record: Expecting value column 2); give the file that --transcript wrote\n")
    for empty in ("", "\n\n"):  # (no run writes that: not a transcript either)
        transcript = tmp_path / "t.jsonl"
        transcript.write_text(empty)
        result = run("replay", transcript)
        assert result.returncode == 1
        assert result.stderr == (f"pipeplex: error: {transcript} holds no transcript record "
                                 "(it holds no line of text); give the file that "
                                 "--transcript wrote\n")


def test_the_tutorials_test_passes(tmp_path: Path) -> None:
    """The cast of the tutorial's section 2 with the steps of its section 3, as written."""
    import re

    tutorial = (Path(__file__).parents[2] / "docs" / "tutorial.md").read_text()
    cast, steps = re.findall(r"```toml\n(.*?)```", tutorial, re.S)[:2]
    result = run("test", _scenario(tmp_path, cast + steps, "cast.toml"), timeout=60)
    assert result.returncode == 0, result.stdout
    assert "1 passed, 0 failed" in result.stdout


def test_the_tutorials_suite_passes(tmp_path: Path) -> None:
    """Its growing suite: the cast of section 2 in a file of its own, included by the
    scenario it shows, run as a folder."""
    import re

    tutorial = (Path(__file__).parents[2] / "docs" / "tutorial.md").read_text()
    blocks = re.findall(r"```toml\n(.*?)```", tutorial, re.S)
    (tmp_path / "tests" / "casts").mkdir(parents=True)
    (tmp_path / "tests" / "scenarios").mkdir()
    (tmp_path / "tests" / "casts" / "chat.toml").write_text(blocks[0])
    [scenario] = [block for block in blocks if block.lstrip().startswith("# tests/scenarios/")]
    (tmp_path / "tests" / "scenarios" / "hello.toml").write_text(scenario)
    result = run("test", "tests/scenarios", cwd=tmp_path, timeout=60)
    assert result.returncode == 0, result.stdout
    assert "1 passed, 0 failed" in result.stdout


def test_a_log_that_cannot_be_written_is_said_in_test_mode(tmp_path: Path) -> None:
    """The run shows it as a note; a test shows no notes, so it is said on stderr."""
    logs = tmp_path / "logs"
    logs.mkdir()
    (logs / "c.log").mkdir()  # a folder where the log would go
    case = _scenario(tmp_path, CAT + '[[step]]\nsend = "hi"\nto = "c"\n[[step]]\nexpect = "^hi$"\n')
    result = run("test", case, "--log-dir", logs)
    assert result.returncode == 0, result.stdout
    assert f"pipeplex: warning: {case}: cannot write the log {logs / 'c.log'}" in result.stderr


def test_what_a_run_would_warn_of_is_said_in_test_mode(tmp_path: Path) -> None:
    """A member that ignored SIGTERM passes, but costs the grace and hides a shutdown bug:
    the warning the run would show comes after the summary, with its scenario."""
    code = ("import signal; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
            "print('up', flush=True); signal.pause()")  # (until the SIGKILL)
    case = _scenario(tmp_path, f"[procs.s]\ncmd = {json.dumps([sys.executable, '-c', code])}\n"
                               "stop_timeout = 0.3\n[[step]]\nexpect = 'up'\n")
    result = run("test", case)
    assert result.returncode == 0, result.stdout
    assert (f"pipeplex: warning: {case}: s: ignored SIGTERM for 0.3 s; sent SIGKILL to its "
            "process group\n") in result.stderr


@pytest.mark.parametrize("t", ["1e400", "NaN", "1e20"])
def test_replay_with_timestamps_skips_a_time_it_cannot_show(tmp_path: Path, t: str) -> None:
    transcript = tmp_path / "t.jsonl"
    transcript.write_text(f'{{"t": {t}, "p": "a", "s": "out", "d": "x\\n"}}\n'
                          '{"t": 1.5, "p": "a", "s": "out", "d": "y\\n"}\n')
    result = run("replay", "--timestamps", transcript)
    assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr
    assert "which is no time); skipped" in result.stderr
    assert result.stdout.endswith("a | y\n")



@pytest.mark.parametrize("target", ["victim.xml", "nowhere.xml"])
def test_a_junit_report_in_place_of_a_link_is_refused_before_the_tests(
        tmp_path: Path, target: str) -> None:
    """A link planted at --junit's path is said before anything runs (status 2, as for a
    report that cannot be written), and neither the file it points to nor one where a
    dangling link points is written."""
    (tmp_path / "victim.xml").write_text("someone else's\n")
    report = tmp_path / "j.xml"
    report.symlink_to(tmp_path / target)
    scenario = _scenario(tmp_path, CAT + '[[step]]\nsend = "hi"\nto = "c"\n')
    result = run("test", scenario, "--junit", report)
    assert result.returncode == 2, result.stdout
    assert result.stdout == ""
    assert result.stderr == (f"pipeplex: error: cannot write the JUnit report {report}: it is "
                             "a symbolic link, which pipeplex does not follow; remove it, or "
                             "give another file\n")
    assert (tmp_path / "victim.xml").read_text() == "someone else's\n"
    assert not (tmp_path / "nowhere.xml").exists()


@pytest.mark.parametrize(("args", "said"), [
    # A glob right after the option: its first match is taken for the report's path.
    ("--junit a.toml b.toml c.toml",
     "cannot write the JUnit report a.toml: it ends in .toml, as a scenario's name does (a "
     "glob right after --junit gives it its first match); give --junit a path of its own"),
    ("--transcript a.toml b.toml",
     "cannot write the transcript a.toml: it ends in .toml, as a scenario's name does (a "
     "glob right after --transcript gives it its first match); give --transcript a path of "
     "its own"),
    ("--transcript a.toml b.toml c.toml",
     "cannot use the transcript folder a.toml: it ends in .toml, as a scenario's name does "
     "(a glob right after --transcript gives it its first match); give --transcript a path "
     "of its own"),
    # The file being tested, by another name, or one a folder holds.
    ("a.scenario --transcript a.scenario",
     "cannot write the transcript a.scenario: it is the scenario file a.scenario; give "
     "--transcript a path of its own"),
    ("a.scenario --junit sub/../a.scenario",
     "cannot write the JUnit report sub/../a.scenario: it is the scenario file a.scenario; "
     "give --junit a path of its own"),
    ("sub --junit sub/d.toml",
     "cannot write the JUnit report sub/d.toml: it is the scenario file sub/d.toml; give "
     "--junit a path of its own"),
    # A golden file, there already or still to be made by --update.
    ("g.toml --transcript g.golden",
     "cannot write the transcript g.golden: it is the golden file of g.toml; give "
     "--transcript a path of its own"),
    ("--update n.toml --junit n.golden",
     "cannot write the JUnit report n.golden: it is the golden file of n.toml; give --junit "
     "a path of its own"),
    ("j.toml a.toml --transcript .",
     "cannot write the transcript j.jsonl: it is the golden file of j.toml; give "
     "--transcript a path of its own"),
    # Two records in one file: the one written last replaced the other without a word.
    ("a.toml --junit r.out --transcript r.out",
     "cannot write r.out, the transcript: it is the JUnit report; give --transcript a path "
     "of its own"),
    ("a.toml --transcript logs/c.log --log-dir logs",
     "cannot write logs/c.log, the log of c (a.toml): it is the transcript; give --log-dir "
     "a path of its own"),
])
def test_a_report_in_place_of_a_scenario_or_golden_file_is_refused_before_the_tests(
        tmp_path: Path, args: str, said: str) -> None:
    """``pipeplex test --junit *.toml`` replaced a.toml with the report, and a transcript
    could replace the scenario it recorded or its golden file: each is said before anything
    runs (status 2), and no file is touched."""
    body = CAT + '[[step]]\nsend = "hi"\nto = "c"\n[[step]]\nexpect = "^hi$"\n'
    (tmp_path / "sub").mkdir()
    for name in ("a.toml", "b.toml", "c.toml", "a.scenario", "sub/d.toml"):
        _scenario(tmp_path, body, name)
    for name in ("g", "n", "j"):
        golden = "j.jsonl" if name == "j" else f"{name}.golden"
        _scenario(tmp_path, f'golden = "{golden}"\n' + body, f"{name}.toml")
    (tmp_path / "g.golden").write_text("c > hi\nc | hi\n")

    def files() -> dict[Path, bytes]:
        return {path: path.read_bytes() for path in tmp_path.rglob("*") if path.is_file()}

    before = files()
    result = run("test", *args.split(), cwd=tmp_path)
    assert result.returncode == 2, result.stdout + result.stderr
    assert result.stdout == ""
    assert result.stderr == f"pipeplex: error: {said}\n"
    assert files() == before


def test_a_new_junit_report_is_private(tmp_path: Path) -> None:
    import subprocess

    from .helpers import PIPEPLEX

    scenario = _scenario(tmp_path, CAT + '[[step]]\nsend = "hi"\nto = "c"\n')
    report = tmp_path / "j.xml"
    result = subprocess.run([*PIPEPLEX, "test", str(scenario), "--junit", str(report)],
                            capture_output=True, text=True, timeout=30,
                            stdin=subprocess.DEVNULL, preexec_fn=lambda: os.umask(0o022))
    assert result.returncode == 0, result.stdout + result.stderr
    assert oct(report.stat().st_mode & 0o777) == "0o600"
    assert len(ET.parse(report).getroot().findall(".//testcase")) == 1


def test_update_refuses_a_golden_file_that_is_a_link(tmp_path: Path) -> None:
    """--update does not write through a link in the golden file's place: the scenario
    fails, saying so, and the file the link points to stays as it was."""
    (tmp_path / "victim.txt").write_text("someone else's\n")
    (tmp_path / "case.golden").symlink_to(tmp_path / "victim.txt")
    case = _scenario(tmp_path, 'golden = "case.golden"\n' + CAT
                     + '[[step]]\nsend = "hello"\nto = "c"\n[[step]]\nexpect = "^hello$"\n')
    result = run("test", "--update", case)
    assert result.returncode == 1, result.stdout
    assert (f"cannot write golden file {tmp_path / 'case.golden'}: it is a symbolic link, "
            "which pipeplex does not follow; remove it, or name another file with golden = "
            "in the scenario") in result.stdout
    assert "0 passed, 1 failed" in result.stdout and "(0 golden files written)" in result.stdout
    assert (tmp_path / "victim.txt").read_text() == "someone else's\n"


@pytest.mark.parametrize(("planted", "said"), [
    ("pipe", "it is a named pipe, not a regular file"),
    ("link", "it is a symbolic link, which pipeplex does not follow")])
def test_a_golden_file_that_is_no_file_fails_its_scenario_at_once(
        tmp_path: Path, planted: str, said: str) -> None:
    """Compared, not written: a pipe in its place held pipeplex test in open() where no
    signal could end it, and a link showed the file it points to in the diff."""
    golden = tmp_path / "case.golden"
    if planted == "pipe":
        os.mkfifo(golden)
    else:
        (tmp_path / "hostname").write_text("not the golden file\n")
        golden.symlink_to(tmp_path / "hostname")
    case = _scenario(tmp_path, 'golden = "case.golden"\n' + CAT
                     + '[[step]]\nsend = "hello"\nto = "c"\n[[step]]\nexpect = "^hello$"\n')
    result = run("test", case)
    assert result.returncode == 1, result.stdout
    assert f"cannot read golden file {golden}: {said}" in result.stdout
    assert "not the golden file" not in result.stdout


@pytest.mark.parametrize(("option", "what"), [("--log-dir", "log folder"),
                                              ("--transcript", "transcript folder")])
@pytest.mark.parametrize("dangling", [False, True])
def test_several_scenarios_refuse_a_records_folder_that_is_a_link(
        tmp_path: Path, option: str, what: str, dangling: bool) -> None:
    """As one scenario's --log-dir is: each scenario is refused (status 2), and nothing is
    made where the link points. They did not run: errors, not failures (in JUnit too)."""
    elsewhere = tmp_path / "elsewhere"
    if not dangling:
        elsewhere.mkdir()
    link = tmp_path / "records"
    link.symlink_to(elsewhere)
    body = CAT + '[[step]]\nsend = "hi"\nto = "c"\n[[step]]\nexpect = "^hi$"\n'
    files = [_scenario(tmp_path, body, "a.toml"), _scenario(tmp_path, body, "b.toml")]
    report = tmp_path / "r.xml"
    result = run("test", *files, option, link, "--junit", report)
    assert result.returncode == 2, result.stdout
    said = (f"cannot use the {what} {link}: it is a symbolic link, which pipeplex does not "
            "follow; give the folder it points to, if that is yours; it did not run")
    assert result.stdout.count(said) == 2, result.stdout
    assert result.stdout.count("NOT RUN ") == 2, result.stdout
    assert "0 passed, 0 failed, 2 could not be recorded (not run)" in result.stdout
    cases = list(ET.parse(report).getroot().iter("testcase"))
    assert [case.find("error") is not None for case in cases] == [True, True]
    if dangling:
        assert not elsewhere.exists()
    else:
        assert list(elsewhere.iterdir()) == []


def test_several_scenarios_make_private_records_folders(tmp_path: Path) -> None:
    """The folders made for several scenarios' records are 0700, as their files are 0600;
    a scenario's log folder that is a link is refused, never followed."""
    body = CAT + '[[step]]\nsend = "hi"\nto = "c"\n[[step]]\nexpect = "^hi$"\n'
    files = [_scenario(tmp_path, body, "a.toml"), _scenario(tmp_path, body, "b.toml")]
    logs, transcripts = tmp_path / "logs", tmp_path / "transcripts"
    result = run("test", *files, "--log-dir", logs, "--transcript", transcripts)
    assert result.returncode == 0, result.stdout + result.stderr
    for folder in (logs, transcripts, logs / "a"):
        assert oct(folder.stat().st_mode & 0o777) == "0o700"
    shutil.rmtree(logs / "b")
    (tmp_path / "elsewhere").mkdir()
    (logs / "b").symlink_to(tmp_path / "elsewhere")
    result = run("test", *files, "--log-dir", logs)
    assert result.returncode == 2, result.stdout
    assert f"cannot use the log folder {logs / 'b'}: it is a symbolic link" in result.stdout
    assert list((tmp_path / "elsewhere").iterdir()) == []


def test_replay_skips_a_number_out_of_range(tmp_path: Path) -> None:
    """A code, pid or time too big for its kind is a malformed record like the others:
    named by its line and skipped, not a traceback."""
    transcript = tmp_path / "t.jsonl"
    transcript.write_text(
        '{"t": 1.0, "s": "event", "e": "exit", "p": "a", "code": 1e999}\n'
        '{"t": 1.0, "s": "event", "e": "start", "p": "a", "pid": 1e999}\n'
        f'{{"t": 1{"0" * 400}, "p": "a", "s": "out", "d": "x\\n"}}\n'
        '{"t": 1.0, "p": "a", "s": "out", "d": "shown\\n"}\n')
    result = run("replay", transcript)
    assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr
    assert result.stdout == "a | shown\n"
    for lineno in (1, 2, 3):
        assert (f"pipeplex: warning: {transcript}:{lineno}: a record with a field of the "
                "wrong kind (OverflowError: ") in result.stderr


def test_replay_skips_an_over_long_line_in_bounded_memory(tmp_path: Path) -> None:
    """A line far longer than any record (256 MiB of NULs, as /dev/zero gives; here a
    sparse file) is read past in pieces, within a memory limit smaller than the line, and
    said by its line number; the records around it are shown."""
    import resource
    import subprocess

    from .helpers import PIPEPLEX

    transcript = tmp_path / "t.jsonl"
    with transcript.open("wb") as file:
        file.write(b'{"t": 1.0, "p": "a", "s": "out", "d": "before\\n"}\n')
        file.truncate(file.tell() + 256 * 2**20)
        file.seek(0, os.SEEK_END)
        file.write(b'\n{"t": 1.0, "p": "a", "s": "out", "d": "after\\n"}\n')
    limit = 192 * 2**20

    def less_memory_than_the_line() -> None:  # (in pipeplex, before it starts)
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))

    result = subprocess.run([*PIPEPLEX, "replay", str(transcript)], capture_output=True,
                            text=True, timeout=60, stdin=subprocess.DEVNULL,
                            preexec_fn=less_memory_than_the_line)
    assert result.returncode == 1, result.stderr
    assert result.stdout == "a | before\na | after\n"
    assert result.stderr == (f"pipeplex: warning: {transcript}:2: not a transcript record: "
                             "longer than 16 MiB; skipped\n")


def test_steps_are_reported_with_what_their_variables_made_of_them(tmp_path: Path) -> None:
    """-v lines and failures show a step's value as written and, when its {variables}
    changed it, as it was used: what was sent and what was looked for."""
    case = _scenario(tmp_path, (
        "[procs.c]\ncmd = \"sh -c 'echo port 4242; cat'\"\nready = 'port (?P<port>\\d+)'\n"
        "[[step]]\nsend = 'to {port}'\nto = 'c'\n"
        "[[step]]\nexpect = '^to {port}!$'\nin = 'c'\ntimeout = 0.5\n"))
    result = run("test", "-v", case)
    assert result.returncode == 1, result.stdout
    assert "send 'to {port}' (= 'to 4242') to c" in result.stdout
    assert f"{case}:8: expect '^to {{port}}!$' (= '^to 4242!$') in c: not seen" in result.stdout


def test_expect_not_fails_at_the_text_with_the_lines_around_it(tmp_path: Path) -> None:
    """What appeared, and the member's last output: the line it came in and what came
    before, where a bare 'Traceback' would say little."""
    case = _scenario(tmp_path, (
        "[procs.c]\ncmd = \"sh -c 'echo ok; echo Traceback: most recent call last; "
        "echo ValueError: boom; exec cat'\"\n"
        "[[step]]\nexpect_not = 'Traceback'\nwithin = 30\n"))
    result = run("test", case)
    assert result.returncode == 1, result.stdout
    assert "expect_not 'Traceback': it appeared in the output of c: 'Traceback'" in result.stdout
    assert "last output of c:" in result.stdout
    assert "Traceback: most recent call last" in result.stdout


def test_a_failure_says_where_its_records_are(tmp_path: Path) -> None:
    """With --transcript and --log-dir, a failed scenario's report names its records: where
    to read the whole of what happened (and which of x-1, x-2 is whose)."""
    failing = _scenario(tmp_path, CAT + "[[step]]\nexpect = 'never'\ntimeout = 0.1\n", "f.toml")
    passing = _scenario(tmp_path, CAT + '[[step]]\nsend = "hi"\nto = "c"\n', "p.toml")
    result = run("test", "--transcript", tmp_path / "tr", "--log-dir", tmp_path / "logs",
                 failing, passing)
    assert result.returncode == 1, result.stdout
    assert f"transcript: {tmp_path / 'tr' / 'f.jsonl'}" in result.stdout
    assert f"logs: {tmp_path / 'logs' / 'f'}" in result.stdout
    assert "p.jsonl" not in result.stdout


def test_a_run_killed_outright_leaves_a_junit_report_of_what_was_done(tmp_path: Path) -> None:
    """A CI runner's SIGKILL gives no chance to write the report at the end: it is written
    before each scenario, so what finished is there, the scenario under way an error, and
    the rest skipped."""
    first = _scenario(tmp_path, CAT + "[[step]]\nsend = 'hi'\nto = 'c'\n[[step]]\n"
                                     "expect = 'hi'\nin = 'c'\n", "a_first.toml")
    stuck = _scenario(tmp_path, CAT + "[[step]]\nexpect = 'never'\nin = 'c'\ntimeout = 60\n",
                      "b_stuck.toml")
    last = _scenario(tmp_path, CAT, "c_last.toml")
    report = tmp_path / "r.xml"
    proc = subprocess.Popen([*PIPEPLEX, "test", first, stuck, last, "--junit", report],
                            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)
    def under_way() -> bool:
        try:
            cases = ET.parse(report).getroot().iter("testcase")
        except (OSError, ET.ParseError):  # (not there yet; replaced as it was read)
            return False
        return any(case.get("name") == "b_stuck" and case.find("error") is not None
                   for case in cases)

    try:
        deadline = time.monotonic() + DEADLINE  # (until the stuck one is under way)
        while not under_way():
            assert time.monotonic() < deadline and proc.poll() is None
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    cases = {case.get("name"): case for case in ET.parse(report).getroot().iter("testcase")}
    assert list(cases) == ["a_first", "b_stuck", "c_last"]
    assert list(cases["a_first"]) == []  # (passed)
    assert cases["b_stuck"].find("error") is not None
    skipped = cases["c_last"].find("skipped")
    assert skipped is not None and skipped.get("message") == (
        "not run: pipeplex ended before it (killed?)")


def test_a_timeout_factor_is_taken_and_said(tmp_path: Path) -> None:
    case = _scenario(tmp_path, CAT + "[[step]]\nsend = 'hi'\nto = 'c'\n[[step]]\n"
                                    "expect = 'hi'\nin = 'c'\n")
    result = run("test", case, "--timeout-factor", "2.5")
    assert result.returncode == 0, result.stdout
    assert result.stdout.splitlines()[-1].endswith(" s (timeouts x2.5)")
    refused = run("test", case, "--timeout-factor", "0")
    assert refused.returncode == 2
    assert "argument --timeout-factor: '0' is not a number from 0.01 to 1000" in (
        refused.stderr)


def test_a_failed_scenario_brings_its_merged_stream_to_junit(tmp_path: Path) -> None:
    """A CI that keeps only the XML sees the whole stream of a failure (what was sent
    too), not only each member's last lines; a passing scenario's is not kept."""
    passes = _scenario(tmp_path, CAT + "[[step]]\nsend = 'hi'\nto = 'c'\n[[step]]\n"
                                      "expect = 'hi'\nin = 'c'\n", "passes.toml")
    fails = _scenario(tmp_path, CAT + "[[step]]\nsend = 'first'\nto = 'c'\n[[step]]\n"
                                     "expect = 'second'\nin = 'c'\ntimeout = 0.5\n",
                      "fails.toml")
    report = tmp_path / "r.xml"
    assert run("test", passes, fails, "--junit", report).returncode == 1
    out = {case.get("name"): case.find("system-out")
           for case in ET.parse(report).getroot().iter("testcase")}
    assert out["passes"] is None
    text = out["fails"].text if out["fails"] is not None else ""
    assert "c > first\n" in (text or "") and "c | first\n" in (text or ""), text
    assert re.search(rf"pipeplex \* step {re.escape(str(fails))}:7: expect 'second' in c: "
                     r"failed after [\d.]+", text or ""), text


def test_exitfirst_stops_at_the_first_failure(tmp_path: Path) -> None:
    """pipeplex test -x, as pytest's: no scenario starts after one that failed; the rest are
    counted as not run, skipped in JUnit."""
    fails = _scenario(tmp_path, CAT + "[[step]]\nexpect = 'never'\nin = 'c'\ntimeout = 0.2\n",
                      "a_fails.toml")
    after = _scenario(tmp_path, CAT, "b_after.toml")
    report = tmp_path / "r.xml"
    result = run("test", fails, after, "-x", "--junit", report)
    assert result.returncode == 1, result.stdout
    assert "0 passed, 1 failed, 1 not run (-x: stopped at a failure)" in result.stdout
    cases = {c.get("name"): c for c in ET.parse(report).getroot().iter("testcase")}
    skipped = cases["b_after"].find("skipped")
    assert skipped is not None
    assert skipped.get("message") == "not run: -x stopped the run at a failure before it"
    assert "1 passed, 1 failed" in run("test", fails, after).stdout  # (without -x: both run)


def test_exitfirst_starts_none_when_a_file_could_not_be_loaded(tmp_path: Path) -> None:
    """pytest -x stops at a collection error before any test runs: so does pipeplex test -x
    at a file that could not be loaded, said with the rest not run."""
    broken = tmp_path / "a_broken.toml"
    broken.write_text("[procs.c\n")
    would_pass = _scenario(tmp_path, CAT, "b_passes.toml")
    report = tmp_path / "r.xml"
    result = run("test", broken, would_pass, "-x", "--junit", report)
    assert result.returncode == 2, result.stdout
    assert ("0 passed, 0 failed, 1 could not be loaded, 1 not run (-x: stopped at a file that "
            "could not be loaded)") in result.stdout
    cases = {c.get("name"): c for c in ET.parse(report).getroot().iter("testcase")}
    skipped = cases["b_passes"].find("skipped")
    assert skipped is not None
    assert skipped.get("message") == ("not run: -x stopped the run at a file that could not "
                                      "be loaded before it")
    assert "1 passed, 0 failed, 1 could not be loaded" in run("test", broken, would_pass).stdout


def test_k_runs_only_the_scenarios_whose_path_holds_its_words(tmp_path: Path) -> None:
    """pipeplex test -k, as pytest's: words matched in the path, case aside, joined by
    and/or/not; the others are not loaded (a broken one left out does not stop the run)."""
    (tmp_path / "chat").mkdir()
    for name in ("chat/login.toml", "chat/logout.toml", "groupchat.toml"):
        _scenario(tmp_path, CAT, name)
    (tmp_path / "slow.toml").write_text("[procs.c\n")  # (not TOML: it would fail to load)
    # (From the folder above them, given in full: that folder's own words are not matched.)
    result = run("test", tmp_path, "-v", "-k", "CHAT and not logout and not pytest",
                 cwd=tmp_path.parent)
    assert result.returncode == 0, result.stdout + result.stderr
    ran = [line for line in result.stdout.splitlines() if line.endswith(".toml")]
    assert [Path(line).name for line in ran] == ["login.toml", "groupchat.toml"]
    assert "2 passed, 0 failed, 2 deselected in " in result.stdout
    listed = run("test", tmp_path, "--list", "-k", "CHAT and not logout")
    assert listed.returncode == 0, listed.stderr
    assert listed.stdout == f"{tmp_path / 'chat' / 'login.toml'}\n{tmp_path / 'groupchat.toml'}\n"
    none = run("test", tmp_path, "-k", "nothing")
    assert none.returncode == 2
    assert "no scenario's path matches -k 'nothing'; the 4 given: " in none.stderr
    bad = run("test", tmp_path, "-k", "chat slow")
    assert bad.returncode == 2
    assert ("argument -k: 'chat slow': 'slow' follows a whole expression: join the two with "
            "'and' or 'or'") in bad.stderr


def test_a_folder_leaves_out_another_programs_toml(tmp_path: Path) -> None:
    """A server's configuration among the scenarios is not one (no table or key of a
    scenario's), so it does not fail the run; a mistyped scenario still is one, and says
    so; a folder with no scenario at all is an error."""
    _scenario(tmp_path, CAT, "chat.toml")
    (tmp_path / "fixtures").mkdir()
    (tmp_path / "fixtures" / "server.toml").write_text("[server]\nport = 8080\n")
    (tmp_path / "fixtures" / "pyproject.toml").write_text(  # (project ~ procs, exclude ~ ...)
        '[project]\nname = "x"\n[tool.ruff]\nexclude = ["a"]\ninclude = ["*.py"]\n')
    result = run("test", tmp_path, "-v")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 passed, 0 failed in " in result.stdout
    assert (f"pipeplex: skipped {tmp_path / 'fixtures' / 'server.toml'}: it has no table or "
            "key of a scenario's ([procs], [[step]], ...)") in result.stderr
    (tmp_path / "typo.toml").write_text('[proc.c]\ncmd = "cat"\n')
    typo = run("test", tmp_path)
    assert typo.returncode == 2
    assert "typo.toml:1: unknown table or key 'proc'; did you mean 'procs'?" in typo.stdout
    none = run("test", tmp_path / "fixtures")
    assert none.returncode == 2
    assert "holds no scenario to test: its .toml files are another program's" in none.stderr


def test_a_failure_at_the_stops_eof_says_so_and_what_to_write(tmp_path: Path) -> None:
    """A program reading with input() raises at the EOF the stop gives it, once every step
    passed: the report says that is when, and how to make that end part of the test."""
    code = "print('name?', flush=True); n = input(); print('hi', n, flush=True); input()"
    case = _scenario(tmp_path, f"[procs.ask]\ncmd = {json.dumps([sys.executable, '-c', code])}"
                               "\n[[step]]\nsend = 'bob'\nto = 'ask'\n[[step]]\n"
                               "expect = 'hi bob'\n")
    result = run("test", case)
    assert result.returncode == 1
    assert ("ask exited with code 1, once every step had passed, at the end of input the stop "
            "gave it (its stdin closed, before any signal); have it end well there, or make "
            "that end a step: close = 'ask', then wait_exit = 'ask' with code = 1"
            ) in result.stdout
    crash = _scenario(tmp_path, "[procs.c]\ncmd = ['sh', '-c', 'echo up; exit 3']\n"
                                "[[step]]\nexpect = 'up'\n[[step]]\nwait_exit = 'c'\n",
                      "crash.toml")
    crashed = run("test", crash)
    assert crashed.returncode == 1 and "c exited with code 3\n" in crashed.stdout
    assert "once every step had passed" not in crashed.stdout


def test_a_failure_at_the_stops_eof_in_a_file_without_steps_says_so_too(
        tmp_path: Path) -> None:
    """A plain cast file is a test of the start and the stop: a member that fails at the EOF
    the stop gives it is told as such, with the steps that would make that end a check."""
    code = "print('up', flush=True); input()"
    case = _scenario(tmp_path, f"[procs.ask]\ncmd = {json.dumps([sys.executable, '-c', code])}"
                               "\nready = 'up'\n")
    result = run("test", case)
    assert result.returncode == 1
    assert ("ask exited with code 1, once its members were up, at the end of input the stop "
            "gave it (its stdin closed, before any signal); have it end well there, or make "
            "that end a step: close = 'ask', then wait_exit = 'ask' with code = 1"
            ) in result.stdout


@pytest.mark.parametrize(("sig", "then"), [
    ("KILL", ""), ("TERM", ""),
    ("KILL", "[[step]]\nexpect_not = 'never'\nwithin = 1\n"),  # (its end seen in the steps)
    ("INT", "[[step]]\nsignal = 'CONT'\nto = 'all'\n"),  # (a later signal, harmless: not it)
])
def test_a_death_by_a_signal_step_is_blamed_on_that_step(
        tmp_path: Path, sig: str, then: str) -> None:
    """A signal step as the last step: the member's death, seen as the stop began, was
    blamed on the stop's EOF, with code = 137 for a wait_exit that takes -9; seen during
    the steps, it was its exit alone."""
    case = _scenario(tmp_path, f"[procs.a]\ncmd = 'cat'\n[[step]]\nsignal = '{sig}'\n"
                               f"to = 'a'\n{then}")
    result = run("test", case)
    assert result.returncode == 1
    number = -getattr(signal, f"SIG{sig}")
    assert (f"a killed by SIG{sig}, sent by the signal step at {case}:4; if that is its "
            f"end, make it a step: wait_exit = 'a' with code = {number}") in result.stdout, \
        result.stdout
    assert "end of input" not in result.stdout


def test_a_path_written_from_the_cast_files_folder_is_said_to_be(tmp_path: Path) -> None:
    """A scenario in a folder of its own, run from the project's root, names its programs
    from its own folder; the member runs in pipeplex's and does not find them. The error
    and the failure say where they are, and that cwd = "." runs the member there."""
    suite = tmp_path / "tests"
    (suite / "progs").mkdir(parents=True)
    (suite / "progs" / "hello.py").write_text("print('hello runs')\n")
    app = suite / "app"
    app.write_text("#!/bin/sh\necho app runs\n")
    app.chmod(0o755)
    py = _scenario(suite, f"[procs.p]\ncmd = {json.dumps([sys.executable, 'progs/hello.py'])}\n"
                          "[[step]]\nexpect = 'hello runs'\ntimeout = 5\n", "py.toml")
    result = run("test", "tests/py.toml", cwd=tmp_path)
    assert result.returncode == 1
    assert (f"note: tests/py.toml:2: p's command names 'progs/hello.py', which is not in the "
            f"folder it runs in ({tmp_path}, pipeplex's) but in the cast file's (tests): set "
            'cwd = "." to run p there') in result.stdout, result.stdout
    assert run("test", py.name, cwd=suite).returncode == 0  # (from its own folder: no word)
    (suite / "hello.py").write_text("print('hello runs')\n")
    bare = _scenario(suite, f"[procs.b]\ncmd = {json.dumps([sys.executable, 'hello.py'])}\n"
                            "[[step]]\nexpect = 'hello runs'\ntimeout = 5\n", "bare.toml")
    named = run("test", f"tests/{bare.name}", cwd=tmp_path)
    assert "note: tests/bare.toml:2: b's command names 'hello.py', which is not in" in (
        named.stdout), named.stdout
    (suite / "py.toml").write_text(py.read_text().replace("[procs.p]\n", "[procs.p]\ncwd = '.'\n"))
    assert run("test", "tests/py.toml", cwd=tmp_path).returncode == 0
    _scenario(suite, "[procs.a]\ncmd = './app'\n", "app.toml")
    refused = run("test", "tests/app.toml", cwd=tmp_path)
    assert refused.returncode == 2
    assert (f"a: command not found: './app' (cmd = './app'); it is looked for in the folder "
            f"pipeplex runs in ({tmp_path}), not in the cast file's (tests), where it is: set "
            'cwd = "." to run a there') in refused.stdout, refused.stdout


def test_a_later_members_program_beside_the_cast_file_is_said_to_be(tmp_path: Path) -> None:
    """A member that starts later has its program looked for only then (an earlier one may
    build it): one written from the cast file's folder is said to be as the run starts, and
    its failed start says so too, with the fix."""
    suite = tmp_path / "tests"
    suite.mkdir()
    app = suite / "app"
    app.write_text("#!/bin/sh\necho app runs\n")
    app.chmod(0o755)
    _scenario(suite, "[procs.b]\ncmd = 'true'\nready_exit = true\n"
                     "[procs.a]\ncmd = './app'\nafter = ['b']\n", "later.toml")
    result = run("test", "tests/later.toml", cwd=tmp_path)
    assert result.returncode == 1
    assert (f"note: tests/later.toml:5: a's command names './app', which is not in the folder "
            f"it runs in ({tmp_path}, pipeplex's) but in the cast file's (tests): set "
            'cwd = "." to run a there') in result.stdout, result.stdout
    assert (f"a: cannot start './app': command not found: './app'; it is looked for in the "
            f"folder pipeplex runs in ({tmp_path}), not in the cast file's (tests), where it "
            'is: set cwd = "." to run a there') in result.stdout, result.stdout


@pytest.mark.parametrize("ready", ["", "ready = 'up'\n"])
def test_a_failure_after_a_member_without_readiness_notes_it(tmp_path: Path,
                                                             ready: str) -> None:
    """after = ["server"] waits for the server's readiness, and with neither ready nor
    ready_port that is its start: a client refused by a server still starting fails, and
    the report says what after waited for."""
    case = _scenario(tmp_path, "[procs.server]\ncmd = \"sh -c 'echo up; exec sleep 60'\"\n"
                               f"{ready}[procs.client]\ncmd = \"sh -c 'exit 1'\"\n"
                               "after = ['server']\n[[step]]\nexpect = 'connected'\n"
                               "in = 'client'\n")
    result = run("test", case)
    assert result.returncode == 1
    note = ("note: client starts after server, which has no ready, ready_port, ready_cmd or "
            "ready_exit: it started as soon as server did, not once server was ready; give "
            "server a ready pattern (a line it writes when it listens), a ready_port, a "
            "ready_cmd (a health check), or ready_exit = true for a step that must end first "
            f"({case}:1)")
    assert (note in result.stdout) == (not ready), result.stdout


def test_a_restart_step_waits_for_the_new_run_and_send_may_leave_out_the_newline(
        tmp_path: Path) -> None:
    """restart = NAME stops the member as the stop would, starts it again and waits until
    the new run is ready (its captured values are the new run's then); newline = false
    sends a key press, or a piece of a line, as written."""
    server = "import os, sys; print('run', os.getpid(), flush=True); sys.stdin.read()"
    keys = "import sys; print('got', repr(sys.stdin.read(3)), flush=True)"
    case = _scenario(tmp_path, f"[procs.srv]\ncmd = {json.dumps([sys.executable, '-c', server])}"
                               "\nready = 'run (?P<pid>\\d+)'\n"
                               f"[procs.keys]\ncmd = {json.dumps([sys.executable, '-c', keys])}\n"
                               "[[step]]\nsend = 'ab'\nto = 'keys'\nnewline = false\n"
                               "[[step]]\nsend = 'c'\nto = 'keys'\nnewline = false\n"
                               "[[step]]\nexpect = \"got 'abc'\"\nin = 'keys'\n"
                               "[[step]]\nexpect = 'run {pid}'\nin = 'srv'\n"
                               "[[step]]\nrestart = 'srv'\n"
                               "[[step]]\nexpect = 'run {pid}'\nin = 'srv'\ntimeout = 2\n")
    result = run("test", case, "-v")
    assert result.returncode == 0, result.stdout
    assert "send 'ab' to keys (no newline)" in result.stdout
    assert "restart 'srv'" in result.stdout
    bad = _scenario(tmp_path, CAT + "[[step]]\nsend = 'x'\nto = 'c'\nnewline = 'no'\n"
                                    "[[step]]\nrestart = 'd'\n", "bad.toml")
    refused = run("test", bad)
    assert refused.returncode == 2
    assert "bad.toml:6: send step: newline is true or false, not 'no'" in refused.stdout
    assert "bad.toml:8: restart step: no member named 'd'" in refused.stdout


def test_scenarios_share_a_cast_through_include(tmp_path: Path) -> None:
    """include = "casts/server.toml": the scenarios of a suite share one cast instead of
    copying it; its members come first, read from their own file (a relative cwd from its
    folder, its lines in messages). A folder leaves out the cast files its scenarios
    include: they are no tests of their own."""
    (tmp_path / "casts").mkdir()
    (tmp_path / "casts" / "data").mkdir()
    (tmp_path / "casts" / "server.toml").write_text(
        "[procs.server]\ncmd = \"sh -c 'echo listening in $(basename $PWD); exec cat'\"\n"
        "cwd = 'data'\nready = 'listening'\n")
    _scenario(tmp_path, "include = 'casts/server.toml'\n[procs.client]\ncmd = 'echo hello'\n"
                        "after = ['server']\n[[step]]\nexpect = 'hello'\nin = 'client'\n",
              "a.toml")
    _scenario(tmp_path, "include = ['casts/server.toml']\n[[step]]\n"
                        "expect = 'listening in data'\nin = 'server'\n", "b.toml")
    result = run("test", tmp_path, "-v")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "2 passed, 0 failed in " in result.stdout
    assert (f"pipeplex: skipped {tmp_path / 'casts' / 'server.toml'}: a cast file other "
            "scenarios include") in result.stderr
    apart = run("test", tmp_path / "a.toml", tmp_path / "casts")  # (given apart: the same)
    assert apart.returncode == 0 and "1 passed, 0 failed in " in apart.stdout, apart.stdout
    (tmp_path / "c.toml").write_text("include = ['casts/none.toml', 'casts/server.toml']\n"
                                     "[procs.server]\ncmd = 'cat'\n")
    bad = run("test", tmp_path / "c.toml")
    assert bad.returncode == 2
    assert ("c.toml:1: include: no such cast file 'casts/none.toml' (looked for "
            f"{tmp_path / 'casts' / 'none.toml'})") in bad.stdout, bad.stdout
    assert (f"c.toml:2: [procs.server] is declared in {tmp_path / 'casts' / 'server.toml'}:1 "
            "too, which this file includes: give one of them another name") in bad.stdout
    for include, said in (("['casts/server.toml', 'casts/server.toml']",
                           "include: 'casts/server.toml' is named twice"),
                          ("'casts'", "include: 'casts': this is a folder, not a cast file"),
                          ("'e.toml'", "include: 'e.toml' is this file itself")):
        (tmp_path / "e.toml").write_text(f"include = {include}\n[procs.x]\ncmd = 'cat'\n")
        wrong = run("test", tmp_path / "e.toml")
        assert wrong.returncode == 2 and f"e.toml:1: {said}" in wrong.stdout, wrong.stdout
    (tmp_path / "casts" / "steps.toml").write_text("[procs.x]\ncmd = 'cat'\n[[step]]\n"
                                                   "expect = 'x'\n")
    (tmp_path / "d.toml").write_text("include = 'casts/steps.toml'\n")
    steps = run("test", tmp_path / "d.toml")
    assert steps.returncode == 2
    assert ("steps.toml:3: step in an included file: it gives members only ([procs.NAME]); "
            "step belongs in the file that includes it") in steps.stdout, steps.stdout
    # A key no file takes (a slip for procs) is not sent to the including file.
    (tmp_path / "casts" / "steps.toml").write_text("[procz.x]\ncmd = 'cat'\n")
    slip = run("test", tmp_path / "d.toml")
    assert slip.returncode == 2
    assert ("steps.toml:1: unknown table or key 'procz' in an included file, which gives "
            "members only ([procs.NAME]); did you mean 'procs'?") in slip.stdout, slip.stdout


def test_a_scenario_that_says_skip_is_not_run_and_is_counted_apart(tmp_path: Path) -> None:
    """skip = "why": pipeplex test leaves it out (JUnit: skipped, with why) and the run's
    status is not the worse for it; pipeplex run still runs it."""
    skipped = _scenario(tmp_path, "skip = 'needs postgres'\n[procs.c]\ncmd = 'echo ran'\n",
                        "pg.toml")
    passes = _scenario(tmp_path, CAT, "ok.toml")
    report = tmp_path / "r.xml"
    result = run("test", skipped, passes, "--junit", report, "-v")
    assert result.returncode == 0, result.stdout
    assert "  SKIP needs postgres\n" in result.stdout
    assert "1 passed, 0 failed, 1 skipped in " in result.stdout
    [case] = [c for c in ET.parse(report).getroot().iter("testcase") if c.get("name") == "pg"]
    mark = case.find("skipped")
    assert mark is not None and mark.get("message") == "skip = 'needs postgres'"
    assert "c | ran" in run("run", skipped, "--no-color").stdout
    bad = _scenario(tmp_path, "skip = true\n" + CAT, "bad.toml")
    refused = run("test", bad)
    assert refused.returncode == 2
    assert ("bad.toml:1: skip is why the scenario is skipped, a string (skip = \"needs "
            "postgres\"), not true") in refused.stdout


def test_a_restart_step_fails_when_the_new_run_ends_before_it_is_ready(
        tmp_path: Path) -> None:
    flag = tmp_path / "ran"
    script = f"if [ -e {flag} ]; then echo boom; exit 3; fi; touch {flag}; echo ready; exec cat"
    case = _scenario(tmp_path, f"[procs.srv]\ncmd = {json.dumps(['sh', '-c', script])}\n"
                               "ready = 'ready'\n[[step]]\nrestart = 'srv'\n")
    result = run("test", case)
    assert result.returncode == 1
    assert "restart 'srv': srv did not get ready again (srv exited with code 3)" in (
        result.stdout), result.stdout


def test_lf_runs_what_failed_the_last_time(tmp_path: Path) -> None:
    """--lf, as pytest's: only the scenarios that failed the last time they ran from this
    folder (kept in the user's cache, not in the project); all of them when none did."""
    _scenario(tmp_path, CAT, "ok.toml")
    bad = _scenario(tmp_path, CAT + "[[step]]\nexpect = 'never'\ntimeout = 0.2\n", "bad.toml")
    assert "1 passed, 1 failed" in run("test", ".", cwd=tmp_path).stdout
    again = run("test", ".", "--lf", "-v", cwd=tmp_path)
    assert "0 passed, 1 failed, 1 deselected in " in again.stdout, again.stdout
    assert "ok.toml" not in again.stdout
    bad.write_text(CAT)  # (fixed: it passes, and is forgotten)
    assert "1 passed, 0 failed, 1 deselected in " in run("test", ".", "--lf", cwd=tmp_path).stdout
    everything = run("test", ".", "--lf", cwd=tmp_path)
    assert "2 passed, 0 failed in " in everything.stdout
    assert ("pipeplex: none of these scenarios failed the last time it ran here: running "
            "them all") in everything.stderr
    assert not list(tmp_path.glob(".*cache*"))  # (nothing written into the project)


def test_closing_a_member_that_was_never_started_fails_the_step(tmp_path: Path) -> None:
    """close = 'b' for a member with autostart = false that no step started passed, closing
    nothing, where send, signal and expect to it fail."""
    case = _scenario(tmp_path, "[procs.a]\ncmd = 'cat'\n[procs.b]\ncmd = 'cat'\n"
                               "autostart = false\n[[step]]\nclose = 'b'\n")
    result = run("test", case)
    assert result.returncode == 1, result.stdout
    assert (f"{case}:7: close 'b': b was never started: there is no stdin of it to close"
            in result.stdout), result.stdout


def test_a_start_step_that_could_not_start_gets_no_note_about_its_start(
        tmp_path: Path) -> None:
    """a starts after b, and neither was started: the note that a started as soon as b did
    (give b a ready pattern) told of a start that did not happen."""
    case = _scenario(tmp_path, "[procs.a]\ncmd = 'cat'\nautostart = false\nafter = ['b']\n"
                               "[procs.b]\ncmd = 'cat'\nautostart = false\n"
                               "[[step]]\nstart = 'a'\ntimeout = 1\n")
    result = run("test", case)
    assert result.returncode == 1, result.stdout
    assert ("start 'a': a starts after b, which has autostart = false and was not started: "
            "start b first") in result.stdout
    assert "note:" not in result.stdout, result.stdout


def test_a_warning_in_test_mode_quotes_the_output_it_tells_of(tmp_path: Path) -> None:
    """Test mode shows no stream, so a warning after the summary quotes the member's last
    output rather than saying it is just above."""
    case = _scenario(tmp_path, "[procs.db]\ncmd = ['sh', '-c', 'echo booting; exec sleep 30']\n"
                               "ready = 'ready now'\nready_timeout = 0.2\n"
                               "on_exit = 'restart'\nmax_restarts = 1\n"
                               "[[step]]\nsleep = 0.1\n")
    result = run("test", case)
    assert f"pipeplex: warning: {case}: db: was not ready after 0.2 s" in result.stderr
    assert "just above" not in result.stderr, result.stderr
    assert "last output:\n    | booting\n" in result.stderr, result.stderr


def test_a_stop_asked_for_cuts_the_steps_short_and_its_status_stands(tmp_path: Path) -> None:
    """A signal during a long sleep step ends the run at once: the sleep does not run out
    (nor pass), the steps after it do not run against the stopped cast and fail, and the
    status is the signal's, with a note of where the steps were."""
    case = _scenario(tmp_path, "[procs.srv]\ncmd = \"sh -c 'echo srv up; exec sleep 60'\"\n"
                               "[[step]]\nsleep = 60\n[[step]]\nsend = 'x'\nto = 'srv'\n")
    with Pipeplex("run", case, "--no-console", "--run-dir", tmp_path / "run") as plex:
        plex.expect(r"^srv \| srv up$")
        plex.signal(signal.SIGTERM)
        assert plex.wait() == 143, plex.text
    assert (f"pipeplex * the stop cut the steps short: {case}:4 (sleep '60.0') was under "
            "way; 0 of 2 done\n") in plex.text, plex.text
    assert "step failed" not in plex.text and "exit status" not in plex.text, plex.text


def test_a_step_that_fails_for_a_stop_asked_for_is_no_failure(tmp_path: Path) -> None:
    """Ctrl-C as an expect waits on srv: srv is stopped, which ends the step, but that is
    the stop's doing: the run exits as interrupted, with the step that was under way."""
    case = _scenario(tmp_path, "[procs.srv]\ncmd = \"sh -c 'echo srv up; exec sleep 60'\"\n"
                               "[[step]]\nexpect = 'never'\nin = 'srv'\ntimeout = 60\n"
                               "[[step]]\nsleep = 0.1\n")
    with Pipeplex("run", case, "--no-console", "--run-dir", tmp_path / "run") as plex:
        plex.expect(r"^srv \| srv up$")
        plex.signal(signal.SIGINT)
        assert plex.wait() == 130, plex.text
    assert (f"pipeplex * the stop cut the steps short: {case}:4 (expect 'never' in srv) was "
            "under way; 0 of 2 done\n") in plex.text, plex.text
    assert "step failed" not in plex.text and "exit status" not in plex.text, plex.text


@pytest.mark.parametrize("step", ["sleep = 60", "wait_port = 1\ntimeout = 60"])
def test_a_cast_that_stops_on_its_own_ends_a_waiting_step_at_once(tmp_path: Path,
                                                                  step: str) -> None:
    """a ends, and on_exit = "stop" stops the cast: a sleep ends at once (and the send after
    it fails, saying why), and so does a wait for a port nothing can open any more."""
    case = _scenario(tmp_path, "[procs.a]\ncmd = \"sh -c 'read line; echo bye'\"\n"
                               "on_exit = 'stop'\n[procs.b]\ncmd = 'cat'\n"
                               f"[[step]]\nsend = 'go'\nto = 'a'\n[[step]]\n{step}\n"
                               "[[step]]\nsend = 'x'\nto = 'b'\n")
    result = run("test", case)
    assert result.returncode == 1, result.stdout
    stopping = "(the cast was stopping: a exited with code 0; stopping the cast (on_exit = stop))"
    if step.startswith("sleep"):
        said = f"{case}:12: send 'x' to b: b is not running (or its stdin is closed) {stopping}"
    else:
        said = (f"{case}:10: wait_port '1': nothing accepted connections on port 1 of 127.0.0.1 "
                "or ::1 before the cast began to stop, ")
    assert said in result.stdout, result.stdout
    if not step.startswith("sleep"):  # (a may have ended before the step began, or in it)
        assert re.search(rf"(as this step began|[\d.]+ s into this step) {re.escape(stopping)}",
                         result.stdout), result.stdout


def test_the_exit_status_line_of_a_failed_step_says_it_whole(tmp_path: Path) -> None:
    """A step failed, then a stop was asked for as its member took its grace: the last line
    repeats the step's failure, not cut at its first '; ', and says a step decided it."""
    code = ("import signal, sys; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
            "signal.signal(signal.SIGUSR1, lambda *a: sys.exit(0)); "
            "print('up', flush=True); signal.pause()")  # (ends at the SIGUSR1 below)
    case = _scenario(tmp_path, f"[procs.s]\ncmd = {json.dumps([sys.executable, '-c', code])}\n"
                               "stop_timeout = 60\n"
                               "[[step]]\nexpect = 'a; b'\nin = 's'\ntimeout = 0.2\n")
    run_dir = tmp_path / "run"
    with Pipeplex("run", case, "--no-console", "--run-dir", run_dir) as plex:
        plex.expect(r"^pipeplex \* step failed: ")
        plex.expect(r"^s \* closed its stdin; sent SIGTERM")
        assert run("stop", "--no-wait", "--run-dir", run_dir).returncode == 0
        assert run("signal", "s", "USR1", "--run-dir", run_dir).returncode == 0
        assert plex.wait() == 1, plex.text
    assert plex.text.endswith(
        f"pipeplex * exit status 1: {case}:5: expect 'a; b' in s: not seen within 0.2 s (the "
        "step's failure decides it, not the stop asked for)\n"), plex.text


def test_the_members_an_interruption_killed_were_stopped_in_the_transcript(
        tmp_path: Path) -> None:
    """Their end was the interruption's doing, not their own: the transcript's exit record
    says stopped, as a replay then does."""
    case = _scenario(tmp_path, "[procs.s]\ncmd = \"sh -c 'echo up; exec sleep 60'\"\n"
                               "[[step]]\nexpect = 'up'\n[[step]]\nexpect = 'never'\n"
                               "timeout = 60\n")
    transcript = tmp_path / "t.jsonl"
    with Pipeplex("test", "-v", case, "--transcript", transcript) as plex:
        plex.expect(r"ok .* expect 'up'")  # (its member runs)
        plex.signal(signal.SIGTERM)
        assert plex.wait() == 143, plex.text
    exits = [record for line in transcript.read_text().splitlines()
             if (record := json.loads(line)).get("e") == "exit"]
    assert [(e["p"], e["code"], e["stopped"]) for e in exits] == [("s", -9, True)], exits


LISTEN_THROUGH_SIGTERM = (
    "import signal, socket\n"
    "s = socket.socket(); s.bind(('127.0.0.1', 0)); s.listen(50)\n"
    "signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
    "print('listening on', s.getsockname()[1], flush=True)\n"
    "while True: s.accept()[0].close()\n")
"""A server that goes on listening through the stop's SIGTERM, until its SIGKILL."""


def test_a_wait_port_after_the_cast_began_to_stop_still_looks(tmp_path: Path) -> None:
    """The cast was stopping before the step began (job ended, on_exit = "stop"), and the
    port still accepted: the step looks once and passes, rather than failing unlooked."""
    server = json.dumps([sys.executable, "-c", LISTEN_THROUGH_SIGTERM])
    case = _scenario(tmp_path, f"[procs.srv]\ncmd = {server}\n"
                               "ready = 'listening on (?P<port>\\d+)'\nstop_timeout = 1\n"
                               "[procs.job]\ncmd = \"sh -c 'read x'\"\non_exit = 'stop'\n"
                               "[[step]]\nsend = 'go'\nto = 'job'\n"
                               "[[step]]\nwait_exit = 'job'\ncode = 0\n"
                               "[[step]]\nwait_port = '{port}'\n")
    result = run("test", "-v", case)
    assert re.search(r"ok .* wait_port '\{port\}'", result.stdout), result.stdout
    assert result.returncode == 0, result.stdout


def test_a_stop_asked_for_once_the_cast_stopped_on_its_own_excuses_nothing(
        tmp_path: Path) -> None:
    """job ended and stopped the cast, which failed the step waiting on srv; a pipeplex
    stop that came then changed nothing of that stop, and does not make the failure the
    stop's doing: the run still exits 1 for its step."""
    server = ("import signal, sys\n"  # (it ends at the SIGUSR1 below)
              "signal.signal(signal.SIGTERM, lambda *a: print('got term', flush=True))\n"
              "signal.signal(signal.SIGUSR1, lambda *a: sys.exit(0))\n"
              "print('ready', flush=True)\nwhile True: signal.pause()\n")
    case = _scenario(tmp_path, f"[procs.srv]\ncmd = {json.dumps([sys.executable, '-c', server])}\n"
                               "ready = 'ready'\n"
                               "[procs.job]\ncmd = \"sh -c 'read x'\"\non_exit = 'stop'\n"
                               "[[step]]\nsend = 'go'\nto = 'job'\n"
                               "[[step]]\nexpect = 'never'\nin = 'srv'\ntimeout = 60\n")
    run_dir = tmp_path / "run"
    with Pipeplex("run", case, "--no-console", "--run-dir", run_dir) as plex:
        plex.expect(r"^srv +\| got term$")  # (the cast's own stop is under way)
        assert run("stop", "--no-wait", "--run-dir", run_dir).returncode == 0
        assert run("signal", "srv", "USR1", "--run-dir", run_dir).returncode == 0
        assert plex.wait() == 1, plex.text
    assert f"step failed: {case}:11: expect 'never' in srv" in plex.text, plex.text
    assert "cut the steps short" not in plex.text, plex.text


def test_a_wait_exit_that_fails_as_the_cast_stops_says_why_it_stops(tmp_path: Path) -> None:
    case = _scenario(tmp_path, "[procs.srv]\ncmd = 'sleep 100'\n"
                               "[procs.job]\ncmd = \"sh -c 'read x'\"\non_exit = 'stop'\n"
                               "[[step]]\nsend = 'go'\nto = 'job'\n"
                               "[[step]]\nwait_exit = 'srv'\ncode = 0\n")
    result = run("test", case)
    assert result.returncode == 1, result.stdout
    assert ("srv killed by SIGTERM, expected code 0 (the cast was stopping: job exited with "
            "code 0; stopping the cast (on_exit = stop))") in result.stdout, result.stdout
