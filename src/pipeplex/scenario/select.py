"""Choosing scenarios by name: ``pipeplex test -k EXPR``, as pytest's ``-k`` reads.

A word matches a scenario whose path from the current folder holds it (case aside, without
``.toml``): ``-k chat`` takes ``tests/chat/login.toml`` and ``tests/groupchat.toml``. Words
combine with ``and``, ``or``, ``not`` and parentheses: ``-k "chat and not slow"``.
"""

from __future__ import annotations

import re
from collections.abc import Callable

__all__ = ("Selector", "selector")

Selector = Callable[[str], bool]
"""Whether the scenario at a path (as given or found) is chosen."""

_TOKEN = re.compile(r"\s*(\(|\)|[^\s()]+)")


def selector(expression: str) -> Selector:
    """The test that ``expression`` makes of a scenario's path.

    Raises:
        ValueError: ``expression`` is not one (the message says where and what to write).
    """
    tokens = _TOKEN.findall(expression)
    if not tokens:
        raise ValueError("it is empty: give a word that the scenarios to run have in their "
                         "path, as -k chat")
    parser = _Parser(tokens)
    try:
        chosen = parser.either()
    except RecursionError:
        raise ValueError("it is nested too deeply: write it with fewer parentheses and "
                         "nots") from None
    if parser.at < len(tokens):
        extra = tokens[parser.at]
        if extra == ")":
            raise ValueError("a ')' has no '(' before it")
        raise ValueError(f"{extra!r} follows a whole expression: join the two with 'and' or "
                         "'or'")
    return chosen


class _Parser:
    """A recursive descent over the tokens: ``or`` binds loosest, then ``and``, then
    ``not``, as in Python."""

    def __init__(self, tokens: list[str]) -> None:
        self.tokens = tokens
        self.at = 0

    def _next(self) -> str | None:
        return self.tokens[self.at] if self.at < len(self.tokens) else None

    def either(self) -> Selector:
        choices = [self.both()]
        while self._next() == "or":
            self.at += 1
            choices.append(self.both())
        if len(choices) == 1:
            return choices[0]
        return lambda path: any(choice(path) for choice in choices)

    def both(self) -> Selector:
        parts = [self.one()]
        while self._next() == "and":
            self.at += 1
            parts.append(self.one())
        if len(parts) == 1:
            return parts[0]
        return lambda path: all(part(path) for part in parts)

    def one(self) -> Selector:
        token = self._next()
        after = f"after {self.tokens[self.at - 1]!r}" if self.at else "at the start"
        if token is None:
            raise ValueError(f"a word is missing {after}")
        self.at += 1
        if token == "not":
            negated = self.one()
            return lambda path: not negated(path)
        if token == "(":
            inner = self.either()
            if self._next() != ")":
                raise ValueError("a '(' is not closed: add ')'")
            self.at += 1
            return inner
        if token in (")", "and", "or"):
            raise ValueError(f"a word is missing {after}, before {token!r}")
        word = token.casefold()
        return lambda path: word in _stem(path).casefold()


def _stem(path: str) -> str:
    return path[:-5] if path.lower().endswith(".toml") else path
