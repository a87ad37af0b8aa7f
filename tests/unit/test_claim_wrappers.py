"""The setup steps' claim wrappers every earlier envctl ran (envctl/markers.py CLAIM_WRAPPERS):
a step one of them started may still run in a container, and `status`, `plan` and `down` know it
as a setup step by the wrapper's exact text (envctl/runs.py). Each text is pinned here by its
sha256, as the release that ran it had it: a wrapper changed in place would drop one."""

from __future__ import annotations

import hashlib

from envctl.markers import CLAIM_WRAPPER, CLAIM_WRAPPERS

EARLIER = {
    "0b922ad544e027d47da4994c1c4653ad79ccca7154980d44fe064bb4646374a0": "the marker written with `true`, no exit word",
    "4198515027e8e3d882b34e5a903ae4b0770f7ebe380d44fb5c001e8876f4baea": "the marker written with `:` (71f645e)",
    "c6f6a50b6cd01175f4385bcf2c51da350ca40829939db0db3220903898d9df92": "the marker written, failures not said",
}


def test_every_earlier_wrapper_is_still_known():
    known = {hashlib.sha256(text.encode()).hexdigest() for text in CLAIM_WRAPPERS}
    assert [what for digest, what in EARLIER.items() if digest not in known] == []


def test_the_wrapper_run_now_comes_first_and_each_is_known_once():
    assert CLAIM_WRAPPERS[0] == CLAIM_WRAPPER
    assert len(set(CLAIM_WRAPPERS)) == len(CLAIM_WRAPPERS)
