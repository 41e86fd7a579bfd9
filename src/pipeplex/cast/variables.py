"""``{name}`` in a member's fields: the variables that ``ready`` patterns capture.

Braces around a name that no member captures stay as they are, so code such as f"{i}"
passes through; ``${name}`` is left to the shell.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

__all__ = ("VAR_RE", "expand", "variables_in")

VAR_RE = re.compile(r"(?<!\$)\{([A-Za-z_][A-Za-z0-9_]*)\}")


def variables_in(text: str) -> set[str]:
    """The names in ``{name}`` braces in ``text`` (variables or not)."""
    return {m[1] for m in VAR_RE.finditer(text)}


def expand(text: str, variables: Mapping[str, str]) -> str:
    """Substitute ``{name}`` for each name in ``variables``; leave other braces alone."""
    if "{" not in text:
        return text
    return VAR_RE.sub(lambda m: variables.get(m[1], m[0]), text)
