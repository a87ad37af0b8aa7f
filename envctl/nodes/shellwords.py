"""Split a shell command text into simple commands and words, keeping where each word starts.

Only as much of the POSIX shell grammar as a launcher check needs: quotes ('...', "..."),
backslash escapes and line continuations, `$(...)` and backticks kept inside one word, comments,
and the separators that end a simple command (newline, `;`, `&`, `|`, `&&`, `||`, parentheses).
Expansions are not performed: a word keeps `$VAR` as written, so a check can tell a value that
comes from a variable from a literal one. Nothing is executed.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_SEPARATORS = ";&|()"
_ASSIGNMENT = re.compile(r"^([A-Za-z_][A-Za-z0-9_]*)=(.*)$", re.S)
_VARIABLE = re.compile(r"\$(?:\{([A-Za-z_][A-Za-z0-9_]*)|([A-Za-z_][A-Za-z0-9_]*))")


@dataclass(frozen=True)
class Word:
    raw: str  # as written, quotes and escapes kept
    text: str  # quotes removed, escapes resolved, line continuations dropped; `$X` kept as written
    line: int  # 0-based line of the command text where the word starts

    @property
    def variables(self) -> tuple[str, ...]:
        """The variables the word expands (`$X`, `${X}`, `${X:-default}`), in order; not a `$X`
        in single quotes or escaped (`'$X'`, `\\$X`), which the shell passes on as written."""
        return tuple(a or b for a, b in _VARIABLE.findall(_expanded_parts(self.raw)))

    @property
    def substitutes(self) -> bool:
        """Whether the word runs a command (`$(...)` or backticks) to make its value."""
        return "$(" in self.raw or "`" in self.raw

    @property
    def assignment(self) -> tuple[str, "Word"] | None:
        """`NAME=value` as (NAME, the value as a word), else None."""
        match = _ASSIGNMENT.match(self.raw)
        if not match:
            return None
        value_text = _ASSIGNMENT.match(self.text)
        return match.group(1), Word(match.group(2), value_text.group(2) if value_text else "", self.line)


def _expanded_parts(raw: str) -> str:
    """`raw` less what the shell does not expand: single-quoted text outside double quotes and
    backslash-escaped characters (each replaced by a space)."""
    out, i, in_double = [], 0, False
    while i < len(raw):
        ch = raw[i]
        if ch == "\\":
            out.append("  ")
            i += 2
            continue
        if ch == "'" and not in_double:
            end = raw.find("'", i + 1)
            end = len(raw) if end < 0 else end + 1
            out.append(" " * (end - i))
            i = end
            continue
        if ch == '"':
            in_double = not in_double
        out.append(ch)
        i += 1
    return "".join(out)


class _Scanner:
    def __init__(self, text: str):
        self.text = text
        self.i = 0
        self.line = 0
        self.commands: list[list[Word]] = [[]]
        self.raw: list[str] = []
        self.out: list[str] = []
        self.start_line = 0

    def _char(self) -> str:
        ch = self.text[self.i]
        self.i += 1
        if ch == "\n":
            self.line += 1
        return ch

    def _begin(self) -> None:
        if not self.raw:
            self.start_line = self.line

    def _end_word(self) -> None:
        if self.raw:
            self.commands[-1].append(Word("".join(self.raw), "".join(self.out), self.start_line))
            self.raw, self.out = [], []

    def _end_command(self) -> None:
        self._end_word()
        if self.commands[-1]:
            self.commands.append([])

    def _single_quoted(self) -> None:
        self.raw.append(self._char())
        while self.i < len(self.text):
            ch = self._char()
            self.raw.append(ch)
            if ch == "'":
                return
            self.out.append(ch)

    def _double_quoted(self) -> None:
        self.raw.append(self._char())
        while self.i < len(self.text):
            ch = self._char()
            self.raw.append(ch)
            if ch == '"':
                return
            if ch == "\\" and self.i < len(self.text):
                nxt = self._char()
                self.raw.append(nxt)
                if nxt == "\n":
                    continue  # a line continuation inside double quotes disappears too
                self.out.append(nxt if nxt in '$`"\\' else "\\" + nxt)
            elif ch == "$" and self.text.startswith("(", self.i):
                self._substitution()
            else:
                self.out.append(ch)

    def _substitution(self) -> None:
        """`$(` was read (the `$`): copy through the matching `)`, quotes inside respected."""
        depth = 0
        self.out.append("$")
        while self.i < len(self.text):
            ch = self._char()
            self.raw.append(ch)
            self.out.append(ch)
            if ch == "(":
                depth += 1
            elif ch == ")":
                depth -= 1
                if depth == 0:
                    return
            elif ch in "'\"":
                end = self.text.find(ch, self.i)
                end = len(self.text) if end < 0 else end + 1
                while self.i < end:
                    piece = self._char()
                    self.raw.append(piece)
                    self.out.append(piece)

    def scan(self) -> list[list[Word]]:
        text = self.text
        while self.i < len(text):
            ch = text[self.i]
            if ch == "\\" and self.i + 1 < len(text):
                self._begin()
                self._char()
                nxt = self._char()
                if nxt != "\n":
                    self.raw.append("\\" + nxt)
                    self.out.append(nxt)
                continue  # backslash-newline joins lines without ending the word
            if ch in " \t":
                self._char()
                self._end_word()
            elif ch == "\n" or ch in _SEPARATORS:
                self._char()
                self._end_command()
            elif ch == "#" and not self.raw:
                while self.i < len(text) and text[self.i] != "\n":
                    self._char()
            elif ch == "'":
                self._begin()
                self._single_quoted()
            elif ch == '"':
                self._begin()
                self._double_quoted()
            elif ch == "$" and text.startswith("(", self.i + 1):
                self._begin()
                self.raw.append(self._char())
                self._substitution()
            elif ch == "`":
                self._begin()
                end = text.find("`", self.i + 1)
                end = len(text) if end < 0 else end + 1
                while self.i < end:
                    piece = self._char()
                    self.raw.append(piece)
                    self.out.append(piece)
            else:
                self._begin()
                self.raw.append(ch)
                self.out.append(self._char())
        self._end_command()
        return [command for command in self.commands if command]


def commands(text: str) -> list[list[Word]]:
    """The simple commands of a shell text, each a list of Words (assignments included)."""
    return _Scanner(text).scan()


def argv_words(argv: list[str]) -> list[list[Word]]:
    """An argument list (a `run:` written as a list) as one command; each item is one word on
    line `index` (the caller maps items to their own lines)."""
    return [[Word(item, item, index) for index, item in enumerate(argv)]]
