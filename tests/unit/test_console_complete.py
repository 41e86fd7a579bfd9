"""Tab completion at the console prompt: commands, member names, signals."""

from __future__ import annotations

from collections.abc import Callable

import pytest

Complete = Callable[[str], list[tuple[str, int]]]


@pytest.fixture(scope="module")
def complete() -> Complete:
    """Completions for a line typed so far, as (text, start position) pairs.

    prompt_toolkit is imported here, not at collection: pipeplex loads it only for a
    prompt, and it would add 5 MB to the test process (which other tests measure).
    """
    from prompt_toolkit.completion import CompleteEvent
    from prompt_toolkit.document import Document

    from pipeplex.inputs._prompt_line import MemberCompleter

    completer = MemberCompleter(["server", "alice", "alfred"])

    def complete(text: str) -> list[tuple[str, int]]:
        return [(c.text, c.start_position)
                for c in completer.get_completions(Document(text), CompleteEvent())]

    return complete


def test_names_at_the_start_of_a_line(complete: Complete) -> None:
    assert complete("se") == [("server: ", -2)]
    assert complete("al") == [("alice: ", -2), ("alfred: ", -2), ("all: ", -2)]
    assert complete("") == [("server: ", 0), ("alice: ", 0), ("alfred: ", 0), ("all: ", 0)]
    assert complete("zz") == []


def test_commands(complete: Complete) -> None:
    assert complete(":re") == [(":restart ", -3)]
    assert [text for text, _ in complete(":")] == [
        ":to ", ":list ", ":signal ", ":restart ", ":start ", ":close ", ":quit ", ":help "]


def test_member_arguments(complete: Complete) -> None:
    assert complete(":to al") == [("alice", -2), ("alfred", -2), ("all", -2)]
    assert complete(":restart al") == [("alice", -2), ("alfred", -2)]  # one at a time
    assert complete(":start al") == [("alice", -2), ("alfred", -2)]
    assert complete(":signal se") == [("server ", -2)]
    assert complete(":list se") == []


def test_signal_names(complete: Complete) -> None:
    assert complete(":signal server te") == [("TERM", -2)]
    assert [text for text, _ in complete(":signal server US")] == ["USR1", "USR2"]
    assert complete(":signal server TS") == [("TSTP", -2)]


def test_nothing_inside_a_line_of_text(complete: Complete) -> None:
    assert complete("server: hel") == []
    assert complete("hello wor") == []
