"""Matcher: waiting for patterns in several members' output, driven by events on a real Bus."""

from __future__ import annotations

import asyncio
import math
import re
from collections.abc import Coroutine
from dataclasses import dataclass, field
from typing import Any, TypeVar

import pytest

from pipeplex._bus import Bus
from pipeplex._events import Event, Exited, Matched, Note, Output, Started
from pipeplex.engine.recent import RecentOutput
from pipeplex.errors import ExpectTimeout, UnexpectedExit
from pipeplex.expect import EOF, TIMEOUT, Expectation, Matcher

T = TypeVar("T")
LONG = 30.0
"""A timeout that is never reached when the behaviour is right."""


@dataclass
class Rig:
    bus: Bus = field(default_factory=Bus)
    recent: RecentOutput = field(default_factory=RecentOutput)
    seen: list[Event] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.bus.subscribe(self.recent)
        self.matcher = Matcher(self.bus, recent=self.recent.describe)
        self.bus.subscribe(self.seen.append)

    def publish(self, *events: Event) -> None:
        for event in events:
            self.bus.publish(event)

    def later(self, *events: Event) -> None:
        """Publish ``events`` from the event loop, after the caller starts waiting."""
        loop = asyncio.get_running_loop()
        for event in events:
            loop.call_soon(self.bus.publish, event)


def run(coro: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(coro)


def out(name: str, data: bytes, stream: str = "stdout", partial: bool = False) -> Output:
    return Output(name, stream, data, partial)  # type: ignore[arg-type]


def test_expect_matches_output_already_received() -> None:
    """Output that arrived before the expectation is searched first."""
    rig = Rig()
    rig.publish(out("a", b"booting\nlistening on 8080\n"))

    found = run(rig.matcher.expect(["a"], [r"listening on (\d+)"], timeout=LONG))

    assert found.name == "a"
    assert found.index == 0
    assert found.match is not None
    assert found.match.group(1) == "8080"
    assert found.before == "booting\n"
    assert found.after == "listening on 8080"


def test_expect_wakes_when_output_arrives() -> None:
    """An expectation waiting on a member resumes when the matching output is published."""
    rig = Rig()

    async def scenario() -> Expectation:
        rig.later(out("a", b"rea"), out("a", b"dy\n"))
        return await rig.matcher.expect(["a"], ["^ready$"], timeout=LONG)

    found = run(scenario())
    assert (found.name, found.after) == ("a", "ready")


def test_expect_returns_the_index_of_the_pattern_that_matched() -> None:
    """Among several patterns, the index of the one that matched is returned."""
    rig = Rig()
    rig.publish(out("a", b"login failed\n"))
    found = run(rig.matcher.expect(["a"], ["welcome", "failed", EOF], timeout=LONG))
    assert found.index == 1
    assert found.before == "login "


def test_expect_over_several_members_names_the_one_that_matched() -> None:
    """With several members, the first whose output matches wins and ``name`` tells which."""
    rig = Rig()

    async def scenario() -> tuple[Expectation, Expectation]:
        rig.publish(out("a", b"a is thinking\n"))
        rig.later(out("b", b"b: ready\n"))
        first = await rig.matcher.expect(["a", "b"], ["ready"], timeout=LONG)
        rig.later(out("a", b"a: ready\n"))
        second = await rig.matcher.expect(["a", "b"], ["ready"], timeout=LONG)
        return first, second

    first, second = run(scenario())
    assert (first.name, first.before) == ("b", "b: ")
    assert (second.name, second.before) == ("a", "a is thinking\na: ")


def test_each_member_has_its_own_cursor() -> None:
    """A match in one member's output does not consume another member's output."""
    rig = Rig()
    rig.publish(out("a", b"token 1\n"), out("b", b"token 2\n"))
    first = run(rig.matcher.expect(["b"], [r"token (\d)"], timeout=LONG))
    second = run(rig.matcher.expect(["a", "b"], [r"token (\d)"], timeout=LONG))
    assert first.match is not None
    assert second.match is not None
    assert (first.name, first.match.group(1)) == ("b", "2")
    assert (second.name, second.match.group(1)) == ("a", "1")


@pytest.mark.parametrize(
    ("stream", "word"),
    [("stdout", "none"), ("stderr", "disk"), (None, "disk")],
)
def test_stream_narrows_the_search(stream: str | None, word: str) -> None:
    """``stream`` searches only that stream; without it, both as they arrived."""
    rig = Rig()
    rig.publish(out("a", b"error: disk\n", "stderr"), out("a", b"error: none\n", "stdout"))
    found = run(rig.matcher.expect(["a"], [r"error: (\w+)"], timeout=LONG, stream=stream))
    assert found.match is not None
    assert found.match.group(1) == word


def test_stream_cursor_is_separate_from_the_combined_cursor() -> None:
    """A match on one stream leaves the combined output's cursor where it was."""
    rig = Rig()
    rig.publish(out("a", b"one\n", "stderr"), out("a", b"two\n", "stdout"))
    on_stdout = run(rig.matcher.expect(["a"], ["one|two"], timeout=LONG, stream="stdout"))
    combined = run(rig.matcher.expect(["a"], ["one|two"], timeout=LONG))
    assert (on_stdout.after, combined.after) == ("two", "one")


def test_eof_pattern_returns_its_index_and_the_rest_of_the_output() -> None:
    """With EOF among the patterns, an exit returns EOF's index and what was left unread."""
    rig = Rig()

    async def scenario() -> tuple[Expectation, Expectation]:
        rig.publish(out("a", b"bye\n"))
        rig.later(out("a", b"last words", partial=True), Exited("a", 0))
        found = await rig.matcher.expect(["a"], ["never", EOF], timeout=LONG)
        again = await rig.matcher.expect(["a"], [EOF], timeout=LONG)
        return found, again

    found, again = run(scenario())
    assert found == Expectation("a", 1, None, "bye\nlast words", "")
    assert again == Expectation("a", 0, None, "", "")


def test_output_drained_before_exit_is_matched_before_the_exit_counts() -> None:
    """A member's last output can still satisfy an expectation after it exited."""
    rig = Rig()
    rig.publish(out("a", b"done\n"), Exited("a", 0))
    found = run(rig.matcher.expect(["a"], ["done"], timeout=LONG))
    assert (found.index, found.after) == (0, "done")


def test_eof_with_stream_returns_only_that_streams_rest() -> None:
    """EOF on a narrowed expectation returns the rest of that stream only."""
    rig = Rig()
    rig.publish(out("a", b"out\n", "stdout"), out("a", b"err\n", "stderr"), Exited("a", 0))
    found = run(rig.matcher.expect(["a"], [EOF], timeout=LONG, stream="stderr"))
    assert found.before == "err\n"


@pytest.mark.parametrize(
    ("code", "described"),
    [(3, "exited with code 3"), (0, "exited with code 0"), (-9, "killed by SIGKILL")],
)
def test_exit_without_eof_pattern_raises_unexpected_exit_at_once(
    code: int, described: str
) -> None:
    """An exit while waiting raises UnexpectedExit with the name, code and recent output."""
    rig = Rig()

    async def scenario() -> None:
        rig.publish(out("worker", b"starting\ntraceback: boom\n"))
        rig.later(Exited("worker", code))
        await rig.matcher.expect(["worker"], ["^ready$"], timeout=LONG)

    with pytest.raises(UnexpectedExit) as caught:
        run(scenario())
    error = caught.value
    assert (error.name, error.returncode) == ("worker", code)
    assert error.waited < LONG
    text = str(error)
    assert text.startswith(f"worker {described}")
    assert "the wait for '^ready$'" in text
    assert "'^ready$'" in text
    assert "last output of worker" in text
    assert "traceback: boom" in text


def test_exit_before_the_expectation_raises_without_waiting() -> None:
    """A member that already exited fails a new expectation on it immediately."""
    rig = Rig()
    rig.publish(Exited("a", 1))
    with pytest.raises(UnexpectedExit, match="a exited with code 1"):
        run(rig.matcher.expect(["a"], ["x"], timeout=LONG))


def test_timeout_pattern_returns_its_index() -> None:
    """With TIMEOUT among the patterns, running out of time returns TIMEOUT's index; as in
    pexpect, ``before`` holds what came so far, which stays there for the next expectation."""
    rig = Rig()
    rig.publish(out("a", b"something else\n"))
    found = run(rig.matcher.expect(["a"], ["never", TIMEOUT], timeout=0))
    assert found == Expectation("a", 1, None, "something else\n", "")
    assert run(rig.matcher.expect(["a"], ["else"], timeout=0)).before == "something "


def test_timeout_of_any_member_answers_for_the_first_that_lists_it() -> None:
    rig = Rig()
    found = run(rig.matcher.expect_each({"a": ["x"], "b": ["y", TIMEOUT]}, timeout=0))
    assert (found.name, found.index) == ("b", 1)


@pytest.mark.parametrize("order", [("a", "b"), ("b", "a")])
def test_a_match_already_written_wins_over_another_members_exit(order: tuple[str, ...]) -> None:
    """Every member's output is searched before any exit counts: a member that has ended
    does not hide a match that another one has already written, wherever it is listed."""
    rig = Rig()
    rig.publish(out("a", b"bye\n"), Exited("a", 1), out("b", b"done\n"))
    patterns = {"a": ["error"], "b": ["done"]}
    found = run(rig.matcher.expect_each({name: patterns[name] for name in order},
                                        timeout=LONG))
    assert (found.name, found.after) == ("b", "done")
    with pytest.raises(UnexpectedExit, match=r"^a exited"):  # nothing else left to find
        run(rig.matcher.expect_each({name: patterns[name] for name in order}, timeout=LONG))


@pytest.mark.parametrize("order", [("d", "e"), ("e", "d")])
def test_of_several_members_with_a_match_the_one_listed_first_wins(
    order: tuple[str, ...]
) -> None:
    """Matches already written by several members: the first member listed wins, whoever
    wrote first; the other's match is still there for the next expectation."""
    rig = Rig()
    rig.publish(out("d", b"X1\n"), out("e", b"X2\n"))
    first = run(rig.matcher.expect_each(dict.fromkeys(order, ("X.",)), timeout=LONG))
    second = run(rig.matcher.expect_each(dict.fromkeys(order, ("X.",)), timeout=LONG))
    assert [first.name, second.name] == list(order)


@pytest.mark.parametrize("order", [("a", "b"), ("b", "a")])
def test_of_several_ended_members_the_one_listed_first_counts(order: tuple[str, ...]) -> None:
    rig = Rig()
    rig.publish(Exited("a", 1), Exited("b", 2))
    patterns = {"a": ["x"], "b": ["y", EOF]}
    by_name = {name: patterns[name] for name in order}
    if order[0] == "a":
        with pytest.raises(UnexpectedExit, match=r"^a exited"):
            run(rig.matcher.expect_each(by_name, timeout=LONG))
    else:
        assert run(rig.matcher.expect_each(by_name, timeout=LONG)).name == "b"


def test_a_held_back_carriage_return_is_let_go_after_a_pause() -> None:
    """A "\\r" at the end of a chunk may start a "\\r\\n"; once the member pauses (a
    partial piece), it ends the line, as the next state of a progress line starts it again:
    the line can be matched whole."""
    rig = Rig()
    rig.publish(Output("a", "stdout", b"50%\r", partial=True))
    assert run(rig.matcher.expect(["a"], [r"^50%$"], timeout=0)).after == "50%"


def test_an_unfinished_character_at_the_end_of_output_becomes_a_replacement() -> None:
    rig = Rig()
    rig.publish(Output("a", "stdout", b"end\xe2\x82", partial=True))
    rig.publish(Exited("a", 0))
    found = run(rig.matcher.expect(["a"], ["x", EOF], timeout=0))
    assert (found.index, found.before) == (1, "end\ufffd")


@pytest.mark.parametrize("timeout", [0, 0.01])
def test_timeout_raises_expect_timeout_naming_pattern_and_members(timeout: float) -> None:
    """No match in time raises ExpectTimeout, a TimeoutError that names pattern and members."""
    rig = Rig()
    rig.publish(out("a", b"still loading\n"))
    with pytest.raises(TimeoutError) as caught:
        run(rig.matcher.expect(["a", "b"], ["^ready$"], timeout=timeout))
    error = caught.value
    assert isinstance(error, ExpectTimeout)
    assert error.names == ("a", "b")
    assert error.patterns == ("^ready$",)
    text = str(error)
    assert "'^ready$' did not appear in the output of a or b" in text
    assert "still loading" in text


def test_timeout_shows_a_compiled_patterns_source() -> None:
    """A precompiled pattern is shown by its source text in the timeout message."""
    rig = Rig()
    with pytest.raises(ExpectTimeout, match=r"'x\+y' did not appear in the output of a"):
        run(rig.matcher.expect(["a"], [re.compile(r"x+y")], timeout=0))


def test_empty_watch_exits_ignores_exits() -> None:
    """``watch_exits=[]``: an exited member does not end the wait."""
    rig = Rig()
    rig.publish(Exited("a", 0))
    found = run(rig.matcher.expect(["a"], ["never", TIMEOUT], timeout=0, watch_exits=[]))
    assert found.index == 1


def test_watch_exits_limits_which_exits_end_the_wait() -> None:
    """A member outside ``watch_exits`` that exited does not fail an any-member wait."""
    rig = Rig()

    async def scenario() -> Expectation:
        rig.publish(Exited("b", 0))
        rig.later(out("a", b"go\n"))
        return await rig.matcher.expect(["a", "b"], ["go"], timeout=LONG, watch_exits=["a"])

    assert run(scenario()).name == "a"
    with pytest.raises(UnexpectedExit, match=r"^b exited"):
        run(rig.matcher.expect(["a", "b"], ["go"], timeout=LONG))


@pytest.mark.parametrize("restarted", [True, False])
def test_started_after_exit_clears_the_exit(restarted: bool) -> None:
    """A Started event after an Exited makes the member count as running again."""
    rig = Rig()
    rig.publish(Exited("a", 1))
    if restarted:
        rig.publish(Started("a", 4321, ("prog",)))

    async def scenario() -> Expectation:
        rig.later(out("a", b"up again\n"))
        return await rig.matcher.expect(["a"], ["up again"], timeout=LONG)

    if restarted:
        assert run(scenario()).after == "up again"
    else:
        with pytest.raises(UnexpectedExit):
            run(scenario())


@pytest.mark.parametrize(
    ("pattern", "shown"), [("rea(dy)", "rea(dy)"), (re.compile(r"re\w+"), r"re\w+")]
)
def test_a_match_publishes_matched(pattern: str | re.Pattern[str], shown: str) -> None:
    """A match is announced on the bus with the member, the pattern and the matched text."""
    rig = Rig()
    rig.publish(out("a", b"x ready\n"))
    run(rig.matcher.expect(["a"], [pattern], timeout=LONG))
    matched = [e for e in rig.seen if isinstance(e, Matched)]
    assert [(m.name, m.pattern, m.text) for m in matched] == [("a", shown, "ready")]


def test_eof_and_timeout_results_publish_no_matched() -> None:
    """Only a pattern matching output is announced; EOF and TIMEOUT results are not."""
    rig = Rig()
    rig.publish(Exited("a", 0))
    run(rig.matcher.expect(["a"], [EOF], timeout=LONG))
    run(rig.matcher.expect(["b"], [TIMEOUT], timeout=0))
    assert not [e for e in rig.seen if isinstance(e, Matched)]


def test_other_events_are_ignored() -> None:
    """Notes and other events neither feed the buffers nor count as exits."""
    rig = Rig()
    rig.publish(Note("ready", name="a"), out("a", b"ok\n"))
    found = run(rig.matcher.expect(["a"], ["ready|ok"], timeout=LONG))
    assert found.after == "ok"
    assert rig.matcher.buffer("a").text == "\n"


def test_a_matcher_serves_one_loop_after_another() -> None:
    """The loop a matcher keeps is replaced once closed: a later run can wait on it again."""
    rig = Rig()

    async def wait_for(text: str) -> str:
        rig.later(out("a", f"{text}\n".encode()))
        found = await rig.matcher.expect(["a"], [text], timeout=LONG)
        return found.after

    assert run(wait_for("first")) == "first"
    assert run(wait_for("second")) == "second"


@pytest.mark.parametrize("names", [["a"], ["a", "b"]])
def test_an_infinite_timeout_waits_with_no_deadline(names: list[str]) -> None:
    """inf is no deadline: the wait takes no place in the deadline queue (which serves
    every wait with a finite one), and output or an exit ends it as usual."""
    rig = Rig()

    async def scenario() -> tuple[Expectation, int]:
        queued: list[int] = []

        def answer() -> None:  # queued after the expectation's first step: it waits by now
            queued.append(len(rig.matcher._deadlines))
            rig.publish(out("a", b"ready\n"))

        waiting = asyncio.ensure_future(rig.matcher.expect(names, ["ready"], timeout=math.inf))
        asyncio.get_running_loop().call_soon(answer)
        return await waiting, queued[0]

    found, queued = run(scenario())
    assert (found.after, queued) == ("ready", 0)

    async def ended() -> Expectation:
        rig.later(Exited("a", 5))
        return await rig.matcher.expect(names, ["ready"], timeout=math.inf)

    with pytest.raises(UnexpectedExit, match=r"^a exited with code 5"):
        run(ended())


@pytest.mark.parametrize("names", [["a"], ["a", "b"]])
@pytest.mark.parametrize("timeout", [math.nan, -1.0, -math.inf])
def test_a_nan_or_negative_timeout_is_refused(names: list[str], timeout: float) -> None:
    """A timeout that is not 0 or more seconds is a ValueError, even with a match already
    there (nan compares false with everything: it must never reach a wait)."""
    rig = Rig()
    rig.publish(out("a", b"ready\n"))
    for patterns in (["ready"], ["nothing"], [TIMEOUT]):
        with pytest.raises(ValueError, match="timeout"):
            run(rig.matcher.expect(names, patterns, timeout=timeout))
    assert run(rig.matcher.expect(names, ["ready"], timeout=0)).after == "ready"


def test_dollar_matches_at_the_end_of_the_output_so_far() -> None:
    """As in pexpect, ``$`` matches at the end of what has arrived, even mid-line: a
    pattern ending in ``\\n`` waits for the whole line."""
    rig = Rig()
    rig.publish(out("a", b"val=1", partial=True))
    assert run(rig.matcher.expect(["a"], [r"val=\d+$"], timeout=0)).after == "val=1"
    rig.publish(out("b", b"val=1", partial=True))
    with pytest.raises(ExpectTimeout):
        run(rig.matcher.expect(["b"], [r"val=\d+\n"], timeout=0))
    rig.publish(out("b", b"23\r\n"))
    assert run(rig.matcher.expect(["b"], [r"val=\d+\n"], timeout=0)).after == "val=123\n"


def test_a_precompiled_pattern_is_used_as_given() -> None:
    """No re.MULTILINE is added to a compiled pattern: without it, ``^`` does not match
    after a newline (nor ``$`` before one, but the last); with it, both do."""
    rig = Rig()
    rig.publish(out("a", b"hello\nready\n"))
    with pytest.raises(ExpectTimeout):
        run(rig.matcher.expect(["a"], [re.compile("^ready")], timeout=0))
    found = run(rig.matcher.expect(["a"], [re.compile("^ready$", re.MULTILINE)], timeout=0))
    assert (found.before, found.after) == ("hello\n", "ready")


@pytest.mark.parametrize("stream", [None, "stderr"])
def test_a_second_expectation_on_a_waited_cursor_is_refused(stream: str | None) -> None:
    """Two expectations on one cursor would race: the one that looked first would consume
    what the other waits for. The second is refused at once; the first still gets its
    match, and once it has, the cursor takes a new expectation."""
    rig = Rig()

    async def scenario() -> tuple[str, str]:
        first = asyncio.ensure_future(rig.matcher.expect(["a"], ["one"], timeout=LONG,
                                                         stream=stream))
        # Tasks take their first step in the order they were made: this one looks once the
        # first is waiting.
        second = asyncio.ensure_future(rig.matcher.expect(["a"], ["two"], timeout=LONG,
                                                          stream=stream))
        with pytest.raises(RuntimeError, match="already waiting on the "
                           f"{stream or 'output'} of a"):
            await second
        with pytest.raises(RuntimeError, match="already waiting"):
            await rig.matcher.expect(["b", "a"], ["two"], timeout=LONG, stream=stream)
        other = asyncio.ensure_future(  # another cursor of the same member is free
            rig.matcher.expect(["a"], ["two"], timeout=LONG,
                               stream="stdout" if stream is None else None))
        rig.later(out("a", b"one\ntwo\n", stream or "stdout"))
        matched = (await first).after
        second = await rig.matcher.expect(["a"], ["two"], timeout=LONG, stream=stream)
        await other
        return matched, second.after

    assert run(scenario()) == ("one", "two")


def test_a_timeout_names_the_stream_and_the_output_dropped_unsearched() -> None:
    """Output nobody searched is dropped beyond 8 MiB: a timeout says so, or the line that
    went with it would seem never to have come."""
    rig = Rig()
    rig.publish(out("a", b"listening on 4711\n", "stderr"))
    for _ in range(18):  # (18 MiB: the bound is checked as chunks come, each round 8 MiB)
        rig.publish(out("a", b"x" * 1023 + b"\n", "stderr"), *[out("a", b"y" * 1023 + b"\n",
                                                                 "stderr")] * 1023)
    with pytest.raises(ExpectTimeout) as raised:
        run(rig.matcher.expect(["a"], ["listening on"], timeout=0, stream="stderr"))
    message = str(raised.value)
    assert re.match(r"'listening on' did not appear in the stderr of a within 0\.0 s\n"
                    r"a: \d+\.\d MiB of output came before it was searched and was dropped "
                    r"\(unsearched output is kept up to 8\.0 MiB\)\n", message), message[:300]
    assert raised.value.stream == "stderr"
    rig.publish(out("a", b"listening on 4712\n", "stderr"))
    run(rig.matcher.expect(["a"], ["listening on"], timeout=0, stream="stderr"))
    with pytest.raises(ExpectTimeout) as raised:  # searched since: nothing more was lost
        run(rig.matcher.expect(["a"], ["never"], timeout=0, stream="stderr"))
    assert "dropped" not in str(raised.value)


def test_an_invalid_pattern_is_a_value_error() -> None:
    rig = Rig()
    with pytest.raises(ValueError, match=r"not a valid regular expression: '\(bad'"):
        run(rig.matcher.expect(["a"], ["(bad"], timeout=0))
    with pytest.raises(ValueError, match=r"'x\{99999999999\}' \(a repetition count is too "
                                         r"large\)"):  # (re's own: an OverflowError)
        run(rig.matcher.expect(["a"], ["x{99999999999}"], timeout=0))


def test_a_closed_matcher_takes_no_more_output() -> None:
    """A run's steps are over: the output that follows must not pile up, unsearched, for
    as long as the cast runs."""
    rig = Rig()
    rig.publish(out("a", b"searched\n"))
    assert run(rig.matcher.expect(["a"], ["searched"], timeout=LONG)).index == 0
    rig.matcher.close()
    ended = Exited("a", 0)
    rig.publish(out("a", b"x" * 100_000 + b"\n"), ended)
    assert not rig.matcher._members
    assert rig.seen[-1] is ended  # (the bus goes on without it)
