"""Text made safe to show: control characters and bytes that are not UTF-8 escaped."""

from __future__ import annotations

import pytest

from pipeplex._printable import printable, quoted


def test_control_characters_and_stray_bytes_are_escaped() -> None:
    assert printable("a\x1b[2Jb\tc\n") == "a\\x1b[2Jb\tc\n"
    assert printable("caf\udce9 \x9b") == "caf\\xe9 \\x9b"
    assert printable("plain é") == "plain é"


@pytest.mark.parametrize(("text", "shown"), [
    ("name", "'name'"),
    ("b\udcff", "'b\\xff'"),
    ("it's\udc80", "\"it's\\x80\""),
    ("a\\udcff", "'a\\\\udcff'"),  # a backslash of its own, then letters: kept as repr has it
    ("a\\\udcff", "'a\\\\\\xff'"),  # a backslash of its own, then a stray byte
])
def test_quoted_shows_stray_bytes_as_the_bytes_typed(text: str, shown: str) -> None:
    assert quoted(text) == shown
