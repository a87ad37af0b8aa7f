"""Cache keys: no artifact's cache entry lies inside another's.

A file source inside another source's directory (`/data/w.txt` beside `/data`), a git
repository whose path continues another's ref (`a` at `b/c` beside `a/b` at `c`) and a Hub
revision containing `/` were stored inside the other entry: `up` fetched twice and the next plan
wanted to fetch again. Pure tests of the key layout; the fetch itself is covered in
tests/artifacts."""

from itertools import permutations
from pathlib import PurePosixPath

import pytest

from envctl.artifacts.sources import artifact_key, parse_source

NEIGHBOURS = [
    ["/data", "/data/w.txt", "/data/sub/x.bin", "/data/"],
    ["git+https://git.example.org/a.git@b/c", "git+https://git.example.org/a/b.git@c",
     "git+https://git.example.org/a@b"],
    ["hf://org/name@refs", "hf://org/name@refs/pr/1", "hf://org/name@main"],
    ["https://files.example.org/d", "https://files.example.org/d/w.bin", "https://files.example.org/d?p=w.bin"],
]


def _nested(outer: str, inner: str) -> bool:
    return PurePosixPath(outer) in PurePosixPath(inner).parents


@pytest.mark.parametrize("sources", NEIGHBOURS, ids=["paths", "git", "hub", "urls"])
def test_no_entry_is_inside_another(sources):
    keys = {text: artifact_key(parse_source(text), None, ()) for text in sources}
    for (a, key_a), (b, key_b) in permutations(keys.items(), 2):
        assert not _nested(key_a, key_b), f"{b} ({key_b}) would be stored inside {a} ({key_a})"


def test_subpaths_and_includes_stay_beside_their_source():
    source = parse_source("/data")
    plain = artifact_key(source, None, ())
    for key in (artifact_key(source, "sub/dir", ()), artifact_key(source, None, ("*.json",))):
        assert PurePosixPath(key).parent == PurePosixPath(plain).parent and key != plain


def test_one_directory_written_three_ways_is_one_entry():
    assert len({artifact_key(parse_source(p), None, ()) for p in ("/data", "/data/", "/data/./")}) == 1


def test_keys_end_in_a_readable_name():
    assert artifact_key(parse_source("/nas/models/chatglm3-6b"), None, ()).endswith("/chatglm3-6b")
    assert artifact_key(parse_source("git+https://github.com/THUDM/ChatGLM3.git@v1.0"), None, ()).endswith("/ChatGLM3")
    assert artifact_key(parse_source("hf://THUDM/chatglm3-6b@refs/pr/1"), None, ()) == "hf/THUDM/chatglm3-6b/refs~pr~1"
