"""The pytest plugin, tested with pytester: the plex fixture, cleanup, transcripts."""

from __future__ import annotations

import json
import os
import re
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

from pipeplex._printable import printable
from pipeplex._pytest_transcripts import transcript_file_name

pytest_plugins = ["pytester"]


def test_the_fixture_runs_members_and_stops_them(pytester: pytest.Pytester) -> None:
    """plex is available without configuration and stops members at teardown."""
    pytester.makepyfile("""
        def test_cat(plex):
            cat = plex.spawn("cat", "cat")
            cat.sendline("hello")
            cat.expect("^hello$")
            cat.close_stdin()
            assert cat.wait() == 0
    """)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(passed=1)


def test_the_fixture_used_in_a_with_block_says_what_it_is(pytester: pytest.Pytester) -> None:
    """``with plex:`` on the fixture: it is started and closed for the test already (it
    said "this plex has already been started: use a new one")."""
    pytester.makepyfile("""
        def test_with(plex):
            with plex:
                pass
    """)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*PipeplexError: the plex fixture's plex is started for the "
                                 "test, and closed at its end: use it as it is, without a "
                                 "with block or start()"])


def test_the_fixtures_members_get_the_environment_of_test_mode(
        pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> None:
    """TERM=dumb and NO_COLOR=1, as pipeplex test gives: under the developer's xterm, ls
    coloured and readline drew, and a test passed or failed by the shell it ran from. A
    member's own env wins; a plex made in the test keeps the caller's TERM."""
    monkeypatch.setenv("TERM", "xterm-256color")
    monkeypatch.delenv("NO_COLOR", raising=False)
    pytester.makepyfile("""
        from pipeplex import Plex

        SHOW = "sh -c 'echo $TERM/${NO_COLOR:-colour}'"

        def test_env(plex):
            plex.spawn("a", SHOW).expect("^dumb/1$")
            plex.spawn("b", SHOW, env={"TERM": "vt100"}).expect("^vt100/1$")
            with Plex() as own:
                own.spawn("c", SHOW).expect("^xterm-256color/colour$")
            with Plex(env={"NO_COLOR": "yes"}) as own:
                own.spawn("d", SHOW).expect("^xterm-256color/yes$")
    """)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(passed=1)


def test_a_failing_test_shows_the_transcript(pytester: pytest.Pytester) -> None:
    """The merged transcript is attached to the report of a failed test."""
    pytester.makepyfile("""
        def test_fails(plex):
            cat = plex.spawn("cat", "cat")
            cat.sendline("evidence line")
            cat.expect("evidence")
            assert False, "boom"
    """)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "--junitxml=r.xml")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*pipeplex transcript*", "*cat | evidence line*"])
    assert "cat | evidence line" in (pytester.path / "r.xml").read_text()


def test_a_failing_test_shows_what_its_members_wrote_as_they_were_stopped(
        pytester: pytest.Pytester) -> None:
    """The section taken at the failure ends there; the stop at teardown comes after it (a
    server's shutdown traceback): shown under the failure in a section of its own, and in
    the transcript file kept for the test."""
    pytester.makepyfile("""
        import sys
        SERVER = [sys.executable, "-c", "import sys\\nprint('serving', flush=True)\\n"
                  "sys.stdin.read()\\nprint('Traceback: flush failed', file=sys.stderr)\\n"
                  "sys.exit(3)"]
        def test_fails(plex):
            plex.spawn("srv", SERVER, background=True).expect("serving")
            assert False, "a wrong answer"
    """)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider",
                                           "--pipeplex-keep-transcripts", "kept")
    result.assert_outcomes(failed=1)
    kept = [path.read_text() for path in (pytester.path / "kept").iterdir()]
    assert len(kept) == 1 and "srv | serving\n" in kept[0], kept
    assert "srv ! Traceback: flush failed\n" in kept[0], kept  # (the kept file: all of it)
    result.stdout.fnmatch_lines(["*- pipeplex transcript -*", "srv | serving",
                                 "*- pipeplex transcript: the stop at teardown -*",
                                 "srv * closed its stdin", "srv ! Traceback: flush failed",
                                 "srv * exited with code 3"])


def test_casts_a_test_starts_itself_show_their_transcripts_too(
        pytester: pytest.Pytester) -> None:
    """A cast of the test's own fixture, and an AsyncPlex the test ran and closed: their
    transcripts are in the failure report beside the plex fixture's."""
    pytester.makepyfile("""
        import asyncio
        import pytest
        from pipeplex import AsyncPlex, Plex

        @pytest.fixture
        def service():
            with Plex() as own:
                srv = own.spawn("srv", "cat")
                srv.sendline("from the fixture's cast")
                srv.expect("fixture")
                yield own

        def test_fails(plex, service):
            plex.spawn("c", "cat").sendline("from plex")

            async def scenario():
                async with AsyncPlex() as other:
                    job = await other.spawn("job", "cat")
                    job.sendline("from the async cast")
                    await job.expect("async")

            asyncio.run(scenario())
            assert False, "boom"
    """)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(failed=1)
    out = result.stdout.str()
    assert "pipeplex transcript (another cast: srv)" in out
    assert "srv | from the fixture's cast" in out
    assert "pipeplex transcript (another cast: job)" in out
    assert "job | from the async cast" in out


def test_a_test_that_starts_casts_in_a_loop_shows_the_last_it_closed(
        pytester: pytest.Pytester) -> None:
    """Twelve casts started and closed one after another in one test: its failure shows the
    last eight and says how many came before (the plugin lets go of those, rather than
    hold every cast a long loop starts until the test ends)."""
    pytester.makepyfile("""
        from pipeplex import Plex

        def test_fails():
            for i in range(12):
                with Plex() as each:
                    each.spawn(f"c{i}", "cat").sendline(f"cast number {i}")
                    each[f"c{i}"].expect("number")
            assert False, "boom"
    """)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(failed=1)
    out = result.stdout.str()
    shown = [int(n) for n in re.findall(r"^c\d+ +\| cast number (\d+)$", out, re.M)]
    assert shown == list(range(4, 12)), out
    assert ("4 earlier casts this test started and closed are not shown: a failure shows "
            "the last 8 a test closed") in out


def test_a_session_plex_shows_in_later_failures_what_came_during_them(
        pytester: pytest.Pytester) -> None:
    """A plex of a session-scoped fixture, started in the first test: a later test's failure
    shows what it wrote during that test (not before)."""
    pytester.makepyfile("""
        import pytest
        from pipeplex import Plex

        @pytest.fixture(scope="session")
        def shared():
            with Plex() as plex:
                yield plex

        def test_one(shared):
            m = shared.spawn("one", "cat")
            m.sendline("from test one")
            m.expect("test one")

        def test_two(shared):
            m = shared.spawn("two", "cat")
            m.sendline("from test two")
            m.expect("test two")
            assert False, "boom"
    """)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(passed=1, failed=1)
    out = result.stdout.str()
    assert "pipeplex transcript (a cast started before this test: one, two; " in out
    assert "two | from test two" in out
    assert "from test one" not in out


def test_members_left_running_are_reported(pytester: pytest.Pytester) -> None:
    """A test that leaves a member running gets a warning naming it."""
    pytester.makepyfile("""
        def test_leaves(plex):
            plex.spawn("sleeper", "sleep 60")
    """)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-W", "default")
    result.assert_outcomes(passed=1, warnings=1)
    # At the test's line, where the fix goes, not at the plugin's.
    result.stdout.fnmatch_lines(["*/test_members_left_running_are_reported.py:1: PipeplexWarning:"
                                 " *left members running: sleeper*"])


def test_a_plex_the_test_left_open_is_closed_at_its_end_and_reported(
        pytester: pytest.Pytester) -> None:
    """A Plex the test started and never closed, and an AsyncPlex left open in a loop that
    still exists: closed as the test ends (their members gone before the next test runs),
    and reported at that test's line, not as a ResourceWarning in a later one. An
    AsyncPlex left open as ``asyncio.run`` ended: its members were killed, which is said."""
    pytester.makepyfile("""
        import asyncio
        import os
        from pipeplex import AsyncPlex, Plex

        PIDS = []
        LOOPS = []

        def test_plex():
            cast = Plex()
            cast.start()
            PIDS.append(cast.spawn("sleeper", "sleep 60").pid)

        def test_async_plex_in_a_loop_left_open():
            loop = asyncio.new_event_loop()
            LOOPS.append(loop)  # (open at the test's end: closed by the last test)

            async def scenario():
                cast = AsyncPlex()
                await cast.start()
                PIDS.append((await cast.spawn("waiter", "sleep 60")).pid)

            loop.run_until_complete(scenario())

        def test_async_plex_of_an_ended_loop():
            async def scenario():
                cast = AsyncPlex()
                await cast.start()
                await cast.spawn("runner", "sleep 60")

            asyncio.run(scenario())
            for _ in range(10):  # (closed after it, as they should be: it is still told)
                with Plex():
                    pass

        def test_they_are_gone():
            for pid in PIDS:
                try:
                    os.kill(pid, 0)
                except ProcessLookupError:
                    continue
                raise AssertionError(f"{pid} still runs")
            LOOPS[0].close()
    """)
    result = pytester.runpytest_subprocess(
        "-p", "no:cacheprovider", "-W", "error",
        "-W", "default::pipeplex.pytest_plugin.PipeplexWarning")
    result.assert_outcomes(passed=4, warnings=3)
    result.stdout.fnmatch_lines_random([
        "*.py:8: PipeplexWarning: *::test_plex left a pipeplex.Plex running, without "
        "close(), with member sleeper: stopped at its end; use it as 'with Plex() as plex:', "
        "or the plex fixture",
        "*.py:13: PipeplexWarning: *::test_async_plex_in_a_loop_left_open left a "
        "pipeplex.AsyncPlex open, without aclose(), with member waiter: stopped at its end; "
        "use it as 'async with AsyncPlex() as plex:'",
        "*.py:24: PipeplexWarning: *::test_async_plex_of_an_ended_loop left a "
        "pipeplex.AsyncPlex open, without aclose(): its event loop's end killed member runner "
        "(SIGKILL), without the grace; use it as 'async with AsyncPlex() as plex:'",
    ])
    assert "ResourceWarning" not in result.stdout.str()


def test_a_plex_of_a_fixture_the_test_asked_for_in_its_call_is_not_its_own(
        pytester: pytest.Pytester) -> None:
    """A module's fixture set up by ``request.getfixturevalue`` during the first test's
    call: its plex serves the next test too, not closed as that first test ends."""
    pytester.makepyfile("""
        import pytest
        from pipeplex import Plex

        @pytest.fixture(scope="module")
        def shared():
            with Plex() as cast:
                cast.spawn("srv", "cat", background=True)
                yield cast

        def test_one(request):
            shared = request.getfixturevalue("shared")
            shared["srv"].sendline("one")
            shared["srv"].expect("^one$")

        def test_two(shared):
            assert shared["srv"].running
            shared["srv"].sendline("two")
            shared["srv"].expect("^two$")
    """)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-W", "error")
    result.assert_outcomes(passed=2)


def test_a_failed_test_s_open_plex_is_closed_without_a_warning(
        pytester: pytest.Pytester) -> None:
    """A test that failed before its close: its plex is closed all the same, and its failure
    says what went wrong, not that a plex was left open."""
    pytester.makepyfile("""
        import os
        from pipeplex import Plex

        PIDS = []

        def test_fails():
            cast = Plex()
            cast.start()
            PIDS.append(cast.spawn("sleeper", "sleep 60").pid)
            assert False, "boom"
            cast.close()

        def test_it_is_gone():
            try:
                os.kill(PIDS[0], 0)
            except ProcessLookupError:
                return
            raise AssertionError("still runs")
    """)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-W", "error")
    result.assert_outcomes(passed=1, failed=1)
    assert "left a pipeplex.Plex" not in result.stdout.str()


def test_timeout_option_and_kept_transcripts(pytester: pytest.Pytester) -> None:
    """--pipeplex-timeout sets the default; --pipeplex-keep-transcripts saves failures."""
    pytester.makepyfile("""
        import pytest, pipeplex
        def test_short(plex):
            cat = plex.spawn("cat", "cat")
            cat.sendline("x")
            cat.expect("^x", timeout=30)  # (in the transcript, however long cat takes)
            with pytest.raises(pipeplex.ExpectTimeout, match="within 0.2 s"):
                cat.expect("never")
            assert False
    """)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "--pipeplex-timeout=0.2",
                                           "--pipeplex-keep-transcripts=kept")
    result.assert_outcomes(failed=1)
    kept = list((pytester.path / "kept").iterdir())
    assert len(kept) == 1
    assert "cat | x" in kept[0].read_text()


def test_a_long_transcript_shows_its_end_and_says_where_the_whole_is(
        pytester: pytest.Pytester) -> None:
    """A failure's report shows the transcript's last 500 lines (up to 1 MiB of it made a
    report of 80,000 lines), saying how many came before, and where the whole is kept."""
    pytester.makepyfile("""
        def test_big(plex):
            plex.spawn("gen", ["seq", "1", "3000"]).expect("^3000$")
            assert False
    """)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(failed=1)
    out = result.stdout.str()
    assert "gen | 2700" in out and "gen | 2000\n" not in out
    result.stdout.fnmatch_lines(["[[]2* earlier lines not shown: --pipeplex-keep-transcripts "
                                 "DIR keeps the whole transcript]"])
    kept = pytester.runpytest_subprocess("-p", "no:cacheprovider",
                                         "--pipeplex-keep-transcripts=kept")
    kept.stdout.fnmatch_lines(["[[]2* earlier lines not shown: the whole transcript is in "
                               f"{pytester.path / 'kept'}/test_a_long_transcript*.txt]"])
    (path,) = (pytester.path / "kept").iterdir()
    assert "gen | 1\n" in path.read_text()


LEFTOVER = "error::pipeplex.pytest_plugin.PipeplexWarning"


def test_kept_transcripts_get_short_distinct_file_names(pytester: pytest.Pytester) -> None:
    """A 300-character id is cut (no OSError), and ids that differ only in their odd
    characters keep one file each."""
    pytester.makepyfile("""
        import pytest
        @pytest.mark.parametrize("x", [pytest.param("long", id="y" * 300)])
        def test_long_id(plex, x):
            plex.spawn("c", ["echo", "marker-" + x]).expect("marker")
            assert False
        @pytest.mark.parametrize("x", ["a/b", "a_b", "a b"])
        def test_collide(plex, x):
            plex.spawn("c", ["echo", "marker-" + x]).expect("marker")
            assert False
    """)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider",
                                           "--pipeplex-keep-transcripts=kept")
    result.assert_outcomes(failed=4)
    assert "INTERNALERROR" not in result.stdout.str()
    kept = sorted((pytester.path / "kept").iterdir())
    assert len(kept) == 4
    for path in kept:
        assert len(path.name.encode()) <= 150
        assert path.name.startswith("test_")
    contents = sorted(path.read_text().split("marker-")[1].split("\n")[0] for path in kept)
    assert contents == ["a b", "a/b", "a_b", "long"]
    assert any(path.name.startswith("test_kept_transcripts_get_short_distinct_file_names.py"
                                    "_test_long_id_yyyy") for path in kept)


@pytest.mark.parametrize("warnings_as", ["default", LEFTOVER])
def test_a_transcript_that_cannot_be_kept_is_a_warning(pytester: pytest.Pytester,
                                                       warnings_as: str) -> None:
    """A folder that can no longer be written (here: a file put in its place during the
    session) is reported, and the session goes on, even when warnings are errors."""
    pytester.makepyfile("""
        import os
        def test_one(plex):
            os.rmdir("taken")
            with open("taken", "w") as file:
                file.write("a file, not a folder")
            plex.spawn("c", ["echo", "one"]).expect("one")
            assert False
        def test_two(plex):
            plex.spawn("c", ["echo", "two"]).expect("two")
            assert False
    """)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-W", warnings_as,
                                           "--pipeplex-keep-transcripts=taken")
    result.assert_outcomes(failed=2)
    out = result.stdout.str()
    assert "INTERNALERROR" not in out
    assert f"could not keep transcripts in {pytester.path / 'taken'}: " in out
    assert "c | two" in out


def test_a_keep_folder_that_cannot_be_is_refused_as_the_session_starts(
        pytester: pytest.Pytester) -> None:
    """Not found when the first test fails, at the end of a long CI run, with nothing
    kept: a usage error before any test runs, as for the plugin's other options."""
    pytester.makepyfile("""
        def test_one(plex):
            assert False
    """)
    (pytester.path / "taken").write_text("a file, not a folder\n")
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider",
                                           "--pipeplex-keep-transcripts=taken")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([f"ERROR: --pipeplex-keep-transcripts: cannot keep transcripts "
                                 f"in {pytester.path / 'taken'}: *"])
    assert "test_one" not in result.stdout.str()


def test_kept_transcripts_are_private_and_never_written_through_a_link(
        pytester: pytest.Pytester) -> None:
    """The kept file's name is easy to foresee: a link planted there is refused (said, the
    target untouched), and what is written is 0600 in a folder made 0700."""
    pytester.makepyfile(test_k="""
        def test_one(plex):
            plex.spawn("c", ["echo", "secret"]).expect("secret")
            assert False
        def test_two(plex):
            plex.spawn("c", ["echo", "two"]).expect("two")
            assert False
    """)
    target = pytester.path / "target"
    target.write_text("mine\n")
    kept = pytester.path / "kept"
    kept.mkdir(mode=0o700)
    (kept / transcript_file_name("test_k.py::test_one")).symlink_to(target)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider",
                                           "--pipeplex-keep-transcripts=kept")
    result.assert_outcomes(failed=2)
    assert target.read_text() == "mine\n"
    assert "it is a symbolic link, which pipeplex does not follow" in result.stdout.str()
    two = kept / transcript_file_name("test_k.py::test_two")
    assert "c | two" in two.read_text()
    assert stat.S_IMODE(two.stat().st_mode) == 0o600
    fresh = pytester.path / "fresh" / "kept"
    pytester.runpytest_subprocess("-p", "no:cacheprovider", f"--pipeplex-keep-transcripts={fresh}")
    assert stat.S_IMODE(fresh.stat().st_mode) == 0o700


def test_a_relative_keep_folder_is_taken_from_where_pytest_started(
    pytester: pytest.Pytester,
) -> None:
    """A test that changes the working folder does not move the kept transcripts."""
    pytester.makepyfile("""
        def test_moves(plex, monkeypatch, tmp_path):
            monkeypatch.chdir(tmp_path)
            plex.spawn("c", ["echo", "moved"]).expect("moved")
            assert False
    """)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider",
                                           "--pipeplex-keep-transcripts", "kept")
    result.assert_outcomes(failed=1)
    kept = list((pytester.path / "kept").iterdir())
    assert len(kept) == 1
    assert "c | moved" in kept[0].read_text()


def test_a_member_that_failed_unseen_is_reported(pytester: pytest.Pytester) -> None:
    """A passing test whose member crashed as its last line matched gets a warning at its
    line; not one that looked at the exit (returncode, wait(), an UnexpectedExit caught),
    nor one whose member the test itself signalled, nor one the plex stopped."""
    pytester.makepyfile("""
        import pytest
        from pipeplex import EOF, UnexpectedExit
        CRASH = ["sh", "-c", "echo done; exit 3"]
        def test_unseen(plex):
            server = plex.spawn("server", CRASH)
            server.expect("done")
            server.expect(EOF)  # (it ended: how, the test never asked)
        def test_ending_as_it_returns(plex):
            server = plex.spawn("server", ["sh", "-c", "echo done; cat >/dev/null; exit 5"])
            server.expect("done")
            server.close_stdin()  # (it ends in the moment the plex gives it after the test)
        def test_expect_any_caught(plex):
            plex.spawn("s", CRASH)
            plex.spawn("t", "sleep 60")
            with pytest.raises(UnexpectedExit):
                plex.expect_any({"s": "never", "t": "never"})
        def test_waited(plex):
            assert plex.spawn("s", CRASH).wait() == 3
        def test_code_read(plex):
            s = plex.spawn("s", CRASH)
            s.expect(EOF)
            assert s.returncode == 3
        def test_caught(plex):
            with pytest.raises(UnexpectedExit):
                plex.spawn("s", CRASH).expect("never")
        def test_signalled(plex):
            s = plex.spawn("s", "sleep 60")
            s.signal("USR1")
            s.expect(EOF)
        def test_stopped(plex):
            plex.spawn("s", "sleep 60")
    """)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-W", "default")
    # (test_stopped and test_expect_any_caught: left running)
    result.assert_outcomes(passed=8, warnings=4)
    result.stdout.fnmatch_lines([
        "*/test_a_member_that_failed_unseen_is_reported.py:4: PipeplexWarning: *::test_unseen"
        " passed, but members failed that it never looked at: server (exited with code 3)*",
        "*:8: PipeplexWarning: *::test_ending_as_it_returns passed, but members failed that "
        "it never looked at: server (exited with code 5)*"])
    assert result.stdout.str().count("never looked at") == 2


def test_a_failed_member_let_go_of_unseen_is_reported(pytester: pytest.Pytester) -> None:
    """One whose name a later member took, or that the test removed, failed all the same:
    it is said, not lost with its handle; not one whose end the test looked at first."""
    pytester.makepyfile("""
        from pipeplex import EOF
        CRASH = ["sh", "-c", "echo done; exit 3"]
        def test_name_taken(plex):
            plex.spawn("w", CRASH).expect(EOF)
            plex.spawn("w", ["sh", "-c", "exit 0"]).wait()
        def test_removed(plex):
            plex.spawn("w", CRASH).expect(EOF)
            plex.remove("w")
        def test_looked_at(plex):
            assert plex.spawn("w", CRASH).wait() == 3
            plex.spawn("w", ["sh", "-c", "exit 0"]).wait()
    """)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-W", "default")
    result.assert_outcomes(passed=3, warnings=2)
    result.stdout.fnmatch_lines([
        "*::test_name_taken passed, but members failed that it never looked at: w (exited "
        "with code 3; its name was taken by a later member)*",
        "*::test_removed passed, but members failed that it never looked at: w (exited with "
        "code 3; removed)*"])


def test_a_member_that_fails_at_the_end_of_input_the_teardown_gives_is_reported(
        pytester: pytest.Pytester) -> None:
    """A background server that crashes as the plex stops it (at the EOF the stop gives it,
    before any signal) fails on its own, as `pipeplex test` judges it: a warning at the test's
    line. Not one that ends well there, nor one that exits non-zero on SIGTERM, nor a client
    whose server, spawned before it, ended in the stop before it."""
    pytester.makepyfile("""
        import sys
        CRASH = [sys.executable, "-c", "import sys\\nprint('serving', flush=True)\\n"
                 "sys.stdin.read()\\nprint('Traceback', file=sys.stderr)\\nsys.exit(3)"]
        def test_crash_at_shutdown(plex):
            plex.spawn("srv", CRASH, background=True).expect("serving")
        def test_clean_at_shutdown(plex):
            plex.spawn("srv", ["sh", "-c", "echo serving; cat >/dev/null"],
                       background=True).expect("serving")
        def test_term_exits_1(plex):
            plex.spawn("srv", ["sh", "-c", "trap 'exit 1' TERM; echo serving; "
                                           "while :; do sleep 1; done"],
                       background=True).expect("serving")
    """)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-W", "default",
                                           "--pipeplex-grace", "5")
    result.assert_outcomes(passed=3, warnings=1)
    result.stdout.fnmatch_lines([
        "*:4: PipeplexWarning: *::test_crash_at_shutdown passed, but members failed as the "
        "plex stopped them at its end: srv exited with code 3 (have them end well*"])


def test_members_ending_by_themselves_are_not_reported(pytester: pytest.Pytester) -> None:
    """A member that is ending as the test returns (it printed its last line, or its stdin
    was just closed) is given the moment it needs: no warning, so no error with -W error."""
    pytester.makepyfile("""
        import pytest
        @pytest.mark.parametrize("i", range(10))
        def test_echo(plex, i):
            plex.spawn("e", ["echo", "hi"]).expect("hi")
        @pytest.mark.parametrize("i", range(5))
        def test_closed(plex, i):
            cat = plex.spawn("cat", "cat")
            cat.sendline("bye")
            cat.expect("^bye$")
            cat.close_stdin()
    """)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-W", LEFTOVER)
    result.assert_outcomes(passed=15)
    assert "left members running" not in result.stdout.str()


def test_only_members_still_running_are_reported(pytester: pytest.Pytester) -> None:
    """Of a member that ended and one that runs on, the warning names the one that runs on;
    with -W error it is an error at teardown."""
    pytester.makepyfile("""
        def test_leaves(plex):
            plex.spawn("done", ["echo", "done"]).expect("done")
            plex.spawn("sleeper", "sleep 60")
    """)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-W", LEFTOVER)
    result.assert_outcomes(passed=1, errors=1)
    result.stdout.fnmatch_lines(["*left members running: sleeper (stopped at teardown)*"])


def test_a_member_spawned_in_the_background_is_not_reported(
        pytester: pytest.Pytester) -> None:
    """A server meant to run until teardown (spawned with background=True) is no leftover,
    even under -W error; one spawned beside it and left running still is, and the error
    shows the test's line, not the plugin's frames."""
    pytester.makepyfile("""
        def test_server(plex):
            server = plex.spawn("server", "sleep 60", background=True)
            assert server.background
        def test_server_and_sleeper(plex):
            plex.spawn("server", "sleep 60", background=True)
            plex.spawn("sleeper", "sleep 60")
    """)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-W", LEFTOVER)
    result.assert_outcomes(passed=2, errors=1)
    out = result.stdout.str()
    assert "test_server_and_sleeper left members running: sleeper (stopped at teardown)" in out
    assert "server," not in out and "pytest_plugin.py" not in out, out


def test_the_members_of_a_loaded_file_are_not_reported(pytester: pytest.Pytester) -> None:
    """The members of a file the test loaded run for the test, as in test mode; one it
    spawned beside them and left running is reported."""
    pytester.makefile(".toml", cast='[procs.server]\ncmd = "sleep 60"\n')
    pytester.makepyfile("""
        def test_loads(plex):
            plex.load("cast.toml")
        def test_loads_and_spawns(plex):
            plex.load("cast.toml")
            plex.spawn("sleeper", "sleep 60")
    """)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-W", LEFTOVER)
    result.assert_outcomes(passed=2, errors=1)
    result.stdout.fnmatch_lines(["*test_loads_and_spawns left members running: sleeper "
                                 "(stopped at teardown)*"])
    assert "test_loads left" not in result.stdout.str()


def test_skipped_and_xfailed_tests_are_not_reported(pytester: pytest.Pytester) -> None:
    """A test that skips itself, or fails as expected, is not told about its members."""
    pytester.makepyfile("""
        import pytest
        def test_skips(plex):
            plex.spawn("sleeper", "sleep 60")
            pytest.skip("not today")
        @pytest.mark.xfail(reason="known", strict=True)
        def test_xfails(plex):
            plex.spawn("sleeper", "sleep 60")
            assert False
    """)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-W", LEFTOVER)
    result.assert_outcomes(skipped=1, xfailed=1)
    out = result.stdout.str()
    assert "left members running" not in out
    assert "pipeplex transcript" not in out


def test_a_teardown_failure_gets_the_transcript(pytester: pytest.Pytester) -> None:
    """A fixture built on plex whose teardown fails: the error shows the transcript (also in
    JUnit XML), and the test is not also reported for the member it left running."""
    pytester.makepyfile("""
        import pytest
        @pytest.fixture
        def server(plex):
            server = plex.spawn("server", ["sh", "-c", "echo teardown-marker; exec sleep 60"])
            yield server
            server.expect("never at teardown", timeout=0.2)
        def test_uses_server(server):
            server.expect("teardown-marker")
    """)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-W", "default",
                                           "--junitxml=r.xml",
                                           "--pipeplex-keep-transcripts=kept")
    result.assert_outcomes(passed=1, errors=1)
    result.stdout.fnmatch_lines(["*ERROR at teardown of test_uses_server*",
                                 "*pipeplex transcript*", "server | teardown-marker"])
    assert "left members running" not in result.stdout.str()
    assert "server | teardown-marker" in (pytester.path / "r.xml").read_text()
    [kept] = (pytester.path / "kept").iterdir()
    assert "server | teardown-marker" in kept.read_text()


def test_the_transcript_section_shows_control_characters_as_text(
    pytester: pytest.Pytester,
) -> None:
    """NUL, ESC, DEL and the like reach neither the terminal nor the XML raw; the kept file
    has the transcript as it is."""
    pytester.makepyfile(r"""
        def test_colours(plex):
            c = plex.spawn("c", ["printf", "ctl:\\000\\033[31mred\\033[0m\\001\\177 end\\n"])
            c.expect("end")
            assert False
    """)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "--color=no",
                                           "--junitxml=r.xml", "--pipeplex-keep-transcripts=kept")
    result.assert_outcomes(failed=1)
    shown = r"c | ctl:\x00\x1b[31mred\x1b[0m\x01\x7f end"
    out = result.stdout.str()
    assert shown in out
    assert not any(char in out for char in "\x00\x01\x1b\x7f")
    assert shown in (pytester.path / "r.xml").read_text()
    [kept] = (pytester.path / "kept").iterdir()
    assert "c | ctl:\x00\x1b[31mred\x1b[0m\x01\x7f end" in kept.read_text()


@pytest.mark.parametrize(("args", "ini", "shown"), [
    pytest.param(["--pipeplex-timeout=soon"], "",
                 "--pipeplex-timeout must be a number of seconds from 0.001 to below 1e9, "
                 "not 'soon'",
                 id="cli-timeout-word"),
    pytest.param(["--pipeplex-timeout=0"], "", "--pipeplex-timeout must be * not '0'; for "
                 "next to no wait, give a short one such as 0.1", id="cli-timeout-zero"),
    pytest.param(["--pipeplex-grace=-1"], "", "--pipeplex-grace must be * not '-1'",
                 id="cli-grace-negative"),
    pytest.param(["--pipeplex-grace=nan"], "", "--pipeplex-grace must be * not 'nan'",
                 id="cli-grace-nan"),
    pytest.param(["--pipeplex-timeout=inf"], "pipeplex_timeout = 5",
                 "--pipeplex-timeout must be * not 'inf'", id="cli-timeout-inf-over-ini"),
    pytest.param([], "pipeplex_timeout = soon",
                 "the ini option pipeplex_timeout must be * not 'soon'", id="ini-timeout-word"),
    pytest.param([], "pipeplex_grace = 0", "the ini option pipeplex_grace must be * not '0'; "
                 "for next to no wait, give a short one such as 0.1", id="ini-grace-zero"),
    pytest.param([], "pipeplex_grace = inf", "the ini option pipeplex_grace must be * not 'inf'",
                 id="ini-grace-inf"),
])
def test_a_bad_timeout_or_grace_is_one_usage_error(
    pytester: pytest.Pytester, args: list[str], ini: str, shown: str,
) -> None:
    """A value that is not a number of seconds (from 0.001 to below 1e9) stops pytest at
    once, saying so."""
    if ini:
        pytester.makeini(f"[pytest]\n{ini}\n")
    pytester.makepyfile("""
        def test_one(plex):
            pass
        def test_two(plex):
            pass
    """)
    result = pytester.runpytest("-p", "no:cacheprovider", *args)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([f"ERROR: {shown}"])
    assert result.stderr.str().count("ERROR:") == 1
    result.stdout.no_fnmatch_line("*passed*")


@pytest.mark.parametrize(("args", "ini"), [
    pytest.param(["--pipeplex-grace", "0.2"], "[pytest]\npipeplex_grace = 60\n", id="cli"),
    pytest.param([], "[pytest]\npipeplex_grace = 0.2\n", id="ini"),
])
def test_the_grace_option_sets_the_fixtures_grace(
    pytester: pytest.Pytester, args: list[str], ini: str,
) -> None:
    """--pipeplex-grace (over pipeplex_grace) is how long a member that ignores SIGTERM gets
    before SIGKILL."""
    pytester.makeini(ini)
    pytester.makepyfile("""
        import pipeplex
        NOTES = []
        def test_stubborn(plex):
            plex.bus.subscribe(lambda note: NOTES.append(note.text), [pipeplex.Note])
            s = plex.spawn("stubborn", ["sh", "-c", "trap '' TERM; echo up; exec sleep 60"])
            s.expect("up")
        def test_it_got_the_grace():
            assert any("ignored SIGTERM for 0.2 s" in text for text in NOTES), NOTES
    """)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-W", "default", *args)
    result.assert_outcomes(passed=2, warnings=1)


def test_file_names_and_report_text_helpers() -> None:
    """Names: bounded, safe, distinct; report text: no control character but \\n and \\t."""
    ids = ["t.py::test[" + "y" * 300 + "]", "t.py::test[a/b]", "t.py::test[a_b]",
           "t.py::test[a b]", "../../t.py::test", "t.py::test[\u00fc\udcff]"]
    names = [transcript_file_name(nodeid) for nodeid in ids]
    assert len(set(names)) == len(ids)
    for name in names:
        assert len(name.encode()) <= 120
        assert re.fullmatch(r"[A-Za-z0-9_][A-Za-z0-9_.-]*\.txt", name), name
    assert names[1].startswith("t.py_test_a_b_-")
    assert printable("a\tb\nc") == "a\tb\nc"
    assert printable("\x00\x1b[1m\r\x7f\x9b\u00e9") == "\\x00\\x1b[1m\\x0d\\x7f\\x9b\u00e9"


def test_a_bad_argument_is_reported_at_the_test_line(pytester: pytest.Pytester) -> None:
    """A value the API cannot use is the caller's mistake, said by its message: the report
    shows the test's line, not pipeplex's frames (a regex checked deep in the matcher, a
    spawn's 60 lines of source). It stays a ValueError or TypeError to catch."""
    pytester.makepyfile("""
        import pytest
        import pipeplex

        def test_regex(plex):
            plex.spawn("cat", "cat").expect("list(en", timeout=1)

        def test_command(plex):
            plex.spawn("c", 42)

        def test_signal(plex):
            plex.spawn("cat", "cat").signal("KILLL")

        def test_caught(plex):
            cat = plex.spawn("cat", "cat")
            with pytest.raises(ValueError) as caught:
                cat.expect("(", timeout=1)
            assert isinstance(caught.value, pipeplex.PipeplexError)
            with pytest.raises(TypeError):
                cat.send(5)
    """)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(failed=3, passed=1)
    result.stdout.fnmatch_lines([
        "*.py:5: ArgumentError", "*.py:8: ArgumentError", "*.py:11: ArgumentError"])
    output = result.stdout.str()
    for internal in ("pipeplex/plex/", "matcher.py", "sink.py", "buffer.py", "patterns.py",
                     "concurrent/futures"):
        assert internal not in output, internal


def test_a_pipeplex_error_is_reported_at_the_test_line(pytester: pytest.Pytester) -> None:
    """An ExpectTimeout or NotReady says what went wrong: the report shows the test's line
    and the message, not the frames of pipeplex (nor of its thread) it came through."""
    pytester.makepyfile("""
        def test_expect(plex):
            cat = plex.spawn("cat", "cat")
            cat.expect("never", timeout=0.1)

        def test_spawn(plex):
            plex.spawn("db", ["sh", "-c", "exit 2"], ready="accepting")

        def test_wait(plex):
            plex.spawn("cat", "cat").wait(timeout=0.1)
    """)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(failed=3)
    result.stdout.fnmatch_lines(["*test_a_pipeplex_error_is_reported_at_the_test_line.py:3: "
                                 "ExpectTimeout", "*.py:6: NotReady", "*.py:9: TimeoutError"])
    output = result.stdout.str()
    for internal in ("pipeplex/plex/", "matcher.py", "sink.py", "engine.py",
                     "concurrent/futures"):
        assert internal not in output, internal


def test_the_keep_folder_waits_for_the_other_options_and_a_real_session(
        pytester: pytest.Pytester) -> None:
    """A usage error in another option, or --collect-only, makes no folder."""
    pytester.makepyfile("""
        def test_one(plex):
            pass
    """)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "--pipeplex-timeout=soon",
                                           "--pipeplex-keep-transcripts=kept")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "--collect-only",
                                           "--pipeplex-keep-transcripts=kept")
    assert result.ret == pytest.ExitCode.OK
    assert not (pytester.path / "kept").exists()


def test_scenario_files_named_in_the_ini_are_tests(pytester: pytest.Pytester) -> None:
    """pipeplex_scenarios = [...]: each scenario file it names is a test, run as pipeplex
    test runs it (its golden file too, written with --pipeplex-update); a failure reads as
    pipeplex test prints it, with the merged stream attached. Other .toml files are not
    collected."""
    pytester.makepyprojecttoml(
        '[tool.pytest.ini_options]\npipeplex_scenarios = ["scenarios/*.toml"]\n')
    pytester.mkdir("scenarios")
    cat = '[procs.c]\ncmd = "cat"\n'
    (pytester.path / "scenarios" / "ok.toml").write_text(
        'golden = "ok.golden"\n' + cat + '[[step]]\nsend = "hi"\nto = "c"\n'
        '[[step]]\nexpect = "^hi$"\n')
    (pytester.path / "scenarios" / "bad.toml").write_text(
        cat + '[[step]]\nexpect = "never"\ntimeout = 0.2\n')
    (pytester.path / "scenarios" / "broken.toml").write_text('[procs.c]\ncmd = "cat"\nx = 1\n')
    (pytester.path / "other.toml").write_text('[procs.c]\ncmd = "cat"\n')
    first = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    first.assert_outcomes(failed=3)
    out = first.stdout.str()
    assert ("golden file scenarios/ok.golden does not exist; create it with pytest "
            "--pipeplex-update") in out
    assert "scenarios/bad.toml:4: expect 'never': not seen within 0.2 s" in out
    assert "scenarios/broken.toml:3: c: unknown key 'x'" in out
    assert "- pipeplex transcript -" in out and "Traceback" not in out
    # Kept as a Python test's transcript is.
    kept = pytester.runpytest_subprocess("-p", "no:cacheprovider",
                                         "--pipeplex-keep-transcripts=kept", "scenarios/bad.toml")
    kept.assert_outcomes(failed=1)
    (path,) = (pytester.path / "kept").iterdir()
    assert path.name.startswith("scenarios_bad.toml_bad-")
    assert "c * started" in path.read_text()
    # Part of the failure: pytest's JUnit XML carries it (a report section it drops).
    xml = pytester.runpytest_subprocess("-p", "no:cacheprovider", "--junitxml=j.xml",
                                        "scenarios/bad.toml")
    xml.assert_outcomes(failed=1)
    junit = (pytester.path / "j.xml").read_text()
    assert "pipeplex transcript" in junit and "c * started" in junit, junit
    updated = pytester.runpytest_subprocess("-p", "no:cacheprovider", "--pipeplex-update",
                                            "scenarios/ok.toml")
    updated.assert_outcomes(passed=1)
    assert (pytester.path / "scenarios" / "ok.golden").read_text() == (
        "[c]\n> hi\n| hi\n= exited with code 0\n")
    again = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-k", "ok and not broken")
    again.assert_outcomes(passed=1)
    (pytester.path / "scenarios" / "pg.toml").write_text("skip = 'needs postgres'\n" + cat)
    skipped = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-rs", "scenarios/pg.toml")
    skipped.assert_outcomes(skipped=1)
    assert "needs postgres" in skipped.stdout.str()


def test_scenario_tests_share_casts_and_report_warnings(pytester: pytest.Pytester) -> None:
    """A cast file the scenarios include is no test of its own; what a run would warn of
    (a member that ignored SIGTERM) is a PipeplexWarning at the file, not an error."""
    pytester.makepyprojecttoml(
        '[tool.pytest.ini_options]\npipeplex_scenarios = ["scenarios/*.toml"]\n')
    pytester.mkdir("scenarios")
    stubborn = ("import signal; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
                "print('up', flush=True); signal.pause()")  # (until the SIGKILL)
    (pytester.path / "scenarios" / "cast.toml").write_text(
        f"[procs.s]\ncmd = {json.dumps([sys.executable, '-c', stubborn])}\n"
        "stop_timeout = 0.2\n")
    (pytester.path / "scenarios" / "uses.toml").write_text(
        "include = 'cast.toml'\n[[step]]\nexpect = 'up'\n")
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-W", "default")
    result.assert_outcomes(passed=1, warnings=1)
    result.stdout.fnmatch_lines(["*scenarios/uses.toml::uses*", "*PipeplexWarning: "
                                 "scenarios/uses.toml: s: ignored SIGTERM for 0.2 s; sent "
                                 "SIGKILL to its process group*"])
    assert "cast.toml::cast" not in result.stdout.str()


@pytest.mark.parametrize("settings", ["pyproject.toml", "pytest.ini"])
def test_a_pyproject_file_is_no_scenario_even_where_a_pattern_matches_it(
        pytester: pytest.Pytester, settings: str) -> None:
    """``**/*.toml`` matches ``pyproject.toml`` too, the settings' file or not, and a
    package's below: each was collected, and failed as a scenario with unknown keys."""
    if settings == "pyproject.toml":
        pytester.makepyprojecttoml(
            '[tool.pytest.ini_options]\npipeplex_scenarios = ["**/*.toml"]\n')
    else:
        pytester.makeini("[pytest]\npipeplex_scenarios = **/*.toml\n")
        pytester.makepyprojecttoml("[project]\nname = 'x'\n")
    pytester.mkdir("scenarios")
    pytester.mkdir("package")
    (pytester.path / "package" / "pyproject.toml").write_text("[project]\nname = 'y'\n")
    (pytester.path / "scenarios" / "hi.toml").write_text(
        "[procs.a]\ncmd = 'echo hi'\n[[step]]\nexpect = 'hi'\n")
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(passed=1)
    assert "pyproject.toml::" not in result.stdout.str()


def test_scenario_patterns_in_pyprojects_form_work_in_an_ini_file(
        pytester: pytest.Pytester) -> None:
    """``pipeplex_scenarios = ["scenarios/*.toml"]``, as pyproject.toml writes it, copied
    into a pytest.ini: the patterns, not one pattern of brackets and quotes that named no
    file (and nothing was collected, without a word). A pattern that names no file is
    said as a warning."""
    pytester.makeini('[pytest]\npipeplex_scenarios = [\n    "scenarios/*.toml",\n'
                     '    "scenario/*.toml",\n  ]\n')
    pytester.mkdir("scenarios")
    (pytester.path / "scenarios" / "hi.toml").write_text(
        "[procs.a]\ncmd = 'echo hi'\n[[step]]\nexpect = 'hi'\n")
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(passed=1, warnings=1)
    result.stdout.fnmatch_lines(["*scenarios/hi.toml .*", "*PytestConfigWarning: "
                                 "pipeplex_scenarios: 'scenario/*.toml' names no file "
                                 "(patterns are globs from the rootdir, *"])


def test_a_scenario_tests_daemon_that_left_group_and_environment_is_stopped(
        pytester: pytest.Pytester) -> None:
    """A member's `setsid env -i daemon &` kept neither its group nor the run's id: pipeplex
    test stops it (as its members' subreaper) and says so, but a scenario file run as a
    pytest test left it running. The test is its members' subreaper while it runs."""
    pytester.makepyprojecttoml(
        '[tool.pytest.ini_options]\npipeplex_scenarios = ["scenarios/*.toml"]\n')
    pytester.mkdir("scenarios")
    daemon = pytester.path / "daemon.pid"
    (pytester.path / "scenarios" / "daemon.toml").write_text(
        "[procs.m]\ncmd = " + json.dumps(
            f"sh -c 'setsid env -i sh -c \"echo \\$\\$ > {daemon}; exec sleep 60\" "
            "</dev/null >/dev/null 2>&1 & echo up; exec sleep 60'")
        + "\n[[step]]\nexpect = '^up$'\nin = 'm'\n")
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-W", "default")
    result.assert_outcomes(passed=1, warnings=1)
    result.stdout.fnmatch_lines(["*PipeplexWarning: *left 1 process*"])
    pid = int(daemon.read_text())
    try:
        assert _gone(pid), f"the daemon {pid} outlived its scenario test"
    finally:
        if not _gone(pid):
            os.kill(pid, signal.SIGKILL)


def _gone(pid: int) -> bool:
    """Whether ``pid`` has ended (gone, or a zombie nobody reaped yet)."""
    try:
        stat_line = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return True
    return stat_line.rsplit(")", 1)[1].split()[0] == "Z"


def test_a_scenario_test_that_times_out_says_the_step_it_was_at(
        pytester: pytest.Pytester) -> None:
    """pytest-timeout's timeout (its signal method) in a scenario test gave a thousand lines
    of pytest, pluggy and asyncio frames, and a summary of "cls = <class ...CallInfo'>": it
    is said as a scenario's failure is, with the step it was at and the stream so far."""
    pytest.importorskip("pytest_timeout")
    pytester.makepyprojecttoml(
        '[tool.pytest.ini_options]\npipeplex_scenarios = ["scenarios/*.toml"]\n')
    pytester.mkdir("scenarios")
    (pytester.path / "scenarios" / "hang.toml").write_text(
        '[procs.c]\ncmd = "cat"\n[[step]]\nsend = "hi"\nto = "c"\n'
        "[[step]]\nexpect = 'never'\nin = 'c'\ntimeout = 60\n")
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "--timeout", "1",
                                           "--timeout-method", "signal")
    result.assert_outcomes(failed=1)
    out = result.stdout.str()
    assert re.search(r"Timeout \(>1\.0s\) from pytest-timeout at scenarios/hang\.toml:7: "
                     r"expect 'never' in c", out), out
    assert "c | hi" in out and "asyncio" not in out and "CallInfo" not in out, out


def test_a_second_ctrl_c_as_the_plex_is_torn_down_ends_the_session_cleanly(
        pytester: pytest.Pytester) -> None:
    """Ctrl-C in a test, and another as the interrupted session stopped its plex (a member
    that ignores SIGTERM, in its grace): the second skipped the grace, as promised, and then
    came out of pytest's session finish as a traceback, with status 130, not pytest's 2."""
    marks = pytester.path
    pytester.makepyfile(test_long=f"""
        import pathlib, threading
        def test_long(plex):
            plex.spawn("m", ["sh", "-c", "trap 'touch {marks}/termed' TERM; echo up; "
                                          "while :; do sleep 1; done"])
            plex["m"].expect("up")
            pathlib.Path("{marks}/waiting").touch()
            threading.Event().wait()  # (until the Ctrl-C, whenever it comes)
    """)
    test = subprocess.Popen([sys.executable, "-m", "pytest", "-p", "no:cacheprovider",
                             "--pipeplex-grace", "60", str(marks / "test_long.py")],
                            cwd=marks, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True)
    try:
        _wait_for(marks / "waiting", test)
        test.send_signal(signal.SIGINT)
        _wait_for(marks / "termed", test)  # the teardown's stop, in its 60 s of grace
        test.send_signal(signal.SIGINT)
        out, _ = test.communicate(timeout=30)
    finally:
        test.kill()
        test.wait()
    assert test.returncode == pytest.ExitCode.INTERRUPTED, out
    assert "Traceback" not in out and "KeyboardInterrupt" in out, out


def _wait_for(path: Path, process: subprocess.Popen[str]) -> None:
    """Wait until ``path`` exists (``process`` still running)."""
    until = time.monotonic() + 30
    while not path.exists():
        assert process.poll() is None and time.monotonic() < until, f"no {path}"
        os.sched_yield()


def test_a_member_killed_after_its_grace_at_teardown_is_warned_of(
        pytester: pytest.Pytester) -> None:
    """A member (background, say) that ignores SIGTERM added the whole grace to its test at
    teardown, with no word: a scenario test warns of it, and so does the plex fixture."""
    pytester.makepyfile(test_bg="""
        def test_bg(plex):
            plex.spawn("bg", ["sh", "-c", "trap '' TERM; echo up; while :; do sleep 1; done"],
                       background=True).expect("up")
    """)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-W", "default",
                                           "--pipeplex-grace", "0.2")
    result.assert_outcomes(passed=1, warnings=1)
    result.stdout.fnmatch_lines(["*PipeplexWarning: test_bg.py::test_bg: the stop at teardown "
                                 "killed bg (it ignored SIGTERM for 0.2 s), and the test waited "
                                 "that long (have it end on SIGTERM, or give it less: "
                                 "--pipeplex-grace)*"])
