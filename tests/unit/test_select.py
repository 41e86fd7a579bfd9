"""pipeplex test -k: which paths an expression chooses, and what it says of a bad one."""

from __future__ import annotations

import re

import pytest

from pipeplex.scenario.select import selector

PATHS = ("tests/chat/login.toml", "tests/chat/logout.toml", "tests/groupchat.toml",
         "tests/slow/big.toml", "other/Upload.TOML")


@pytest.mark.parametrize(("expression", "chosen"), [
    ("chat", ["login", "logout", "groupchat"]),
    ("LOG", ["login", "logout"]),
    ("upload", ["Upload"]),
    ("toml", []),  # (the extension is no part of the name)
    ("chat and not logout", ["login", "groupchat"]),
    ("not chat", ["big", "Upload"]),
    ("slow or upload", ["big", "Upload"]),
    ("chat and login or big", ["login", "big"]),  # (and binds tighter than or)
    ("chat and (login or big)", ["login"]),
    ("not not slow", ["big"]),
    ("not (chat or slow)", ["Upload"]),
    ("  tests/chat/  ", ["login", "logout"]),
])
def test_an_expression_chooses_by_the_words_in_the_path(expression: str,
                                                         chosen: list[str]) -> None:
    choose = selector(expression)
    assert [p.rsplit("/", 1)[1].rsplit(".", 1)[0] for p in PATHS if choose(p)] == chosen


@pytest.mark.parametrize(("expression", "message"), [
    ("", "it is empty: give a word that the scenarios to run have in their path, as -k chat"),
    ("   ", "it is empty"),
    ("chat and", "a word is missing after 'and'"),
    ("not", "a word is missing after 'not'"),
    ("or chat", "a word is missing at the start, before 'or'"),
    ("chat and or slow", "a word is missing after 'and', before 'or'"),
    ("(chat", "a '(' is not closed: add ')'"),
    ("chat)", "a ')' has no '(' before it"),
    ("()", "a word is missing after '(', before ')'"),
    ("chat slow", "'slow' follows a whole expression: join the two with 'and' or 'or'"),
    ("(" * 5000 + "chat" + ")" * 5000, "it is nested too deeply"),
    ("not " * 5000 + "chat", "it is nested too deeply"),
])
def test_a_bad_expression_says_what_is_wrong(expression: str, message: str) -> None:
    with pytest.raises(ValueError, match="^" + re.escape(message)):
        selector(expression)
