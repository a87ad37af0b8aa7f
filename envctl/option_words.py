"""Reading a command line's options before typer is imported (the quick paths: envctl/cli.py),
in the plain forms that click reads one way only."""

from __future__ import annotations


def option_name(word: str) -> str:
    """The option a word gives: `--opt` of `--opt=VALUE`, the word itself otherwise (`-H`,
    `--flag`)."""
    return word.partition("=")[0] if word.startswith("--") else word


def option_value(word: str, words: list[str]) -> str | None:
    """The value of the option `word` gives, as click reads it: after `=` in `--opt=VALUE`,
    else the next word, taken from `words`. None when it is missing or empty or starts with
    "-" (click would read such a value otherwise, or refuse it: the full path's to say)."""
    if word.startswith("--") and "=" in word:
        value = word.partition("=")[2]
    elif words:
        value = words.pop(0)
    else:
        return None
    return value if value and not value.startswith("-") else None
