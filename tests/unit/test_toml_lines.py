"""locate(): finding the line of a key in TOML text."""

from __future__ import annotations

import pytest

from pipeplex.cast._toml_lines import KeyLines, locate

TEXT = """\
# a cast
[procs.web]
cmd = "python3 -m http.server"
ready = 'port (?P<port>\\d+)'

[procs."my.app"]  # quoted because of the dot
cmd = ["ls"]
"quoted key" = 1
'single' = 2

# [procs.ghost]
[[step]]
send = "a"

[[step]]
send = "b"
expect = "c"

[ procs . spaced ]
env.LANG = "C"
"""


@pytest.mark.parametrize(
    ("path", "line"),
    [
        (("procs", "web"), 2),
        (("procs", "web", "cmd"), 3),
        (("procs", "web", "ready"), 4),
        (("procs", "my.app"), 6),
        (("procs", "my.app", "cmd"), 7),
        (("procs", "my.app", "quoted key"), 8),
        (("procs", "my.app", "single"), 9),
        (("step", 0), 12),
        (("step", 0, "send"), 13),
        (("step", 1), 15),
        (("step", 1, "send"), 16),
        (("step", 1, "expect"), 17),
        (("procs", "spaced"), 19),
        (("procs", "spaced", "env", "LANG"), 20),
    ],
    ids=lambda v: ".".join(map(str, v)) if isinstance(v, tuple) else str(v),
)
def test_locate_finds_the_line(path: tuple[str | int, ...], line: int) -> None:
    """Headers, keys under them, quoted keys, dotted keys and array items are found."""
    assert locate(TEXT, path) == line


def test_unknown_key_falls_back_to_its_table() -> None:
    """A key that is not in the text gives the line of its closest known parent."""
    assert locate(TEXT, ("procs", "web", "missing")) == 2
    assert locate(TEXT, ("step", 1, "missing")) == 15


def test_nothing_known_gives_none() -> None:
    """A path with no known part gives None."""
    assert locate(TEXT, ("other",)) is None
    assert locate(TEXT, ("procs", "ghost")) is None
    assert locate(TEXT, ("step", 2)) is None


def test_same_key_in_another_table_is_not_taken() -> None:
    """A key of the same name in a sibling table does not match."""
    text = '[procs.a]\ncmd = "x"\n[procs.b]\ncmd = "y"\n'
    assert locate(text, ("procs", "b", "cmd")) == 4


def test_top_level_dotted_key() -> None:
    """``procs.api.cmd = ...`` at the top level is found."""
    text = '# top\nprocs.api.cmd = "x"\nprocs.api.pty = true\n'
    assert locate(text, ("procs", "api", "pty")) == 3


def test_inline_table_member_gives_its_line() -> None:
    """A key inside an inline table resolves to the line of the inline table."""
    text = '[procs]\nweb = { cmd = "x", cmdd = 1 }\n'
    assert locate(text, ("procs", "web", "cmdd")) == 2


def test_table_implied_by_a_deeper_header() -> None:
    """A table only introduced by ``[proc.web]`` is found at that header."""
    assert locate('[proc.web]\ncmd = "x"\n', ("proc",)) == 1


def test_key_lines_answer_as_locate_does_for_every_key() -> None:
    """One reading of the text answers every lookup (a loader asks for each key of each
    member) as locate does, its fallbacks included."""
    lines = KeyLines(TEXT)
    paths: list[tuple[str | int, ...]] = [
        ("procs", "web", "ready"), ("step", 1, "expect"), ("procs", "spaced", "env", "LANG"),
        ("procs", "web", "missing"), ("step", 1, "missing"), ("proc",), ("other",),
        ("procs", "ghost"), ("step", 2), (),
    ]
    assert [lines.line(path) for path in paths] == [4, 17, 20, 2, 15, None, None, None, None,
                                                    None]
    assert [lines.line(path) for path in paths] == [locate(TEXT, path) for path in paths]


def test_only_a_newline_ends_a_line() -> None:
    """A line separator other than a newline (U+2028 in a string) starts no line for TOML,
    so none for the count either."""
    text = '[procs.web]\ncmd = "echo a\u2028b\x85c"\nready = "b"\n'
    assert locate(text, ("procs", "web", "ready")) == 3


def test_a_header_with_blanks_before_its_bracket() -> None:
    """Blanks before the closing bracket belong to no name, however many."""
    text = "[procs.web" + " " * 10_000 + "]\ncmd = 1\n[[ step\t]]\nsend = 2\n"
    assert locate(text, ("procs", "web", "cmd")) == 2
    assert locate(text, ("step", 0, "send")) == 4


@pytest.mark.parametrize("line", ["[" + " " * 20_000, "[[" + " " * 20_000, "[a" + " " * 20_000],
                         ids=["open", "open-array", "name"])
def test_a_line_like_a_header_in_a_multiline_string(line: str) -> None:
    """Such a line is tried once, not once per blank in it: the old pattern took minutes
    on a few KiB, at every load of the file."""
    text = f'[procs.web]\ncmd = """\n{line}\n"""\nready = "up"\n'
    assert locate(text, ("procs", "web", "ready")) == 5
    assert locate(text, ("procs", "web", "missing")) == 1
