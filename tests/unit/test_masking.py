"""Masking secret values (envctl/masking.py) wherever envctl shows text: as values, not as
substrings of other words (`HF_TOKEN=x` once turned `examples` into `e***amples` in a plan)."""

import random
import shlex

import pytest

from envctl.artifacts.urls import redact_text
from envctl.masking import MASK, StreamMask, mask
from envctl.render import redact


@pytest.mark.parametrize("text, secrets, expected", [
    # The reported case, and short values next to letters, digits, _ and - (other words).
    ("HF_TOKEN=x in examples", ["x"], "HF_TOKEN=*** in examples"),
    ("x-ray x_y x1 1x ex", ["x"], "x-ray x_y x1 1x ex"),
    ("--set token=ab, 'ab' \"ab\" (ab) ab.", ["ab"], "--set token=***, '***' \"***\" (***) ***."),
    # A dotted, colon or slash token is one word: a one-character secret leaves addresses,
    # versions and paths alone (it had turned a plan's 127.0.0.1 into 127.0.0.*** and the
    # label io.envctl.version=0.1.0 into 0.***.0), and is still masked as a value, also before
    # a sentence's full stop or a colon that ends a line.
    ("127.0.0.1 [::1]:8001 v0.1.0 /tmp/1/x a:1 1.5 1", ["1"], "127.0.0.1 [::1]:8001 v0.1.0 /tmp/1/x a:1 1.5 ***"),
    ("it is 1. then 1: done (1) =1, 1/ :1", ["1"], "it is ***. then ***: done (***) =***, ***/ :***"),
    ("HF_TOKEN=main: main.py src/main examples main", ["main"], "HF_TOKEN=***: main.py src/main examples ***"),
    # A CJK neighbour is not part of an ASCII word.
    ("令牌x已设置", ["x"], "令牌***已设置"),
    # Long values are masked even glued to other text (a script printing Bearer$TOKEN).
    ("Bearerhf_abcdefgh1234 and hf_abcdefgh1234", ["hf_abcdefgh1234"], "Bearer*** and ***"),
    # Repeated values, and a secret that contains another: the longer is masked whole.
    ("a=hunter22; b=hunter22", ["hunter22"], "a=***; b=***"),
    ("pw=hunter22xyz", ["hunter22", "hunter22xyz"], "pw=***"),
    # Spellings a value takes: percent-encoded in a URL, split by a shell's single quotes.
    ("https://h/x?t=a%2Fb%3Dc", ["a/b=c"], "https://h/x?t=***"),
    ("https://h/x?t=a+b+c", ["a b c"], "https://h/x?t=***"),
    (shlex.join(["--env", "T=it's-secret"]), ["it's-secret"], "--env 'T=***'"),
    # Nothing to mask, an empty secret.
    ("nothing here", [], "nothing here"),
    ("nothing here", [""], "nothing here"),
])
def test_values_are_masked_not_substrings_of_words(text, secrets, expected):
    assert mask(text, secrets) == expected
    assert redact(text, frozenset(secrets)) == expected  # the plan's and show's redaction is the same rule


def test_url_redaction_follows_the_same_rule():
    """urls.redact_text (tool stderr, exception messages) masks given secrets the same way,
    beside its own URL password and signed-query rules."""
    assert redact_text("pwd=abcd in abcdef", ["abcd"]) == "pwd=*** in abcdef"
    assert redact_text("https://u:pw@h/f?sig=s&x=1 sig s", []) == "https://u:***@h/f?sig=***&x=1 sig s"


def test_plan_text_masks_a_short_token_without_touching_words(tmp_path):
    """The issue's plan: a manifest holding HF_TOKEN=x in container.env and the word examples."""
    from envctl.manifest.loader import load
    from envctl.plan import build_plan
    from envctl.render import plan_json, plan_text

    manifest = tmp_path / "m.yaml"
    manifest.write_text("name: masked\ndescription: examples of masking\ndevice: {kind: cpu}\nimage: {ref: busybox:1}\n"
                        "container:\n  env: {HF_TOKEN: x, API_TOKEN: \"it's\"}\n"
                        "setup:\n  - {name: examples, run: echo examples x-ray}\n")
    loaded = load(manifest, environ={})
    plan = build_plan(loaded, _observed(loaded), environ={})
    text, data = plan_text(plan), plan_json(plan)
    assert "examples x-ray" in text and "e***amples" not in text
    assert "--env HF_TOKEN=***" in text and "--env 'API_TOKEN=***'" in text
    assert "it's" not in text and '"x"' not in data and "it's" not in data


def _observed(loaded):
    from envctl.observe import observe
    from envctl.hosts.local import LocalHost

    return observe(LocalHost(environ={}), loaded, None, engine_problem="not asked in a unit test")


@pytest.mark.parametrize("seed", range(20))
def test_stream_masking_across_chunk_boundaries(seed):
    """An entrypoint's output arrives in chunks of any size: the masked stream equals the
    masked whole, and text holding no secret is written at once (nothing held back)."""
    secrets = ["x", "hf_SECRETTOKEN123", "a'b", "1"]
    text = ("HF_TOKEN=x examples x-ray hf_SECRETTOKEN123 Bearerhf_SECRETTOKEN123 e x\n'a'\"'\"'b' x "
            "127.0.0.1 x. x.y y.x x: x:8 1 /1/ 1." * 4).encode()
    rng = random.Random(seed)
    stream, out, at = StreamMask(secrets), b"", 0
    while at < len(text):
        size = rng.randint(1, 9)
        out += stream.feed(text[at:at + size])
        at += size
    out += stream.flush()
    assert out == mask(text.decode(), secrets).encode()
    assert StreamMask(secrets).feed(b"no secret here\n") == b"no secret here\n"
    assert StreamMask([]).feed(b"x") == b"x"
    assert MASK.encode() in out
