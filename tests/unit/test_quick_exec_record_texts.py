"""The texts of an exec record searched for credentials (envctl/quick_exec_record.py _texts,
_holds): every text it holds (the listing's labels too, where a --var value shows), but the
fingerprints and its key; in the listing's hashes and image IDs a credential counts only as the
whole of one (a short value would be found in them by chance)."""

from envctl.quick_exec_record import _holds, _texts

ID = "8" * 12 + "0123456789abcdef" * 3
RECORD = {
    "format": 3, "key": "8" * 64,
    "remote": {"destination": "lab1", "forward": "/tmp/ec/docker-1", "session": ["ssh", "--", "sh"],
               "commands": [{"argv": ["ssh", "lab1", "--", "kind"], "returncode": 0, "stdout": "8" * 64,
                             "stderr": None}]},
    "listing": {"containers": [[["/envctl-a"], "running",
                                {"io.envctl.vars": '{"note": "hf_secret"}', "io.envctl.config-hash": ID,
                                 "io.envctl.image-id": "sha256:" + "8" * 64},
                                []]], "baked_for": []},
    "files": {"/m.yaml": ["sha256", "8" * 64]}, "stats": {"/run.env": [1, 8, 8, 8, 8]},
    "run": {"argv": ["sh", "-c", "echo"]}, "stderr": "warning: X is not set\n",
}


def test_a_label_holding_a_credential_is_among_the_texts():
    assert any("hf_secret" in text for text in _texts(RECORD))


def test_fingerprints_and_the_key_are_not_and_ids_hold_only_a_whole_secret():
    texts = _texts(RECORD)
    assert {"/m.yaml", "/run.env", "lab1", "kind", "warning: X is not set\n"} <= set(texts)
    assert "8" * 64 not in texts  # the key, a file's and a command's fingerprints
    assert ID in texts and not any(_holds(text, "8") for text in texts), texts  # "8": an inventory variable
    assert any(_holds(text, ID) for text in texts)  # a hex credential equal to an ID is still found
    assert _holds('{"note": "hf_secret"}', "hf_secret") and _holds("a 8 b", "8")
