"""``{name}`` in a member's fields: the variables that ``ready`` patterns capture.

Braces around a name that no member captures stay as they are, so code such as f"{i}"
passes through; ``${name}`` is left to the shell.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping

__all__ = ("VAR_RE", "expand", "is_port", "is_port_template", "never_a_port",
           "unusable_group", "variables_in", "with_stand_ins")

VAR_RE = re.compile(r"(?<!\$)\{([A-Za-z_][A-Za-z0-9_]*)\}")
_VAR_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def unusable_group(regex: re.Pattern[str]) -> str | None:
    """A named group of ``regex`` that no ``{name}`` can use, in words: a name that is not
    ASCII (which Python takes, and a shell variable could not be); None if all can be."""
    for group in regex.groupindex:
        if not _VAR_NAME.fullmatch(group):
            return (f"captures {group!r}, which no field can use as a {{variable}}: a "
                    "variable's name is ASCII letters, digits and _ (port, port_2); "
                    "rename the group")
    return None


def with_stand_ins(pattern: str) -> str:
    """``pattern`` with a stand-in for each ``{variable}`` (filled in when a step runs):
    what can be compiled before then."""
    return VAR_RE.sub("x", pattern)


def variables_in(text: str) -> set[str]:
    """The names in ``{name}`` braces in ``text`` (variables or not)."""
    return {m[1] for m in VAR_RE.finditer(text)}


def expand(text: str, variables: Mapping[str, str],
           quote: Callable[[str], str] | None = None) -> str:
    """Substitute ``{name}`` for each name in ``variables``; leave other braces alone.
    ``quote``: what a value goes through first (``re.escape`` for a pattern: a captured
    ``a.b`` then matches ``a.b`` only, and ``a(b`` is no broken pattern)."""
    if "{" not in text:
        return text
    if quote is None:
        return VAR_RE.sub(lambda m: variables.get(m[1], m[0]), text)
    return VAR_RE.sub(lambda m: quote(variables[m[1]]) if m[1] in variables else m[0], text)


def is_port_template(text: str) -> bool:
    """Whether ``text`` may name a TCP port once its ``{variables}`` are filled in: at
    least one, with nothing but ASCII digits around them (``{port}``, ``80{n}``;
    ``{port}x`` and ``{host}:{port}`` never can)."""
    rest = VAR_RE.sub("", text)
    return rest != text and rest.isascii() and (rest == "" or rest.isdigit())


def is_port(text: str) -> bool:
    """Whether ``text`` is a TCP port number, 1-65535, in ASCII digits (``"²"`` is a digit
    to ``str.isdigit``, and no number to ``int``)."""
    return text.isascii() and text.isdigit() and 0 < int(text) < 65536


def never_a_port(key: str, port: str) -> str:
    """Why ``key = port``, with a ``{variable}`` but not :func:`is_port_template`, is refused."""
    return (f"{key} = {port!r} can never be a port number: only digits may stand "
            "around its {variables} (\"{port}\", \"80{n}\")")
