"""The pytest plugin, tested with pytester: the plex fixture, cleanup, transcripts."""

from __future__ import annotations

import pytest

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


def test_members_left_running_are_reported(pytester: pytest.Pytester) -> None:
    """A test that leaves a member running gets a warning naming it."""
    pytester.makepyfile("""
        def test_leaves(plex):
            plex.spawn("sleeper", "sleep 60")
    """)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-W", "default")
    result.assert_outcomes(passed=1, warnings=1)
    result.stdout.fnmatch_lines(["*left members running: sleeper*"])


def test_timeout_option_and_kept_transcripts(pytester: pytest.Pytester) -> None:
    """--pipeplex-timeout sets the default; --pipeplex-keep-transcripts saves failures."""
    pytester.makepyfile("""
        import pytest, pipeplex
        def test_short(plex):
            cat = plex.spawn("cat", "cat")
            cat.sendline("x")
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
