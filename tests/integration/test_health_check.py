"""``ready_cmd``: a member is ready once a health check exits with 0 (pg_isready, say)."""

from __future__ import annotations

import json
import os
import re
import select
import signal
import subprocess
from pathlib import Path

from .helpers import DEADLINE, PIPEPLEX, Pipeplex, run, status, wait_exited, write_fifo


def _hanging_check(tmp_path: Path, cmd: str) -> tuple[Path, Path]:
    """A cast of one member ``db`` running ``cmd``, whose check writes its pid into a FIFO
    (read with :func:`_read_pid`) and then never ends; the cast file and the FIFO."""
    fifo = tmp_path / "probe.fifo"
    os.mkfifo(fifo)
    cast = tmp_path / "cast.toml"
    cast.write_text(f'[procs.db]\ncmd = "{cmd}"\nready_timeout = 600\n'
                    f"ready_cmd = \"sh -c 'echo $$ > {fifo}; exec sleep 60'\"\n")
    return cast, fifo


def _read_pid(fifo: Path) -> int:
    """The pid a health check wrote into ``fifo`` (made here) as it began."""
    fd = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)
    try:
        ready, _, _ = select.select([fd], [], [], DEADLINE)
        assert ready, "the health check never began"
        return int(os.read(fd, 64))
    finally:
        os.close(fd)


def test_members_after_one_with_a_ready_cmd_start_once_the_check_passes(
        tmp_path: Path, run_dir: Path) -> None:
    """The check runs again until it exits with 0: the server is ready only then, and the
    client starts after it, its summary the only one."""
    cast = tmp_path / "cast.toml"
    cast.write_text('[procs.db]\ncmd = "sh -c \'echo up; read x; : > ok; echo ok made; '
                    'exec sleep 60\'"\nready_cmd = "test -e ok"\n'
                    '[procs.app]\ncmd = "sh -c \'echo app up; exec sleep 60\'"\n'
                    'after = ["db"]\n')
    with Pipeplex("run", cast, "--run-dir", run_dir, cwd=tmp_path) as plex:
        plex.expect(r"^db +\| up$")
        assert "db  * ready" not in plex.text  # (nothing can pass its check before "go")
        write_fifo(run_dir / "db.in", b"go\n")
        plex.expect(r"^app +\| app up$")
        plex.signal(signal.SIGTERM)
        assert plex.wait() == 143
    text = plex.text
    # (Not "ok made" before "ready": the check may pass between the file and that line,
    # or before the line is read.)
    order = ["db  | up", "db  * ready", "app * started"]
    assert "app * summary: stopped" in text, text
    assert [text.index(line) for line in order] == sorted(text.index(line) for line in order)


def test_a_check_that_never_passes_fails_the_start_with_its_last_output(
        tmp_path: Path) -> None:
    """The message names the check, the values it ran with, the limit and where it was
    set, and what the check's last run said; the check may use what the member's own ready
    line captured."""
    cast = tmp_path / "cast.toml"
    cast.write_text('[procs.db]\ncmd = "sh -c \'echo listening on 4242; exec sleep 60\'"\n'
                    "ready = 'listening on (?P<port>\\d+)'\n"
                    "ready_cmd = \"sh -c 'echo no answer on {port} >&2; exit 2'\"\n"
                    "ready_timeout = 0.5\n"
                    '[procs.app]\ncmd = "sleep 60"\nafter = ["db"]\n')
    result = run("run", cast, "--run-dir", tmp_path / "run")
    assert result.returncode == 1, result.stdout
    said = (f"db  * was not ready after 0.5 s (its ready_timeout, at {cast}:5): its "
            "ready_cmd \"sh -c 'echo no answer on {port} >&2; exit 2'\" (with port='4242') "
            "never exited with code 0; its last run exited with code 2, writing:\n"
            "db  *   no answer on 4242\n")
    assert said in result.stdout, result.stdout
    assert ("app * summary: never started (waited for db, which was not ready after 0.5 s)"
            in result.stdout), result.stdout


def test_a_check_that_cannot_start_fails_at_once(tmp_path: Path) -> None:
    """A program missing from PATH is refused at load, with its line; one named by a path
    is looked for when the check runs, and its absence ends the start there and then."""
    cast = tmp_path / "cast.toml"
    cast.write_text('[procs.db]\ncmd = "sleep 60"\nready_cmd = "no-such-check --now"\n')
    result = run("run", cast)
    assert result.returncode == 2, result.stdout
    assert (f"{cast}:3: db: command not found: 'no-such-check' (ready_cmd = "
            "'no-such-check --now'); check the spelling and PATH") in result.stderr
    cast.write_text("[procs.db]\ncmd = 'sleep 60'\nready = 'port (?P<port>\\d+)'\n"
                    "ready_cmd = 'curll -fs http://127.0.0.1:{port}/'\n")
    result = run("run", cast)
    assert result.returncode == 2, result.stdout
    assert f"{cast}:4: db: command not found: 'curll'" in result.stderr, result.stderr
    missing = tmp_path / "missing" / "check"
    cast.write_text(f'[procs.db]\ncmd = "sleep 60"\nready_cmd = ["{missing}"]\n'
                    "ready_timeout = 60\n")
    result = run("run", cast, "--run-dir", tmp_path / "run")
    assert result.returncode == 1, result.stdout
    assert (f"db: its ready_cmd ['{missing}'] (at {cast}:3) cannot be started: "
            in result.stdout), result.stdout  # (a path: looked for only as it runs)
    assert "was not ready after" not in result.stdout


def test_a_member_that_exits_during_its_check_is_not_ready_and_the_check_ends(
        tmp_path: Path, run_dir: Path) -> None:
    """The member's exit ends the wait at once (not the timeout's): an exit before it was
    ready, and the check still running is killed."""
    cast, fifo = _hanging_check(tmp_path, "sh -c 'read x; exit 3'")
    with Pipeplex("run", cast, "--run-dir", run_dir) as plex:
        check = _read_pid(fifo)
        write_fifo(run_dir / "db.in", b"bye\n")
        assert plex.wait() == 3
    assert "db * exited with code 3\ndb * was not ready yet when it ended: it waited for its " \
           "ready_cmd" in plex.text, plex.text
    wait_exited(check, after="what should have ended it")


def test_the_daemon_hint_after_a_checks_output_is_a_line_of_its_own(
        tmp_path: Path, run_dir: Path) -> None:
    """A member that exits with 0 before its check passed gets the daemon hint, on a line
    of its own: not glued to the last line the check wrote, as if the check had said it."""
    cast = tmp_path / "cast.toml"
    # (Its second run lets the member end: the first run's output is said either way.)
    check = (f"echo not yet; if test -e once; then echo go > {run_dir / 'db.in'}; "
             "else : > once; fi; exit 1")
    cast.write_text(f'[procs.db]\ncmd = "sh -c \'read x; exit 0\'"\n'
                    f"ready_cmd = {json.dumps(['sh', '-c', check])}\n")
    result = run("run", cast, "--run-dir", run_dir, cwd=tmp_path)
    assert result.returncode == 1, result.stdout
    assert ", writing:\ndb *   not yet\ndb * if it runs on in the background (a daemon)" in (
        result.stdout), result.stdout


def test_a_check_under_way_dies_with_the_cast_stopped_or_pipeplex_killed(
        tmp_path: Path, run_dir: Path) -> None:
    """A Ctrl-C while the check runs stops the cast without waiting for it; SIGKILL to
    pipeplex leaves it to the guardian, which kills it too."""
    cast, fifo = _hanging_check(tmp_path, "sleep 60")
    for sig in (signal.SIGINT, signal.SIGKILL):
        with Pipeplex("run", cast, "--run-dir", run_dir) as plex:
            check = _read_pid(fifo)
            plex.signal(sig)
            assert plex.wait() == (130 if sig == signal.SIGINT else -signal.SIGKILL)
        wait_exited(check, after="what should have ended it")
        if sig == signal.SIGINT:
            assert re.search(r"^db +\* summary: stopped", plex.text, re.M), plex.text
            assert "not ready" not in plex.text, plex.text


def test_a_scenario_start_step_waits_for_the_check(tmp_path: Path) -> None:
    """``start`` waits until the member's check passes. One that never does fails the step:
    at the step's own timeout if that comes first, saying what the member waited for, else
    at the scenario's [defaults] timeout, which the message names."""
    case = tmp_path / "case.toml"
    for check, step_timeout, said in (
            ("test -e ok", 30, ""),
            ("false", 1, "start 'db': db was not ready within 1.0 s, waiting for its ready_cmd "
                         "'false' to exit with code 0; its last run exited with code 1, "
                         "writing nothing\n"),
            ("false", 30, f"db was not ready after 2.0 s (the scenario's [defaults] timeout, "
                          f"at {case}:2): its ready_cmd 'false' never exited with code 0; its "
                          "last run exited with code 1, writing nothing")):
        case.write_text('[defaults]\ntimeout = 2\n[procs.db]\n'
                        'cmd = "sh -c \'read x; : > ok; echo ok made; exec sleep 60\'"\n'
                        f'input = ["go"]\nready_cmd = "{check}"\nautostart = false\n'
                        f'cwd = "."\n[[step]]\nstart = "db"\ntimeout = {step_timeout}\n'
                        '[[step]]\nexpect = "ok made"\nin = "db"\n')
        (tmp_path / "ok").unlink(missing_ok=True)
        result = run("test", case)
        assert result.returncode == (1 if said else 0), result.stdout
        assert said in result.stdout, result.stdout


def test_status_says_a_member_is_starting_and_what_it_waits_for(
        tmp_path: Path, run_dir: Path) -> None:
    """Until its check passes, a member runs but is ``starting``, and the status says what
    it waits for (the table under its rows); once ready it is ``running``."""
    cast = tmp_path / "cast.toml"
    cast.write_text('[procs.db]\ncmd = "sh -c \'read x; : > ok; echo ok made; exec sleep 60\'"\n'
                    'ready_cmd = "test -e ok"\nready_timeout = 600\n')
    with Pipeplex("run", cast, "--run-dir", run_dir, cwd=tmp_path) as plex:
        plex.expect(r"^db \* started")
        record = status(run_dir)["members"][0]
        assert record["state"] == "starting", record
        assert record["waiting_for"].startswith("its ready_cmd 'test -e ok' to exit with code 0")
        table = run("status", "--run-dir", run_dir).stdout
        assert "\ndb is waiting for its ready_cmd 'test -e ok' to exit with code 0" in table
        write_fifo(run_dir / "db.in", b"go\n")
        plex.expect(r"^db \* ready$")
        record = status(run_dir)["members"][0]
        assert (record["state"], record["waiting_for"]) == ("running", None), record
        plex.signal(signal.SIGTERM)
        assert plex.wait() == 143


def test_a_restart_step_whose_new_run_fails_its_check_says_why(tmp_path: Path) -> None:
    """The restarted run's check never passes: the step gives the member's own failure
    (the check, the limit and its line, what the check said), not only that it did not
    get ready again."""
    case = tmp_path / "case.toml"
    case.write_text('[defaults]\ntimeout = 1\n[procs.db]\ncmd = "sleep 60"\ncwd = "."\n'
                    "ready_cmd = \"sh -c 'test ! -e again; ok=$?; : > again; exit $ok'\"\n"
                    '[[step]]\nrestart = "db"\ntimeout = 30\n')
    result = run("test", case)
    assert result.returncode == 1, result.stdout
    assert (f"restart 'db': db did not get ready again: db was not ready after 1.0 s (the "
            f"scenario's [defaults] timeout, at {case}:2): its ready_cmd \"sh -c 'test ! -e "
            "again; ok=$?; : > again; exit $ok'\" never exited with code 0; its last run "
            "exited with code 1, writing nothing") in result.stdout, result.stdout


def test_a_check_reads_an_end_of_its_own(tmp_path: Path) -> None:
    """Its stdin is a pipe made for it, at its end at once: a check that reads ends, and
    nothing it shares with other processes (as /dev/null) could make a stranger pass for
    it, were pipeplex killed as it spawns the check."""
    cast = tmp_path / "cast.toml"
    cast.write_text('[procs.db]\ncmd = "sleep 60"\nready_timeout = 0.5\n'
                    "ready_cmd = \"sh -c 'cat; readlink /proc/self/fd/0; exit 1'\"\n")
    result = run("run", cast, "--run-dir", tmp_path / "run")
    assert result.returncode == 1, result.stdout
    assert re.search(r"its last run exited with code 1, writing:\ndb \*   pipe:\[\d+\]\n",
                     result.stdout), result.stdout


def test_a_restart_while_the_check_runs_ends_the_check_first(
        tmp_path: Path, run_dir: Path) -> None:
    """The member's stop ends its check at once: the check is not taken for something the
    member left outside its group, and the new run's check decides."""
    fifo = tmp_path / "probe.fifo"
    os.mkfifo(fifo)
    cast = tmp_path / "cast.toml"
    cast.write_text('[procs.db]\ncmd = "sleep 60"\nready_timeout = 600\n'
                    "ready_cmd = \"sh -c 'test -e again && exit 0; : > again; "
                    f"echo $$ > {fifo}; exec sleep 60'\"\n")
    with Pipeplex("run", cast, "--run-dir", run_dir, cwd=tmp_path) as plex:
        check = _read_pid(fifo)
        assert run("restart", "db", "--run-dir", run_dir).returncode == 0
        plex.expect(r"^db \* ready$")
        wait_exited(check, after="what should have ended it")
        plex.signal(signal.SIGTERM)
        assert plex.wait() == 143
    assert "outside its process group" not in plex.text, plex.text


def test_a_run_still_going_at_the_deadline_is_said_with_the_one_before(
        tmp_path: Path) -> None:
    """A run cut off by the deadline before its own limit is killed then, and the message
    gives the last finished run and what the cut-off one wrote so far."""
    cast = tmp_path / "cast.toml"
    # (3 s: room for the first run, the pause and the second run's line to be read)
    cast.write_text('[procs.db]\ncmd = "sleep 60"\ncwd = "."\nready_timeout = 3\n'
                    "ready_cmd = \"sh -c 'test -e tried && echo connected && exec sleep 60; "
                    ": > tried; echo refused; exit 2'\"\n")
    result = run("run", cast, "--run-dir", tmp_path / "run")
    assert result.returncode == 1, result.stdout
    assert ("never exited with code 0; its last run had not ended when the time was up, "
            "writing:\ndb *   connected\ndb * the run before it exited with code 2, writing:\n"
            "db *   refused\n") in result.stdout, result.stdout


def test_a_restart_during_the_check_keeps_the_last_exit(tmp_path: Path, run_dir: Path) -> None:
    """The member's stop ends the check, and its supervisor may start the next run before
    the old run's exit is booked: the status still shows how the old run ended. (No run
    gets ready, so each restart request waits until the cast stops, and then fails.)"""
    cast = tmp_path / "cast.toml"
    cast.write_text('[procs.db]\ncmd = "sleep 60"\nready_cmd = "false"\nready_timeout = 600\n')
    clients: list[subprocess.Popen[str]] = []
    with Pipeplex("run", cast, "--run-dir", run_dir) as plex:
        try:
            plex.expect(r"^db \* started")
            for restarts in (1, 2, 3):
                clients.append(subprocess.Popen(
                    [*PIPEPLEX, "restart", "db", "--run-dir", str(run_dir)], text=True,
                    stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE))
                plex.expect(r"^db \* started")
                record = status(run_dir)["members"][0]
                assert (record["restarts"], record["last_exit"]) == (restarts, -15), record
            plex.signal(signal.SIGTERM)
            assert plex.wait() == 143
            for client in clients:
                _, err = client.communicate(timeout=DEADLINE)
                assert client.returncode == 1, err
                assert "db did not get ready again (the cast was stopping: got SIGTERM" in err
        finally:
            for client in clients:
                if client.poll() is None:
                    client.kill()
                    client.wait()


def test_a_run_that_hangs_is_killed_at_its_limit_and_the_check_goes_on(
        tmp_path: Path, run_dir: Path) -> None:
    """A check that hangs (a server that accepts and never answers) does not take the whole
    ready_timeout: the run is killed at its ready_cmd_timeout, and the next one counts."""
    fifo = tmp_path / "probe.fifo"
    os.mkfifo(fifo)
    probe = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)  # (the check's echo never waits)
    try:
        cast = tmp_path / "cast.toml"
        cast.write_text('[procs.db]\ncmd = "sleep 60"\ncwd = "."\nready_cmd_timeout = 0.3\n'
                        "ready_cmd = \"sh -c 'test -e tried && exit 0; : > tried; "
                        f"echo $$ > {fifo}; exec sleep 60'\"\n"
                        '[procs.app]\ncmd = "sh -c \'echo app up; exec sleep 60\'"\n'
                        'after = ["db"]\n')
        with Pipeplex("run", cast, "--run-dir", run_dir, cwd=tmp_path) as plex:
            plex.expect(r"^db +\* ready$")
            plex.expect(r"^app +\| app up$")
            ready, _, _ = select.select([probe], [], [], DEADLINE)
            assert ready, "the first run of the check never began"
            wait_exited(int(os.read(probe, 64)), after="its ready_cmd_timeout")
            plex.signal(signal.SIGTERM)
            assert plex.wait() == 143
    finally:
        os.close(probe)


def test_runs_that_all_hang_fail_the_start_naming_their_limit(tmp_path: Path) -> None:
    """Every run killed at its limit: the message says so, with where the limit was set and
    what the run wrote (its last run's, or the one before the run the deadline cut off)."""
    cast = tmp_path / "cast.toml"
    cast.write_text('[procs.db]\ncmd = "sleep 60"\nready_timeout = 4\n'
                    "ready_cmd_timeout = 1.5\n"  # (time for the run's line to be read)
                    "ready_cmd = \"sh -c 'echo connecting; exec sleep 60'\"\n")
    result = run("run", cast, "--run-dir", tmp_path / "run")
    assert result.returncode == 1, result.stdout
    assert ("never exited with code 0; its last run " in result.stdout), result.stdout
    assert (f"did not end within 1.5 s (its ready_cmd_timeout, at {cast}:4) and was killed, "
            "writing:\ndb *   connecting\n") in result.stdout, result.stdout


def test_a_scaled_limit_says_so_beside_its_line(tmp_path: Path) -> None:
    """pipeplex test --timeout-factor: a limit given twice as long as its line says is
    said with the factor, beside the line it was written on."""
    case = tmp_path / "hang.toml"
    case.write_text('[procs.db]\ncmd = "sleep 60"\nready_timeout = 1.5\n'
                    "ready_cmd_timeout = 0.5\n"  # (x2: room for a first run to be killed)
                    "ready_cmd = \"sh -c 'echo probing; exec sleep 60'\"\n"
                    "[[step]]\nsleep = 0\n")
    result = run("test", case, "--timeout-factor", "2")
    assert result.returncode == 1, result.stdout
    assert (f"not ready after 3.0 s (its ready_timeout, at {case}:3, x2 by --timeout-factor)"
            in result.stdout), result.stdout
    assert (f"did not end within 1 s (its ready_cmd_timeout, at {case}:4, x2 by "
            "--timeout-factor) and was killed") in result.stdout, result.stdout
