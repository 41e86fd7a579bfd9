"""Starting, stopping and exit statuses of a cast."""

from __future__ import annotations

import contextlib
import json
import os
import re
import select
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from .helpers import (
    DEADLINE,
    PIPEPLEX,
    PROGS,
    Pipeplex,
    guardian_of,
    py,
    run,
    status,
    wait_exited,
    write_fifo,
)


def test_when_one_member_exits_the_others_are_stopped(run_dir: Path) -> None:
    """on_exit = stop (the default) ends the cast when any member ends."""
    result = run("run", "-p", "quick=true", "-p", "slow=sleep 60", "--run-dir", run_dir)
    assert result.returncode == 0
    assert "slow  * stopped by SIGTERM" in result.stdout


def test_a_build_step_ready_as_it_ends_is_not_said_to_have_held_its_waiter_back(
        tmp_path: Path) -> None:
    """A member whose ready line comes with its exit (the exit ends the line) is ready, and
    its exit stops the cast (on_exit = stop) before the member after it starts: that one's
    turn came, the stop took it. (It was said to have waited for one "not ready".)"""
    cast = tmp_path / "cast.toml"
    cast.write_text('[procs.build]\ncmd = "printf built"\nready = "built"\n'
                    '[procs.app]\ncmd = "sleep 60"\nafter = ["build"]\n')
    for attempt in range(5):
        result = run("run", cast, "--run-dir", tmp_path / f"run{attempt}")
        assert result.returncode == 0, result.stdout
        assert re.search(r"^build +\* ready$", result.stdout, re.M), result.stdout
        summary = re.search(r"^app +\* summary: (.*)$", result.stdout, re.M)
        assert summary is not None, result.stdout
        assert (summary[1] == "never started (the cast began to stop before its turn)"
                or summary[1].startswith("stopped by SIGTERM after ")), result.stdout


def test_members_after_a_ready_exit_step_start_once_it_exits_with_0(
        tmp_path: Path, run_dir: Path) -> None:
    """A migration before its server: the server starts once the step has exited with 0
    and said its last line, and that exit does not stop the cast (on_exit = stop)."""
    cast = tmp_path / "cast.toml"
    cast.write_text('[procs.migrate]\ncmd = "sh -c \'echo migrating; echo migrated\'"\n'
                    'ready_exit = true\n'
                    '[procs.server]\ncmd = "sh -c \'echo serving; read x; echo got $x\'"\n'
                    'after = ["migrate"]\n')
    with Pipeplex("run", cast, "--run-dir", run_dir) as plex:
        plex.expect(r"^server +\| serving$")
        write_fifo(run_dir / "server.in", b"hello\n")
        plex.expect(r"^server +\| got hello$")
        assert plex.wait() == 0
    text = plex.text
    order = ["migrate | migrated", "migrate * exited with code 0", "migrate * ready",
             "server  * started"]
    assert [text.index(line) for line in order] == sorted(text.index(line) for line in order)
    assert re.search(r"^migrate \* summary: exited with code 0 after ", text, re.M)
    assert "stopping the cast (on_exit = stop)" in text  # (the server's exit's, not the step's)
    assert "migrate exited with code 0; stopping" not in text


def test_a_ready_exit_step_that_fails_or_does_not_end_holds_back_the_members_after_it(
        tmp_path: Path) -> None:
    """An exit with another code, or none within ready_timeout, is a failed start: the
    cast stops with its status, and the members after it never start."""
    cast = tmp_path / "cast.toml"
    for cmd, timeout, code, said, why in (
            ("sh -c 'echo half done; exit 3'", "", 3,
             "migrate * was not ready: ready_exit = true needs it to exit with "
             "code 0 before the members after it start", "which exited with code 3"),
            ("sleep 60", "ready_timeout = 0.5\n", 1,
             f"migrate * had not exited after 0.5 s (its ready_timeout, at {cast}:3); "
             "ready_exit = true waits for its exit with code 0 before the members after it "
             "start", "which had not exited after 0.5 s")):
        cast.write_text(f'[procs.migrate]\ncmd = "{cmd}"\n{timeout}ready_exit = true\n'
                        '[procs.server]\ncmd = "sleep 60"\nafter = ["migrate"]\n')
        result = run("run", cast, "--run-dir", tmp_path / "run")
        assert result.returncode == code, result.stdout
        assert said in result.stdout, result.stdout
        assert f"server  * summary: never started (waited for migrate, {why})" in result.stdout
    # In a scenario, the limit can be its [defaults] timeout: that line is named, and the
    # limit said as it was written (0.25, not 0.2).
    for readiness, said in (("ready_exit = true", "had not exited after 0.25 s"),
                            ("ready = 'never'", "was not ready after 0.25 s")):
        cast.write_text(f'[defaults]\ntimeout = 0.25\n[procs.migrate]\ncmd = "sleep 60"\n'
                        f'{readiness}\n[[step]]\nexpect = "never"\nin = "migrate"\n')
        result = run("test", cast)
        assert result.returncode == 1, result.stdout
        assert (f"migrate {said} (the scenario's [defaults] timeout, at {cast}:2); "
                in result.stdout), result.stdout


def test_a_failed_ready_exit_step_with_nothing_after_it_names_no_members_after_it(
        tmp_path: Path) -> None:
    """Nothing starts after it: the message says what ready_exit needs, not that members
    after it wait."""
    cast = tmp_path / "cast.toml"
    cast.write_text('[procs.bad]\ncmd = "sh -c \'exit 4\'"\nready_exit = true\n'
                    '[procs.other]\ncmd = "sleep 60"\n')
    result = run("run", cast, "--run-dir", tmp_path / "run")
    assert result.returncode == 4, result.stdout
    assert "bad   * was not ready: ready_exit = true needs it to exit with code 0\n" in (
        result.stdout), result.stdout


def test_a_ready_exit_step_restarted_after_failing_is_not_restarted_once_done(
        tmp_path: Path) -> None:
    """With on_exit = restart, a failing run is tried again; the run that exits with 0 is
    the step done: the members after it start, and it does not run again."""
    cast, tries = tmp_path / "cast.toml", tmp_path / "tries"
    script = f"echo x >> {tries}; n=$(wc -l < {tries}); echo try $n; [ $n -ge 3 ]"
    cast.write_text(f'[procs.migrate]\ncmd = {json.dumps(shlex.join(["sh", "-c", script]))}\n'
                    'ready_exit = true\non_exit = "restart"\n'
                    '[procs.server]\ncmd = "echo serving"\nafter = ["migrate"]\n')
    result = run("run", cast, "--run-dir", tmp_path / "run")
    assert result.returncode == 0, result.stdout
    assert tries.read_text() == "x\n" * 3
    assert result.stdout.count("migrate * restarting in") == 2
    assert result.stdout.index("migrate | try 3") < result.stdout.index("server  * started")
    assert "migrate * summary: exited with code 0 after " in result.stdout
    assert "2 restarts" in result.stdout


def test_a_step_without_ready_exit_that_stops_the_cast_is_told_of_it(tmp_path: Path) -> None:
    """A member that others start after, ending with 0 under on_exit = stop, may be a step
    meant to end first: the stop's line says how to make its exit its readiness."""
    cast = tmp_path / "cast.toml"
    cast.write_text('[procs.migrate]\ncmd = "echo migrated"\n'
                    '[procs.server]\ncmd = "sleep 60"\nafter = ["migrate"]\n')
    result = run("run", cast, "--run-dir", tmp_path / "run")
    assert result.returncode == 0, result.stdout + result.stderr
    assert ("migrate exited with code 0; stopping the cast (on_exit = stop) (a step that "
            "members start after? ready_exit = true makes its exit with 0 its readiness, and "
            "the cast goes on)") in result.stdout, result.stdout
    result = run("run", "-p", "a=echo done", "-p", "b=sleep 60", "--run-dir", tmp_path / "run")
    assert "a exited with code 0; stopping the cast (on_exit = stop)\n" in result.stdout


def test_a_step_whose_output_a_child_holds_is_not_ready_once_the_cast_stops(
        tmp_path: Path, run_dir: Path) -> None:
    """The step exits with 0, but a process it started holds its output: the members
    after it wait for that output to end (2 s at most). A stop meanwhile ends the wait: the
    step is not said ready after the stop began, and the member after it never starts."""
    cast = tmp_path / "cast.toml"
    cast.write_text('[procs.migrate]\ncmd = "sh -c \'sleep 60 & echo migrated\'"\n'
                    'ready_exit = true\n[procs.server]\ncmd = "sleep 60"\n'
                    'after = ["migrate"]\n')
    with Pipeplex("run", cast, "--run-dir", run_dir) as plex:
        plex.expect(r"^migrate +\| migrated$")
        plex.signal(signal.SIGTERM)
        assert plex.wait() == 128 + signal.SIGTERM
    text = plex.text
    assert "migrate * ready" not in text[text.index("stopping the cast"):], text
    assert re.search(r"^server +\* summary: never started", text, re.M), text


def test_on_exit_ignore_waits_for_every_member(run_dir: Path) -> None:
    """With --on-exit ignore the run lasts until the last member has exited."""
    with Pipeplex("run", "-p", "a=true", "-p", "b=sh -c 'read x; echo got $x'",
                  "--on-exit", "ignore", "--run-dir", run_dir) as plex:
        plex.expect(r"^a \* exited with code 0")
        write_fifo(run_dir / "b.in", b"late\n")
        plex.expect(r"^b \| got late$")
        assert plex.wait() == 0
        assert "stopped" not in plex.text


def test_exit_status_is_the_first_failure(run_dir: Path) -> None:
    """A member that fails on its own gives its status; 128+N for a signal."""
    result = run("run", "-p", "bad=sh -c 'exit 7'", "-p", "idle=sleep 60", "--run-dir", run_dir)
    assert result.returncode == 7
    result = run("run", "-p", "boom=sh -c 'kill -USR1 $$'", "--run-dir", run_dir)
    assert result.returncode == 128 + signal.SIGUSR1
    assert "boom * killed by SIGUSR1" in result.stdout
    # 2 is also pipeplex's own status for a mistake in its command or cast file: a member's
    # is said to be the member's, where a script reading the status looks last.
    result = run("run", "-p", "args=sh -c 'exit 2'", "--run-dir", run_dir)
    assert result.returncode == 2
    assert result.stdout.endswith(
        "pipeplex * exit status 2: args exited with code 2 (its own code; pipeplex's 2 for a "
        "mistake in its command line or cast file comes before anything starts)\n")


def test_a_chain_a_thousand_deep_whose_end_fails_is_told_in_short(run_dir: Path,
                                                                    tmp_path: Path) -> None:
    """m0 after m1 after ... m999, which fails: every summary says why, in a line of its
    own length whatever the chain's (its first links, then its end)."""
    n = 1000
    cast = tmp_path / "chain.toml"
    cast.write_text("".join(f'[procs.m{i}]\ncmd = "sleep 60"\nafter = ["m{i + 1}"]\n'
                            for i in range(n - 1)) + f"[procs.m{n - 1}]\ncmd = \"false\"\n")
    result = run("run", cast, "--no-console", "--run-dir", run_dir)
    assert result.returncode == 1, result.stderr[-2000:]
    assert "Traceback" not in result.stderr
    summaries = re.findall(r"^(m\d+) +\* summary: (.*)$", result.stdout, re.MULTILINE)
    assert len(summaries) == n
    first = dict(summaries)["m0"]
    assert re.fullmatch(r"never started \(waited for m1, which waited for m2, which waited for "
                        r"m3, which waited for m4, which waited for m5, and so on back to "
                        r"m\d+, .*m999( \(through m998\))?, which exited with code 1.*\)",
                        first), first
    assert max(len(line) for line in result.stdout.splitlines()) < 400


def test_sigterm_stops_every_member_and_reports_143(run_dir: Path) -> None:
    """SIGTERM to pipeplex stops the cast; children and grandchildren are gone."""
    with Pipeplex("run", "-p", "a=sleep 60", "-p", "b=sh -c 'sleep 60 & sleep 60 & wait'",
                  "--run-dir", run_dir) as plex:
        plex.expect("run folder")
        plex.expect(r"^b +\* started")
        plex.signal(signal.SIGTERM)
        assert plex.wait() == 143
        assert "got SIGTERM: stopping the cast" in plex.text


def test_ctrl_c_stops_the_cast_with_130(run_dir: Path) -> None:
    """SIGINT to pipeplex stops the cast the same way and exits 130."""
    with Pipeplex("run", "-p", "a=sleep 60", "--run-dir", run_dir) as plex:
        plex.expect("run folder")
        plex.signal(signal.SIGINT)
        assert plex.wait() == 130


def test_a_member_ignoring_sigterm_gets_sigkill_after_the_grace(run_dir: Path) -> None:
    """The escalation is announced: ignored SIGTERM, then SIGKILL to the process group."""
    with Pipeplex("run", "-p", f"stuck={sys.executable} {PROGS / 'ignore_term.py'}",
                  "--grace", "0.5", "--run-dir", run_dir) as plex:
        plex.expect(r"^stuck \| ignoring SIGTERM$")
        plex.signal(signal.SIGTERM)
        plex.expect(r"stuck \* ignored SIGTERM for 0\.5 s; sent SIGKILL to its process group")
        assert plex.wait() == 143


def test_a_member_slow_to_end_on_sigterm_is_not_said_to_ignore_it(run_dir: Path) -> None:
    """A server that takes SIGTERM and drains its connections past the grace did not ignore
    it: the SIGKILL's line says it was still running, which sends nobody looking for a
    handler it has."""
    slow = py("import signal, sys\n"
              "def drain(*_):\n"
              "    print('draining', flush=True)\n"
              "signal.signal(signal.SIGTERM, drain)\n"
              "print('serving', flush=True)\n"
              "while True:\n"
              "    signal.pause()\n")
    with Pipeplex("run", "-p", f"api={slow}", "--grace", "0.3", "--run-dir", run_dir) as plex:
        plex.expect(r"^api \| serving$")
        plex.signal(signal.SIGTERM)
        plex.expect(r"^api \| draining$")
        plex.expect(r"^api \* still running 0\.3 s after SIGTERM; sent SIGKILL to its process "
                    r"group$")
        assert plex.wait() == 143
    assert "ignored SIGTERM" not in plex.text, plex.text


def test_a_grace_pipeplex_was_stopped_through_is_said_as_long_as_it_was(run_dir: Path) -> None:
    """pipeplex itself stopped (SIGSTOP, Ctrl-Z) during a member's grace: the SIGKILL's line
    says how long the member really had, not the grace it was given."""
    held = 2.5  # (past the grace by more than a busy machine's late timer)
    with Pipeplex("run", "-p", f"stuck={sys.executable} {PROGS / 'ignore_term.py'}",
                  "--grace", "1", "--run-dir", run_dir) as plex:
        plex.expect(r"^stuck \| ignoring SIGTERM$")
        plex.signal(signal.SIGTERM)
        plex.expect(r"^stuck \* closed its stdin; sent SIGTERM to its process group$")
        plex.signal(signal.SIGSTOP)
        time.sleep(held)  # (not a wait for anything: pipeplex held up is what is tested)
        plex.signal(signal.SIGCONT)
        said = plex.expect(r"^stuck \* ignored SIGTERM for (\d+\.\d) s; sent SIGKILL to its "
                           r"process group$")
        assert float(said[1]) >= held, said[0]
        assert plex.wait() == 143


def test_a_group_killed_with_its_member_gets_no_second_escalation_line(run_dir: Path) -> None:
    """Member and child both ignore SIGTERM: one SIGKILL to the group ends both, and it is
    announced once (the child, still on its way out, is no leftover to escalate)."""
    stuck = ("sh -c 'trap \"\" TERM; (trap \"\" TERM; while :; do sleep 1; done) & "
             "echo up; while :; do sleep 1; done'")
    names = [f"s{i}" for i in range(4)]  # a few at once: the child lags only at times
    args = [a for n in names for a in ("-p", f"{n}={stuck}")]
    with Pipeplex("run", *args, "--grace", "0.3", "--run-dir", run_dir) as plex:
        for _ in names:
            plex.expect(r"^s\d \| up$")
        plex.signal(signal.SIGTERM)
        assert plex.wait() == 143
    for name in names:
        assert plex.text.count(f"{name} * ignored SIGTERM for 0.3 s; sent SIGKILL") == 1
    assert "processes left in its process group" not in plex.text, plex.text


def test_output_a_started_process_keeps_open_is_still_shown_after_the_exit(
    run_dir: Path, tmp_path: Path
) -> None:
    """`worker & echo started`: the member's exit is published 2 s on (the worker, in its
    group, may be on its way out), and what the worker writes later still shows under its
    name; its writes neither fail nor kill it."""
    gate, mark = tmp_path / "gate", tmp_path / "mark"
    os.mkfifo(gate)
    member = (f"sh -c '(read x < {gate}; echo late $x; echo late2 >&2; echo alive > {mark}; "
              "echo done) & echo bye'")
    with Pipeplex("run", "-p", f"h={member}", "-p", "keep=cat", "--on-exit", "ignore",
                  "--run-dir", run_dir) as plex:
        plex.expect(r"^h +\| bye$")
        plex.expect(r"^h +\* exited with code 0$")
        plex.expect(r"^h +\* its stderr and stdout are still open in a process it started "
                    r"\(2 s after it exited\); what that writes there is still shown$")
        with open(gate, "w") as f:
            f.write("go\n")
        # (Two streams: stderr's line may come anywhere among stdout's. "done" says it wrote
        # its mark: it lived on after those writes.)
        seen = [plex.expect(r"^h +(\| late go|! late2|\| done)$")[1] for _ in range(3)]
        assert sorted(seen) == ["! late2", "| done", "| late go"]
        assert seen.index("| late go") < seen.index("| done")
        plex.signal(signal.SIGTERM)
        assert plex.wait() == 143
    assert mark.read_text() == "alive\n"


def test_each_stop_step_is_announced(run_dir: Path) -> None:
    """Closing stdin and SIGTERM are announced before the member's end."""
    with Pipeplex("run", "-p", "a=sleep 60", "--run-dir", run_dir) as plex:
        plex.expect(r"^a +\* started")
        plex.signal(signal.SIGTERM)
        plex.expect(r"^a +\* closed its stdin; sent SIGTERM to its process group$")
        plex.expect(r"^a +\* stopped by SIGTERM")
        assert plex.wait() == 143


def test_what_an_exited_member_left_gets_sigterm_then_sigkill(run_dir: Path) -> None:
    """Leftovers in an exited member's group: SIGTERM, the grace, SIGKILL, each said once."""
    stubborn = "sh -c 'trap \"\" TERM; sleep 60 & echo left $!; exit 0'"  # (ignored before)
    with Pipeplex("run", "-p", f"stubborn={stubborn}", "--grace", "0.5",
                  "--run-dir", run_dir) as plex:
        left = int(plex.expect(r"^stubborn \| left (\d+)$")[1])
        plex.expect(r"^stubborn \* left processes in its process group; sent them SIGTERM$")
        plex.expect(r"^stubborn \* processes left in its process group still ran 0\.5 s "
                    r"after SIGTERM; sent them SIGKILL$")
        assert plex.wait() == 0
    assert plex.text.count("SIGKILL") == 1, plex.text
    assert "Traceback" not in plex.text and "never retrieved" not in plex.text, plex.text
    assert not _alive(left)


ON_INT_ONLY = ("import signal, sys\n"
               "signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
               "def bye(*_):\n"
               "    print('fast shutdown', flush=True)\n"
               "    sys.exit(0)\n"
               "signal.signal(signal.SIGINT, bye)\n"
               "print('up', flush=True)\n"
               "while True:\n"
               "    signal.pause()\n")


def _python(code: str) -> str:
    """A cast file's cmd running ``code`` with this Python."""
    return json.dumps([sys.executable, "-c", code])


def _ignoring(sig: str) -> str:
    """A Python program that ignores ``sig`` (``SIGTERM``), says ``up``, and waits."""
    return (f"import signal\nsignal.signal(signal.{sig}, signal.SIG_IGN)\n"
            "print('up', flush=True)\nwhile True:\n    signal.pause()\n")


def test_a_member_is_stopped_with_its_stop_signal(run_dir: Path, tmp_path: Path) -> None:
    """stop_signal takes SIGTERM's place in the stop and in every word said of it: a
    program that shuts down on SIGINT only (SIGTERM ignored) does so within its grace; one
    that dies of its signal was stopped by it, no failure (also in a replay of the run);
    one that ignores it gets SIGKILL after its stop_timeout."""
    cast = tmp_path / "cast.toml"
    cast.write_text(f"[procs.fast]\ncmd = {_python(ON_INT_ONLY)}\n"
                    'stop_signal = "INT"\n\n'
                    '[procs.plain]\ncmd = "sleep 60"\nstop_signal = "SIGUSR1"\n\n'
                    f"[procs.deaf]\ncmd = {_python(_ignoring('SIGUSR2'))}\n"
                    "stop_signal = 12\nstop_timeout = 0.5\n")
    transcript = tmp_path / "run.jsonl"
    with Pipeplex("run", cast, "--grace", "600", "--transcript", transcript,
                  "--run-dir", run_dir) as plex:
        # (Either may come first; deaf, started after plain, is up after plain started.)
        up = {plex.expect(r"^(fast|deaf) +\| up$")[1] for _ in range(2)}
        assert up == {"fast", "deaf"}
        plex.signal(signal.SIGTERM)
        plex.expect(r"^deaf +\* ignored SIGUSR2 for 0\.5 s; sent SIGKILL to its process group$")
        assert plex.wait() == 143
    text = plex.text
    for name, sig in (("fast", "SIGINT"), ("plain", "SIGUSR1"), ("deaf", "SIGUSR2")):
        assert re.search(rf"^{name} +\* closed its stdin; sent {sig} to its process group$",
                         text, re.M), text
    assert re.search(r"^fast +\| fast shutdown$", text, re.M), text
    assert re.search(r"^fast +\* summary: stopped, exited with code 0 after ", text, re.M), text
    assert re.search(r"^plain +\* stopped by SIGUSR1$", text, re.M), text
    assert re.search(r"^plain +\* summary: stopped by SIGUSR1 after ", text, re.M), text
    assert re.search(r"^deaf +\* summary: stopped by SIGKILL after ", text, re.M), text
    assert not re.search(r"^(fast|plain|deaf) .*SIGTERM", text, re.M), text
    replay = run("replay", transcript)
    assert re.search(r"^plain +\* stopped by SIGUSR1$", replay.stdout, re.M), replay.stdout


def test_stop_signal_on_the_command_line_is_for_members_without_their_own(
        run_dir: Path, tmp_path: Path) -> None:
    """--stop-signal gives -p members (and those of the file without one) their stop
    signal; a member's own stop_signal keeps its place. One that does not stop a program is
    a usage error, before anything starts."""
    cast = tmp_path / "cast.toml"
    cast.write_text('[procs.own]\ncmd = "sleep 60"\nstop_signal = "USR2"\n\n'
                    '[procs.other]\ncmd = "sleep 60"\n')
    with Pipeplex("run", cast, "-p", "dash=sleep 60", "--stop-signal", "usr1",
                  "--run-dir", run_dir) as plex:
        started = {plex.expect(r"^(own|other|dash) +\* started")[1] for _ in range(3)}
        assert started == {"own", "other", "dash"}
        plex.signal(signal.SIGTERM)
        assert plex.wait() == 143
    for name, sig in (("own", "SIGUSR2"), ("other", "SIGUSR1"), ("dash", "SIGUSR1")):
        assert re.search(rf"^{name} +\* stopped by {sig}$", plex.text, re.M), plex.text
    refused = run("run", "-p", "a=sleep 60", "--stop-signal", "STOP", "--run-dir", run_dir)
    assert refused.returncode == 2
    assert ("pipeplex run: error: argument --stop-signal: STOP would suspend a member rather "
            "than stop it") in refused.stderr, refused.stderr
    assert "started" not in refused.stdout


def test_on_exit_on_the_command_line_overrides_on_failure_too(run_dir: Path,
                                                            tmp_path: Path) -> None:
    """--on-exit applies to every end: a member whose failures on_failure would restart is
    not restarted under --on-exit stop; its crash stops the cast, and the message names the
    option that decided, not a key the file does not hold."""
    cast = tmp_path / "cast.toml"
    cast.write_text("[procs.worker]\ncmd = \"sh -c 'echo up; exit 3'\"\n"
                    "on_exit = 'ignore'\non_failure = 'restart'\n")
    result = run("run", cast, "--on-exit", "stop", "--run-dir", run_dir)
    assert result.returncode == 3, result.stdout
    assert "restarting" not in result.stdout, result.stdout
    assert "worker exited with code 3; stopping the cast (--on-exit stop)" in result.stdout


UNTIL_ASKED = ("import signal\n"
               "signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
               "print('port 40999', flush=True)\n"
               "print('asked with', open('asked').read().strip(), flush=True)\n")
"""A server that ignores SIGTERM and ends once told so through the named pipe ``asked``
in its folder (a stand-in for a server's own shutdown command, such as redis-cli
shutdown); its ready line gives a port."""


def test_a_member_with_a_stop_cmd_is_asked_to_stop_by_it(run_dir: Path, tmp_path: Path) -> None:
    """stop_cmd takes the stop signal's place: it runs with the member's values (one it
    captured itself too), and the member's end is the stop's; one that fails is said, with
    what it wrote, and the stop signal asks instead; one that succeeds but leaves the member
    running, or that hangs itself, ends with SIGKILL at stop_timeout, the command killed
    too."""
    os.mkfifo(tmp_path / "asked")
    cast = tmp_path / "cast.toml"
    cast.write_text(
        f"[procs.srv]\ncmd = {_python(UNTIL_ASKED)}\n"
        f"cwd = '{tmp_path}'\nready = 'port (?P<port>\\d+)'\n"
        "stop_cmd = \"sh -c 'echo {port} > asked'\"\n\n"
        "[procs.bad]\ncmd = 'sleep 60'\n"
        "stop_cmd = \"sh -c 'echo no server here >&2; exit 2'\"\n\n"
        f"[procs.deaf]\ncmd = {_python(_ignoring('SIGTERM'))}\n"
        "stop_cmd = 'true'\nstop_timeout = 0.5\n\n"
        f"[procs.stuck]\ncmd = {_python(_ignoring('SIGTERM'))}\n"
        f"stop_cmd = \"sh -c 'echo $$ > {tmp_path}/stuck.pid; exec sleep 600'\"\n"
        "stop_timeout = 0.5\n")
    with Pipeplex("run", cast, "--grace", "600", "--run-dir", run_dir) as plex:
        ups = {plex.expect(r"^(srv|deaf|stuck) +\| (?:up|port 40999)$")[1] for _ in range(3)}
        assert ups == {"srv", "deaf", "stuck"}
        plex.signal(signal.SIGTERM)
        assert plex.wait() == 143
    text = plex.text
    for name, cmd in (("srv", "\"sh -c 'echo {port} > asked'\""), ("deaf", "'true'")):
        assert f"{name.ljust(5)} * closed its stdin; ran its stop_cmd ({cmd})\n" in text, text
    assert re.search(r"^srv +\| asked with 40999$", text, re.M), text
    assert re.search(r"^srv +\* summary: stopped, exited with code 0 after ", text, re.M), text
    assert re.search(r"^bad +\* its stop_cmd exited with code 2; sent SIGTERM to its process "
                     r"group\nbad +\* it wrote:\nbad +\*   no server here$", text, re.M), text
    assert re.search(r"^bad +\* stopped by SIGTERM$", text, re.M), text
    for name in ("deaf", "stuck"):
        assert re.search(rf"^{name} +\* still running 0\.5 s after its stop_cmd; sent SIGKILL "
                         r"to its process group$", text, re.M), text
    stuck = tmp_path / "stuck.pid"  # (written unless it was killed first, on a slow day;
    if stuck.exists():              # every test's leak check would find it left, too)
        assert not _alive(int(stuck.read_text()))
    assert not re.search(r"^(srv|deaf|stuck) .*SIGTERM", text, re.M), text


NOT_CAPTURED_YET = {
    "first run": ("sh -c 'echo starting; exec sleep 60'", "", "srv"),
    # (Its first run gives port 40998 and exits; the next one waits before its ready line.)
    "restarted": ("sh -c 'if [ -e ran ]; then echo starting; exec sleep 60; fi; touch ran; "
                  "echo port 40998; exit 3'", "on_exit = 'restart'\n", "this run of srv"),
}


@pytest.mark.parametrize("case", NOT_CAPTURED_YET)
def test_a_stop_cmd_that_needs_a_value_not_captured_yet_leaves_it_to_the_signal(
        run_dir: Path, tmp_path: Path, case: str) -> None:
    """Stopped before its ready line gave {port}, the member is not asked with a command
    that would carry the text {port}; nor, restarted, with the port its last run gave,
    which may be another program's by now: that is said, and its stop signal asks instead."""
    cmd, policy, whose = NOT_CAPTURED_YET[case]
    cast = tmp_path / "cast.toml"
    cast.write_text(f"[procs.srv]\ncwd = '{tmp_path}'\ncmd = \"{cmd}\"\n{policy}"
                    "ready = 'port (?P<port>\\d+)'\nstop_cmd = \"sh -c 'echo {port} > asked'\"\n")
    with Pipeplex("run", cast, "--run-dir", run_dir) as plex:
        plex.expect(r"^srv +\| starting$")
        plex.signal(signal.SIGTERM)
        assert plex.wait() == 143
    # (One line: the command that never ran is not said to have run first.)
    assert ("srv * closed its stdin; its stop_cmd (\"sh -c 'echo {port} > asked'\") could not "
            f"be started: it uses {{port}}, which {whose} has not captured yet (it was not "
            "ready); sent SIGTERM to its process group\n") in plex.text, plex.text
    assert "ran its stop_cmd" not in plex.text
    assert "srv * stopped by SIGTERM\n" in plex.text, plex.text
    assert not (tmp_path / "asked").exists()


def test_what_a_member_left_in_its_group_gets_its_stop_signal(run_dir: Path,
                                                              tmp_path: Path) -> None:
    """What a member left in its process group is part of it: its stop_signal, the
    grace, SIGKILL, each said with that signal's name."""
    cast = tmp_path / "cast.toml"
    cast.write_text("[procs.stubborn]\n"
                    "cmd = \"sh -c 'trap \\\"\\\" USR1; sleep 60 & echo left $!; exit 0'\"\n"
                    'stop_signal = "USR1"\n')
    with Pipeplex("run", cast, "--grace", "0.5", "--run-dir", run_dir) as plex:
        left = int(plex.expect(r"^stubborn \| left (\d+)$")[1])
        plex.expect(r"^stubborn \* left processes in its process group; sent them SIGUSR1$")
        plex.expect(r"^stubborn \* processes left in its process group still ran 0\.5 s "
                    r"after SIGUSR1; sent them SIGKILL$")
        assert plex.wait() == 0
    assert "SIGTERM" not in plex.text, plex.text
    assert not _alive(left)


def test_a_restart_first_stops_what_the_previous_run_left(run_dir: Path) -> None:
    """A worker the last run left (holding a port, say) is stopped before the next start."""
    cast = run_dir.parent / "cast.toml"
    cast.write_text(
        "[procs.forker]\ncmd = \"sh -c 'sleep 60 & echo left $!; exit 3'\"\n"
        "on_exit = 'restart'\nmax_restarts = 1\n"
    )
    with Pipeplex("run", cast, "--run-dir", run_dir) as plex:
        first = int(plex.expect(r"^forker \| left (\d+)$")[1])
        plex.expect(r"^forker \* left processes in its process group; sent them SIGTERM$")
        second = int(plex.expect(r"^forker \| left (\d+)$")[1])
        assert not _alive(first)  # gone by then: the next run starts once its group is empty
        assert plex.wait() == 3
    assert "forker exited with code 3 and was restarted 1 time; giving up" in plex.text
    assert not _alive(second)


def test_a_status_that_a_summary_of_code_0_does_not_explain_is_said(run_dir: Path) -> None:
    """Status 1 where the member's summary says "exited with code 0": it gave up
    restarting, or exited before it was ready. The last line says why, without the
    advice given when it happened."""
    cast = run_dir.parent / "cast.toml"
    web = "[procs.web]\ncmd = 'sleep 60'\n"
    for member, last in [
        ("[procs.job]\ncmd = 'true'\non_exit = 'restart'\nmax_restarts = 1\n",
         "job gave up restarting: its last exit, with code 0, counts as a failure, as "
         'on_exit = "restart" was to keep it running'),
        ("[procs.db]\ncmd = 'true'\nready = 'never'\n",
         "db exited with code 0 before it was ready"),
        # (Restarted, each run ending so: not that on_exit = restart was to keep it running.)
        ("[procs.db]\ncmd = 'true'\nready = 'never'\non_exit = 'restart'\nmax_restarts = 1\n",
         "db gave up restarting: its last exit, with code 0, counts as a failed start, as it "
         "came before it was ready"),
    ]:
        cast.write_text(member + web)
        result = run("run", cast, "--run-dir", run_dir)
        assert result.returncode == 1, result.stdout
        assert result.stdout.endswith(f"\npipeplex * exit status 1: {last}\n"), result.stdout


def test_leftovers_that_obey_sigterm_get_no_sigkill(run_dir: Path) -> None:
    polite = "sh -c 'sleep 60 & echo left $!; exit 0'"
    with Pipeplex("run", "-p", f"polite={polite}", "--run-dir", run_dir) as plex:
        left = int(plex.expect(r"^polite \| left (\d+)$")[1])
        plex.expect(r"^polite \* left processes in its process group; sent them SIGTERM$")
        assert plex.wait() == 0
    assert "SIGKILL" not in plex.text
    assert not _alive(left)


def _alive(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie waiting for its new parent counts as gone)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            return f.read().rsplit(b")", 1)[1].split()[0] not in (b"Z", b"X")
    except OSError:  # gone: ENOENT at open, or ESRCH when reaped between open and read
        return False


def test_output_already_written_by_a_stopped_member_is_kept(run_dir: Path, tmp_path: Path) -> None:
    """Everything a member wrote before it was stopped reaches the stream."""
    cast = tmp_path / "cast.toml"
    writer = ("import signal\nfor i in range(20000): print(f'line {i}')\n"
              "print('done')\nsignal.pause()")
    cast.write_text(
        f"[procs.writer]\ncmd = {_toml_list([sys.executable, '-c', writer])}\n"
        "ready = '^done$'\n[procs.quitter]\ncmd = 'true'\nafter = ['writer']\n"
    )
    result = run("run", cast, "--run-dir", run_dir)
    assert result.returncode == 0, result.stdout + result.stderr
    lines = [ln for ln in result.stdout.splitlines() if ln.startswith("writer  | line ")]
    assert len(lines) == 20000
    assert "writer  * stopped" in result.stdout


@pytest.mark.parametrize("pty", ["'stdout'", "false"])
def test_a_member_killed_right_after_a_burst_loses_no_line(run_dir: Path, tmp_path: Path,
                                                           pty: str) -> None:
    """A member SIGKILLed the moment its burst is written (on a pty too, whose reader sees
    EIO as the last writer goes): every line reaches the stream, in order and before its
    exit is said; the status is 128 + 9, and the summary says it was killed."""
    cast = tmp_path / "cast.toml"
    cast.write_text(f"[procs.burst]\ncmd = \"sh -c 'seq 1 20000; kill -9 $$'\"\npty = {pty}\n")
    result = run("run", cast, "--run-dir", run_dir)
    assert result.returncode == 137, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    numbers = [int(line[8:]) for line in lines if line.startswith("burst | ")]
    assert numbers == list(range(1, 20001)), f"{len(numbers)} lines"
    killed = lines.index("burst * killed by SIGKILL")
    assert killed > lines.index("burst | 20000")
    assert "pipeplex * burst killed by SIGKILL; stopping the cast (on_exit = stop)" in lines
    assert re.search(r"^burst \* summary: killed by SIGKILL after ", result.stdout, re.M)


def test_ready_variables_reach_later_members(run_dir: Path, tmp_path: Path) -> None:
    """A named group in ready becomes {name} in a later member's command."""
    cast = tmp_path / "cast.toml"
    server = "print('listening on port 4242', flush=True); import signal; signal.pause()"
    cast.write_text(
        f"[procs.server]\ncmd = {_toml_list([sys.executable, '-c', server])}\n"
        "ready = 'port (?P<port>\\d+)'\n"
        "[procs.client]\ncmd = 'echo connecting to {port}'\nafter = ['server']\n"
    )
    result = run("run", cast, "--run-dir", run_dir)
    assert "client * started" in result.stdout
    assert "client | connecting to 4242" in result.stdout
    assert "server * ready: port=4242" in result.stdout


def test_ready_timeout_fails_with_the_recent_output(run_dir: Path, tmp_path: Path) -> None:
    """A member that never gets ready fails the run, naming what it waited for."""
    cast = tmp_path / "cast.toml"
    cast.write_text(
        "[procs.server]\ncmd = \"sh -c 'echo starting up; exec sleep 60'\"\n"
        "ready = 'listening'\nready_timeout = 0.5\n"
        "[procs.client]\ncmd = 'echo never'\nafter = ['server']\n"
    )
    result = run("run", cast, "--run-dir", run_dir)
    assert result.returncode == 1
    assert "server * was not ready after 0.5 s" in result.stdout
    assert "starting up" in result.stdout
    assert ("client * summary: never started (waited for server, which was not ready after "
            "0.5 s)\n") in result.stdout


def test_a_captured_port_that_is_not_a_port_fails_readiness(run_dir: Path,
                                                            tmp_path: Path) -> None:
    """ready_port = "{port}" with a captured value out of range, or not a number."""
    for shown in ("99999", "abc"):
        cast = tmp_path / "cast.toml"
        cast.write_text(
            f"[procs.server]\ncmd = \"sh -c 'echo port {shown}; exec sleep 60'\"\n"
            "ready = 'port (?P<port>\\w+)'\nready_port = '{port}'\n"
        )
        result = run("run", cast, "--run-dir", run_dir)
        assert result.returncode == 1
        # (under its name once, and where the limit is: the name used to come twice)
        assert (f"server * ready_port = '{{port}}' (at {cast}:4) is '{shown}', not a TCP port "
                "(1-65535)\n") in re.sub(r"(?m)^(\w+) +\*", r"\1 *", result.stdout)
        assert "Traceback" not in result.stdout + result.stderr


def test_bad_seconds_and_unwritable_records_are_usage_errors(run_dir: Path) -> None:
    (run_dir.parent / "a-file").write_text("x")  # (where the transcript's folder would go)
    for args in (["--grace", "nan"], ["--grace", "1e12"],
                 ["--transcript", str(run_dir.parent / "a-file" / "t.jsonl")]):
        result = run("run", "-p", "a=true", "--run-dir", run_dir, *args)
        assert result.returncode == 2, result.stderr
        assert "Traceback" not in result.stderr
        assert "error" in result.stderr.lower()
        if args[0] == "--grace":
            assert "is not a number of seconds from 0.001 to below 1e9" in result.stderr


def test_members_run_in_their_own_session(run_dir: Path) -> None:
    """Each member leads its own session and process group."""
    result = run("run", "-p", f"t={sys.executable} {PROGS / 'ttys.py'}", "--run-dir", run_dir)
    assert "leader 11" in result.stdout


SIGNAL_STATE = (
    "import os, re, signal, sys\n"
    "status = open('/proc/self/status').read()\n"
    "blocked, ignored = (int(re.search(key + r':\\s+(\\w+)', status)[1], 16)\n"
    "                    for key in ('SigBlk', 'SigIgn'))\n"
    "ignored &= ~(1 << signal.SIGPIPE - 1 | 1 << signal.SIGXFSZ - 1)  # (Python's own)\n"
    "open(sys.argv[1], 'w').write(f'SigBlk: {blocked:x}\\nSigIgn: {ignored:x}\\n')\n"
    "if sys.argv[2:]: os.kill(int(open(sys.argv[2]).read()), signal.SIGTERM)\n")
"""Writes its signal mask and ignored signals (those Python ignores itself left out) to
the file named first, then ends the process whose pid the second holds, if named. Not
through a shell: dash empties its signal mask as it starts."""


def test_members_and_their_commands_start_with_clean_signal_state(run_dir: Path,
                                                                  tmp_path: Path) -> None:
    """No blocked or ignored signals leak into members, even if pipeplex inherited them;
    nor into a member's health check, or its stop_cmd run while the cast stops."""
    probe = [sys.executable, "-c", SIGNAL_STATE]
    cast = tmp_path / "cast.toml"
    cast.write_text(
        # grep, not Python: a Python child would ignore SIGPIPE and SIGXFSZ on its own.
        "[procs.s]\ncmd = \"grep -E 'SigBlk|SigIgn' /proc/self/status\"\n"
        "on_exit = 'ignore'\n\n"
        f"[procs.srv]\ncwd = '{tmp_path}'\ncmd = \"sh -c 'echo $$ > pid; exec sleep 60'\"\n"
        f"ready_cmd = {_toml_list([*probe, 'ready.txt'])}\n"
        f"stop_cmd = {_toml_list([*probe, 'stop.txt', 'pid'])}\n\n"
        "[procs.quit]\ncmd = 'true'\nafter = ['s', 'srv']\n")
    result = subprocess.run(
        ["sh", "-c", 'trap "" INT QUIT USR1 TSTP TTIN TTOU WINCH CONT CHLD; exec "$@"', "sh",
         *PIPEPLEX, "run", str(cast), "--run-dir", str(run_dir)],
        capture_output=True, text=True, timeout=30, stdin=subprocess.DEVNULL,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "srv  * summary: stopped by SIGTERM after " in result.stdout, result.stdout
    member = "\n".join(re.findall(r"^s +\| (.*)$", result.stdout, re.M))
    for who, text in (("member", member), ("ready_cmd", (tmp_path / "ready.txt").read_text()),
                      ("stop_cmd", (tmp_path / "stop.txt").read_text())):
        masks = dict(re.findall(r"(SigBlk|SigIgn):\s+([0-9a-f]+)", text))
        assert int(masks["SigBlk"], 16) == 0, (who, text)
        # Signals 1-31, the ones programs use. 32 and 33 belong to the C library's threads
        # and cannot be touched from Python; a test harness sometimes leaves them ignored.
        assert int(masks["SigIgn"], 16) & 0x7FFFFFFF == 0, (who, text)


def test_a_run_has_one_guardian_and_it_takes_signals_as_its_code_says(run_dir: Path) -> None:
    """``pipeplex run`` starts its guardian before loading the rest (with the stop signals
    held): the run uses that one, and the guardian does not keep them blocked."""
    with Pipeplex("run", "-p", "w=sleep 60", "--run-dir", run_dir) as plex:
        plex.expect(r"w +\* started")
        # (No event tells when its first lines have run: its state is looked at until then.)
        status = Path(f"/proc/{guardian_of(plex.proc.pid)}/status")
        deadline = time.monotonic() + 10
        while _blocked(status.read_text()) and time.monotonic() < deadline:
            select.select([], [], [], 0.005)
        assert not _blocked(status.read_text()), status.read_text()


def _blocked(status: str) -> int:
    return int(re.search(r"SigBlk:\s+([0-9a-f]+)", status)[1], 16)


def _toml_list(items: list[str]) -> str:
    import json

    return json.dumps(items)


def test_no_orphans_when_pipeplex_is_killed_with_sigkill(run_dir: Path) -> None:
    """Members and their children die even when pipeplex gets SIGKILL."""
    code = ("import subprocess, sys\n"
            "child = subprocess.Popen(['sleep', '60'])\n"
            "print('child', child.pid, flush=True)\n"
            "child.wait()")
    with Pipeplex("run", "-p", "parent=" + py(code), "-p", "plain=sleep 60",
                  "--run-dir", run_dir) as plex:
        grandchild = int(plex.expect(r"^parent \| child (\d+)$")[1])
        members = [int(m[1]) for m in re.finditer(r"\* started \(pid (\d+)\)", plex.text)]
        assert len(members) == 2
        plex.signal(signal.SIGKILL)
        assert plex.wait() == -signal.SIGKILL
        for pid in [*members, grandchild]:
            wait_exited(pid)


def test_no_orphans_when_everything_named_pipeplex_is_killed(run_dir: Path) -> None:
    """``pkill -9 -f pipeplex`` kills pipeplex and leaves its guardian, whose command line
    does not name it, to stop the cast (a guardian run by its file's path was killed with
    pipeplex, and the members lived on)."""
    with Pipeplex("run", "-p", "parent=sh -c 'sleep 60 & echo child $!; wait'",
                  "-p", "plain=sleep 60", "--run-dir", run_dir) as plex:
        grandchild = int(plex.expect(r"^parent \| child (\d+)$")[1])
        members = [int(m[1]) for m in re.finditer(r"\* started \(pid (\d+)\)", plex.text)]
        assert len(members) == 2
        pid = plex.proc.pid
        family = [pid, *map(int, Path(f"/proc/{pid}/task/{pid}/children").read_text().split())]
        named = [p for p in family if b"pipeplex" in Path(f"/proc/{p}/cmdline").read_bytes()]
        for p in named:  # (as pkill, but only among this run's processes)
            os.kill(p, signal.SIGKILL)
        assert plex.wait() == -signal.SIGKILL
        for member in [*members, grandchild]:
            wait_exited(member)


MAIN_THREAD_ENDS = """
import ctypes, os, signal, sys, threading
if "apart" in sys.argv:  # (the member ignores SIGTERM; its child leaves for a session)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    if os.fork():
        signal.pause()
    os.setsid()
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
libc = ctypes.CDLL(None)  # (its calls let the GIL go)
libc.pthread_self.restype = ctypes.c_ulong
main = libc.pthread_self()
def run_on():
    libc.pthread_join(ctypes.c_ulong(main), None)
    said = os.dup(1)
    if "quiet" in sys.argv:  # (holding none of the member's pipes once it has said so)
        null = os.open(os.devnull, os.O_WRONLY)
        os.dup2(null, 1)
        os.dup2(null, 2)
    os.write(said, b"main thread ended in %d\\n" % os.getpid())
    os.close(said)
    threading.Event().wait()
threading.Thread(target=run_on).start()
libc.pthread_exit(None)
"""


@pytest.mark.parametrize("where", ["left in its group", "in a session of its own",
                                   "the member, pipeplex killed"])
def test_a_process_whose_main_thread_ended_is_stopped(
        run_dir: Path, tmp_path: Path, where: str) -> None:
    """Linux shows a process Z once its main thread has ended (``main`` ends with
    ``pthread_exit``), while its other threads run on; /proc then shows no environment or
    descriptors for it. Taken for a zombie, it was never signalled: not by the stop in its
    member's group, nor where it went with the member's environment (both said by pipeplex
    itself, not left to the guardian), nor by the guardian after a SIGKILL of pipeplex (a
    member started with ``env -i`` that let go of its pipes: only its group finds it)."""
    program = tmp_path / "main_thread_ends.py"
    program.write_text(MAIN_THREAD_ENDS)
    cast = {"left in its group": f"z=sh -c '{sys.executable} {program} &'",
            "in a session of its own": f"z={sys.executable} {program} apart",
            "the member, pipeplex killed": f"z=env -i {sys.executable} {program} quiet"}[where]
    company = [] if where == "the member, pipeplex killed" else ["-p", "keep=sleep 60"]
    with Pipeplex("run", "-p", cast, *company, "--on-exit", "ignore", "--grace", "0.5",
                  "--run-dir", run_dir) as plex:
        pid = int(plex.expect(r"^z +\| main thread ended in (\d+)$")[1])
        if where == "the member, pipeplex killed":
            plex.signal(signal.SIGKILL)
            assert plex.wait() == -signal.SIGKILL
        else:
            plex.signal(signal.SIGTERM)
            assert plex.wait() == 143
        wait_exited(pid)
    said = {"left in its group": r"left processes in its process group; sent them SIGTERM",
            "in a session of its own": rf"left 1 process \(pid {pid}\) outside its process "
                                       r"group; sent it SIGTERM"}.get(where)
    if said is not None:
        assert re.search(rf"^z +\* {said}$", plex.text, re.M), plex.text


def test_a_member_deaf_to_sigterm_starts_no_daemon_after_pipeplex_is_killed(
        run_dir: Path, tmp_path: Path) -> None:
    """The guardian stops the cast (SIGSTOP), then sends SIGTERM and SIGCONT and waits half
    a second before SIGKILL. A member that ignores SIGTERM only ran on in that half second:
    one that starts daemons (here, one at each SIGCONT) started one in a session of its
    own, without the run's id or its streams, its parent gone, where the last look cannot
    find it. Now what ignores SIGTERM gets its SIGKILL while stopped."""
    daemon = tmp_path / "daemon.pid"
    code = ("import os, signal, sys\n"
            "def spawn(*_):\n"
            "    done, told = os.pipe()  # (closed by the daemon's exec: it has written)\n"
            "    if os.fork() == 0:\n"
            "        os.setsid()\n"
            "        if os.fork() == 0:\n"
            f"            fd = os.open({str(daemon)!r}, os.O_WRONLY | os.O_CREAT | os.O_EXCL)\n"
            "            os.write(fd, str(os.getpid()).encode()); os.close(fd)\n"
            "            null = os.open('/dev/null', os.O_RDWR)  # (none of its streams)\n"
            "            for i in (0, 1, 2): os.dup2(null, i)\n"
            "            os.execvpe('sleep', ['sleep', '60'], {})\n"
            "        os._exit(0)\n"
            "    os.close(told); os.read(done, 1)\n"
            "signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
            "signal.signal(signal.SIGCONT, spawn)\n"
            "print('up', flush=True)\n"
            "while True: signal.pause()\n")
    _kill_pipeplex_once_up(run_dir, code)
    if daemon.exists():  # (it ran on, and started one: it must be gone all the same)
        wait_exited(int(daemon.read_text()), after="pipeplex was killed")


def test_a_stopped_member_takes_its_sigterm_when_pipeplex_is_killed(
        run_dir: Path, tmp_path: Path) -> None:
    """A member stopped (SIGSTOP, Ctrl-Z in its terminal) as pipeplex is killed: the
    guardian's SIGTERM comes with a SIGCONT, as a stop's does, so its handler runs (it
    used to get the SIGKILL half a second later without ever running)."""
    said = tmp_path / "said"
    code = ("import signal, sys\n"
            "def bye(*_):\n"
            f"    open({str(said)!r}, 'w').write('bye')\n"
            "    sys.exit(0)\n"
            "signal.signal(signal.SIGTERM, bye)\n"
            "print('up', flush=True)\n"
            "while True: signal.pause()\n")
    _kill_pipeplex_once_up(run_dir, code, first=lambda member: os.kill(member, signal.SIGSTOP))
    assert said.read_text() == "bye"


def _kill_pipeplex_once_up(run_dir: Path, code: str, *,
                           first: Callable[[int], None] = lambda member: None) -> None:
    """Run ``code`` as the member ``m``; once it says ``up``, do ``first`` to it and SIGKILL
    pipeplex: the guardian must leave it gone."""
    with Pipeplex("run", "-p", "m=" + py(code), "--run-dir", run_dir) as plex:
        member = int(plex.expect(r"^m +\* started \(pid (\d+)\)")[1])
        plex.expect(r"^m +\| up$")
        first(member)
        plex.signal(signal.SIGKILL)
        assert plex.wait() == -signal.SIGKILL
        wait_exited(member)


@pytest.mark.skipif(shutil.which("bash") is None, reason="bash is not installed")
def test_a_shell_on_a_full_terminal_running_a_command_stops_as_a_closed_window(
        run_dir: Path) -> None:
    """An interactive shell ignores SIGTERM, and the command it runs is in a group of its
    own: the stop hangs the terminal up, as closing a window does, and neither waits out the
    grace for SIGKILL."""
    with Pipeplex("run", "--pty", "true", "--grace", "30", "--run-dir", run_dir,
                  "-p", "sh=bash --norc --noprofile -i", env={**os.environ, "PS1": "$ "}) as plex:
        plex.expect(r"^sh +\* started")
        write_fifo(run_dir / "sh.in", b"sh -c 'echo job $$; exec sleep 100'\n")
        job = int(plex.expect(r"^sh +\| .*job (\d+)\r?$")[1])  # (after bash's modes)
        plex.signal(signal.SIGTERM)
        assert plex.wait() == 143
    assert "hung up its terminal (SIGHUP) and sent SIGTERM to its process group" in plex.text
    assert "SIGKILL" not in plex.text, plex.text
    wait_exited(job)


GRACEFUL = ("import signal, sys\n"
            "def bye(signum, frame):\n"
            "    print('graceful shutdown on', signal.Signals(signum).name, flush=True)\n"
            "    sys.exit(0)\n"
            "signal.signal(signal.SIGTERM, bye)\n"
            "signal.signal(signal.SIGINT, bye)\n"
            "print('up', flush=True)\n"
            "while True: signal.pause()\n")
"""A server that shuts down gracefully on SIGTERM or SIGINT, and leaves SIGHUP as it is."""


@pytest.mark.parametrize("stop_signal", ["TERM", "INT"])
def test_a_program_on_a_full_terminal_gets_to_run_its_stop_handler(
        run_dir: Path, stop_signal: str) -> None:
    """The stop hung the terminal up with the signal, and SIGHUP's default ended the server
    before its handler ran: no graceful shutdown, and a stop_signal = "INT" for nothing.
    One that hears its stop signal now gets it alone; the hangup is for what cannot."""
    cast = run_dir.parent / "cast.toml"
    cast.write_text(f"[procs.srv]\ncmd = {json.dumps([sys.executable, '-c', GRACEFUL])}\n"
                    f"pty = true\nstop_signal = '{stop_signal}'\n")
    with Pipeplex("run", cast, "--run-dir", run_dir, "--no-console") as plex:
        plex.expect(r"^srv +\| up\r?$")
        plex.signal(signal.SIGTERM)
        assert plex.wait() == 143, plex.text
    assert f"srv | graceful shutdown on SIG{stop_signal}" in plex.text, plex.text
    assert f"srv * closed its stdin; sent SIG{stop_signal} to its process group" in plex.text
    assert "SIGHUP" not in plex.text, plex.text


# A member daemonizes as redis and nginx do: forks, the parent exits, the child starts a
# session of its own and writes over the memory /proc/PID/environ shows (as setproctitle
# does); it keeps a worker in its group. Both ignore SIGTERM; the worker writes both pids.
OVERWRITING = ("import ctypes, os, signal, sys\n"
               "if os.fork():\n"
               "    sys.exit(0)\n"
               "os.setsid()\n"
               "signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
               "start, end = (int(f) for f in open('/proc/self/stat').read()"
               ".rsplit(')', 1)[1].split()[47:49])\n"
               "ctypes.memset(start, ord('x'), end - start - 1)\n"
               "if not os.fork():\n"
               "    print('daemon', os.getppid(), 'worker', os.getpid(), flush=True)\n"
               "while True:\n"
               "    signal.pause()\n")


def test_a_daemon_that_wrote_over_its_environment_dies_with_pipeplex_killed(
        run_dir: Path) -> None:
    """Neither its group nor its environment tells a double-forked daemon that wrote over
    its environment: pipeplex, its subreaper, adopts it and tells the guardian, which stops
    it (and its group) when pipeplex is killed with SIGKILL."""
    with Pipeplex("run", "-p", "d=" + py(OVERWRITING), "-p", "plain=sleep 60",
                  "--on-exit", "ignore", "--run-dir", run_dir) as plex:
        found = plex.expect(r"^d +\| daemon (\d+) worker (\d+)$")
        daemon, worker = int(found[1]), int(found[2])
        plex.expect(r"^d +\* exited with code 0$")
        environ = Path(f"/proc/{daemon}/environ").read_bytes()
        assert b"PIPEPLEX_RUN_ID" not in environ, environ[:200]
        assert daemon in _children(plex.proc.pid)  # (adopted as its parent exited)
        status(run_dir)  # (a pass of the loop after the SIGCHLD: the guardian was told)
        plex.signal(signal.SIGKILL)
        assert plex.wait() == -signal.SIGKILL
        try:
            for pid in (daemon, worker):
                wait_exited(pid)
        except AssertionError:  # (nothing left behind, even when this fails)
            for pid in (daemon, worker):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            raise


REAPING = ("import asyncio, os, subprocess\n"
           "from pipeplex.participants import orphans\n"
           "class Reaper(orphans.OrphanReaper):\n"
           "    def reap(self):\n"
           "        reaped = super().reap()\n"
           "        if reaped:\n"
           "            print('reaped', reaped, flush=True)\n"
           "        return reaped\n"
           "async def main():\n"
           "    assert orphans.Adoption().active\n"
           "    loop = asyncio.get_running_loop()\n"
           "    member = None\n"
           "    Reaper(loop, lambda: {member.pid} if member else set())\n"
           "    feed, fed = os.pipe()\n"
           "    # The member leaves cat behind, reading a pipe: an orphan that ends when told.\n"
           "    member = subprocess.Popen(['sh', '-c', 'exec 3<&0; cat <&3 >/dev/null &'],\n"
           "                              stdin=feed)\n"
           "    os.close(feed)\n"
           "    ended = loop.create_future()\n"
           "    exits = os.pidfd_open(member.pid)\n"
           "    loop.add_reader(exits, lambda: ended.done() or ended.set_result(None))\n"
           "    await asyncio.wait_for(ended, 30)  # (cat is ours now)\n"
           "    print('member ended', flush=True)\n"
           "    os.close(fed)  # (cat reads EOF and ends)\n"
           "    done = loop.create_future()  # (the test closes its stdin, or kills it)\n"
           "    loop.add_reader(0, lambda: done.done() or done.set_result(None))\n"
           "    await asyncio.wait_for(done, 30)  # (a deadline: then the test fails)\n"
           "asyncio.run(main())\n")
"""A subreaper whose member leaves ``cat`` behind; once the member has ended, ``cat``
ends too, and its SIGCHLD comes to the subreaper."""


def test_an_orphan_that_ends_is_reaped_on_its_sigchld() -> None:
    """Zombies count against a process limit (a container's): an orphan that ends is
    reaped on the SIGCHLD it sends (pipeplex has no other looks). The handler is armed for
    one signal at a time, so a thousand ending at once cost no more."""
    with subprocess.Popen([sys.executable, "-c", REAPING], stdin=subprocess.PIPE,
                          stdout=subprocess.PIPE, text=True,
                          start_new_session=True) as reaping:
        try:
            assert reaping.stdout is not None
            assert reaping.stdout.readline() == "member ended\n"
            assert reaping.stdout.readline() == "reaped 1\n"
        finally:
            os.killpg(reaping.pid, signal.SIGKILL)


# A member that orphans a process pipeplex is never told of (its old parent was the
# member's child: no SIGCHLD) and that ends once orphaned, before the member does (which
# reads the pipe the orphan holds until its EOF).
ORPHAN_THEN_END = ("import os, select\n"
                   "r, w = os.pipe()\n"
                   "if os.fork() == 0:\n"
                   "    os.close(r)\n"
                   "    parent = os.pidfd_open(os.getpid())\n"
                   "    if os.fork() == 0:\n"
                   "        select.select([parent], [], [])  # (until orphaned)\n"
                   "        print('orphan', os.getpid(), flush=True)\n"
                   "    os._exit(0)\n"
                   "os.close(w)\n"
                   "os.wait()\n"
                   "os.read(r, 1)\n")

# Its subreaper's reaper, with a stand-in guardian that says what it is told.
REAPED_UNTOLD = ("import asyncio, sys\n"
                 "from pipeplex.participants.orphans import Adoption, OrphanReaper\n"
                 "class Guardian:\n"
                 "    def adopted(self, pid, started):\n"
                 "        print('told of', pid, flush=True)\n"
                 "    def reaped(self, pid):\n"
                 "        print('told reaped', pid, flush=True)\n"
                 "    def look_at_it(self):\n"
                 "        pass\n"
                 "async def main():\n"
                 "    assert Adoption().active\n"
                 "    loop = asyncio.get_running_loop()\n"
                 "    member = None  # (the reaper's first look is before it: none is after)\n"
                 "    OrphanReaper(loop, lambda: {member.pid} if member else set(), Guardian())\n"
                 "    member = await asyncio.create_subprocess_exec(\n"
                 f"        sys.executable, '-c', {ORPHAN_THEN_END!r})\n"
                 "    await member.wait()\n"
                 "    ended = loop.create_future()  # (the test closes its stdin, or kills it)\n"
                 "    loop.add_reader(0, lambda: ended.done() or ended.set_result(None))\n"
                 "    await asyncio.wait_for(ended, 30)  # (a deadline: then the test fails)\n"
                 "asyncio.run(main())\n")


def test_an_orphan_reaped_before_pipeplex_told_of_it_is_told_reaped() -> None:
    """The guardian finds orphans itself, and keeps their start times: an orphan pipeplex
    reaps is told as reaped even if pipeplex never told of it, or the next orphan given its
    pid would be taken for it, by its old start time, and outlive a SIGKILL of pipeplex."""
    with subprocess.Popen([sys.executable, "-c", REAPED_UNTOLD], stdin=subprocess.PIPE,
                          stdout=subprocess.PIPE, text=True,
                          start_new_session=True) as reaping:
        try:
            assert reaping.stdout is not None
            orphan = int(reaping.stdout.readline().removeprefix("orphan "))
            assert reaping.stdout.readline() == f"told reaped {orphan}\n"
        finally:
            os.killpg(reaping.pid, signal.SIGKILL)


LEFT_ARMED = ("import asyncio, os, select, subprocess\n"
              "from pipeplex.participants.orphans import OrphanReaper\n"
              "loop = asyncio.new_event_loop()\n"
              "OrphanReaper(loop, lambda: set())\n"
              "loop.close()  # (and no close() of the reaper: an error on the way out)\n"
              "child = subprocess.Popen(['true'])\n"
              "ended = os.pidfd_open(child.pid)\n"
              "select.select([ended], [], [], 30)\n"
              "child.wait()  # (its SIGCHLD has come: the handler ran by now)\n"
              "print('fine', flush=True)\n")


def test_a_sigchld_after_the_reapers_loop_closed_raises_nothing() -> None:
    """The reaper's SIGCHLD handler runs between two bytecodes of whatever the main thread
    does: if its loop is gone, it must not raise there."""
    result = subprocess.run([sys.executable, "-c", LEFT_ARMED], capture_output=True,
                            text=True, timeout=60, stdin=subprocess.DEVNULL)
    assert result.stdout == "fine\n", result.stderr
    assert result.returncode == 0


DISARMED = ("import asyncio, os, select, signal, subprocess\n"
            "from pipeplex.participants.orphans import OrphanReaper\n"
            "def caught():  # the kernel's view: does a handler catch SIGCHLD?\n"
            "    with open('/proc/self/status') as status:\n"
            "        mask = next(l for l in status if l.startswith('SigCgt:')).split()[1]\n"
            "    return bool(int(mask, 16) >> (signal.SIGCHLD - 1) & 1)\n"
            "def ours():  # Python's view\n"
            "    return signal.getsignal(signal.SIGCHLD) == reaper._child_ended\n"
            "loop = asyncio.new_event_loop()\n"
            "reaper = OrphanReaper(loop, lambda: set())\n"
            "print('armed', caught(), ours())\n"
            "child = subprocess.Popen(['true'])\n"
            "select.select([os.pidfd_open(child.pid)], [], [], 30)\n"
            "child.wait()  # (its SIGCHLD has come: the handler ran by now)\n"
            "print('caught one', caught(), ours())\n"
            "loop.call_soon(loop.stop)  # (one pass: the look it asked for, queued before)\n"
            "loop.run_forever()\n"
            "print('looked', caught(), ours())\n"
            "reaper.close()\n"
            "print('closed', caught(), signal.getsignal(signal.SIGCHLD) == signal.SIG_DFL)\n")


def test_the_sigchld_handler_is_disarmed_below_python() -> None:
    """Once a SIGCHLD is caught, no more are until the look: the kernel's action is the
    default again, while Python's table keeps the handler. ``signal.signal(SIGCHLD,
    SIG_DFL)`` changed both, and a SIGCHLD caught as it did met the default in Python's
    table: Python printed "Signal 17 ignored due to race condition" and a traceback into
    the run's output when orphans ended by the thousand."""
    result = subprocess.run([sys.executable, "-c", DISARMED], capture_output=True,
                            text=True, timeout=60, stdin=subprocess.DEVNULL)
    assert result.stdout.splitlines() == ["armed True True", "caught one False True",
                                          "looked True True", "closed False True"], result.stderr


# A member's script starts a daemon that leaves its group and the run's environment and
# drops the member's streams, while the script runs on: no orphan, yet nothing else of the
# member tells it.
DETACHED = ("setsid env -i sh -c 'echo daemon $$; exec sleep 60 </dev/null >/dev/null 2>&1' & "
            "exec sleep 61")


def test_a_detached_daemon_whose_parent_runs_dies_with_pipeplex_killed(run_dir: Path) -> None:
    """The guardian stops what is below the processes it stops: found by its parent."""
    with Pipeplex("run", "-p", f"m=sh -c {shlex.quote(DETACHED)}", "--run-dir", run_dir) as plex:
        daemon = int(plex.expect(r"^m +\| daemon (\d+)$")[1])
        deadline = time.monotonic() + 10  # (until its exec: then the streams are dropped)
        while Path(f"/proc/{daemon}/comm").read_text() != "sleep\n":
            assert time.monotonic() < deadline, "the daemon did not start sleeping"
            os.sched_yield()
        plex.signal(signal.SIGKILL)
        assert plex.wait() == -signal.SIGKILL
        wait_exited(daemon)


# A member that, once the test writes to the FIFO named first, double-forks a daemon with
# no group, environment or stream of its own member's: once orphaned (its parent gone), it
# writes its pid to the file named second.
ORPHANS_ON_CUE = ("import os, select, sys\n"
                  "gate, told, sleep = sys.argv[1:]\n"
                  "print('up', flush=True)\n"
                  "with open(gate, 'rb') as f:\n"
                  "    f.read()\n"
                  "child = os.fork()\n"
                  "if child == 0:\n"
                  "    os.setsid()\n"
                  "    parent = os.pidfd_open(os.getpid())\n"
                  "    if os.fork() == 0:\n"
                  "        select.select([parent], [], [])  # (until it is an orphan)\n"
                  "        null = os.open('/dev/null', os.O_RDWR)\n"
                  "        for fd in (0, 1, 2):\n"
                  "            os.dup2(null, fd)\n"
                  "        os.closerange(3, 4096)\n"
                  "        with open(told + '.part', 'w') as f:\n"
                  "            f.write(str(os.getpid()))\n"
                  "        os.rename(told + '.part', told)\n"
                  "        os.execve(sleep, ['sleep', '300'], {})\n"
                  "    os._exit(0)\n"
                  "os.waitpid(child, 0)\n"
                  "os.execv(sleep, ['sleep', '300'])\n")


def _wake_ups(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        return next(int(line.split()[1]) for line in f
                    if line.startswith("voluntary_ctxt_switches:"))


@pytest.mark.parametrize(("stopped", "replaced"), [(False, False), (True, False), (True, True)],
                         ids=["running", "stopped", "stopped, its guardian replaced"])
def test_an_orphan_that_comes_without_a_sigchld_dies_with_pipeplex_killed(
        run_dir: Path, tmp_path: Path, stopped: bool, replaced: bool) -> None:
    """Nothing tells pipeplex of an orphan whose old parent was a member's child (the
    SIGCHLD goes to the member), and a stopped pipeplex (SIGSTOP, Ctrl-Z) cannot look for
    any: the guardian looks at its children itself, once a second (one started in place of
    a killed one too). A daemon with no group, environment or stream of its member,
    orphaned while pipeplex was stopped, outlived a SIGKILL of pipeplex."""
    gate, told = tmp_path / "gate", tmp_path / "daemon.pid"
    os.mkfifo(gate)
    member = f"{py(ORPHANS_ON_CUE)} {gate} {told} {shutil.which('sleep')}"
    with Pipeplex("run", "-p", f"m={member}", "--run-dir", run_dir, "--no-console") as plex:
        plex.expect(r"^m +\| up$")
        guardian = guardian_of(plex.proc.pid)
        if replaced:
            os.kill(guardian, signal.SIGKILL)
            guardian = int(plex.expect(rf"the guardian process \(pid {guardian}\) is gone; "
                                       r"started another \(pid (\d+)\)")[1])
        if stopped:
            plex.signal(signal.SIGSTOP)
            os.waitid(os.P_PID, plex.proc.pid, os.WSTOPPED | os.WNOWAIT)
        write_fifo(gate, b"go")
        deadline = time.monotonic() + DEADLINE
        while not told.exists():
            assert time.monotonic() < deadline, "the member's daemon did not start"
            os.sched_yield()
        daemon = int(told.read_text())
        # Three of the guardian's wake-ups once the daemon is pipeplex's: one whole look at
        # least, even if a read of /proc slept once (none without the fix: then the daemon
        # is left after 10 s).
        woken, deadline = _wake_ups(guardian), time.monotonic() + 10
        while _wake_ups(guardian) < woken + 3 and time.monotonic() < deadline:
            os.sched_yield()
        plex.signal(signal.SIGKILL)
        assert plex.wait() == -signal.SIGKILL
        wait_exited(daemon)


def test_a_child_pipeplex_had_before_outlives_pipeplex_killed(run_dir: Path) -> None:
    """A child that a shell's ``exec`` passed on to pipeplex is not the cast's: the
    guardian, which takes pipeplex's other children for the orphans it adopted, leaves it
    be when pipeplex is killed with SIGKILL."""
    with Pipeplex("run", "-p", "m=sleep 300", "--run-dir", run_dir,
                  prefix=("sh", "-c", 'sleep 301 >/dev/null 2>&1 & echo "before $!"; exec "$@"',
                          "sh")) as plex:
        before = int(plex.expect(r"^before (\d+)$")[1])
        member = int(plex.expect(r"^m +\* started \(pid (\d+)\)")[1])
        try:
            guardian = guardian_of(plex.proc.pid)
            woken, deadline = _wake_ups(guardian), time.monotonic() + 10
            while _wake_ups(guardian) < woken + 3:  # (a look at least: see above)
                assert time.monotonic() < deadline, "the guardian did not look"
                os.sched_yield()
            plex.signal(signal.SIGKILL)
            assert plex.wait() == -signal.SIGKILL
            wait_exited(member)
            wait_exited(guardian, after="pipeplex died and its cast was stopped")
            assert Path(f"/proc/{before}/cmdline").read_bytes() == b"sleep\x00301\x00"
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.kill(before, signal.SIGKILL)


# A member that answers SIGTERM by starting a helper in a session of its own, with an empty
# environment, and runs on: the helper writes its pid to the file named first.
SPAWNS_ON_TERM = ("import os, signal, sys\n"
                  "def on_term(*_):\n"
                  "    pid = os.fork()\n"
                  "    if pid == 0:\n"
                  "        os.setsid()\n"
                  "        os.execve('/bin/sleep', ['sleep', '60'], {})\n"
                  "    with open(sys.argv[1] + '.part', 'w') as f:\n"
                  "        f.write(str(pid))\n"
                  "    os.rename(sys.argv[1] + '.part', sys.argv[1])\n"
                  "signal.signal(signal.SIGTERM, on_term)\n"
                  "print('up', flush=True)\n"
                  "while True:\n"
                  "    signal.pause()\n")


def test_what_a_sigterm_handler_starts_dies_with_pipeplex_killed(
        run_dir: Path, tmp_path: Path) -> None:
    """The guardian looks below what it stops again before SIGKILL: what a process started
    in answer to SIGTERM (a shutdown hook's helper) was not there at the first look."""
    pid_file = tmp_path / "helper.pid"
    with Pipeplex("run", "-p", f"m={py(SPAWNS_ON_TERM)} {pid_file}", "--run-dir",
                  run_dir) as plex:
        plex.expect(r"^m +\| up")
        plex.signal(signal.SIGKILL)
        assert plex.wait() == -signal.SIGKILL
        deadline = time.monotonic() + 10
        while not pid_file.exists():  # (written as the guardian's SIGTERM is handled)
            # (Its handler must fork within the guardian's 0.5 s between SIGTERM and SIGKILL:
            # a machine that slow would also end here.)
            assert time.monotonic() < deadline, ("the member got no SIGTERM, or its handler "
                                                 "did not write its file within the "
                                                 "guardian's 0.5 s before SIGKILL")
            select.select([], [], [], 0.01)
        helper = int(pid_file.read_text())
        wait_exited(helper)


def _children(pid: int) -> list[int]:
    return [int(child) for child in
            Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]




# A member starts a daemon that leaves its process group and its environment
# (setsid + env -i), then leaves it behind: it exits at once (``orphan``) or stays.
ORPHANING = ("import signal, subprocess, sys\n"
             "daemon = ('import signal\\n'\n"
             "          'signal.signal(signal.SIGTERM, signal.SIG_IGN)\\n'\n"
             "          'print(\"up\", flush=True)\\n'\n"
             "          'while True: signal.pause()')\n"
             "d = subprocess.Popen([sys.executable, '-c', daemon], env={},\n"
             "                     start_new_session=True, stdin=subprocess.DEVNULL,\n"
             "                     stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)\n"
             "d.stdout.readline()\n"
             "print('daemon', d.pid, flush=True)\n"
             "if sys.argv[1:] != ['orphan']:\n"
             "    sys.stdin.read()\n")


def test_a_process_that_left_its_group_and_environment_is_stopped_at_the_end(
        run_dir: Path) -> None:
    """Neither the group nor the environment finds it; as the members' subreaper, pipeplex
    gets it as a child once its parent is gone, and stops it with the cast: SIGTERM (it
    ignores that here), the grace, SIGKILL."""
    with Pipeplex("run", "-p", "stays=" + py(ORPHANING), "-p",
                  "leaves=" + py(ORPHANING) + " orphan", "--grace", "0.5",
                  "--on-exit", "ignore", "--run-dir", run_dir) as plex:
        daemons: set[int] = set()
        left = False  # (the three lines come in any order)
        while len(daemons) < 2 or not left:
            line = plex.expect(r"^(?:(?:stays|leaves) +\| daemon (\d+)"
                               r"|leaves +\* exited with code 0)$")
            daemons |= {int(line[1])} if line[1] else set()
            left = left or line[1] is None
        plex.signal(signal.SIGTERM)
        assert plex.wait() == 143
    termed = re.search(r"the cast left 2 processes \(pid (\d+), (\d+)\) outside its members' "
                       r"process groups and without their environment; sent them SIGTERM",
                       plex.text)
    assert termed is not None and set(map(int, termed.groups())) == daemons, plex.text
    assert "2 processes (pid" in plex.text and (
        "the cast left ignored SIGTERM for 0.5 s; sent them SIGKILL") in plex.text, plex.text
    for pid in daemons:
        wait_exited(pid)


# A process that never stays: it forks, its child leaves for a session of its own, and it
# exits, a thousand times a second (30000 at most), ignoring SIGTERM; started without the
# member's environment, and each new one comes to pipeplex as its parent dies. argv[1]
# marks it in /proc for the test; it closes the descriptor argv[2] once it is on its way.
HOPPER = ("import os, signal, sys, time\n"
          "signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
          "for n in range(30000):\n"
          "    if os.fork():\n"
          "        os._exit(0)\n"
          "    os.setsid()\n"
          "    if n == 100:  # (a hundred generations on: its member says so)\n"
          "        os.close(int(sys.argv[2]))\n"
          "    time.sleep(0.001)\n")  # (its pace, under test: not a wait of the test's)


def _hoppers(mark: str) -> list[int]:
    """The live processes whose command line holds ``mark``."""
    found = []
    for entry in os.listdir("/proc"):
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                if mark.encode() not in f.read().split(b"\0"):
                    continue
            with open(f"/proc/{entry}/stat", "rb") as f:
                if f.read().rpartition(b")")[2].split()[0] == b"Z":
                    continue
        except OSError:  # (not a process, or gone)
            continue
        found.append(int(entry))
    return found


def _stop_hoppers(mark: str) -> None:
    """Stop (SIGSTOP: no more forks), then kill, until none is left (a test that failed)."""
    deadline = time.monotonic() + 10
    while (found := _hoppers(mark)) and time.monotonic() < deadline:
        for sig in (signal.SIGSTOP, signal.SIGKILL):
            for pid in found:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, sig)


def test_an_orphan_that_forks_away_as_fast_as_it_is_stopped_is_caught(
        run_dir: Path, tmp_path: Path) -> None:
    """A process that left its group and environment and moves to a new pid and session a
    thousand times a second outruns each round of SIGTERM, grace and SIGKILL at the end of
    the cast; pipeplex then freezes and kills it and what it forked until none is left,
    rather than let it run on. (A round's SIGKILL may still land as it sleeps between two
    forks: then nothing is left to freeze, and nothing is said of it.)"""
    mark = str(tmp_path / "hopper")
    member = py("import os, subprocess, sys, signal\n"
                "r, w = os.pipe()\n"
                f"subprocess.Popen([sys.executable, '-c', {HOPPER!r}, {mark!r}, str(w)],\n"
                "                 env={}, pass_fds=[w], stdin=subprocess.DEVNULL,\n"
                "                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)\n"
                "os.close(w)\n"
                "os.read(r, 1)  # (EOF: it is on its way)\n"
                "print('hopping', flush=True)\n"
                "signal.pause()\n")
    try:
        with Pipeplex("run", "-p", f"m={member}", "--grace", "0.2", "--run-dir",
                      run_dir) as plex:
            plex.expect(r"^m +\| hopping$")
            plex.signal(signal.SIGTERM)
            assert plex.wait() == 143
        assert _hoppers(mark) == [], plex.text
        assert "appeared as fast as they were stopped" not in plex.text, plex.text
        if "forked anew" in plex.text:
            assert re.search(r"^pipeplex \* \d+ process(es)? \(pid [\d, .]+\) the cast left "
                             r"forked anew as fast as (they were|it was) stopped; froze (them|it) "
                             r"\(SIGSTOP\), with what (they|it) had forked, and sent SIGKILL$",
                             plex.text, re.MULTILINE), plex.text
    finally:
        _stop_hoppers(mark)


# A member starts a daemon (setsid, no environment) whose workers, a chain of four, ignore
# SIGTERM and stay in its group; the daemon itself dies of SIGTERM. Each writes its pid
# into the FIFO argv[1].
CHAIN = ("import os, signal, sys\n"
         "for depth in range(5):\n"
         "    if depth and os.fork():\n"
         "        break\n"
         "    if depth:\n"
         "        signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
         "with open(sys.argv[1], 'a') as f:\n"
         "    f.write(f'{os.getpid()}\\n')\n"
         "while True:\n"
         "    signal.pause()\n")

# Member side: a FIFO the five write their pids into, read until all five did; then the
# pids go to the file argv[1] (FIFO_OPEN before the five start, FIFO_READ after).
FIFO_OPEN = ("import os, sys\n"
             "fifo = sys.argv[1] + '.fifo'\n"
             "os.mkfifo(fifo)\n"
             "gate = os.open(fifo, os.O_RDWR)  # (never blocks, never reads EOF)\n")
FIFO_READ = ("got = b''\n"
             "while got.count(b'\\n') < 5:\n"
             "    got += os.read(gate, 4096)\n"
             "open(sys.argv[1], 'w').write(got.decode())\n"
             "print('started', flush=True)\n"
             "sys.stdin.read()\n")


def _chain_member(pids: Path) -> str:
    """A member that starts the chain and says ``started`` once all five wrote their pid."""
    return py(FIFO_OPEN + "import subprocess\n"
              f"subprocess.Popen([sys.executable, '-c', {CHAIN!r}, fifo], env={{}},\n"
              "                 start_new_session=True, stdin=subprocess.DEVNULL,\n"
              "                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)\n"
              + FIFO_READ) + f" {pids}"


def _five_pids(pids: Path) -> list[int]:
    """The chain's pids, all five written before the member said ``started``."""
    found = [int(pid) for pid in pids.read_text().split()]
    assert len(found) == 5
    return found


def test_pipeplex_test_stops_what_its_members_orphaned(tmp_path: Path) -> None:
    pids = tmp_path / "pids"
    case = tmp_path / "case.toml"
    case.write_text(f"[procs.m]\ncmd = {json.dumps(_chain_member(pids))}\n"
                    "[[step]]\nexpect = '^started$'\n")
    result = run("test", case, "--grace", "0.3")
    assert result.returncode == 0, result.stdout
    for pid in [int(p) for p in pids.read_text().split()]:
        wait_exited(pid)


# The classic double fork: the first child calls setsid and forks the daemon, then exits;
# the daemon, which does not lead its group, lets go of the member's output (a daemon's
# /dev/null: by that output it would be found as the member's), drops its environment and
# forks a chain of workers; all of them ignore SIGTERM.
DOUBLE_FORK = (FIFO_OPEN + "import signal\n"
               "if os.fork() == 0:\n"
               "    os.setsid()\n"
               "    null = os.open('/dev/null', os.O_RDWR)\n"
               "    for fd in (0, 1, 2):\n"
               "        os.dup2(null, fd)\n"
               "    if os.fork() == 0:\n"
               "        signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
               "        for depth in range(4):\n"
               "            if os.fork():\n"
               "                break\n"
               "        with open(fifo, 'a') as f:\n"
               "            f.write(f'{os.getpid()}\\n')\n"
               "        os.execve('/bin/sleep', ['sleep', '60'], {})\n"
               "    os._exit(0)\n"
               "os.wait()\n" + FIFO_READ)


@pytest.mark.parametrize("daemon", ["leading its group", "double-forked"])
def test_the_process_groups_of_the_casts_orphans_are_stopped_with_them(
        run_dir: Path, tmp_path: Path, daemon: str) -> None:
    """The daemon's workers ignore SIGTERM: its group gets SIGKILL after the grace, however
    deep their chain (they are not pipeplex's children while their parents live), whether
    the daemon leads the group or, double-forked, does not (its parent did, and is gone)."""
    pids = tmp_path / "pids"
    member = _chain_member(pids) if daemon == "leading its group" else (
        f"{py(DOUBLE_FORK)} {pids}")
    with Pipeplex("run", "-p", f"m={member}", "--grace", "0.3", "--run-dir", run_dir) as plex:
        plex.expect(r"^m +\| started$")
        chain = _five_pids(pids)
        plex.signal(signal.SIGTERM)
        assert plex.wait() == 143
    # (One orphan, or two: a worker whose parent the member's own stop killed first.)
    assert re.search(r"and to (its process group|their process groups)$", plex.text,
                     re.MULTILINE), plex.text
    for pid in chain:
        wait_exited(pid)


def test_pipeplex_test_stopped_by_sigterm_kills_what_its_members_were_to_orphan(
        tmp_path: Path) -> None:
    """SIGTERM ends a test run as Ctrl-C does (143): its members are killed, and so are
    their descendants outside their groups and environment, orphans-to-be."""
    daemon = tmp_path / "daemon"
    case = tmp_path / "case.toml"
    case.write_text("[procs.m]\ncmd = " + json.dumps(
        f"sh -c 'setsid env -i sh -c \"echo \\$\\$ > {daemon}; exec sleep 60\" & "
        "echo up; exec sleep 60'") + "\n[[step]]\nexpect = '^up$'\n[[step]]\nsleep = 60\n")
    test = subprocess.Popen([*PIPEPLEX, "test", str(case)], stdin=subprocess.DEVNULL,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + DEADLINE
        while not daemon.exists() or not daemon.read_text().strip():
            assert time.monotonic() < deadline, "the member did not start its daemon"
            os.sched_yield()
        pid = int(daemon.read_text())
        test.send_signal(signal.SIGTERM)
        assert test.wait(timeout=DEADLINE) == 143
        wait_exited(pid)
    finally:
        test.kill()
        test.wait()


def test_a_daemon_below_a_full_terminal_dies_with_pipeplex_killed_under_a_low_soft_limit(
        tmp_path: Path, run_dir: Path) -> None:
    """pipeplex lifts its soft limit on descriptors for a big cast, but its guardian,
    started before the cast was read, kept the one it was given (64 here): past it, the
    full terminals' masters handed over were dropped on the way, and a daemon that the last
    member's shell started outlived pipeplex killed with SIGKILL."""
    import resource

    daemon = tmp_path / "daemon"
    cast = tmp_path / "c.toml"
    cast.write_text("".join(f'[procs.m{i}]\ncmd = "sleep 60"\npty = true\n' for i in range(70))
                    + "[procs.last]\npty = true\nafter = [" + ", ".join(
                        f'"m{i}"' for i in range(70)) + "]\ncmd = " + json.dumps(
        f"sh -c 'setsid env -i sh -c \"echo \\$\\$ > {daemon}; exec sleep 60\" "
        "</dev/null >/dev/null 2>&1 & wait'") + "\n")
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard < 1024:
        pytest.skip(f"the hard limit on descriptors ({hard}) is too low for 71 members")
    run_ = subprocess.Popen(
        [*PIPEPLEX, "run", str(cast), "--no-console", "--run-dir", str(run_dir)],
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        preexec_fn=lambda: resource.setrlimit(resource.RLIMIT_NOFILE, (64, hard)))
    try:
        deadline = time.monotonic() + DEADLINE
        while not daemon.exists() or not daemon.read_text().strip():
            assert time.monotonic() < deadline and run_.poll() is None, "no daemon started"
            os.sched_yield()
        pid = int(daemon.read_text())
        run_.kill()
        run_.wait()
        wait_exited(pid)
    finally:
        run_.kill()
        run_.wait()


def test_members_get_the_soft_limit_on_descriptors_pipeplex_was_given(
        tmp_path: Path, run_dir: Path) -> None:
    """pipeplex lifts its own soft limit for a big cast; its members inherited the lifted
    one (a program using select() breaks past 1024). Each start mode, a vfork's and a
    fork's, gives the limit pipeplex was given."""
    import resource

    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard < 1024:
        pytest.skip(f"the hard limit on descriptors ({hard}) is too low to be lifted to")
    cast = tmp_path / "c.toml"
    modes = ["", 'pty = true\n', 'pty = false\n']
    cast.write_text("".join(
        f'[procs.m{i}]\ncmd = "sh -c \'echo soft=$(ulimit -Sn) hard=$(ulimit -Hn); exec cat\'"\n'
        f"{modes[i % 3]}" for i in range(30)))
    with Pipeplex("run", cast, "--no-console", "--run-dir", run_dir,
                  prefix=("sh", "-c", 'ulimit -Sn 128 && exec "$@"', "sh")) as plex:
        for _ in range(30):  # (in the order they come)
            plex.expect(r"^m\d+ +\| soft=\d+ hard=\d+\r?$")
        limits = set(re.findall(r"^m\d+ +\| (soft=\d+ hard=\d+)", plex.text, re.MULTILINE))
        # (pipeplex's own limit was lifted: else this would test nothing)
        own = (Path("/proc") / str(plex.proc.pid) / "limits").read_text()
        lifted = re.search(r"^Max open files +(\d+)", own, re.MULTILINE)
        assert lifted is not None and lifted[1] != "128", own
        plex.signal()
        assert plex.wait() == 143
    assert limits == {f"soft=128 hard={hard}"}, limits


def test_children_pipeplex_had_before_are_not_the_casts(run_dir: Path, tmp_path: Path) -> None:
    """A shell's exec passes its background jobs on: they are not the cast's to stop."""
    job = tmp_path / "job"
    started = subprocess.run(
        ["sh", "-c", f'sleep 60 > /dev/null 2>&1 & echo $! > {job}; exec "$@"', "sh", *PIPEPLEX,
         "run",
         "-p", "a=true", "--run-dir", str(run_dir)],
        stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=DEADLINE)
    pid = int(job.read_text())
    try:
        assert started.returncode == 0, started.stdout
        assert "the cast left" not in started.stdout
        os.kill(pid, 0)  # still there
    finally:
        os.kill(pid, signal.SIGKILL)


def test_the_next_run_cleans_the_folder_of_a_killed_run(run_dir: Path) -> None:
    """A run killed with SIGKILL leaves its pipes; the next run removes them and says so."""
    with Pipeplex("run", "-p", "a=sleep 60", "--run-dir", run_dir) as plex:
        plex.expect("run folder")
        plex.signal(signal.SIGKILL)
        plex.wait()
    assert (run_dir / "a.in").exists()
    result = run("run", "-p", "b=true", "--run-dir", run_dir)
    assert result.returncode == 0
    assert f"earlier run (pid {plex.proc.pid})" in result.stdout
    assert list(run_dir.iterdir()) == []


def test_the_demo_holds_its_conversation_and_exits_0() -> None:
    """pipeplex demo: three members talk in turns and the run ends by itself with 0."""
    result = run("demo", "--no-color", timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
    said = re.findall(r"^server \| (\w+: .*)$", result.stdout, re.MULTILINE)
    assert said == [
        "alice: hi bob!",
        "bob: hi alice, how are you?",
        "alice: great: pipeplex shows us both",
        "bob: bye!",
    ]
    assert "server | room is empty; bye" in result.stdout


def _listener(port: int, *, reuse: bool = False) -> str:
    """A member that listens on 127.0.0.1:``port`` (with SO_REUSEPORT if ``reuse``), says
    so, and waits; or, where it cannot bind, says why once and waits all the same."""
    return py("import select, socket\n"
              "s = socket.socket()\n"
              f"s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, {int(reuse)})\n"
              "try:\n"
              f"    s.bind(('127.0.0.1', {port}))\n"
              "    s.listen()\n"
              "    print('listening', flush=True)\n"
              "except OSError as exc:\n"
              "    print('cannot bind:', exc.strerror, flush=True)\n"
              "select.select([], [], [])\n")


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_ready_port_held_by_another_before_the_start_is_not_the_members(run_dir: Path) -> None:
    """Another process listens on the port already (a leftover server, another member): a
    connection succeeds whatever the member does. It is said, and the member is ready only
    once a listener of its own is there: one that cannot bind is never ready (it was, at
    once, and the members after it started)."""
    port = _free_port()
    cast = run_dir.parent / "cast.toml"
    cast.write_text(f"[procs.holder]\ncmd = {json.dumps(_listener(port))}\n"
                    f"ready_port = '{port}'\n"
                    f"[procs.late]\ncmd = {json.dumps(_listener(port))}\nafter = ['holder']\n"
                    f"ready_port = '{port}'\nready_timeout = 1\n"
                    "[procs.client]\ncmd = 'true'\nafter = ['late']\n")
    result = run("run", cast, "--run-dir", run_dir, "--no-color")
    out = re.sub(r"(?m)^(\w+) +([*|])", r"\1 \2", result.stdout)  # (names unpadded)
    assert result.returncode != 0
    holder = re.search(r"^holder \* started \(pid (\d+)\)$", out, re.M)
    assert holder is not None, out
    assert (f"late * port {port} (its ready_port, at {cast}:7) already has a listener before "
            f"it starts, not its own, held by member holder (pid {holder[1]}): it counts as "
            "ready once it listens there too; give late a port of its own") in out, out
    assert "late | cannot bind: Address already in use" in out
    assert (f"late * was not ready after 1.0 s (its ready_timeout, at {cast}:8); port {port} "
            "on 127.0.0.1 or ::1 never accepted a connection from a listener of its own "
            "(another held it before it started)") in out, out
    assert "client * started" not in out


def test_ready_port_of_another_member_started_with_it_is_not_the_members(
        run_dir: Path) -> None:
    """Two members of one wave wait for the same port (a copied ready_port): the first to
    listen made the other ready too, whose own server could not bind. A listener that
    belongs to another member waiting for that port now proves nothing of this one's."""
    port = _free_port()
    holder = py("import select, socket, sys\n"
                "sys.stdin.readline()  # (listens only once told: after late started)\n"
                f"s = socket.socket(); s.bind(('127.0.0.1', {port})); s.listen()\n"
                "print('listening', flush=True)\n"
                "select.select([], [], [])\n")
    cast = run_dir.parent / "cast.toml"
    cast.write_text(f"[procs.holder]\ncmd = {json.dumps(holder)}\nready_port = '{port}'\n"
                    f"[procs.late]\ncmd = 'cat'\nready_port = '{port}'\nready_timeout = 600\n"
                    "[procs.client]\ncmd = 'true'\nafter = ['late']\n")
    with Pipeplex("run", cast, "--run-dir", run_dir, "--no-color") as plex:
        plex.expect(r"^late +\* started")
        write_fifo(run_dir / "holder.in", b"go\n")
        # (Before or after "holder * ready": each member's wait for the port is its own.)
        plex.expect(rf"^late +\* port {port} \(its ready_port\) accepts connections, but "
                    "holder listens there, not it: it counts as ready once it listens there "
                    "too$")
        late = next(m for m in status(run_dir)["members"] if m["name"] == "late")
        assert late["waiting_for"] == (f"port {port} on 127.0.0.1 or ::1 to accept "
                                       "connections from a listener of its own (holder "
                                       "listens there)"), late
        plex.signal(signal.SIGTERM)  # (late would wait out its ready_timeout)
        assert plex.wait() == 128 + signal.SIGTERM
    assert re.search(r"^holder +\* ready$", plex.text, re.M), plex.text
    assert not re.search(r"^late +\* ready$", plex.text, re.M), plex.text
    assert "client * started" not in plex.text


def test_ready_port_shared_by_a_new_listener_of_the_member_is_ready(run_dir: Path) -> None:
    """A member that does listen there too (SO_REUSEPORT, as a second worker) is ready."""
    port = _free_port()
    cast = run_dir.parent / "cast.toml"
    cast.write_text(f"[procs.holder]\ncmd = {json.dumps(_listener(port, reuse=True))}\n"
                    f"ready_port = '{port}'\n"
                    f"[procs.late]\ncmd = {json.dumps(_listener(port, reuse=True))}\n"
                    f"after = ['holder']\nready_port = '{port}'\n")
    with Pipeplex("run", cast, "--run-dir", run_dir, "--no-color") as plex:
        plex.expect(r"^late +\* port \d+ \(its ready_port, at .*cast\.toml:7\) already has a "
                    "listener")
        plex.expect(r"^late +\| listening$")
        plex.expect(r"^late +\* ready$")


def _hiding_proc() -> list[str]:
    """A command's prefix that runs it where /proc is not mounted (a mount namespace of its
    own, /proc covered); the test is skipped where there is none to be had."""
    hide = ["unshare", "--mount", "sh", "-c", 'mount -t tmpfs none /proc && exec "$@"', "sh"]
    if shutil.which("unshare") is None or subprocess.run(
            [*hide, "true"], capture_output=True, timeout=DEADLINE).returncode != 0:
        pytest.skip("no mount namespace to hide /proc in")
    return hide


def test_a_run_without_proc_says_what_it_cannot_stop(run_dir: Path) -> None:
    """In a chroot or a bare sandbox, what a member starts outside its group (found through
    /proc) is not stopped with the cast: said at the start, not found out later."""
    result = subprocess.run([*_hiding_proc(), *PIPEPLEX, "run", "-p", "a=echo hi",
                             "--no-console", "--run-dir", str(run_dir)],
                            capture_output=True, text=True, stdin=subprocess.DEVNULL,
                            timeout=DEADLINE)
    assert result.returncode == 0, result.stderr
    assert "pipeplex * /proc is not mounted here: what members start outside their process " \
        "groups (a daemon's setsid) cannot be found" in result.stdout


def test_without_proc_the_guardian_still_stops_the_members_of_a_killed_run(
        run_dir: Path) -> None:
    """Where /proc is not mounted, the guardian's program cannot be handed over as
    /proc/self/fd/N: it failed to start, pipeplex started another three times, and the
    members outlived a SIGKILL of pipeplex. Named by its path there, the guardian stops
    their groups (and, with no /proc to look in, knows them gone by a signal 0)."""
    with Pipeplex("run", "-p", "m=sh -c 'echo pid $$; exec sleep 300'", "--run-dir", run_dir,
                  "--no-console", prefix=tuple(_hiding_proc())) as plex:
        member = int(plex.expect(r"^m +\| pid (\d+)$")[1])
        plex.signal(signal.SIGKILL)
        assert plex.wait() == -signal.SIGKILL
        wait_exited(member)
    assert "/proc is not mounted here" in plex.text, plex.text
    assert "the guardian process" not in plex.text, plex.text


def _outer_pid(cmdline: list[str], deadline: float = DEADLINE) -> int:
    """The pid, as this namespace numbers it, of the process running ``cmdline``."""
    wanted = "\0".join(cmdline).encode() + b"\0"
    until = time.monotonic() + deadline
    while True:
        for entry in os.listdir("/proc"):
            with contextlib.suppress(OSError):
                if entry.isdigit() and Path(f"/proc/{entry}/cmdline").read_bytes() == wanted:
                    return int(entry)
        assert time.monotonic() < until, f"no process runs {cmdline}"
        os.sched_yield()


def test_where_proc_is_another_namespaces_pipeplex_says_so_and_keeps_to_the_groups(
        run_dir: Path) -> None:
    """In a PID namespace without a /proc of its own (unshare -p without --mount-proc),
    /proc/N is not this namespace's N: the guardian took a stranger's children for
    pipeplex's, and signalled their numbers here. pipeplex says so, neither it nor its
    guardian looks there, and a SIGKILL of pipeplex (not the namespace's first process,
    whose death would end all) still stops the member, by its group."""
    unshare = ["unshare", "--pid", "--fork"]
    if shutil.which("unshare") is None or subprocess.run(
            [*unshare, "true"], capture_output=True, timeout=DEADLINE).returncode != 0:
        pytest.skip("no PID namespace to be had")
    member = ["sleep", f"299.{os.getpid()}"]
    args = [*PIPEPLEX, "run", "-p", f"m={shlex.join(member)}", "--run-dir", str(run_dir),
            "--no-console"]
    with Pipeplex(*args[len(PIPEPLEX):],
                  prefix=(*unshare, "sh", "-c", '"$@" & wait $!', "sh")) as plex:
        plex.expect(r"^pipeplex \* /proc here is another PID namespace's \(unshare -p without "
                    r"--mount-proc\?\)")
        plex.expect(r"^m +\* started")
        sleeping = _outer_pid(member)
        os.kill(_outer_pid(args), signal.SIGKILL)
        wait_exited(sleeping)
        assert plex.wait() == 137  # (the shell's: pipeplex was killed)


def _after_a_while_suspended(plex: Pipeplex, seconds: float, then: Callable[[], None]) -> None:
    """pipeplex suspended (SIGSTOP, as Ctrl-Z does), ``then`` done meanwhile, and continued
    once ``seconds`` have passed: every deadline it had is due at once."""
    os.kill(plex.proc.pid, signal.SIGSTOP)
    try:
        then()
        until = time.monotonic() + seconds  # (the time passing is what is tested)
        while time.monotonic() < until:
            os.sched_yield()
    finally:
        os.kill(plex.proc.pid, signal.SIGCONT)


def _runs(pid: int, program: bytes, deadline: float = DEADLINE) -> None:
    """Wait until process ``pid`` runs ``program`` (it has exec'd it)."""
    until = time.monotonic() + deadline
    while not Path(f"/proc/{pid}/cmdline").read_bytes().startswith(program):
        assert time.monotonic() < until, f"{pid} never ran {program!r}"
        os.sched_yield()


def test_a_ready_line_written_while_pipeplex_was_suspended_beats_its_timeout(
        tmp_path: Path, run_dir: Path) -> None:
    """pipeplex suspended with Ctrl-Z past a member's ready_timeout, the member's ready
    line written meanwhile: at fg both were due, and the timeout won ("was not ready after
    0.3 s ... wrote nothing", the line shown just after it, the cast stopped)."""
    gate = tmp_path / "gate"
    os.mkfifo(gate)
    cast = tmp_path / "c.toml"
    cast.write_text('[procs.db]\ncmd = "sh -c \'read x < ' + str(gate) + '; echo db-ready; '
                    'exec sleep 60\'"\nready = "db-ready"\nready_timeout = 0.3\n'
                    '[procs.app]\ncmd = "sleep 60"\nafter = ["db"]\n')
    with Pipeplex("run", cast, "--no-console", "--run-dir", run_dir) as plex:
        pid = int(plex.expect(r"^db +\* started \(pid (\d+)\)")[1])

        def ready_line_written() -> None:
            with open(gate, "w") as opened:
                opened.write("go\n")
            _runs(pid, b"sleep")  # (it wrote its line, and exec'd)

        _after_a_while_suspended(plex, 0.5, ready_line_written)
        plex.expect(r"^app +\* started")
        assert "was not ready" not in plex.text, plex.text
        plex.signal()
        assert plex.wait() == 143


def test_a_member_that_ended_in_its_grace_while_pipeplex_was_suspended_is_not_killed(
        tmp_path: Path, run_dir: Path) -> None:
    """pipeplex suspended past a member's grace, the member ending on its SIGTERM meanwhile:
    at fg the grace was up and its exit not seen yet, and it was said to have ignored SIGTERM
    and was sent SIGKILL, the line above its own clean exit."""
    gate = tmp_path / "gate"
    os.mkfifo(gate)
    cast = tmp_path / "c.toml"
    cast.write_text('[procs.s]\ncmd = "sh -c \'trap \\"read x < ' + str(gate) + '; exit 0\\" '
                    'TERM; echo up; while :; do sleep 1; done\'"\nstop_timeout = 0.3\n')
    with Pipeplex("run", cast, "--no-console", "--run-dir", run_dir) as plex:
        pid = int(plex.expect(r"^s +\* started \(pid (\d+)\)")[1])
        plex.expect(r"^s +\| up")
        plex.signal()
        plex.expect(r"^s +\* closed its stdin; sent SIGTERM to its process group")

        def ended_on_its_sigterm() -> None:
            with open(gate, "w") as opened:
                opened.write("go\n")
            wait_exited_unreaped(pid)

        _after_a_while_suspended(plex, 0.5, ended_on_its_sigterm)
        assert plex.wait() == 143
    assert "ignored SIGTERM" not in plex.text and "SIGKILL" not in plex.text, plex.text
    assert re.search(r"^s +\* stopped: exited with code 0$", plex.text, re.MULTILINE), plex.text


def wait_exited_unreaped(pid: int) -> None:
    """Wait until ``pid`` (a child of another process) has exited: a zombie, or gone."""
    until = time.monotonic() + DEADLINE
    while True:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except FileNotFoundError:
            return
        if state == "Z":
            return
        assert time.monotonic() < until, f"{pid} did not exit"
        os.sched_yield()
