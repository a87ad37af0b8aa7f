"""Masking secret values in text envctl shows or keeps: one rule for every place.

A secret is masked as a value, not as a substring of other words. Plain substring replacement
of a short value (`HF_TOKEN=x`) turned `examples` into `e***amples` in a plan; so:

- a value shorter than `WHOLE_WORD_BELOW` characters is masked only where it stands alone,
  i.e. where neither neighbour is an ASCII letter, digit, `_` or `-` (`HF_TOKEN=x`, `token: x,`,
  `?sig=x&`, `"x"`, `令牌x已设置` — a CJK neighbour is not part of an ASCII word, so it is
  masked; `x-ray` and `examples` are other words and are left alone), nor a `.`, `:` or `/`
  that joins it to a word character: a dotted, colon or slash token is one word too, so
  `MY_SECRET=1` leaves `127.0.0.1`, `0.1.0`, `[::1]:8000` and `/1/` of a path
  alone, while `it is 1.` (a sentence's full stop) is still masked;
- a longer value is masked wherever it occurs, also glued to other text (`Bearer${TOKEN}`
  in a script's echo prints `Bearerhf_…`): long values do not occur inside unrelated words by
  chance, and when they do occur it is the secret itself.

Each secret is also masked in the spellings it takes on its way into text: percent-encoded in a
URL (`quote`, `quote_plus`) and inside a single-quoted shell word (`shlex.join` writes `a'b` as
`'a'"'"'b'`, where the raw value never appears). One pass over the text with every spelling of
every secret, longest first, so that a secret containing another is masked whole and a value
that appears again and again is masked every time.
"""

from __future__ import annotations

import re
from functools import lru_cache
from typing import Iterable
from urllib.parse import quote, quote_plus

MASK = "***"
WHOLE_WORD_BELOW = 8  # characters; shorter values are masked only as whole words
_WORD = "A-Za-z0-9_\\-"
_GLUE = "./:"  # joins a short value to a word character beside it (127.0.0.1, v1.2, a/1/b)


def spellings(secret: str) -> set[str]:
    """The forms in which `secret` can appear in text envctl writes (see the module docstring)."""
    forms = {secret, quote(secret, safe=""), quote_plus(secret, safe=""), secret.replace("'", "'\"'\"'")}
    return {form for form in forms if form}


@lru_cache(maxsize=64)
def _pattern(secrets: frozenset[str]) -> re.Pattern | None:
    parts = []
    for form in sorted({f for s in secrets for f in spellings(s)}, key=lambda f: (-len(f), f)):
        escaped = re.escape(form)
        if len(form) < WHOLE_WORD_BELOW:
            # A boundary is tested only where the value's own edge is a word character: a
            # value that starts or ends with punctuation is already delimited there.
            glue = re.escape(_GLUE)
            before = f"(?<![{_WORD}])(?<![{_WORD}{glue}][{glue}])" if re.match(f"[{_WORD}]", form[0]) else ""
            after = f"(?![{_WORD}])(?![{glue}][{_WORD}])" if re.match(f"[{_WORD}]", form[-1]) else ""
            escaped = before + escaped + after
        parts.append(escaped)
    return re.compile("|".join(parts)) if parts else None


def mask(text: str, secrets: Iterable[str]) -> str:
    """`text` with every secret value (and its URL- and shell-quoted spellings) replaced by
    `***`, following the rule of the module docstring. Empty secrets are ignored."""
    pattern = _pattern(frozenset(s for s in secrets if s))
    return text if pattern is None else pattern.sub(MASK, text)


class StreamMask:
    """Masks a byte stream (an entrypoint's output, written live and to its log) by the same
    rule as `mask`, across chunk boundaries: only a tail that could still become a secret
    (a prefix of one of its spellings) is held back until the next chunk, so output that holds
    no secret passes at once; two bytes already written are kept as the left neighbours for the
    whole-word rule (a glue character and the one before it). `feed(data)` returns what may be written now, `flush()` the rest."""

    def __init__(self, secrets: Iterable[str]):
        unique = frozenset(s for s in secrets if s)
        pattern = _pattern(unique)
        self._pattern = re.compile(pattern.pattern.encode("utf-8")) if pattern is not None else None
        self._forms = sorted({f.encode("utf-8") for s in unique for f in spellings(s)}, key=len, reverse=True)
        self._held = b""
        self._left = b""  # the last two bytes written: the left neighbours of what comes next

    def _masked(self, data: bytes) -> bytes:
        text = self._left + data
        out, last = [], 0
        for found in self._pattern.finditer(text):
            if found.start() < len(self._left):
                continue  # began in what was already written
            out += [text[last:found.start()], MASK.encode()]
            last = found.end()
        out.append(text[last:])
        return b"".join(out)[len(self._left):]

    def feed(self, data: bytes) -> bytes:
        if self._pattern is None:
            return data
        data = self._held + data
        keep = 0
        for form in self._forms:  # the longest tail of `data` that is a proper prefix of a spelling
            for size in range(min(len(form) - 1, len(data)), keep, -1):
                if data.endswith(form[:size]):
                    keep = size
                    break
        # A short spelling needs its right neighbours to decide (a word character, or a glue
        # character and what follows it): hold it, and the glue character after it, back.
        for form in self._forms:
            if len(form) >= WHOLE_WORD_BELOW:
                continue
            if data.endswith(form):
                keep = max(keep, len(form))
            elif data[-1:] and data[-1:] in _GLUE.encode() and data[:-1].endswith(form):
                keep = max(keep, len(form) + 1)
        ready, self._held = (data[:-keep], data[-keep:]) if keep else (data, b"")
        written = self._masked(ready)
        if ready:
            self._left = (self._left + ready)[-2:]
        return written

    def flush(self) -> bytes:
        if self._pattern is None or not self._held:
            return b""
        rest, self._held = self._held, b""
        return self._masked(rest)
