"""The scanner that chooses, for each ``{name}`` in a shell script, the form of its expansion.

It reads a script as a POSIX shell (and bash) would, only far enough to tell where each
``{name}`` stands: unquoted, between double quotes, in a here-document, in arithmetic. Apart
from :mod:`.shell` (what a script is given, and the nets under this scanner) since most
scripts hold no value to put in and need none of this: it is loaded only for one that does.
"""

from __future__ import annotations

import re
from bisect import bisect_left
from collections.abc import Mapping

from .shell import SHELL_VAR_PREFIX
from .variables import VAR_RE

__all__ = ("Scanner",)


# What ``{name}`` becomes in a shell command, by where it stands. Unquoted: the expansion
# between double quotes, one word with the value as is. Between double quotes, in a
# here-document and in arithmetic: the expansion alone (quotes there would end the string, show
# in the text, or be refused by dash). Text the shell does not expand (single quotes, a
# here-document with a quoted delimiter) is scanned as a script for another shell with the same
# rules, since that is why a command writes a variable there (sh -c '... {name} ...').
_QUOTED = '"${%s}"'
_BARE = "${%s}"
_WHOLE_NUMBER = re.compile(r"[+-]?[0-9]+")
_META = frozenset(" \t\n;&|()<>")
"""Characters that end a word outside quotes: a ``#`` after one starts a comment."""
_PLAIN_WORD = re.compile(r"[A-Za-z]+|[{}!]")
_COMMAND_FOLLOWS = frozenset({"if", "then", "else", "elif", "do", "while", "until", "!", "{",
                              "time"})
# A word that starts with a subscript: a[...]=value, or ([...]=value) in an array's list
# (a lone "[" is the test command, "[[" a keyword).
_SUBSCRIPTED = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\[|\[(?![\s\[\]])")
_PARAMETER = re.compile(r"[#!]?(?:[A-Za-z_][A-Za-z0-9_]*|[0-9]+|[@*#?$!-])")


class Scanner:
    """Turns each ``{name}`` of a variable in a shell script into an expansion of
    ``$PIPEPLEX_VAR_name`` chosen by where it stands.

    It follows quotes, backslashes, comments, ``$(...)``, backticks, ``${...}``, arithmetic,
    here-documents and ``case`` patterns only to choose that form. It never writes a value:
    only ``"${PIPEPLEX_VAR_name}"`` or ``${PIPEPLEX_VAR_name}``, whose double quotes come in a
    pair around the expansion, so whatever it gets wrong, the shell still parses the rest of
    the script as written and gets the value as the result of an expansion, which it does not
    read as code. Except in arithmetic, where bash (ksh, zsh) evaluates the value's text: where
    the scanner sees arithmetic, a value must be a whole number.

    Each method scans from ``i`` up to ``limit`` at most and returns where it stopped. ``arith``
    names the arithmetic the text is part of (``None`` outside arithmetic).
    """

    def __init__(self, text: str, variables: Mapping[str, str]) -> None:
        # The shell removes each backslash-newline (a continuation line) before it reads
        # anything else, except in single quotes and a quoted here-document's body: the
        # scanner reads ``self.text``, the script without them, and writes the script as
        # written (``self.original``), where ``self.origin`` maps each position back.
        self.original = text
        kept: list[int] = []
        i = 0
        while i < len(text):
            if text[i] == "\\":
                if text.startswith("\\\n", i):
                    i += 2
                    continue
                kept.append(i)
                i += 1
            kept.append(i)
            i += 1
        kept = [j for j in kept if j < len(text)]
        self.origin = [*kept, len(text)]
        self.text = "".join(text[j] for j in kept)
        self.variables = variables
        self.found = {bisect_left(self.origin, m.start()): m for m in VAR_RE.finditer(text)
                      if m[1] in variables}
        self.parts: list[str] = []
        self.done = 0  # in the original text
        self.used: set[str] = set()

    def result(self) -> tuple[str, list[str]]:
        if self.found:
            self.script(0, len(self.text), None, None)
        return "".join(self.parts) + self.original[self.done:], sorted(self.used)

    def put(self, i: int, form: str, arith: str | None) -> int:
        """Write the expansion for the variable at ``i``; where it ends."""
        match = self.found[i]
        name = match[1]
        if arith is not None and not _WHOLE_NUMBER.fullmatch(self.variables[name]):
            raise ValueError(
                f"{{{name}}} is used in {arith}, where the shell evaluates its text, "
                f"and its value {self.variables[name]!r} is not a whole number")
        self.parts += (self.original[self.done:match.start()],
                       form % (SHELL_VAR_PREFIX + name))
        self.used.add(name)
        self.done = match.end()
        return bisect_left(self.origin, match.end())

    def escaped(self, i: int) -> bool:
        """Whether a backslash escapes the character at ``i`` (an odd run of them before it)."""
        j = i
        while j > 0 and self.text[j - 1] == "\\":
            j -= 1
        return (i - j) % 2 == 1

    def script(self, i: int, limit: int, end: str | None, arith: str | None) -> int:
        """Commands, unquoted: the whole script, one for another shell, or the inside of
        ``$(...)`` (``end`` is ``")"``) or of backticks (``end`` is a backtick)."""
        t = self.text
        start = i
        command = True  # at the start of a command, where reserved words count
        parens = 0
        cases: list[str] = []  # each open case: "subject", "patterns" or "body"
        heredocs: list[tuple[str, bool, bool]] = []  # (delimiter, strip tabs, quoted)
        while i < limit:
            if i in self.found:
                i = self.put(i, _QUOTED, arith)
                command = False
                continue
            c = t[i]
            word_start = i == start or (t[i - 1] in _META and not self.escaped(i - 1))
            case = cases[-1] if cases else None
            if c in " \t":
                i += 1
            elif c == "\n":
                i += 1
                if heredocs:
                    i, command = self.heredoc_bodies(i, limit, heredocs, end, arith)
                    heredocs = []
                else:
                    command = True
            elif c == "#" and word_start:
                newline = t.find("\n", i, limit)
                i = limit if newline < 0 else newline
            elif c == "\\":
                i += 2
                command = False
            elif c == "'":
                i = self.single(i, limit, arith)
                command = False
            elif c == '"':
                i = self.double(i + 1, limit, arith)
                command = False
            elif c == "`" and end == "`":
                return i + 1
            elif c == "$" and t.startswith("$'", i):
                i = self.ansi_c(i, limit, arith)
                command = False
            elif c in "$`":
                i = self.expansion(i, limit, False, arith)
                command = False
            elif c == "(":
                if case == "patterns":
                    i += 1
                elif t.startswith("((", i):  # bash, ksh, zsh: arithmetic
                    i = self.arithmetic(i + 2, limit, "))", "((...))")
                    command = False
                else:
                    parens += 1
                    i += 1
                    command = True
            elif c == ")":
                if case == "patterns":
                    cases[-1] = "body"
                    command = True
                elif parens:
                    parens -= 1
                elif end == ")":
                    return i + 1
                i += 1
            elif c == ";":
                if t.startswith((";;", ";&", ";|"), i):
                    i += 3 if t.startswith(";;&", i) else 2
                    if case == "body":
                        cases[-1] = "patterns"
                else:
                    i += 1
                command = True
            elif c in "<>":
                if t.startswith("<<<", i):
                    i += 3
                elif t.startswith("<<", i):
                    i = self.heredoc_word(i + 2, limit, heredocs)
                elif t.startswith((">&", "<&"), i):
                    i = self.duplication(i + 2, limit)
                else:
                    i += 2 if t.startswith((">>", ">|", "<>"), i) else 1
            elif c in "&|":
                if t.startswith("&>", i):
                    i += 3 if t.startswith("&>>", i) else 2
                else:
                    i += 2 if t.startswith(("&&", "||", "|&"), i) else 1
                    command = True
            elif word_start and (plain := _PLAIN_WORD.match(t, i)) and (
                plain.end() >= limit or t[plain.end()] in _META or t[plain.end()] == end
            ):
                word = plain[0]
                if case == "subject":
                    if word == "in":
                        cases[-1] = "patterns"
                        command = True
                elif word == "esac" and case in ("patterns", "body") and command:
                    cases.pop()
                    command = False
                elif command and case != "patterns":
                    if word == "case":
                        cases.append("subject")
                    command = word in _COMMAND_FOLLOWS
                else:
                    command = False
                i = plain.end()
            elif word_start and (subscripted := _SUBSCRIPTED.match(t, i)):
                # bash evaluates the subscript of an indexed array, which it might be.
                i = self.arithmetic(subscripted.end(), limit, "]", "an array subscript")
                command = False
            else:
                i += 1
                command = command and not word_start
        return limit

    def duplication(self, i: int, limit: int) -> int:
        """The word after ``>&`` or ``<&``: bash expands it a second time when it is not a
        descriptor's number (as ``>& file``, csh's way), so a value there may only be a
        whole number (or ``-``, which closes the descriptor)."""
        t = self.text
        what = "a redirection to a descriptor (>&WORD, which bash expands again)"
        while i < limit and t[i] in " \t":
            i += 1
        while i < limit and t[i] not in _META:
            if i in self.found:
                if self.variables[self.found[i][1]] == "-":
                    i = self.put(i, _QUOTED, None)
                else:
                    i = self.put(i, _QUOTED, what)
            elif t[i] == "\\":
                i += 2
            elif t[i] == '"':
                i = self.double(i + 1, limit, what)
            elif t[i] == "'":
                i = self.single(i, limit, what)
            elif t[i] in "$`":
                i = self.expansion(i, limit, False, what)
            else:
                i += 1
        return i

    def single(self, i: int, limit: int, arith: str | None) -> int:
        """``'...'`` from its opening quote: its text, as a script for another shell."""
        close = self.text.find("'", i + 1, limit)
        if close < 0:
            close = limit
        self.script(i + 1, close, None, arith)
        return close + 1 if close < limit else limit

    def ansi_c(self, i: int, limit: int, arith: str | None) -> int:
        """``$'...'`` (bash) from its ``$``: like single quotes, where a backslash escapes."""
        t = self.text
        close = i + 2
        while close < limit and t[close] != "'":
            close += 2 if t[close] == "\\" else 1
        close = min(close, limit)
        self.script(i + 2, close, None, arith)
        return close + 1 if close < limit else limit

    def double(self, i: int, limit: int, arith: str | None) -> int:
        """``"..."`` from just after its opening quote."""
        t = self.text
        while i < limit:
            if i in self.found:
                i = self.put(i, _BARE, arith)
                continue
            c = t[i]
            if c == '"':
                return i + 1
            if c == "\\":
                i += 2
            elif c in "$`":
                i = self.expansion(i, limit, True, arith)
            else:
                i += 1
        return limit

    def expansion(self, i: int, limit: int, quoted: bool, arith: str | None) -> int:
        """A ``$`` or a backtick, and what it starts."""
        t = self.text
        if t[i] == "`":
            return self.script(i + 1, limit, "`", arith)
        if t.startswith("$((", i):
            return self.arithmetic(i + 3, limit, "))", "$((...))")
        if t.startswith("$(", i):
            return self.script(i + 2, limit, ")", arith)
        if t.startswith("${", i):
            return self.parameter(i + 2, limit, quoted, arith)
        if t.startswith("$[", i):  # bash: old arithmetic
            return self.arithmetic(i + 2, limit, "]", "$[...]")
        return i + 1

    def parameter(self, i: int, limit: int, quoted: bool, arith: str | None) -> int:
        """``${...}`` from just after its brace. The subscript of ``${name[...]}`` and the
        offset and length of ``${name:offset:length}`` are arithmetic (bash); the word of
        ``${name:-word}`` and the like is text, quoted as the expansion is."""
        t = self.text
        name = _PARAMETER.match(t, i, limit)
        if name:
            i = name.end()
        if i < limit and t[i] == "[":
            i = self.arithmetic(i + 1, limit, "]", "an array subscript")
        if i < limit and t[i] == ":" and t[i + 1:i + 2] not in ("-", "=", "+", "?"):
            return self.arithmetic(i + 1, limit, "}", "${name:offset}")
        # In a pattern (${x#'p'}, ${x%'p'}, ${x/'p'/'r'}, ${x^'p'}) single quotes quote
        # even between double quotes, in dash and bash alike; in ${x:-'w'} they do not.
        singles = not quoted or (i < limit and t[i] in "#%/^,")
        while i < limit:  # the word, to the closing brace
            if i in self.found:
                i = self.put(i, _BARE if quoted else _QUOTED, arith)
                continue
            c = t[i]
            if c == "}":
                return i + 1
            if c == "\\":
                i += 2
            elif c == '"':
                i = self.double(i + 1, limit, arith)
            elif c == "'" and singles:
                i = self.single(i, limit, arith)
            elif c in "$`":
                i = self.expansion(i, limit, quoted, arith)
            else:
                i += 1
        return limit

    def arithmetic(self, i: int, limit: int, close: str, arith: str) -> int:
        """Arithmetic, up to ``close`` (``))``, ``]`` or ``}``): only a whole number there."""
        t = self.text
        depth = 0
        while i < limit:
            if i in self.found:
                i = self.put(i, _BARE, arith)
                continue
            c = t[i]
            if c == "\\":
                i += 2
                continue
            if c == '"':
                i = self.double(i + 1, limit, arith)
                continue
            if c in "$`":
                i = self.expansion(i, limit, True, arith)
                continue
            if close == "))" and c in "()":
                if c == ")" and depth == 0 and t.startswith("))", i):
                    return i + 2
                depth += 1 if c == "(" else -1  # below 0: not arithmetic after all; go on
            elif close == "]" and c in "[]":
                if c == "]" and depth == 0:
                    return i + 1
                depth += 1 if c == "[" else -1
            elif close == "}" and c == "}":
                return i + 1
            i += 1
        return limit

    def heredoc_word(self, i: int, limit: int, heredocs: list[tuple[str, bool, bool]]) -> int:
        """The delimiter after ``<<`` or ``<<-``, noted for the body after this line. Any
        quoting in it (``'EOF'``, ``"EOF"``, ``\\EOF``) makes the body literal text."""
        t = self.text
        strip = t.startswith("-", i)
        if strip:
            i += 1
        while i < limit and t[i] in " \t":
            i += 1
        word: list[str] = []
        quoted = False
        while i < limit and t[i] not in _META:
            c = t[i]
            if c == "\\":
                word.append(t[i + 1:i + 2])
                quoted = True
                i += 2
            elif c in "'\"":
                close = t.find(c, i + 1, limit)
                close = limit if close < 0 else close
                word.append(t[i + 1:close])
                quoted = True
                i = close + 1
            else:
                word.append(c)
                i += 1
        if word or quoted:
            heredocs.append(("".join(word), strip, quoted))
        return min(i, limit)

    def heredoc_bodies(
        self, i: int, limit: int, heredocs: list[tuple[str, bool, bool]], end: str | None,
        arith: str | None,
    ) -> tuple[int, bool]:
        """The bodies of the here-documents of the line that ends before ``i``, in order,
        each to the line that is its delimiter; where the last one's delimiter line ends,
        and whether a command starts there. Inside ``$(...)`` bash also ends a body at a
        line that starts with the delimiter and holds a ``)`` (``EOF)``), and reads the rest
        of that line as commands; inside backticks a backtick after the delimiter does."""
        t = self.text
        for delimiter, strip, quoted in heredocs:
            body = i
            resume = None
            while i < limit:
                newline = t.find("\n", i, limit)
                line_end = limit if newline < 0 else newline
                line = t[i:line_end]
                if quoted:  # continuation lines stay in its body: read it as written
                    start = self.origin[i]
                    stop = self.original.find("\n", start, self.origin[limit])
                    line = self.original[start:stop if stop >= 0 else self.origin[limit]]
                stripped = line.lstrip("\t") if strip else line
                if stripped == delimiter:
                    break
                if end in (")", "`") and delimiter and stripped.startswith(delimiter) and (
                        end in stripped[len(delimiter):] if end == ")"
                        else stripped[len(delimiter):].startswith(end)):
                    resume = i + len(line) - len(stripped) + len(delimiter)
                    break
                # The next line: in a quoted body, the next line as written.
                i = bisect_left(self.origin, stop + 1) if quoted and stop >= 0 else line_end + 1
            else:
                line_end = i = limit
            if quoted:  # literal text: a script for another shell, as in single quotes
                self.script(body, min(i, limit), None, arith)
            else:
                self.heredoc(body, min(i, limit), arith)
            if resume is not None:
                return min(resume, limit), False
            i = min(line_end + 1, limit)
        return i, True

    def heredoc(self, i: int, limit: int, arith: str | None) -> int:
        """The body of a here-document with an unquoted delimiter: expanded as between
        double quotes, but where quotes are plain characters."""
        t = self.text
        while i < limit:
            if i in self.found:
                i = self.put(i, _BARE, arith)
            elif t[i] == "\\":
                i += 2
            elif t[i] in "$`":
                i = self.expansion(i, limit, True, arith)
            else:
                i += 1
        return limit
