"""Renderer and use_color: how the merged stream looks."""

from __future__ import annotations

import time

import pytest

from pipeplex._events import Event, Exited, InputSent, Note, Output, Ready, Started
from pipeplex.output.render import Renderer, use_color

RESET = b"\x1b[0m"
T = 1_700_000_000.375  # exactly representable milliseconds: .375


def out(name: str, data: bytes, *, stream: str = "stdout", partial: bool = False) -> Output:
    return Output(name, stream, data, partial, t=T)  # type: ignore[arg-type]


@pytest.fixture
def plain() -> Renderer:
    return Renderer(["web", "database"])


class TestPlainFormat:
    def test_stdout_names_padded_to_the_longest(self, plain: Renderer) -> None:
        """Stdout lines read ``NAME | text`` with names padded to the longest name."""
        assert plain.render(out("web", b"hi\n")) == b"web      | hi\n"
        assert plain.render(out("database", b"hi\n")) == b"database | hi\n"

    def test_stderr_marker(self, plain: Renderer) -> None:
        """Stderr lines read ``NAME ! text``."""
        assert plain.render(out("web", b"oops\n", stream="stderr")) == b"web      ! oops\n"

    def test_member_note(self, plain: Renderer) -> None:
        """A note about a member reads ``NAME * text``."""
        assert plain.render(Note("listening", name="web", t=T)) == b"web      * listening\n"

    def test_run_note(self, plain: Renderer) -> None:
        """A note about the run reads ``pipeplex * text``."""
        assert plain.render(Note("all members started", t=T)) == b"pipeplex * all members started\n"

    def test_multi_line_note_prefixes_every_line(self, plain: Renderer) -> None:
        """Each line of a note gets its own prefix."""
        assert plain.render(Note("one\ntwo", t=T)) == b"pipeplex * one\npipeplex * two\n"

    def test_chunk_of_many_lines_prefixes_every_line(self, plain: Renderer) -> None:
        """A chunk holding many lines gets a prefix on every line."""
        assert plain.render(out("web", b"a\nb\n\nc\n")) == (
            b"web      | a\nweb      | b\nweb      | \nweb      | c\n"
        )

    def test_partial_output_still_ends_the_line(self, plain: Renderer) -> None:
        """An unfinished line (a prompt) is shown ending with a newline."""
        assert plain.render(out("web", b"password: ", partial=True)) == b"web      | password: \n"

    def test_a_line_shown_in_pieces_ends_without_an_empty_line(self, plain: Renderer) -> None:
        """Dots written with pauses show a piece each; the newline that ends them only ends
        the line already shown, per member and stream, until the member starts again."""
        shown = [plain.render(out("web", b".", partial=True)) for _ in range(2)]
        shown.append(plain.render(out("web", b"x", stream="stderr", partial=True)))
        shown.append(plain.render(out("database", b"\n")))  # (another member's empty line)
        shown.append(plain.render(out("web", b"\n")))
        shown.append(plain.render(out("web", b"\ndone\n", stream="stderr")))
        shown.append(plain.render(out("web", b"\n")))  # an empty line of its own
        shown.append(plain.render(out("web", b"end", partial=True)))
        plain.render(Started("web", 1, ("x",), t=T))
        shown.append(plain.render(out("web", b"\nnew run\n")))
        assert b"".join(shown) == (b"web      | .\nweb      | .\nweb      ! x\ndatabase | \n"
                                   b"web      ! done\nweb      | \nweb      | end\n"
                                   b"web      | \nweb      | new run\n")

    def test_a_crlf_that_ends_a_line_shown_in_pieces_is_no_line_either(self,
                                                                        plain: Renderer) -> None:
        shown = plain.render(out("web", b"Name? ", partial=True)) + plain.render(
            out("web", b"\r\nbob\r\n"))
        assert shown == b"web      | Name? \nweb      | bob\r\n"

    def test_bytes_that_are_not_utf8_go_to_a_file_as_they_are(self, plain: Renderer) -> None:
        """A file or a pipe gets what the member wrote (latin-1, binary data), byte for byte."""
        rendered = plain.render(out("web", b"caf\xe9 \xff \xc3\xa9\n"))
        assert rendered == b"web      | caf\xe9 \xff \xc3\xa9\n"

    def test_bytes_that_are_not_utf8_show_as_replacement_characters_on_a_terminal(
            self) -> None:
        rendered = Renderer(["web"], sanitize=True).render(out("web", b"caf\xff \xc3\xa9\n"))
        assert rendered == "web | caf\ufffd \u00e9\n".encode()

    def test_unknown_member_gets_a_prefix(self, plain: Renderer) -> None:
        """Output of a name not given up front still gets a padded prefix."""
        assert plain.render(out("cache", b"x\n")) == b"cache    | x\n"
        assert plain.render(Note("up", name="queue", t=T)) == b"queue    * up\n"

    def test_input_events_render_nothing(self, plain: Renderer) -> None:
        """Input sent to a member is not shown."""
        assert plain.render(InputSent("web", b"hello\n", t=T)) == b""

    def test_control_characters_pass_through_without_sanitize(self, plain: Renderer) -> None:
        """Without sanitize, escape sequences reach the output untouched."""
        assert plain.render(out("web", b"\x1b[2Jx\r\n")) == b"web      | \x1b[2Jx\r\n"


@pytest.mark.parametrize(
    ("event", "text"),
    [
        (Exited("web", 0, t=T), b"exited with code 0"),
        (Exited("web", 3, t=T), b"exited with code 3"),
        (Exited("web", -9, t=T), b"killed by SIGKILL"),
        (Exited("web", -15, stopped=True, t=T), b"stopped by SIGTERM"),
        (Exited("web", 0, stopped=True, t=T), b"stopped: exited with code 0"),
        (Exited("web", -11, stopped=True, t=T), b"stopped: killed by SIGSEGV"),
        (Started("web", 4242, ("python3",), t=T), b"started (pid 4242)"),
        (Ready("web", (("port", "8080"), ("host", "::1")), t=T), b"ready: port=8080, host=::1"),
        (Ready("web", t=T), b"ready"),
    ],
    ids=["exit-0", "exit-3", "killed", "stopped", "stopped-exit-0", "stopped-crash", "started",
         "ready-vars", "ready"],
)
def test_lifecycle_events_render_as_member_notes(event: Event, text: bytes) -> None:
    """Started, Exited and Ready events show as ``NAME * ...`` notes."""
    assert Renderer(["web"]).render(event) == b"web * " + text + b"\n"


class TestSanitize:
    @pytest.mark.parametrize(
        ("data", "shown"),
        [
            (b"\x1b[2Jcleared\n", b"cleared"),
            (b"\x1b]0;title\x07after\n", b"after"),
            (b"\x1b[1G\x1b[0J> \x1b[3G\x1b[?2004h\x1b=x\n", b"> x"),  # node, readline
            (b"lone \x1b\n", b"lone ^["),
            (b"bell\x07 nul\x00 del\x7f\n", b"bell^G nul^@ del^?"),
            (b"\x1b[31mred\x1b[0m plain\n", b"\x1b[31mred\x1b[0m plain"),
            (b"\x1b[1;38;5;208mbold\x1b[m\n", b"\x1b[1;38;5;208mbold\x1b[m"),
            (b"fo\x1b[01;31m\x1b[Koba\x1b[m\x1b[Kr\n", b"fo\x1b[01;31m\x1b[Koba\x1b[m\x1b[Kr"),
            (b"\x1b[?1mnot a colour \x1b[2K\n", b"not a colour "),
            # Fonts and the Linux console's mapping (11, 12: control characters as glyphs,
            # which the line's reset does not undo) go; a colour's own numbers stay.
            (b"\x1b[12;31mX\x1b[11m\x1b[38;5;11;10;1mY\x1b[38;2;10;11;12m\x1b[012m"
             b"\x1b[38;2;10;11mZ\x1b[58;5;11m\x1b[1;4294967307m\n",  # (a colour cut short,
             # or one the Linux console does not know: its numbers are read as they are; and
             # a number its count wraps around to 11)
             b"\x1b[31mX\x1b[38;5;11;1mY\x1b[38;2;10;11;12m\x1b[38;2mZ\x1b[58;5m\x1b[1m"),
            (b"tab\there\n", b"tab\there"),
            ("c1 \u009b2J csi \u0085 é\n".encode(), b"c1 \\x9b2J csi \\x85 \xc3\xa9"),
            # An unterminated link: its string ends at the line's end, never past it.
            (b"see \x1b]8;;http://x docs\nline A\nline B\x07\n",
             b"see 8;;http://x docs\nweb | line A\nweb | line B^G"),
        ],
        ids=["clear-screen", "osc-title", "prompt-drawing", "lone-esc", "c0-and-del", "sgr",
             "sgr-256", "grep", "not-sgr", "sgr-fonts", "tab", "c1", "osc-unterminated"],
    )
    def test_cursor_moving_controls_are_left_out_or_escaped(self, data: bytes,
                                                            shown: bytes) -> None:
        """Escape sequences that move the cursor or set modes are left out, other controls
        show as ``^X``; colours, erasing to the line's end (grep's) and tabs pass through."""
        end = b"\x1b[0m\n" if b"\x1b[" in shown else b"\n"  # (a colour ends with its line)
        assert Renderer(["web"], sanitize=True).render(out("web", data)) == (
            b"web | " + shown.replace(b"\n", end) + end)

    def test_a_members_text_in_a_note_is_escaped_too(self) -> None:
        """A ready's captured value (the member's own text) in the note that reports it."""
        rendered = Renderer(["web"], sanitize=True).render(
            Ready("web", (("port", "80\x1b[2J\x1b]0;x\x07\x07"),), t=T))
        assert rendered == b"web * ready: port=80^G\n"

    def test_a_captured_value_in_a_file_or_pipe_is_escaped_and_a_long_one_cut(self) -> None:
        """The note is pipeplex's line, even where members' lines are left as written: a
        NUL or a carriage return in the value does not reach the file raw, and 200 KB of
        it are not shown whole."""
        rendered = Renderer(["web"], sanitize=False).render(
            Ready("web", (("tok", "a\x00b\r"), ("big", "x" * 300_000)), t=T))
        assert rendered == (b"web * ready: tok=a\\x00b\\x0d, big=" + b"x" * 200
                            + b"... (300,000 characters)\n")

    def test_what_a_carriage_return_writes_over_is_not_shown(self) -> None:
        """A progress bar's updates in one read: what the terminal would show, its last
        state, not a line per update (thousands for a download)."""
        rendered = Renderer(["web"], sanitize=True).render(
            out("web", b"a\n10%\r50%\r\r100%\nb\r\r\nc\r"))
        assert rendered == b"web | a\nweb | 100%\nweb | b\nweb | c\n"

    def test_a_long_line_after_a_carriage_return_is_shown_whole(self) -> None:
        """The piece a terminal shows after a CR, however long: a pattern that scanned the
        rest of the line from each of its characters took minutes on 256 KiB."""
        data = b"10%\r" + b"x" * 256 * 1024
        rendered = Renderer(["web"], sanitize=True).render(out("web", data, partial=True))
        assert rendered == b"web | " + b"x" * 256 * 1024 + b"\n"

    @pytest.mark.parametrize(("data", "shown"), [
        (b"a" + b"\r" * 256 * 1024 + b"b\n", b"b"), (b"a" + b"\r" * 256 * 1024, b"a")],
        ids=["text-after", "nothing-after"])
    def test_a_long_run_of_carriage_returns_is_shown_in_time(self, data: bytes,
                                                             shown: bytes) -> None:
        """Binary output, a stuck progress bar: a pattern tried from each CR of the run took
        minutes on 256 KiB, and held the whole run meanwhile."""
        rendered = Renderer(["web"], sanitize=True).render(out("web", data))
        assert rendered == b"web | " + shown + b"\n"

    def test_a_carriage_return_goes_to_a_file_as_it_is(self) -> None:
        rendered = Renderer(["web"]).render(out("web", b"10%\r50%\r100%\n"))
        assert rendered == b"web | 10%\r50%\r100%\n"

    def test_colours_end_with_their_line_also_without_colour_of_our_own(self) -> None:
        """A member's colour left on at its line's end would paint the next member's line,
        pipeplex's notes and, at the end, the shell's prompt."""
        renderer = Renderer(["a", "b"], sanitize=True, color=False)
        shown = renderer.render(out("a", b"\x1b[41mred\nstill red")) + renderer.render(
            out("b", b"plain\n"))
        assert shown == b"a | \x1b[41mred\x1b[0m\na | still red\nb | plain\n"

    def test_only_a_line_with_a_colour_gets_the_reset(self) -> None:
        """Lines without any escape, in a chunk with a coloured one, stay as written: a
        console that shows escapes as text (TERM=dumb) showed ^[[0m after each."""
        renderer = Renderer(["p"], sanitize=True, color=False)
        shown = renderer.render(out("p", b"one\n\x1b[32mgreen\x1b[0m three\nfour\n"))
        assert shown == b"p | one\np | \x1b[32mgreen\x1b[0m three\x1b[0m\np | four\n"

    def test_a_carriage_return_first_makes_no_empty_line(self) -> None:
        """A progress bar that writes ``\\r`` before each update (not after): no empty
        ``bar |`` line, at the start nor after an update shown on its own (a pause)."""
        renderer = Renderer(["bar"], sanitize=True)
        shown = b"".join(renderer.render(out("bar", chunk, partial=True))
                         for chunk in (b"\r10%", b"\r20%", b"\r30%\r\n"))
        assert shown == b"bar | 10%\nbar | 20%\nbar | 30%\n"

    def test_crlf_from_a_pipe_member_is_one_line(self) -> None:
        """With sanitize, a CRLF line end is one line end, not a line plus an empty one."""
        rendered = Renderer(["web"], sanitize=True).render(out("web", b"hello\r\n"))
        assert rendered == b"web | hello\n"


class TestColor:
    @pytest.mark.parametrize(
        "event",
        [
            out("web", b"a\nb\n"),
            out("web", b"a\nb\n", stream="stderr"),
            Note("a\nb", name="web", t=T),
            Note("a\nb", t=T),
            Exited("web", 1, t=T),
        ],
        ids=["stdout", "stderr", "member-note", "run-note", "exited"],
    )
    def test_every_prefix_starts_with_a_reset(self, event: Event) -> None:
        """With colour, every displayed line starts with a reset so colours cannot leak."""
        rendered = Renderer(["web", "db"], color=True).render(event)
        lines = rendered.split(b"\n")
        assert lines[-1] == b""
        assert all(line.startswith(RESET) for line in lines[:-1])

    @pytest.mark.parametrize(("returncode", "warned"), [(-15, False), (0, False), (1, False),
                                                        (-6, True)])
    def test_a_crash_during_a_stop_is_a_warning(self, returncode: int, warned: bool) -> None:
        """The stop's own signal, or an exit code, is the end asked for; a crash on the
        way out (SIGABRT in a handler) is worth the eye, as a crash at any other time."""
        rendered = Renderer(["web"], color=True).render(
            Exited("web", returncode, stopped=True, t=T))
        assert (b"\x1b[33m" in rendered) is warned, rendered

    def test_members_get_different_colours(self) -> None:
        """Each member's prefix has its own colour; stderr adds a red marker."""
        r = Renderer(["web", "db"], color=True)
        web = r.render(out("web", b"x\n"))
        db = r.render(out("db", b"x\n"))
        assert web != db.replace(b"db ", b"web")
        assert b"\x1b[1;31m!" in r.render(out("web", b"x\n", stream="stderr"))

    def test_timestamped_prefix_starts_with_a_reset(self) -> None:
        """With colour and timestamps, each line still starts with a reset."""
        rendered = Renderer(["web"], color=True, timestamps=True).render(out("web", b"x\n"))
        assert rendered.startswith(RESET)


class TestTimestamps:
    def test_timestamp_before_the_name(self) -> None:
        """Timestamps add ``HH:MM:SS.mmm `` before the name, on every line."""
        clock = time.strftime("%H:%M:%S", time.localtime(T)).encode()
        rendered = Renderer(["web"], timestamps=True).render(out("web", b"a\nb\n"))
        assert rendered == clock + b".375 web | a\n" + clock + b".375 web | b\n"

    def test_timestamp_on_notes(self) -> None:
        """Notes carry the timestamp of their event too."""
        t = 1_700_000_061.25
        clock = time.strftime("%H:%M:%S", time.localtime(t)).encode()
        rendered = Renderer(["web"], timestamps=True).render(Note("hi", t=t))
        assert rendered == clock + b".250 pipeplex * hi\n"

    def test_timestamp_follows_the_second(self) -> None:
        """A later event in another second shows that second, not a cached one."""
        r = Renderer(["web"], timestamps=True)
        r.render(out("web", b"x\n"))
        later = Output("web", "stdout", b"y\n", t=T + 3600)
        clock = time.strftime("%H:%M:%S", time.localtime(T + 3600)).encode()
        assert r.render(later) == clock + b".375 web | y\n"


def test_crlf_names_get_plain_newlines() -> None:
    """Members listed in crlf_names have ``\\r\\n`` shown as ``\\n``; others keep their bytes."""
    r = Renderer(["tty", "pipe"], crlf_names=["tty"])
    assert r.render(out("tty", b"a\r\nb\r\n")) == b"tty  | a\ntty  | b\n"
    assert r.render(out("pipe", b"a\r\n")) == b"pipe | a\r\n"


@pytest.mark.parametrize(
    ("mode", "isatty", "environ", "expected"),
    [
        ("always", False, {"NO_COLOR": "1"}, True),
        ("never", True, {"FORCE_COLOR": "1"}, False),
        ("auto", True, {"NO_COLOR": "1"}, False),
        ("auto", False, {"NO_COLOR": "1", "FORCE_COLOR": "1"}, False),
        ("auto", True, {"NO_COLOR": ""}, True),
        ("auto", False, {"FORCE_COLOR": "1"}, True),
        ("auto", False, {"FORCE_COLOR": ""}, False),
        ("auto", False, {"FORCE_COLOR": "0"}, False),
        ("auto", False, {"FORCE_COLOR": "false"}, False),
        ("auto", True, {"FORCE_COLOR": "0"}, True),
        ("auto", True, {"TERM": "dumb", "FORCE_COLOR": "1"}, True),
        ("auto", True, {"TERM": "xterm-256color"}, True),
        ("auto", True, {}, True),
        ("auto", True, {"TERM": "dumb"}, False),
        ("auto", False, {"TERM": "xterm-256color"}, False),
    ],
    ids=[
        "always-beats-no-color",
        "never-beats-force-color",
        "no-color-disables",
        "no-color-beats-force-color",
        "empty-no-color-ignored",
        "force-color-without-tty",
        "empty-force-color-ignored",
        "force-color-0-is-off",
        "force-color-false-is-off",
        "force-color-0-leaves-a-tty-coloured",
        "force-color-beats-dumb",
        "tty",
        "tty-no-term",
        "dumb-terminal",
        "not-a-tty",
    ],
)
def test_use_color_precedence(
    mode: str, isatty: bool, environ: dict[str, str], expected: bool
) -> None:
    """The flag wins, then NO_COLOR, then FORCE_COLOR, then a non-dumb tty."""
    assert use_color(mode, isatty, environ) is expected  # type: ignore[arg-type]
