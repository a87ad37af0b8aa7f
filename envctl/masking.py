"""Masking secret values in text envctl shows or keeps: one rule for every place.

A secret is masked as a value, not as a substring of other words. Plain substring replacement
of a short value (`HF_TOKEN=x`) turned `examples` into `e***amples` in a plan; so:

- a value shorter than `WHOLE_WORD_BELOW` characters is masked only where it stands alone,
  i.e. where neither neighbour is an ASCII letter, digit, `_` or `-` (`HF_TOKEN=x`, `token: x,`,
  `?sig=x&`, `"x"`, `令牌x已设置` — a CJK neighbour is not part of an ASCII word, so it is
  masked; `x-ray` and `examples` are other words and are left alone);
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
            before = f"(?<![{_WORD}])" if re.match(f"[{_WORD}]", form[0]) else ""
            after = f"(?![{_WORD}])" if re.match(f"[{_WORD}]", form[-1]) else ""
            escaped = before + escaped + after
        parts.append(escaped)
    return re.compile("|".join(parts)) if parts else None


def mask(text: str, secrets: Iterable[str]) -> str:
    """`text` with every secret value (and its URL- and shell-quoted spellings) replaced by
    `***`, following the rule of the module docstring. Empty secrets are ignored."""
    pattern = _pattern(frozenset(s for s in secrets if s))
    return text if pattern is None else pattern.sub(MASK, text)
