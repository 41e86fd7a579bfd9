"""The command line's parser: argparse, with the rules a command line is expected to follow
where Python 3.11's argparse does not.

- An option that takes a value takes the next word, whatever it is (``--run-dir -odd``,
  ``-p --``, ``--name --run-dir``), as getopt does.
- ``--`` (not an option's value) ends the options: every word after it is an argument,
  even ``--`` or ``--eof``. ``parse_intermixed_args`` would still read options after it
  when it comes before the first argument, and drops every ``--`` it meets, even as a value.
- Options and arguments come in any order; long options are never guessed from a prefix.

To get there, each option's value and each word after ``--`` is passed to argparse marked
(a NUL in front, which no argument can hold): it is then never taken for an option or for
``--``, and the mark is taken off before the value's own check sees it.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING, Any, NoReturn

from ._printable import printable

if TYPE_CHECKING:
    from _typeshed import SupportsWrite

__all__ = ("CommandParser",)

_MARK = "\0"
_VALUED = (None, "store", "append")
"""The actions of the options that take a value (flags are ``store_true``)."""


class CommandParser(argparse.ArgumentParser):
    """One command's parser; parse with :meth:`parse_words`."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(allow_abbrev=False,
                         formatter_class=argparse.RawDescriptionHelpFormatter, **kwargs)
        self._spelled: dict[str, str] = {}
        """Each spelling of an option that takes a value (``-p``), to its long one."""
        self._given: set[str] = set()
        """The options given a value, by their long spelling (for the hints of errors)."""

    def add_argument(self, *names: Any, **kwargs: Any) -> argparse.Action:
        positional = bool(names) and not str(names[0]).startswith("-")
        valued = positional or kwargs.get("action") in _VALUED
        if valued:
            kwargs["type"] = _unmarked(kwargs.get("type", str))
        action = super().add_argument(*names, **kwargs)
        if valued and not positional:
            long = next((o for o in action.option_strings if o.startswith("--")),
                        action.option_strings[0])
            self._spelled.update(dict.fromkeys(action.option_strings, long))
        return action

    def parse_words(self, words: Sequence[str]) -> argparse.Namespace:
        tokens: list[str] = []
        rest = iter(words)
        for word in rest:
            if word == "--":
                tokens.extend(_MARK + argument for argument in rest)
                break
            option, value = self._option_and_value(word, rest)
            if option is None:
                tokens.append(word)
            elif value is None:
                tokens.append(option)  # its value is missing: argparse says so
            else:
                tokens.append(f"{option}={_MARK}{value}")
                self._given.add(option)
        return self.parse_intermixed_args(tokens)

    def _option_and_value(self, word: str, rest: Iterator[str]
                          ) -> tuple[str | None, str | None]:
        """The long spelling of the option ``word`` gives a value to, and that value (the
        next word of ``rest`` when it is not in ``word``); (None, None) for other words."""
        if word in self._spelled:  # -p VALUE, --proc VALUE
            return self._spelled[word], next(rest, None)
        name, equals, value = word.partition("=")
        if equals and name.startswith("--") and name in self._spelled:  # --proc=VALUE
            return self._spelled[name], value
        if not word.startswith("--") and word[:2] in self._spelled:  # -pVALUE
            return self._spelled[word[:2]], word[2:]
        return None, None

    def _print_message(self, message: str, file: SupportsWrite[str] | None = None) -> None:
        # argparse drops a write that fails: -h or --version into a full stdout would say
        # nothing and exit 0 (the command line says it, see _stdout).
        if message:
            (file or sys.stderr).write(message)

    def error(self, message: str) -> NoReturn:
        # A marked value may show raw or as argparse's repr of it ('\x00value').
        message = message.replace(_MARK, "").replace("'\\x00", "'")
        unknown = message.removeprefix("unrecognized arguments: ").split()
        option = next((word.partition("=")[0] for word in unknown if word.startswith("-")),
                      None)
        from ._suggest import close_match

        close = option and close_match(option, [o for a in self._actions
                                                for o in a.option_strings])
        if message.startswith("unrecognized arguments: ") and close:
            message += f"; did you mean {close}?"
        elif (message.startswith("unrecognized arguments: ") and self.prog.endswith(" run")
              and any(word.lower().endswith(".toml") for word in unknown)):
            message += ("; a run takes one cast file: put the members of several in one "
                        "(pipeplex test takes several scenario files)")
        elif (message.startswith("unrecognized arguments: ") and "--proc" in self._given
              and not unknown[0].startswith("--")):  # (-m, http.server: a command's words)
            message += f"; {QUOTE_THE_COMMAND}"
        # A word that is not UTF-8 (a Latin-1 terminal's) as the bytes typed, and no
        # control character of one reaches the terminal.
        super().error(printable(message))


QUOTE_THE_COMMAND = ("a -p command of several words is one argument: quote it whole "
                     "(-p 'web=python3 -m http.server')")


def _unmarked(convert: Callable[[str], Any]) -> Callable[[str], Any]:
    def unmarked(text: str) -> Any:
        return convert(text.removeprefix(_MARK))

    unmarked.__name__ = getattr(convert, "__name__", "value")  # (argparse's messages use it)
    return unmarked
